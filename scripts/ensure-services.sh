#!/usr/bin/env bash
# Start PostgreSQL and Redis on 127.0.0.1 if they are not running, installing them (and Debian's
# Chromium for the browser tests, docker-compose to validate the compose file) where missing. Needs root or sudo.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "Installing PostgreSQL..."
    apt_install postgresql
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "Starting PostgreSQL $version..."
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432
fi
# The tests connect as postgres/postgres over TCP; set the password (ignored where auth is trust).
if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1" >/dev/null 2>&1; then
  $SUDO -u postgres psql -q -c "ALTER USER postgres PASSWORD 'postgres'" 2>/dev/null \
    || su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""
fi

# Redis
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || { echo "Installing Redis..."; apt_install redis-server; }
  echo "Starting Redis..."
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
  redis-cli -h 127.0.0.1 ping >/dev/null
fi

# Debian's Chromium for the Playwright browser tests (Playwright's own download cannot work here).
if [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian chromium for the browser tests..."
  apt_install chromium
fi
# Debian's docker-compose (v1) validates docker-compose.yml in the tests; no engine is needed.
if ! command -v docker-compose >/dev/null; then
  echo "Installing docker-compose (to validate docker-compose.yml)..."
  apt_install docker-compose
fi
echo "PostgreSQL, Redis, Chromium and docker-compose are ready."
