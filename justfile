# List the recipes.
default:
    @just --list

# Run the service on the embedded default (SQLite + in-process broker).
run:
    cargo run --release -p ensinalab-api

# Run every test (starts or installs PostgreSQL, Redis and the Celery venv when missing).
test:
    bash scripts/test.sh

# Start Redis and the reference Celery worker (then run the API with REDIS_URL set).
worker:
    bash scripts/ensure-redis.sh
    bash scripts/ensure-celery-venv.sh
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/worker/bin/celery --workdir apps/worker -A ensinalab_worker worker -P prefork -c 2 -l INFO

# Format and lint.
lint:
    cargo fmt --all
    cargo clippy --workspace --all-targets -- -D warnings

# Saturation run: the release server at twice the rate it serves for 60 s; prints 5xx, limit refusals vs quotas, lost cancels, peak RSS (not part of `test`).
soak:
    bash scripts/soak.sh

# Benchmark the hot paths against their no-HTTP floor; prints one table (about 6 minutes; not part of `test`).
bench:
    bash scripts/bench.sh

# Instructions per list request, the server's against the full-body floor's, under callgrind (about 2 minutes; not part of `test`).
profile:
    bash scripts/profile.sh

# The live stream's figures: change-to-client latency and memory per idle stream (about a minute; not part of `test`).
bench-live:
    bash scripts/bench-live.sh

# The Celery cancel per kind of worker: revoke-to-confirmed kill, removal under a backlog (a few minutes; not part of `test`).
bench-celery:
    bash scripts/bench-celery.sh

# The Celery cancel with RabbitMQ as the broker beside Redis: revoke-to-killed, one revoke of 1,000 queued (a few minutes; not part of `test`).
bench-rabbitmq:
    bash scripts/bench-rabbitmq.sh

# Run a Prometheus scraping the local server (METRICS_ADDR's default) with the shipped alert rules.
prometheus:
    bash scripts/ensure-prometheus.sh
    prometheus --config.file=deploy/prometheus/prometheus.yml --web.listen-address=127.0.0.1:9090 --storage.tsdb.path=target/prometheus
