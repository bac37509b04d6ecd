#!/usr/bin/env bash
# Instructions per `GET /tasks/active` request, the release server against the full-body floor
# (`ensinalab-bench http-floor`), counted by valgrind's callgrind. Unlike requests per second,
# the count repeats from run to run whatever else the machine is doing, so it is how a change
# to the request path is judged (docs/benchmarks.md). Prints one line per N and keeps each
# profile for `callgrind_annotate`. Never part of the test command; it asserts nothing.
#
#   PROFILE_JOBS="1 50" PROFILE_REQUESTS=300 bash scripts/profile.sh
#   PROFILE_OUT=target/profile     # where the profiles are kept (default)
#   PROFILE_SQLX_LIST=1            # the server reads the list through sqlx and the keyset statement,
#                                  # as before it had connections of its own (a URL only sqlx reads)
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${PROFILE_JOBS:-1 10 50}
REQUESTS=${PROFILE_REQUESTS:-300}
WARMUP=100
OUT=${PROFILE_OUT:-target/profile}

command -v valgrind >/dev/null || { . scripts/lib/apt.sh; apt_install valgrind; }
command -v curl >/dev/null || { echo "profile: curl is missing" >&2; exit 1; }
. scripts/lib/release-build.sh
. scripts/lib/own-services.sh
. scripts/lib/measured-server.sh

PID=
cleanup() { stop_pid "$PID"; own_services_stop; }
trap cleanup EXIT
own_services_start profile
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# under_callgrind name port command...: starts `command` under callgrind, counting nothing until
# warmed up (callgrind_control zeroes the counters, then dumps after the measured requests).
under_callgrind() {
  local name=$1 port=$2
  shift 2
  rm -f "$OUT/$name".*
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.%p" "$@" >>"$WORK/$name.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  curl -s -o /dev/null "http://127.0.0.1:$port/healthz" || { cat "$WORK/$name.log" >&2; exit 1; }
}

# requests port token count: `count` sequential requests on one keep-alive connection; prints
# how many were not 200
requests() {
  local args=() i
  for ((i = 0; i < $3; i++)); do args+=(-o /dev/null "http://127.0.0.1:$1/tasks/active"); done
  curl -s -w '%{http_code}\n' -H "Authorization: Bearer $2" "${args[@]}" | grep -vc '^200$' || true
}

# measure name port token: instructions per request, after the warm-up
measure() {
  local name=$1 port=$2 token=$3 bad dump
  requests "$port" "$token" "$WARMUP" >/dev/null
  callgrind_control -z "$PID" >/dev/null
  bad=$(requests "$port" "$token" "$REQUESTS")
  callgrind_control -d "$PID" >/dev/null
  stop_pid "$PID"
  PID=
  dump=$(ls "$OUT/$name".*.1)
  [ "$bad" = 0 ] || { echo "profile: $bad of $REQUESTS answers to $name were not 200" >&2; exit 1; }
  callgrind_annotate "$dump" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d , |
    awk -v r="$REQUESTS" '{ printf "%.0f", $1 / r }'
  mv "$dump" "$OUT/$name.out"
  rm -f "$OUT/$name".[0-9]*
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "| jobs per user | server instructions/request | full-body floor | floor/server |"
echo "|---:|---:|---:|---:|"
for n in $JOBS; do
  user=$((n * 1000 + 1))
  "$BENCH" seed --first-user "$user" --users 1 --jobs "$n" >&2
  token=$(mint_token "$user")

  port=$(free_port)
  # as scripts/bench.sh runs it, with the other periodic jobs spaced out of the counted window
  server_url=$DATABASE_URL${PROFILE_SQLX_LIST:+?statement-cache-capacity=100}
  DATABASE_URL=$server_url BIND_ADDR=127.0.0.1:$port METRICS_ADDR=127.0.0.1:$(free_port) \
    AUTO_CANCEL_SWEEP_SECS=3600 METRICS_CENSUS_SECS=3600 \
    under_callgrind "server-$n" "$port" "$API"
  server=$(measure "server-$n" "$port" "$token")

  port=$(free_port)
  under_callgrind "floor-$n" "$port" "$BENCH" http-floor --port "$port" --pool 4
  floor=$(measure "floor-$n" "$port" "$token")

  echo "| $n | $server | $floor | $(ratio "$floor" "$server") |"
done
echo "profiles: $OUT/{server,floor}-N.out (callgrind_annotate --inclusive=yes ...)" >&2
