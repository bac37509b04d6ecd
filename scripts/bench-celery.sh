#!/usr/bin/env bash
# The Celery cancel's figures (docs/benchmarks.md, "The Celery cancel per kind of worker"). Never
# part of the test command; asserts nothing; stops what it started.
#
# Revoke-to-confirmed: BENCH_CONFIRM_COUNT (100) videos, each revoked alone while a pool process
# runs it, on the reference worker (claiming) and then on a stock worker (the same tasks without
# the claim): how many reports said `killed` within REVOKE_CONFIRM_MS (250), and the revoke's
# time p50/p99; each video revoked as soon as it runs, then after it ran half a second. Its
# own Redis on a free port; the workers prefork with two processes.
#
# Removal under a backlog: BENCH_BACKLOG (100,000) messages of about 1 KB queued around three
# cancelled ones (at the tail, where workers take their next message, in the middle, at the
# head); the cancel's time, when each message left the queue, the passes' time, and Redis's
# slowest command over the cancel and the passes (SLOWLOG at 0 on that Redis).
#
#   BENCH_CONFIRM_COUNT=100 BENCH_BACKLOG=100000 bash scripts/bench-celery.sh
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${BENCH_CONFIRM_COUNT:-100}
BACKLOG=${BENCH_BACKLOG:-100000}
CONFIRM_MS=${REVOKE_CONFIRM_MS:-250}

bash scripts/ensure-celery-venv.sh >/dev/null
. scripts/lib/release-build.sh
. scripts/lib/own-services.sh

WORKER_PID=
cleanup() {
  stop_pid "$WORKER_PID"
  own_services_stop
}
trap cleanup EXIT
own_services_start bench-celery
export ENSINALAB_WORK_DIR="$WORK/work" ENSINALAB_OUTPUT_DIR="$WORK/output"

for kind in on off; do
  queue="bench-confirm-$kind"
  echo "== revoke-to-confirmed, ENSINALAB_CLAIM=$kind, $COUNT running videos" >&2
  ENSINALAB_CLAIM=$kind CELERY_QUEUE=$queue ENSINALAB_VIDEO_SECS=600 ENSINALAB_VIDEO_STEPS=600 \
    .venv/worker/bin/celery --workdir apps/worker -A ensinalab_worker worker -P prefork -c 2 \
    -l WARNING --without-mingle --without-gossip -n "bench-$kind@%h" >"$WORK/worker-$kind.log" 2>&1 &
  WORKER_PID=$!
  for running_ms in 0 500; do
    "$BENCH" confirm --queue "$queue" --count "$COUNT" --confirm-ms "$CONFIRM_MS" --running-ms "$running_ms" |
      sed "s/^CONFIRM /CONFIRM worker=$( [ $kind = on ] && echo claiming || echo stock) /"
  done
  stop_pid "$WORKER_PID"
  WORKER_PID=
done

echo "== removal of three cancelled messages around a backlog of $BACKLOG" >&2
"$BENCH" unqueue --backlog "$BACKLOG"
