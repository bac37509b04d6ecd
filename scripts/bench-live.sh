#!/usr/bin/env bash
# The live stream's figures (docs/benchmarks.md, "live stream"). Never part of the test command;
# asserts nothing; stops what it started.
#
# Without an argument (about a minute): a cancel's time to its event at a client of
# GET /tasks/events, p50 and p99 over BENCH_LIVE_CHANGES changes, and the server's memory per
# idle open stream with BENCH_LIVE_STREAMS streams open; the release server on the embedded
# default (a SQLite file in a temp dir, the in-process broker) on a free port.
#
#   BENCH_LIVE_CHANGES=1000 BENCH_LIVE_STREAMS=1000 bash scripts/bench-live.sh
#
# `fleet` (about BENCH_FLEET_SECS, 10 minutes by default): production's shape. Two release
# servers over a PostgreSQL and a Redis of their own (the relay between them), BENCH_FLEET_STREAMS
# streams (half SSE, half WebSocket, spread over both servers) open for the whole run while
# BENCH_FLEET_RATE briefings a second are created and cancelled through both servers: unexpected
# disconnects, each change delivered once to its owner's streams and to no one else,
# change-to-client p50/p99, memory per open stream, each server's RSS every 10 s.
#
#   BENCH_FLEET_STREAMS=1000 BENCH_FLEET_SECS=600 bash scripts/bench-live.sh fleet
set -euo pipefail
cd "$(dirname "$0")/.."

SECRET=bench-live-secret-bench-live-secret!!
MODE=${1:-single}
STREAMS=${BENCH_LIVE_STREAMS:-1000}
[ "$MODE" = fleet ] && STREAMS=${BENCH_FLEET_STREAMS:-1000}

# one descriptor per open stream on each side, and some
ulimit -n $((STREAMS * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. scripts/lib/release-build.sh
. scripts/lib/own-services.sh

# serve PORT ENV...: a release server on PORT with the bench's settings and ENV; prints its pid.
serve() {
  local port=$1
  shift
  env BIND_ADDR="127.0.0.1:$port" METRICS_ADDR="" JWT_SECRET=$SECRET \
    LOCAL_OPTIONS_SECS=3600 MAX_ACTIVE_JOBS_PER_USER=1000000 MAX_STREAMS_PER_USER=5 \
    RATE_LIMIT_PER_MIN=1000000000 CANCEL_RATE_LIMIT_PER_MIN=1000000000 RUST_LOG=warn \
    "$@" "$API" >>"$WORK/server-$port.log" 2>&1 &
  echo $!
}

ready() { until curl -sf "localhost:$1/readyz" >/dev/null; do sleep 0.2; done; }

if [ "$MODE" = fleet ]; then
  servers=
  trap 'for p in $servers; do stop_pid "$p"; done; own_services_stop' EXIT
  own_services_start bench-live
  a=$(free_port) b=$(free_port)
  servers="$(serve "$a" DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL")"
  ready "$a"
  servers="$servers $(serve "$b" DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" AUTO_MIGRATE=false)"
  ready "$b"
  set -- $servers
  echo "== live fleet: $STREAMS streams on 2 servers for ${BENCH_FLEET_SECS:-600} s ($(nproc) cores)" >&2
  JWT_SECRET=$SECRET "$BENCH" live-fleet --bases "http://127.0.0.1:$a" "http://127.0.0.1:$b" \
    --pids "$1" "$2" --streams "$STREAMS" --users $((STREAMS / 5)) \
    --rate "${BENCH_FLEET_RATE:-10}" --secs "${BENCH_FLEET_SECS:-600}"
  for port in $a $b; do
    if grep -E '(WARN|ERROR)' "$WORK/server-$port.log" >/dev/null; then
      echo "server on $port logged warnings:" >&2
      grep -E '(WARN|ERROR)' "$WORK/server-$port.log" | tail -n 5 >&2
    fi
  done
  exit 0
fi

CHANGES=${BENCH_LIVE_CHANGES:-1000}
WORK=$(mktemp -d)
server=
trap 'stop_pid "$server"; rm -rf "$WORK"' EXIT
port=$(free_port)
server=$(serve "$port" DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc")
ready "$port"
echo "== live stream: $CHANGES changes, $STREAMS idle streams ($(nproc) cores)" >&2
JWT_SECRET=$SECRET "$BENCH" live --base "http://127.0.0.1:$port" \
  --pid "$server" --changes "$CHANGES" --streams "$STREAMS"
