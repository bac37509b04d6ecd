# Sourced (after setting root) by the check-*.sh scripts that drive the server from outside:
# builds the debug binary and sets bin (its path), port (a free loopback port) and work (a temp
# dir); on exit, the jobs the script started are stopped and work is removed.
cargo build -q -p ensinalab-api --manifest-path "$root/Cargo.toml"
. "$root/scripts/lib/target-dir.sh"
bin="$(target_dir)/debug/ensinalab-api"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
trap 'jobs -p | xargs -r kill 2>/dev/null; rm -rf "$work"' EXIT
