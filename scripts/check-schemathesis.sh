#!/usr/bin/env bash
# Fuzzes the API from its own OpenAPI document with Schemathesis (scripts/ensure-schemathesis.sh
# installs it): a fresh dev server on a free port, a temp SQLite database, the in-process broker,
# a valid token minted by `ensinalab-api token`. Bounded in examples and time. Fails on any 5xx
# (not_a_server_error) and on any response the document does not describe (status code,
# content type, body schema). The server is stopped on exit, whatever happens.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
st="$root/.venv/schemathesis/bin/schemathesis"
[ -x "$st" ] || bash "$root/scripts/ensure-schemathesis.sh"

. "$root/scripts/lib/debug-server.sh"

export BIND_ADDR="127.0.0.1:$port"
# No metrics listener: this check is about the public API, and must not need port 9464 free.
export METRICS_ADDR=""
export DATABASE_URL="sqlite://$work/fuzz.db?mode=rwc"
export JWT_SECRET="schemathesis-secret-schemathesis-secret"
export LOCAL_OPTIONS_SECS=1 LOCAL_VIDEO_SECS=5
# The fuzzer sends thousands of requests from one client; the limiter is not under test here.
export RATE_LIMIT_PER_MIN=1000000 CANCEL_RATE_LIMIT_PER_MIN=1000000
unset REDIS_URL

"$bin" >"$work/server.log" 2>&1 &
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || {
  echo "check-schemathesis: the server did not start; log:" >&2; cat "$work/server.log" >&2; exit 1; }
token=$("$bin" token --user-id 1)
# Something to find: a briefing of user 1, so ids and hashes in paths are not all unknown.
curl -fs -X POST "http://127.0.0.1:$port/briefings" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' \
  -d '{"title": "Gestão de Sala de Aula", "description": "...", "duration_minutes": 10}' >/dev/null

status=0
# One worker: with two threads, Hypothesis parsing lambdas' source at the same time trips
# CPython 3.11's shared AST recursion counter ("AST constructor recursion depth mismatch"), an
# error of the fuzzer's, not of the server, that failed a run at random.
(cd "$work" && timeout 300 "$st" run "http://127.0.0.1:$port/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples 30 --max-time 60 --request-timeout 10 --workers 1 \
  --seed 7 --no-color --warnings off) || status=$?
if [ "$status" -ne 0 ]; then
  echo "check-schemathesis: failures above (exit $status); server log tail:" >&2
  tail -n 40 "$work/server.log" >&2
  exit 1
fi
echo "check-schemathesis: no 5xx and every response conforms to /openapi.json"
