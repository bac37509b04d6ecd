#!/usr/bin/env bash
# Replays README.md's session block against a fresh server, as a user would type it, and checks
# its answers. `cargo run --release` is swapped for the debug binary the tests already built,
# and port 8080 for a free one; everything else runs verbatim, in a temp directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v jq >/dev/null || { . "$root/scripts/lib/apt.sh" && apt_install jq; }

. "$root/scripts/lib/debug-server.sh"

session=$(sed -n '/<!-- readme-session -->/,/<!-- \/readme-session -->/p' "$root/README.md" \
  | sed -n '/^```bash$/,/^```$/p' | sed '1d;$d')
[ -n "$session" ] || { echo "check-readme: no session block in README.md" >&2; exit 1; }
session=${session//cargo run -q --release -p ensinalab-api --/$bin}
session=${session//cargo run --release -p ensinalab-api/$bin}
session=${session//localhost:8080/localhost:$port}

cd "$work"
out=$(BIND_ADDR="127.0.0.1:$port" METRICS_ADDR="" timeout 120 bash -euo pipefail -c "$session" 2>server.log) || {
  echo "check-readme: the session failed; server log:" >&2; cat server.log >&2; exit 1; }
echo "$out"
for expected in '"status":"processing"' '"total":1' \
  '"message":"Geração de opções cancelada com sucesso"' '"task_revoked":true' '"status":"cancelled"'; do
  grep -qF "$expected" <<<"$out" || { echo "check-readme: missing $expected" >&2; exit 1; }
done
echo "check-readme: the README session replayed and answered as documented"
