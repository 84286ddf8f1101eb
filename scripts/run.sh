#!/usr/bin/env bash
# `make run`: the local stack in the foreground. Ctrl-C stops all of it.
#   API    http://127.0.0.1:${HTTP_PORT:-8095}/v1/docs
#   admin  http://127.0.0.1:${ADMIN_PORT:-3001}/
#   auth   http://127.0.0.1:${AUTH_PORT:-8096} (the Auth Service stand-in)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

export DJANGO_SETTINGS_MODULE=mms.settings.base
export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"
export POSTGRES_URL="${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/mms}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081}"
export AUTH_PORT="${AUTH_PORT:-8096}"
export AUTH_SERVICE_URL="${AUTH_SERVICE_URL:-http://127.0.0.1:${AUTH_PORT}}"
export HTTP_PORT="${HTTP_PORT:-8095}"
export ADMIN_PORT="${ADMIN_PORT:-3001}"
export SIM_AUTH_SECRET="${SIM_AUTH_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

$BIN/python manage.py migrate --no-input
$BIN/python manage.py collectstatic --no-input -v 0
$BIN/python manage.py bootstrap_admin

$BIN/python -m simulator.auth_service --port "$AUTH_PORT" &
pids+=($!)
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:${AUTH_PORT}/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
token=$(curl -fs -X POST "http://127.0.0.1:${AUTH_PORT}/v1/tokens" \
  -H 'content-type: application/json' \
  -d '{"sub": "demo-ops", "roles": ["ops", "finance"], "ttl_seconds": 86400}' |
  $BIN/python -c 'import json, sys; print(json.load(sys.stdin)["token"])')

cat <<MSG

  MMS is starting.
    API      http://127.0.0.1:${HTTP_PORT}/v1/docs   (Swagger)
    admin    http://127.0.0.1:${ADMIN_PORT}/          (credentials above)
    health   http://127.0.0.1:${HTTP_PORT}/readyz
  A 24-hour ops+finance token for the API:
    export MMS_TOKEN=${token}
    curl -H "Authorization: Bearer \$MMS_TOKEN" http://127.0.0.1:${HTTP_PORT}/v1/pools

MSG

$BIN/gunicorn mms.wsgi \
  --bind "127.0.0.1:${HTTP_PORT}" --bind "127.0.0.1:${ADMIN_PORT}" \
  --workers 2 --threads 4 --access-logfile - &
pids+=($!)
wait -n "${pids[@]}"
