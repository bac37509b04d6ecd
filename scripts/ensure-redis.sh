#!/usr/bin/env bash
# Makes sure a Redis answers on 127.0.0.1:6379 (the Celery broker and result backend the tests
# use). No-op when one already answers; otherwise starts one (installing redis-server first on
# a machine without it). The server it starts keeps nothing on disk: it is for tests.
set -euo pipefail

answers() {
  # bash's /dev/tcp so that this check needs no redis-cli
  (
    exec 3<>/dev/tcp/127.0.0.1/6379 || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 line <&3 || exit 1
    [[ "$line" == "+PONG"* ]]
  ) 2>/dev/null
}

if answers; then
  echo "redis: already answering on 127.0.0.1:6379"
  exit 0
fi

if ! command -v redis-server >/dev/null; then
  echo "redis: installing redis-server"
  . "$(dirname "$0")/lib/apt.sh"
  apt_install redis-server
fi

# the Debian package may have started its own service meanwhile
if ! answers; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

for _ in $(seq 1 50); do
  if answers; then
    echo "redis: started on 127.0.0.1:6379"
    exit 0
  fi
  sleep 0.2
done
echo "redis: did not answer on 127.0.0.1:6379 (see /var/log/redis/ci.log)" >&2
exit 1
