# Sourced by the scripts that measure the release server (scripts/bench.sh, scripts/soak.sh):
# builds it and the bench harness, and sets API and BENCH to the two binaries.
echo "== building (release)" >&2
cargo build --release --quiet -p ensinalab-api -p ensinalab-bench
. "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
API="$(target_dir)/release/ensinalab-api"
BENCH="$(target_dir)/release/ensinalab-bench"
# stop_pid PID: stops a process this script started, waiting for it to go.
stop_pid() { [ -z "$1" ] || { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; }
