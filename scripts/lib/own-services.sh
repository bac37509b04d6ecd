# Sourced by scripts that need PostgreSQL and Redis of their own (scripts/bench.sh,
# scripts/soak.sh): a cluster and a server on free loopback ports under one temp dir, so the
# machine's shared services are never loaded, reconfigured or stopped.
#
#   own_services_start   sets WORK, PGBIN, PGPORT, RPORT, DATABASE_URL, REDIS_URL (exported)
#   own_services_stop    stops both and removes WORK (call it from the caller's EXIT trap)

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

own_services_start() { # name
  for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "$1: $tool is missing (scripts/ensure-redis.sh)" >&2; exit 1; }
  done
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$PGBIN/initdb" ] || { echo "$1: PostgreSQL missing (scripts/ensure-postgres.sh)" >&2; exit 1; }
  WORK=$(mktemp -d "/tmp/ensinalab-$1.XXXXXX")
  chmod 755 "$WORK"
  echo "== PostgreSQL and Redis of our own in $WORK" >&2
  PGPORT=$(free_port)
  mkdir -p "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK/pg"
  as_postgres "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres -A trust --no-sync --no-locale -E UTF8 >/dev/null
  as_postgres "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $WORK/pg" start >/dev/null
  RPORT=$(free_port)
  redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$WORK" --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
  for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
  REDIS_URL="redis://127.0.0.1:$RPORT/0"
  export DATABASE_URL REDIS_URL
}

own_services_stop() {
  [ -n "${WORK:-}" ] || return 0
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
  [ -d "$WORK/pg/data" ] && as_postgres "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
