#!/usr/bin/env bash
# Runs every test of the project. On a fresh Debian machine (as root) it first makes sure that
# what the tests talk to is there: each scripts/ensure-*.sh installs or starts one dependency
# (PostgreSQL, Redis, the Celery venv, ...) and is a no-op when it is already up.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a Rust toolchain >= $(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) first" >&2
  exit 1
fi

# Runs every script matching a glob, in order, stopping at the first failure.
run_each() {
  for script in $1; do
    [ -e "$script" ] || continue
    echo "== $script"
    bash "$script"
  done
}

run_each 'scripts/ensure-*.sh'

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The domain crate is a library other services read: its example must run and its docs must
# build clean. nextest runs no doctests, so they run here, for this crate only.
echo "== domain doctests and docs"
cargo test --doc -p ensinalab-domain --locked
RUSTDOCFLAGS="-D warnings" cargo doc -p ensinalab-domain --no-deps --locked
# Checks that drive a running server from outside. Each scripts/check-*.sh is self-contained
# (builds and starts what it needs, bounded in time, stops what it started). They run before
# the test runner so that its summary closes the output.
run_each 'scripts/check-*.sh'

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
