#!/usr/bin/env bash
# The live stream's figures (issue 17; docs/benchmarks.md, "live stream"): a cancel's time to its
# event at a client of GET /tasks/events, p50 and p99 over BENCH_LIVE_CHANGES changes, and the
# server's memory per idle open stream with BENCH_LIVE_STREAMS streams open. Never part of the
# test command; asserts nothing. Self-contained: the release server on the embedded default
# (a SQLite file in a temp dir, the in-process broker) on a free port; it stops what it started.
#
#   BENCH_LIVE_CHANGES=1000 BENCH_LIVE_STREAMS=1000 bash scripts/bench-live.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CHANGES=${BENCH_LIVE_CHANGES:-1000}
STREAMS=${BENCH_LIVE_STREAMS:-1000}
SECRET=bench-live-secret-bench-live-secret!!

# one descriptor per open stream on each side, and some
ulimit -n $((STREAMS * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. scripts/lib/release-build.sh
. scripts/lib/own-services.sh

port=$(free_port)
work=$(mktemp -d)
server=
trap 'stop_pid "$server"; rm -rf "$work"' EXIT

BIND_ADDR="127.0.0.1:$port" METRICS_ADDR="127.0.0.1:$(free_port)" \
  DATABASE_URL="sqlite://$work/bench.db?mode=rwc" JWT_SECRET=$SECRET \
  LOCAL_OPTIONS_SECS=3600 MAX_ACTIVE_JOBS_PER_USER=1000000 MAX_STREAMS_PER_USER=5 \
  RATE_LIMIT_PER_MIN=1000000000 CANCEL_RATE_LIMIT_PER_MIN=1000000000 RUST_LOG=warn \
  "$API" >"$work/server.log" 2>&1 &
server=$!
until curl -sf "localhost:$port/readyz" >/dev/null; do sleep 0.2; done

echo "== live stream: $CHANGES changes, $STREAMS idle streams ($(nproc) cores)" >&2
JWT_SECRET=$SECRET "$BENCH" live --base "http://127.0.0.1:$port" \
  --pid "$server" --changes "$CHANGES" --streams "$STREAMS"
