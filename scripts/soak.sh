#!/usr/bin/env bash
# Saturation run (issue 16): the release server over PostgreSQL + Redis + the reference Celery
# worker, driven at SOAK_FACTOR (2) times the rate it serves for SOAK_SECS (60) seconds by many
# users listing, reading status, creating and cancelling. Prints the answers (5xx must be 0),
# the requests the rate limits refused against what the configured quotas refuse for the same
# send times (within 1 %), lost cancels (0: no cancelled row's task succeeded or left output
# without its owner being told `finished_first`)
# and the server's peak RSS; exits 1 when one of the three checks fails. Not part of the test
# command; docs/reliability.md has the figures of a run. Self-contained: its own PostgreSQL,
# Redis and worker on free ports in a temp dir, all stopped at the end.
#
#   SOAK_SECS=60 SOAK_FACTOR=2 SOAK_USERS=1000 bash scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SOAK_SECS:-60}
FACTOR=${SOAK_FACTOR:-2}
USERS=${SOAK_USERS:-1000}
PER_MIN=${SOAK_RATE_LIMIT_PER_MIN:-100}
CANCEL_PER_MIN=${SOAK_CANCEL_RATE_LIMIT_PER_MIN:-10}
# the worker's task durations: short, so that many jobs start, run and are killed in a minute
OPTIONS_SECS=1
VIDEO_SECS=4
# after the run: longer than a video, so that a cancel that did not land shows as output
SETTLE_SECS=$((VIDEO_SECS + 6))
SECRET=soak-secret-soak-secret-soak-secret

bash scripts/ensure-celery-venv.sh >/dev/null
. scripts/lib/release-build.sh
. scripts/lib/own-services.sh

SERVER_PID= WORKER_PID=
cleanup() {
  stop_pid "$SERVER_PID"
  stop_pid "$WORKER_PID"
  own_services_stop
}
trap cleanup EXIT
own_services_start soak

echo "== the reference worker (prefork, 2 children)" >&2
export ENSINALAB_WORK_DIR="$WORK/work" ENSINALAB_OUTPUT_DIR="$WORK/output"
ENSINALAB_OPTIONS_SECS=$OPTIONS_SECS ENSINALAB_VIDEO_SECS=$VIDEO_SECS \
  .venv/worker/bin/celery --workdir apps/worker -A ensinalab_worker worker -P prefork -c 2 \
  -l WARNING >"$WORK/worker.log" 2>&1 &
WORKER_PID=$!

echo "== the release server" >&2
APORT=$(free_port)
BIND_ADDR=127.0.0.1:$APORT METRICS_ADDR=127.0.0.1:$(free_port) JWT_SECRET=$SECRET HASHIDS_SALT=soak \
  RATE_LIMIT_BACKEND=redis RATE_LIMIT_PER_MIN=$PER_MIN CANCEL_RATE_LIMIT_PER_MIN=$CANCEL_PER_MIN \
  LOG_FORMAT=json RUST_LOG=warn "$API" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$APORT/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$APORT/healthz" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

echo "== ${SECS}s at ${FACTOR}x the served rate, $USERS users (after a closed-loop probe)" >&2
JWT_SECRET=$SECRET "$BENCH" soak --base-url "http://127.0.0.1:$APORT" --users "$USERS" \
  --duration-secs "$SECS" --load-factor "$FACTOR" --per-min "$PER_MIN" \
  --cancel-per-min "$CANCEL_PER_MIN" | tee "$WORK/soak.txt"
rss_kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SERVER_PID/status")

echo "== ${SETTLE_SECS}s for the worker to finish what it runs, then every cancelled row's task" >&2
sleep "$SETTLE_SECS"
"$BENCH" lost-cancels --output-dir "$ENSINALAB_OUTPUT_DIR" | tee "$WORK/cancels.txt"

field() { grep "^$1 " "$3" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
s5xx=$(field SOAK s5xx "$WORK/soak.txt")
general_diff=$(field LIMITS general_diff_pct "$WORK/soak.txt")
cancel_diff=$(field LIMITS cancel_diff_pct "$WORK/soak.txt")
lost=$(field CANCELS lost "$WORK/cancels.txt")
verdict() { if [ "$1" = 1 ]; then echo "ok"; else echo "FAILED"; fi; }
within() { awk -v d="$1" 'BEGIN { print (d <= 1 && d >= -1) ? 1 : 0 }'; }
ok_5xx=$([ "$s5xx" = 0 ] && echo 1 || echo 0)
ok_limits=$(( $(within "$general_diff") && $(within "$cancel_diff") ))
ok_lost=$([ "$lost" = 0 ] && echo 1 || echo 0)
cat <<TABLE

| check | result | |
|---|---|---|
| 5xx answers | $s5xx | $(verdict "$ok_5xx") |
| limit refusals vs quotas | general $general_diff %, cancel $cancel_diff % | $(verdict "$ok_limits") |
| lost cancels | $lost of $(field CANCELS cancelled "$WORK/cancels.txt") cancelled ($(field CANCELS finished_first "$WORK/cancels.txt") told \`finished_first\`) | $(verdict "$ok_lost") |
| server peak RSS | $((rss_kib / 1024)) MiB | |
TABLE
[ "$ok_5xx" = 1 ] && [ "$ok_limits" = 1 ] && [ "$ok_lost" = 1 ]
