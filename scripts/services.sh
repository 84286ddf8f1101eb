#!/usr/bin/env bash
# Makes sure the local PostgreSQL and Redis are up, and that the service's
# database exists. Safe to run any number of times.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

db="${MMS_DB_NAME:-mms}"
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='${db}'" | grep -q 1; then
  echo "services: creating database ${db}"
  createdb -h 127.0.0.1 -U postgres "${db}"
fi
