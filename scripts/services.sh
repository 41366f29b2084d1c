# Sourced by scripts/test and .ci/run: make sure RabbitMQ and Redis answer on 127.0.0.1,
# starting them (as this machine's Debian packages install them) when they do not.

rabbitmq_answers() {
  timeout 20 rabbitmq-diagnostics -q ping >/dev/null 2>&1
}

redis_answers() {
  [ "$(timeout 5 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]
}

ensure_services() {
  if ! redis_answers; then
    echo "Redis does not answer; starting it." >&2
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 50); do redis_answers && break; sleep 0.2; done
  fi
  if ! rabbitmq_answers; then
    echo "RabbitMQ does not answer; starting it." >&2
    rabbitmq-server -detached || true
    timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true
  fi
  # A node whose app was stopped (e.g. by an interrupted fault-injection test) answers ping
  # but accepts no connections: start the app too; it is a no-op when running.
  timeout 60 rabbitmqctl start_app >/dev/null 2>&1 || true
  redis_answers || { echo "FATAL: Redis does not answer on 127.0.0.1:6379" >&2; return 1; }
  rabbitmq_answers || { echo "FATAL: RabbitMQ does not answer on 127.0.0.1:5672" >&2; return 1; }
  echo "RabbitMQ and Redis answer." >&2
}
