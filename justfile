# List the recipes.
default:
    @just --list

# Run the service on the embedded default (SQLite + in-process broker).
run:
    cargo run --release -p ensinalab-api

# Run every test (starts or installs PostgreSQL, Redis and the Celery venv when missing).
test:
    bash scripts/test.sh

# Format and lint.
lint:
    cargo fmt --all
    cargo clippy --workspace --all-targets -- -D warnings
