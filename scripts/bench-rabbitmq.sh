#!/usr/bin/env bash
# The Celery cancel with RabbitMQ as the broker, beside Redis (docs/benchmarks.md, "Celery on
# RabbitMQ"). Never part of the test command; asserts nothing; stops what it started.
#
# For each broker (a Redis of the script's own, which is also the result backend of both; the
# machine's RabbitMQ, which scripts/ensure-rabbitmq.sh starts, in a vhost of the script's own
# that is deleted afterwards) and each kind of worker (claiming, stock), the reference worker
# prefork with two pool processes:
#   - revoke-to-killed: BENCH_CONFIRM_COUNT (100) videos, each revoked alone as soon as a pool
#     process runs it; the time is the revoke call's, from its claim to the worker's confirmed
#     kill (at most REVOKE_CONFIRM_MS, 250);
#   - the broker side of a cancel-all: BENCH_QUEUED (1000) videos queued where no worker
#     consumes, revoked in one call (the claims and one broadcast).
#
#   BENCH_CONFIRM_COUNT=100 BENCH_QUEUED=1000 bash scripts/bench-rabbitmq.sh
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${BENCH_CONFIRM_COUNT:-100}
QUEUED=${BENCH_QUEUED:-1000}
CONFIRM_MS=${REVOKE_CONFIRM_MS:-250}

bash scripts/ensure-celery-venv.sh >/dev/null
bash scripts/ensure-rabbitmq.sh >/dev/null
echo "== building the bench (release)" >&2
cargo build --release --quiet -p ensinalab-bench
. scripts/lib/target-dir.sh
BENCH="$(target_dir)/release/ensinalab-bench"
. scripts/lib/own-services.sh

stop_pid() { [ -z "$1" ] || { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; }
VHOST="ensinalab-bench-$$"
WORKER_PID=
cleanup() {
  stop_pid "$WORKER_PID"
  rabbitmqctl delete_vhost "$VHOST" >/dev/null 2>&1 || true
  own_services_stop
}
trap cleanup EXIT
own_services_start bench-rabbitmq
rabbitmqctl add_vhost "$VHOST" >/dev/null
rabbitmqctl set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
AMQP="amqp://guest:guest@127.0.0.1:5672/$VHOST"
export ENSINALAB_WORK_DIR="$WORK/work" ENSINALAB_OUTPUT_DIR="$WORK/output"

for broker in redis rabbitmq; do
  if [ "$broker" = rabbitmq ]; then export CELERY_BROKER_URL="$AMQP"; else unset CELERY_BROKER_URL; fi
  for kind in on off; do
    queue="bench-$broker-$kind"
    label="broker=$broker worker=$( [ "$kind" = on ] && echo claiming || echo stock)"
    echo "== $label: $COUNT running videos revoked one at a time, then $QUEUED queued revoked at once" >&2
    ENSINALAB_CLAIM=$kind CELERY_QUEUE=$queue ENSINALAB_VIDEO_SECS=600 ENSINALAB_VIDEO_STEPS=600 \
      .venv/worker/bin/celery --workdir apps/worker -A ensinalab_worker worker -P prefork -c 2 \
      -l WARNING --without-mingle --without-gossip -n "bench-$broker-$kind@%h" >"$WORK/worker-$broker-$kind.log" 2>&1 &
    WORKER_PID=$!
    "$BENCH" confirm --queue "$queue" --count "$COUNT" --confirm-ms "$CONFIRM_MS" --queued "$QUEUED" |
      sed "s/^/$label /"
    stop_pid "$WORKER_PID"
    WORKER_PID=
  done
done
