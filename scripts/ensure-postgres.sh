#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 and lets `postgres` in over local TCP
# without a password (what the store's tests use: TEST_DATABASE_URL defaults to
# postgres://postgres@127.0.0.1:5432/postgres). Idempotent: when the server already answers and
# lets `postgres` in, it changes nothing. Otherwise it starts the local cluster, installing
# PostgreSQL from Debian's packages first on a machine that lacks it (needs root).
set -euo pipefail

HOST=127.0.0.1
PORT=5432

answers() {
  if command -v pg_isready >/dev/null; then
    pg_isready -h "$HOST" -p "$PORT" -q
  else
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
  fi
}

lets_postgres_in() {
  command -v psql >/dev/null &&
    PGCONNECT_TIMEOUT=5 psql -w -h "$HOST" -p "$PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1
}

cluster_version() {
  ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1
}

# Tests connect as `postgres` over TCP without a password: trust loopback, ahead of the packaged
# rules (the first matching line wins). For test machines only; never a production setting.
# Prints "changed" when it edited the file.
trust_loopback() {
  local hba="/etc/postgresql/$1/main/pg_hba.conf"
  if ! grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    echo changed
  fi
}

if answers; then
  if lets_postgres_in; then
    echo "PostgreSQL already answers on $HOST:$PORT"
    exit 0
  fi
  version=$(cluster_version)
  if [ -n "$version" ] && [ -n "$(trust_loopback "$version")" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
  if lets_postgres_in; then
    echo "PostgreSQL answers on $HOST:$PORT; loopback now trusted"
    exit 0
  fi
  echo "PostgreSQL answers on $HOST:$PORT but refuses postgres without a password" >&2
  exit 1
fi

if ! command -v pg_ctlcluster >/dev/null || [ -z "$(cluster_version)" ]; then
  echo "Installing PostgreSQL from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q postgresql
fi

version=$(cluster_version)
if [ ! -d "/etc/postgresql/$version/main" ]; then
  pg_createcluster "$version" main
fi
changed=$(trust_loopback "$version")

echo "Starting PostgreSQL $version"
if ! pg_ctlcluster --skip-systemctl-redirect "$version" main start; then
  # Already running (the package may start it) but not on our address yet: apply the rules.
  [ -n "$changed" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
fi

for _ in $(seq 1 30); do
  if answers; then
    echo "PostgreSQL answers on $HOST:$PORT"
    exit 0
  fi
  sleep 1
done
echo "PostgreSQL did not come up on $HOST:$PORT; see /var/log/postgresql/" >&2
exit 1
