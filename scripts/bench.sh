#!/usr/bin/env bash
# Benchmarks the hot paths against their no-HTTP floor and, for the list, against its full-body
# HTTP floor too, and prints the tables (docs/benchmarks.md says how to read them). Never part of the test command: it takes about nine
# minutes and asserts nothing. Self-contained: its own PostgreSQL cluster and Redis on free
# loopback ports in a temp dir, the release server on a third port; it stops all it started.
#
#   BENCH_DURATION=15 BENCH_WARMUP=3 BENCH_CONNECTIONS=64 BENCH_CANCELS=5 bash scripts/bench.sh
#   BENCH_CASES="cancel" bash scripts/bench.sh   # any of: list status cancel backlog (default: all)
#   BENCH_BACKLOG=100000                            # other users' messages queued for the backlog case
#   BENCH_SQLX_FLOORS=1                             # also the no-HTTP floors of the keyset statement through sqlx
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-15}
WARMUP=${BENCH_WARMUP:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
CASES=${BENCH_CASES:-list status cancel backlog}
# measured cancel-alls of 1,000 jobs (one user each, after one warm-up user); the median is reported
CANCELS=${BENCH_CANCELS:-5}
USERS=20
LIST_JOBS=(1 10 50)
CANCEL_JOBS=1000
# the backlog case: other users' messages queued ahead of the cancelled jobs' own
BACKLOG=${BENCH_BACKLOG:-100000}
# the bound the issue sets on every command the service sends, and the SLOWLOG threshold used
# to see how far below it they stay
SLOW_BOUND_US=5000
SLOWLOG_US=200
# The store's pool size (MAX_CONNECTIONS in crates/ensinalab-store/src/lib.rs): the floor uses
# the same. The floor itself runs best with fewer connections on 2 cores, so it is measured with
# FLOOR_BEST_POOL too and the table shows the server against both.
POOL=20
FLOOR_BEST_POOL=10
# The active list's own connections (ACTIVE_CONNECTIONS in crates/ensinalab-store/src/lib.rs):
# the full-body floor keeps as many, one per worker thread.
ACTIVE_POOL=4
SQLX_FLOORS=${BENCH_SQLX_FLOORS:-}

if ! command -v wrk >/dev/null; then
  echo "== installing wrk"
  . scripts/lib/apt.sh
  apt_install wrk
fi
command -v curl >/dev/null || { echo "bench: curl is missing" >&2; exit 1; }

. scripts/lib/release-build.sh
. scripts/lib/own-services.sh
. scripts/lib/measured-server.sh

SERVER_PID= LISTENER_PID= HTTP_FLOOR_PID=
cleanup() {
  [ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null || true
  stop_pid "$HTTP_FLOOR_PID"
  stop_pid "$SERVER_PID"
  own_services_stop
}
trap cleanup EXIT
own_services_start bench

has_case() { [[ " $CASES " == *" $1 "* ]]; }

psql_own() { psql -X -q -A -t -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -c "$1"; }
# The statements PostgreSQL logged after line $1 of its log (log_min_duration_statement=0 set
# by the caller), SELECTs left out: "UPDATE briefings 10.2 ms (parse+bind 0.3)", execute time
# then the other phases, in order of first appearance, then the sum.
sql_times_since() {
  tail -n +"$(($1 + 1))" "$WORK/pg/log" |
    sed -n 's/.*duration: \([0-9.]*\) ms  \(parse\|bind\|execute\|statement\)[^:]*: \([A-Za-z]*\) *"\{0,1\}\([a-z_]*\).*/\1 \2 \3 \4/p' |
    grep -v 'ALTER\|pg_reload' | awk '$3 != "SELECT" {
      key = $3 ($4 == "" ? "" : " " $4)
      if (!(key in seen)) { seen[key] = 1; order[++n] = key }
      if ($2 == "execute" || $2 == "statement") run[key] += $1; else prep[key] += $1
      t += $1 }
      END { for (i = 1; i <= n; i++) { k = order[i]; printf "%s%s %.1f ms%s", sep, k, run[k], (prep[k] >= 0.05 ? sprintf(" (parse+bind %.1f)", prep[k]) : ""); sep = ", " }
            printf "; %.1f ms in all", t }'
}

echo "== seeding" >&2
first_user() { echo $(($1 * 1000 + 1)); }
for n in "${LIST_JOBS[@]}"; do
  "$BENCH" seed --first-user "$(first_user "$n")" --users "$USERS" --jobs "$n" --tasks-out "$WORK/tasks-$n.txt"
done
# users of 1,000 jobs each: the first CANCELS are measured, the last one warms up
CANCEL_USER=$(first_user "$CANCEL_JOBS")
if has_case cancel; then
  "$BENCH" seed --first-user "$CANCEL_USER" --users $((CANCELS + 1)) --jobs "$CANCEL_JOBS"
fi

declare -A TOKEN
token_of() {
  if [ -z "${TOKEN[$1]:-}" ]; then
    TOKEN[$1]=$(mint_token "$1")
  fi
  echo "${TOKEN[$1]}"
}
if has_case list; then
  for n in "${LIST_JOBS[@]}"; do
    first=$(first_user "$n")
    for u in $(seq "$first" $((first + USERS - 1))); do
      TOKEN[$u]=$(mint_token "$u")
      echo "${TOKEN[$u]} /tasks/active"
    done >"$WORK/targets-active-$n.txt"
  done
fi
if has_case status; then
  while read -r user task; do
    echo "$(token_of "$user") /tasks/$task/status"
  done <"$WORK/tasks-10.txt" >"$WORK/targets-status.txt"
fi

start_server() { # DATABASE_URL
  APORT=$(free_port)
  # metrics on, as deployed: their cost is part of what is measured
  DATABASE_URL=$1 BIND_ADDR=127.0.0.1:$APORT METRICS_ADDR=127.0.0.1:$(free_port) \
    "$API" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$APORT/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$APORT/healthz" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  # the reconciler's first sweep runs at start; let it finish before measuring
  sleep 2
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }

echo "== starting the release server" >&2
start_server "$DATABASE_URL"
if has_case list; then
  # the full-body floor: the same targets, served by nothing but what the route cannot skip
  HPORT=$(free_port)
  "$BENCH" http-floor --port "$HPORT" --pool "$ACTIVE_POOL" \
    >>"$WORK/http-floor.log" 2>&1 &
  HTTP_FLOOR_PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$HPORT/tasks/active" && break; sleep 0.1; done
fi

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
run_wrk() { # targets-file seconds [port: the server's by default]
  BENCH_TARGETS=$1 wrk -t2 -c"$CONNECTIONS" -d"${2}s" --timeout 5s -s scripts/bench/rotate.lua \
    "http://127.0.0.1:${3:-$APORT}" | grep '^WRK'
}
run_floor() { # first-user seconds [plan_cache_mode [pool]]
  "$BENCH" floor --first-user "$1" --users "$USERS" --concurrency "$CONNECTIONS" --pool "${4:-$POOL}" \
    --warmup-secs "$WARMUP" --duration-secs "$2" ${3:+--plan-cache-mode "$3"} | grep '^FLOOR'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

declare -A S F A C B H BYTES
HTTP_ROWS=()
ROWS=()
if has_case list; then
  for n in "${LIST_JOBS[@]}"; do
    echo "== GET /tasks/active, N=$n: wrk ${WARMUP}s warm-up + ${DURATION}s, then the floor" >&2
    run_wrk "$WORK/targets-active-$n.txt" "$WARMUP" >/dev/null
    S[$n]=$(run_wrk "$WORK/targets-active-$n.txt" "$DURATION")
    run_wrk "$WORK/targets-active-$n.txt" "$WARMUP" "$HPORT" >/dev/null
    H[$n]=$(run_wrk "$WORK/targets-active-$n.txt" "$DURATION" "$HPORT")
    echo "   server: ${S[$n]}" >&2
    echo "   full-body HTTP floor: ${H[$n]}" >&2
    if [ -n "$SQLX_FLOORS" ]; then
      # The keyset statement (a later page's) through sqlx, as the list was read before it had
      # connections of its own: the store's sessions use force_generic_plan
      # (crates/ensinalab-store/src/lib.rs); the other two show what PostgreSQL's default and
      # re-planning every request would cost
      F[$n]=$(run_floor "$(first_user "$n")" "$DURATION" force_generic_plan)
      A[$n]=$(run_floor "$(first_user "$n")" "$DURATION" auto)
      C[$n]=$(run_floor "$(first_user "$n")" "$DURATION" force_custom_plan)
      B[$n]=$(run_floor "$(first_user "$n")" "$DURATION" force_generic_plan "$FLOOR_BEST_POOL")
      echo "   floor:  ${F[$n]}" >&2
      echo "   floor (auto): ${A[$n]}" >&2
      echo "   floor (force_custom_plan): ${C[$n]}" >&2
      echo "   floor (pool $FLOOR_BEST_POOL): ${B[$n]}" >&2
    fi
    # the two bodies should be about the same size: the floor writes the seed's whole body
    read -r token path < "$WORK/targets-active-$n.txt"
    body_bytes() { curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$1$path" | wc -c; }
    BYTES[$n]="$(body_bytes "$APORT") / $(body_bytes "$HPORT")"
    HTTP_ROWS+=("| \`GET /tasks/active\`, N=$n | $(echo "${S[$n]}" | field rps) | $(echo "${S[$n]}" | field p50_ms) | $(echo "${S[$n]}" | field p99_ms) | $(echo "${H[$n]}" | field rps) | $(echo "${H[$n]}" | field p50_ms) | $(echo "${H[$n]}" | field p99_ms) | **$(ratio "$(echo "${S[$n]}" | field rps)" "$(echo "${H[$n]}" | field rps)")** | ${BYTES[$n]} | $(echo "${H[$n]}" | field non2xx)+$(echo "${H[$n]}" | field errors) |")
    [ -z "$SQLX_FLOORS" ] ||
      ROWS+=("| \`GET /tasks/active\`, N=$n | $(echo "${S[$n]}" | field rps) | $(echo "${S[$n]}" | field p50_ms) | $(echo "${S[$n]}" | field p99_ms) | $(echo "${F[$n]}" | field rps) | $(echo "${F[$n]}" | field p50_ms) | $(echo "${F[$n]}" | field p99_ms) | $(ratio "$(echo "${S[$n]}" | field rps)" "$(echo "${F[$n]}" | field rps)") | $(echo "${A[$n]}" | field rps) | $(echo "${C[$n]}" | field rps) | $(echo "${B[$n]}" | field rps) | $(ratio "$(echo "${S[$n]}" | field rps)" "$(echo "${B[$n]}" | field rps)") | $(echo "${S[$n]}" | field non2xx)+$(echo "${S[$n]}" | field errors) |")
  done
fi

if has_case status; then
  echo "== GET /tasks/{task_id}/status" >&2
  run_wrk "$WORK/targets-status.txt" "$WARMUP" >/dev/null
  s=$(run_wrk "$WORK/targets-status.txt" "$DURATION")
  echo "   server: $s" >&2
  ROWS+=("| \`GET /tasks/{task_id}/status\` | $(echo "$s" | field rps) | $(echo "$s" | field p50_ms) | $(echo "$s" | field p99_ms) | - | - | - | - | - | - | - | - | $(echo "$s" | field non2xx)+$(echo "$s" | field errors) |")
fi

CANCEL_LINES=()
if has_case cancel; then
  echo "== POST /tasks/cancel-all of $CANCEL_JOBS jobs, $CANCELS times (one user each)" >&2
  redis-cli -p "$RPORT" psubscribe '/0.celery.pidbox' >"$WORK/pidbox.txt" &
  LISTENER_PID=$!
  sleep 0.5
  publishes() { redis-cli -p "$RPORT" info commandstats | sed -n 's/^cmdstat_publish:calls=\([0-9]*\),.*/\1/p' | grep . || echo 0; }
  broadcasts() { grep -c '^pmessage$' "$WORK/pidbox.txt" || true; }
  cancel_all() { # user
    curl -s -o "$WORK/cancel.json" -w '%{time_total}' -X POST \
      -H "Authorization: Bearer $(token_of "$1")" "http://127.0.0.1:$APORT/tasks/cancel-all"
  }
  cancel_all $((CANCEL_USER + CANCELS)) >/dev/null # warm-up: script loaded, statements prepared
  sleep 0.5
  commandstats() { redis-cli -p "$RPORT" info commandstats | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2 \3/p' | grep -v '^info '; }
  # where each measured cancel's time goes: every statement's parse, bind and execute time in
  # PostgreSQL's log, every Redis command's in INFO commandstats (usec)
  psql_own "ALTER SYSTEM SET log_min_duration_statement = 0" && psql_own "SELECT pg_reload_conf()" >/dev/null
  sleep 0.3
  : >"$WORK/cancels.txt"
  for u in $(seq "$CANCEL_USER" $((CANCEL_USER + CANCELS - 1))); do
    commandstats >"$WORK/cmd0.txt"
    pg_log_lines=$(wc -l <"$WORK/pg/log")
    p0=$(publishes) b0=$(broadcasts)
    curl_s=$(cancel_all "$u")
    # Long enough for the dispatcher's delivery mark of this cancel (an UPDATE of its 1,000
    # outbox rows, at its next tick, within 0.5 s) and the cleanup outbox's insert to finish
    # before the next measured cancel (the mark overlapped it with 0.2 s); short enough that the
    # five stay inside the 10 s after which the dispatcher re-broadcasts open revokes.
    sleep 0.7
    p1=$(publishes) b1=$(broadcasts)
    commandstats >"$WORK/cmd1.txt"
    sql_times=$(sql_times_since "$pg_log_lines")
    redis_cmds=$(awk 'NR == FNR { calls[$1] = $2; usec[$1] = $3; next }
      $2 - calls[$1] > 0 { printf "%s%s x%d %.1f ms", sep, $1, $2 - calls[$1], ($3 - usec[$1]) / 1000; sep = ", "; t += $3 - usec[$1] }
      END { printf "; %.1f ms in all", t / 1000 }' "$WORK/cmd0.txt" "$WORK/cmd1.txt")
    message=$(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$WORK/cancel.json")
    server_ms=$(grep '"elapsed_ms"' "$WORK/server.log" | grep 'cancel-all' | tail -n 1 | sed -n 's/.*"elapsed_ms":\([0-9]*\).*/\1/p')
    curl_ms=$(awk -v s="$curl_s" 'BEGIN { printf "%.1f", s * 1000 }')
    echo "   $message; server ${server_ms} ms; curl ${curl_ms} ms; broadcasts $((b1 - b0)); PUBLISH calls $((p1 - p0))" >&2
    echo "$server_ms|$curl_ms|$((b1 - b0))|$((p1 - p0))|$message|$sql_times|$redis_cmds" >>"$WORK/cancels.txt"
  done
  psql_own "ALTER SYSTEM RESET log_min_duration_statement" && psql_own "SELECT pg_reload_conf()" >/dev/null
  all_ms=$(cut -d'|' -f1 "$WORK/cancels.txt" | sort -n | paste -sd' ')
  IFS='|' read -r server_ms curl_ms nb np message sql_times redis_cmds \
    < <(sort -t'|' -k1,1n "$WORK/cancels.txt" | sed -n "$(((CANCELS + 1) / 2))p")
  CANCEL_LINES+=("- \`POST /tasks/cancel-all\` of $CANCEL_JOBS jobs, $CANCELS users: server time (its request log) median **${server_ms} ms** (all: $all_ms); the median one: \"$message\", ${curl_ms} ms end to end (curl), broadcasts on /0.celery.pidbox: $nb (PUBLISH calls: $np)")
  CANCEL_LINES+=("- that cancel-all in PostgreSQL (statement durations from its log): $sql_times")
  CANCEL_LINES+=("- that cancel-all in Redis (commands' server-side time): $redis_cmds")
fi

BACKLOG_LINES=()
if has_case backlog; then
  echo "== cancels behind $BACKLOG queued messages of other users" >&2
  # Seeded now, so the other cases ran without it. Users whose jobs really wait in the queue,
  # behind the backlog: a video and a briefing each for the single cancel, 1,000 jobs each for
  # cancel-all; the last user of each kind warms up.
  "$BENCH" backlog --messages "$BACKLOG"
  SINGLE_USER=2000001 ALL_USER=3000001
  "$BENCH" seed --first-user "$SINGLE_USER" --users $((CANCELS + 1)) --jobs 2 --queued
  "$BENCH" seed --first-user "$ALL_USER" --users $((CANCELS + 1)) --jobs "$CANCEL_JOBS" --queued
  queue_len() { redis-cli -p "$RPORT" llen celery; }
  queued_before=$(queue_len)
  post_as() { # user path
    curl -s -o "$WORK/backlog.json" -w '%{time_total}' -X POST \
      -H "Authorization: Bearer $(token_of "$1")" "http://127.0.0.1:$APORT$2"
  }
  briefing_of() { # user: the hash of their active briefing
    curl -s -H "Authorization: Bearer $(token_of "$1")" "http://127.0.0.1:$APORT/tasks/active" |
      sed -n 's/.*"type":"briefing","resource_type":"briefing","resource_id":"\([^"]*\)".*/\1/p'
  }
  last_server_ms() { grep '"elapsed_ms"' "$WORK/server.log" | grep "$1" | tail -n 1 | sed -n 's/.*"elapsed_ms":\([0-9]*\).*/\1/p'; }
  outcomes() { grep -o '"revoke":"[a-z_]*"' "$WORK/backlog.json" | sort | uniq -c | awk '{ sub(/"revoke":/, "", $2); gsub(/"/, "", $2); printf "%s%s x%d", sep, $2, $1; sep = ", " }'; }
  rediscmds() { redis-cli -p "$RPORT" info commandstats | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2 \3/p' | grep -v '^info '; }
  post_as $((SINGLE_USER + CANCELS)) "/briefings/$(briefing_of $((SINGLE_USER + CANCELS)))/cancel-generation" >/dev/null
  post_as $((ALL_USER + CANCELS)) /tasks/cancel-all >/dev/null
  sleep 0.7
  redis-cli -p "$RPORT" config set slowlog-log-slower-than "$SLOWLOG_US" >/dev/null
  redis-cli -p "$RPORT" config set slowlog-max-len 100000 >/dev/null
  # SLOWLOG times are wall times, and while Redis is an ordinary process the scheduler stretches
  # any command, an O(1) SET included, past 5 ms now and then on a busy machine: for this case
  # Redis is scheduled ahead of ordinary processes (SCHED_FIFO) where that is permitted, so the
  # SLOWLOG shows what the commands cost (docs/benchmarks.md, "Cancel with a backlog")
  if chrt -a -f -p 10 "$(cat "$WORK/redis.pid")" >/dev/null 2>&1; then
    redis_sched="SCHED_FIFO"
  else
    redis_sched="an ordinary process (chrt refused)"
  fi
  redis-cli -p "$RPORT" slowlog reset >/dev/null
  # and how much other processes were waiting for the CPU
  cpu_pressure() { sed -n 's/^some avg10=\([0-9.]*\).*/\1%/p' /proc/pressure/cpu 2>/dev/null || echo "?"; }
  pressure_before=$(cpu_pressure)
  : >"$WORK/backlog-single.txt"
  for u in $(seq "$SINGLE_USER" $((SINGLE_USER + CANCELS - 1))); do
    hash=$(briefing_of "$u")
    curl_s=$(post_as "$u" "/briefings/$hash/cancel-generation")
    sleep 0.7
    echo "$(last_server_ms cancel-generation)|$(awk -v s="$curl_s" 'BEGIN { printf "%.1f", s * 1000 }')|$(outcomes)" >>"$WORK/backlog-single.txt"
    echo "   cancel of a queued briefing: $(tail -n 1 "$WORK/backlog-single.txt")" >&2
  done
  : >"$WORK/backlog-all.txt"
  psql_own "ALTER SYSTEM SET log_min_duration_statement = 0" && psql_own "SELECT pg_reload_conf()" >/dev/null
  sleep 0.3
  for u in $(seq "$ALL_USER" $((ALL_USER + CANCELS - 1))); do
    rediscmds >"$WORK/bcmd0.txt"
    pg_log_lines=$(wc -l <"$WORK/pg/log")
    curl_s=$(post_as "$u" /tasks/cancel-all)
    # as in the cancel case: the dispatcher's mark of this cancel lands before the next
    sleep 0.7
    rediscmds >"$WORK/bcmd1.txt"
    cmds=$(awk 'NR == FNR { calls[$1] = $2; usec[$1] = $3; next }
      $2 - calls[$1] > 0 { printf "%s%s x%d %.1f ms", sep, $1, $2 - calls[$1], ($3 - usec[$1]) / 1000; sep = ", "; t += $3 - usec[$1] }
      END { printf "; %.1f ms in all", t / 1000 }' "$WORK/bcmd0.txt" "$WORK/bcmd1.txt")
    message=$(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$WORK/backlog.json")
    echo "$(last_server_ms cancel-all)|$(awk -v s="$curl_s" 'BEGIN { printf "%.1f", s * 1000 }')|$message|$(outcomes)|$cmds|$(sql_times_since "$pg_log_lines")" >>"$WORK/backlog-all.txt"
    echo "   cancel-all of $CANCEL_JOBS queued jobs: $(tail -n 1 "$WORK/backlog-all.txt")" >&2
  done
  psql_own "ALTER SYSTEM RESET log_min_duration_statement" && psql_own "SELECT pg_reload_conf()" >/dev/null
  # Past the dispatcher's re-broadcast period, so whatever it sends after the cancels counts too.
  sleep 11
  slowlog=$("$BENCH" slowlog --bound-micros "$SLOW_BOUND_US" | grep '^SLOWLOG')
  pressure_after=$(cpu_pressure)
  redis-cli -p "$RPORT" config set slowlog-log-slower-than 10000 >/dev/null
  chrt -a -o -p 0 "$(cat "$WORK/redis.pid")" >/dev/null 2>&1 || true
  median_of() { sort -t'|' -k1,1n "$1" | sed -n "$(((CANCELS + 1) / 2))p"; }
  all_of() { cut -d'|' -f1 "$1" | sort -n | paste -sd' '; }
  IFS='|' read -r s_ms s_curl s_out < <(median_of "$WORK/backlog-single.txt")
  IFS='|' read -r a_ms a_curl a_message a_out a_cmds a_sql < <(median_of "$WORK/backlog-all.txt")
  BACKLOG_LINES+=("- backlog: $BACKLOG messages of other users queued ahead of the cancelled jobs' own; $queued_before messages in the queue before the measured cancels, $(queue_len) after (a cancel never reads the queue; the removal passes take the cancelled messages out after the answers)")
  BACKLOG_LINES+=("- \`POST /briefings/{h}/cancel-generation\` of a queued briefing, $CANCELS users: server time median **${s_ms} ms** (all: $(all_of "$WORK/backlog-single.txt")); the median one ${s_curl} ms end to end (curl), outcome $s_out")
  BACKLOG_LINES+=("- \`POST /tasks/cancel-all\` of $CANCEL_JOBS queued jobs, $CANCELS users: server time median **${a_ms} ms** (all: $(all_of "$WORK/backlog-all.txt")); the median one: \"$a_message\", $a_out, ${a_curl} ms end to end (curl); in Redis: $a_cmds")
  BACKLOG_LINES+=("- that cancel-all in PostgreSQL (statement durations from its log; the outbox marks and inserts of the background jobs come after the response): $a_sql")
  BACKLOG_LINES+=("- Redis SLOWLOG over those cancels and the 11 s after (threshold $SLOWLOG_US us, bound $SLOW_BOUND_US us; Redis $redis_sched): $(echo "$slowlog" | sed 's/^SLOWLOG //'); the machine's CPU pressure (PSI \`some avg10\`) $pressure_before before the cancels, $pressure_after after")
fi

RSS_KB=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SERVER_PID/status")
stop_server

cat <<TABLE

Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share these cores)
Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); $(free -g | awk '/^Mem:/ {print $2}') GiB; $("$PGBIN/postgres" --version); $(redis-server --version | cut -d' ' -f1-3)
wrk -t2 -c$CONNECTIONS, ${WARMUP} s warm-up + ${DURATION} s per case; $USERS users per case, requests rotate over them; floor: $CONNECTIONS loops, pool $POOL

| case | server req/s | p50 ms | p99 ms | floor req/s | floor p50 ms | floor p99 ms | server/floor | floor req/s, \`auto\` | floor req/s, custom plans | floor req/s, pool $FLOOR_BEST_POOL | server/that floor | non-2xx+errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${ROWS[@]}")

TABLE
if has_case list; then
  cat <<HTTP_TABLE
Against the full-body floor (\`ensinalab-bench http-floor\`: an actix-web server that verifies the token, runs the plain statement through tokio-postgres (one connection per worker thread, at most $ACTIVE_POOL) and the MGET, encodes hashids and writes the seed's whole body, nothing else; the same wrk targets):

| case | server req/s | p50 ms | p99 ms | full-body floor req/s | p50 ms | p99 ms | server/full-body floor | body bytes, server / floor | floor non-2xx+errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${HTTP_ROWS[@]}")

HTTP_TABLE
  echo "- \`GET /tasks/active\` throughput N=1 -> N=50: $(ratio "$(echo "${S[1]}" | field rps)" "$(echo "${S[50]}" | field rps)")x lower; full-body floor: $(ratio "$(echo "${H[1]}" | field rps)" "$(echo "${H[50]}" | field rps)")x"
fi
if [ ${#CANCEL_LINES[@]} -gt 0 ]; then printf '%s\n' "${CANCEL_LINES[@]}"; fi
if [ ${#BACKLOG_LINES[@]} -gt 0 ]; then printf '%s\n' "${BACKLOG_LINES[@]}"; fi
echo "- server peak RSS (VmHWM): $((RSS_KB / 1024)) MiB"
