# Sourced by scripts: `target_dir` prints where cargo puts this workspace's builds, as cargo
# itself resolves it (CARGO_TARGET_DIR, a config's build.target-dir, or ./target).
target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path "$(dirname "${BASH_SOURCE[0]}")/../../Cargo.toml" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
