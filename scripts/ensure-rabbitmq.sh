#!/usr/bin/env bash
# Makes sure a RabbitMQ answers AMQP on 127.0.0.1:5672 (guest/guest, vhost /): the Celery broker
# of the RabbitMQ suites, beside Redis as their result backend. No-op when one already answers;
# otherwise starts Debian's rabbitmq-server (installing it first on a machine without it).
# Tests that stop a broker start a private one of their own; this one always stays up.
set -euo pipefail

answers() {
  # The AMQP 0-9-1 protocol header; a broker answers with a method frame (type 1).
  (
    exec 3<>/dev/tcp/127.0.0.1/5672 || exit 1
    printf 'AMQP\x00\x00\x09\x01' >&3
    IFS= read -r -t 5 -n 1 -d '' byte <&3 || exit 1
    [[ "$byte" == $'\x01' ]]
  ) 2>/dev/null
}

if answers; then
  echo "rabbitmq: already answering on 127.0.0.1:5672"
  exit 0
fi

if ! command -v rabbitmq-server >/dev/null; then
  echo "rabbitmq: installing rabbitmq-server"
  . "$(dirname "$0")/lib/apt.sh"
  apt_install rabbitmq-server
fi

# the Debian package may have started its own service meanwhile
if ! answers; then
  if [[ -x /etc/init.d/rabbitmq-server ]]; then
    /etc/init.d/rabbitmq-server start >/dev/null || true
  fi
  if ! answers; then
    rabbitmq-server -detached || true
  fi
fi

for _ in $(seq 1 120); do
  if answers; then
    echo "rabbitmq: started on 127.0.0.1:5672"
    exit 0
  fi
  sleep 0.5
done
echo "rabbitmq: did not answer on 127.0.0.1:5672 (see /var/log/rabbitmq/)" >&2
exit 1
