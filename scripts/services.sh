# Sourced by scripts/test, scripts/fleet, the check-* scripts and .ci/run (and by the chaos
# scenarios, through `bash -c`): make sure RabbitMQ, Redis and PostgreSQL answer on 127.0.0.1.
# On a fresh Debian or Ubuntu machine they are installed from the distribution's packages (as
# root; otherwise one line says what to install), then started as this machine's Debian
# packages install them.

# Debian puts the servers in /usr/sbin, which a user's PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac

# step TEXT...: names the step that begins, when, and how far into the script (bash's
# SECONDS), so a slow CI log shows where its minutes went.
step() { echo "== $* [$(date -u +%T), ${SECONDS}s in]"; }

# need_packages "COMMAND=PACKAGE..."...: installs, with apt-get as root, the packages of each
# missing command; otherwise prints one line saying what to install, and fails.
need_packages() {
  local missing=() pair
  for pair in "$@"; do
    # shellcheck disable=SC2206 # one word per package
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=(${pair#*=})
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} from the distribution's packages." >&2
    apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "FATAL: missing ${missing[*]}; install as root: apt-get update && apt-get install -y ${missing[*]}" >&2
    return 1
  fi
}

# What a build needs beside Rust: jemalloc, the binary's allocator, is C built with make.
need_build_tools() {
  need_packages cc=gcc make=make
}

rabbitmq_answers() {
  timeout 20 rabbitmq-diagnostics -q ping >/dev/null 2>&1
}

redis_answers() {
  [ "$(timeout 5 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]
}

# Redis as this machine runs it: no persistence, so a restart loses every key (production
# Redis runs with appendonly yes, see the README).
start_redis() {
  echo "Redis does not answer; starting it." >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 50); do redis_answers && break; sleep 0.2; done
}

postgres_answers() {
  timeout 5 pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1
}

# PostgreSQL as Debian's packages install it: "version name" of the first cluster
# pg_lsclusters lists.
postgres_cluster() {
  pg_lsclusters --no-header 2>/dev/null | awk 'NR == 1 { print $1, $2 }'
}

start_postgres() {
  echo "PostgreSQL does not answer; starting it." >&2
  local cluster
  cluster=$(postgres_cluster)
  # shellcheck disable=SC2086 # "version name", two words
  [ -n "$cluster" ] && pg_ctlcluster $cluster start >&2 || true
  for _ in $(seq 50); do postgres_answers && break; sleep 0.2; done
}

# The chaos scenario that takes the message history away (hookfleet-chaos).
stop_postgres() {
  local cluster
  cluster=$(postgres_cluster)
  # shellcheck disable=SC2086 # "version name", two words
  [ -n "$cluster" ] && pg_ctlcluster $cluster stop -m fast >&2
}

# The tests log in as postgres/postgres over TCP; a fresh Debian cluster has no password set.
postgres_login() {
  PGPASSWORD=postgres timeout 5 psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1
}

start_rabbitmq() {
  echo "RabbitMQ does not answer; starting it." >&2
  rabbitmq-server -detached || true
  timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true
}

ensure_services() {
  need_packages rabbitmq-server=rabbitmq-server redis-server=redis-server \
    pg_lsclusters=postgresql pg_isready=postgresql-client || return 1
  redis_answers || start_redis
  postgres_answers || start_postgres
  rabbitmq_answers || start_rabbitmq
  # A node whose app was stopped (e.g. by an interrupted fault-injection test) answers ping
  # but accepts no connections: start the app too; it is a no-op when running.
  timeout 60 rabbitmqctl start_app >/dev/null 2>&1 || true
  redis_answers || { echo "FATAL: Redis does not answer on 127.0.0.1:6379" >&2; return 1; }
  rabbitmq_answers || { echo "FATAL: RabbitMQ does not answer on 127.0.0.1:5672" >&2; return 1; }
  postgres_answers || { echo "FATAL: PostgreSQL does not answer on 127.0.0.1:5432" >&2; return 1; }
  if ! postgres_login && [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'" >&2 || true
  fi
  postgres_login || { echo "FATAL: cannot log in to PostgreSQL as postgres/postgres" >&2; return 1; }
  echo "RabbitMQ, Redis and PostgreSQL answer." >&2
}
