#!/usr/bin/env bash
# `make run`: the local stack in the foreground. Ctrl-C stops all of it.
#   API    http://127.0.0.1:${HTTP_PORT:-8095}/v1/docs
#   admin  http://127.0.0.1:${ADMIN_PORT:-3001}/
#   auth   http://127.0.0.1:${AUTH_PORT:-8096} (the Auth Service stand-in)
#   TradeX http://127.0.0.1:${ORDER_SERVICE_PORT:-8097}/admin/market (the exchange simulator)
# SIM_SPEED (default 1) runs the simulator's clock faster; SIM_SEED (default 7)
# picks its market.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

export DJANGO_SETTINGS_MODULE=mms.settings.base
export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"
# Readable log lines here; LOG_FORMAT=json gives the JSON lines production writes.
export LOG_FORMAT="${LOG_FORMAT:-console}"
export METRICS_PORT="${METRICS_PORT:-9090}"
export POSTGRES_URL="${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/mms}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export REGISTRY_PORT="${REGISTRY_PORT:-8081}"
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:${REGISTRY_PORT}}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
# KAFKA_BROKERS set by you: that cluster is used and no local node is started.
LOCAL_KAFKA=$([[ -z "${KAFKA_BROKERS:-}" ]] && echo 1 || echo 0)
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT}}"
export ORDER_SERVICE_PORT="${ORDER_SERVICE_PORT:-8097}"
export ORDER_SERVICE_URL="${ORDER_SERVICE_URL:-http://127.0.0.1:${ORDER_SERVICE_PORT}}"
export METADATA_PORT="${METADATA_PORT:-50051}"
export METADATA_SERVICE_GRPC_URL="${METADATA_SERVICE_GRPC_URL:-127.0.0.1:${METADATA_PORT}}"
export AUTH_PORT="${AUTH_PORT:-8096}"
export AUTH_SERVICE_URL="${AUTH_SERVICE_URL:-http://127.0.0.1:${AUTH_PORT}}"
# The simulator sets no rate limit; three demo pools re-quoting 4 members × 3
# levels need more than the default 100 requests/s.
export ORDER_SERVICE_RATE_PER_S="${ORDER_SERVICE_RATE_PER_S:-400}"
export HTTP_PORT="${HTTP_PORT:-8095}"
export ADMIN_PORT="${ADMIN_PORT:-3001}"
export SIM_AUTH_SECRET="${SIM_AUTH_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((LOCAL_KAFKA)); then bash scripts/kafka.sh stop || true; fi
}
trap cleanup EXIT INT TERM

$BIN/python manage.py migrate --no-input
$BIN/python manage.py collectstatic --no-input -v 0
$BIN/python manage.py bootstrap_admin
$BIN/python manage.py seed_demo
$BIN/python manage.py install_schedules

mkdir -p var
wait_http() {  # url: up to 10 s
  for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "run: $1 did not answer" >&2; return 1
}

# The TradeX stand-ins (SPEC Part B.7), the development Kafka node (KAFKA.md),
# then the exchange simulator, which publishes the market from its first second.
$BIN/python -m simulator.auth_service --port "$AUTH_PORT" &
pids+=($!)
$BIN/python -m simulator.schema_registry --port "$REGISTRY_PORT" --store var/schema-registry.json &
pids+=($!)
$BIN/python -m simulator.metadata_service --port "$METADATA_PORT" &
pids+=($!)
if ((LOCAL_KAFKA)); then
  bash scripts/kafka.sh start
else
  # Someone else's cluster: wait for it a minute, then give up with one line.
  bash scripts/kafka.sh wait --bootstrap "$KAFKA_BROKERS" --timeout 60
fi
wait_http "http://127.0.0.1:${AUTH_PORT}/healthz"
wait_http "${SCHEMA_REGISTRY_URL}/subjects"
$BIN/python - <<'PY'
import os
from messaging.topics import Topics
from messaging.kafka import ensure_topics, mms_topics
from messaging.avro import AvroCodec

topics = Topics(os.environ.get("KAFKA_TOPIC_NAMESPACE", ""))
ensure_topics(os.environ["KAFKA_BROKERS"], mms_topics(12, topics), namespace=topics)
AvroCodec(os.environ["SCHEMA_REGISTRY_URL"]).register_all()
PY
$BIN/python -m simulator --port "$ORDER_SERVICE_PORT" --brokers "$KAFKA_BROKERS" \
  --registry "$SCHEMA_REGISTRY_URL" --speed "${SIM_SPEED:-1}" --seed "${SIM_SEED:-7}" &
pids+=($!)
wait_http "${ORDER_SERVICE_URL}/healthz"
# The simulator starts empty; the database remembers earlier runs' fills: the
# venue is told the positions they left, as a real venue would still hold them.
$BIN/python manage.py demo_venue_positions "$ORDER_SERVICE_URL"
token=$(curl -fs -X POST "http://127.0.0.1:${AUTH_PORT}/v1/tokens" \
  -H 'content-type: application/json' \
  -d '{"sub": "demo-ops", "roles": ["ops", "finance"], "ttl_seconds": 86400}' |
  $BIN/python -c 'import json, sys; print(json.load(sys.stdin)["token"])')

cat <<MSG

  MMS is starting.
    API      http://127.0.0.1:${HTTP_PORT}/v1/docs   (Swagger)
    admin    http://127.0.0.1:${ADMIN_PORT}/          (credentials above)
    health   http://127.0.0.1:${HTTP_PORT}/readyz
    quoter   runquoter on Kafka ${KAFKA_BROKERS}
    metrics  http://127.0.0.1:${METRICS_PORT}/metrics (runquoter: pools, members, latency)
             http://127.0.0.1:${ADMIN_PORT}/metrics (web: jobs, settlements, Q-scores, outbox, Celery)
    TradeX   ${ORDER_SERVICE_URL}/admin/market (simulated market: fair value, book, halts)
             ${ORDER_SERVICE_URL}/admin/ledger?account_id=acct-alpha (a member's venue ledger)
  A 24-hour ops+finance token for the API:
    export MMS_TOKEN=${token}
    curl -H "Authorization: Bearer \$MMS_TOKEN" http://127.0.0.1:${HTTP_PORT}/v1/pools

MSG

$BIN/gunicorn mms.wsgi --config mms/gunicorn.conf.py \
  --bind "127.0.0.1:${HTTP_PORT}" --bind "127.0.0.1:${ADMIN_PORT}" \
  --workers 2 --threads 4 --access-logfile - &
pids+=($!)
$BIN/python manage.py runquoter --partitions 12 &
pids+=($!)
$BIN/python manage.py runoutboxrelay &
pids+=($!)
$BIN/celery -A mms worker --loglevel warning --concurrency 1 &
pids+=($!)
$BIN/celery -A mms beat --loglevel warning --scheduler django_celery_beat.schedulers:DatabaseScheduler &
pids+=($!)

# The demo pools start PAUSED (every pool boots PAUSED); once the quoter reports
# them, ops resumes each through the API, as a person would.
(
  for symbol in BTCUSDT-PERP ETHUSDT-PERP PEPEUSDT-PERP; do
    for _ in $(seq 600); do
      curl -fs -H "Authorization: Bearer ${token}" \
        "http://127.0.0.1:${HTTP_PORT}/v1/pools/${symbol}/status" 2>/dev/null |
        grep -q '"worker": *"up"' && break
      sleep 0.1
    done
    curl -fs -X POST -H "Authorization: Bearer ${token}" -H 'content-type: application/json' \
      -d '{"note": "make run: demo start"}' \
      "http://127.0.0.1:${HTTP_PORT}/v1/pools/${symbol}/resume" >/dev/null &&
      echo "run: ${symbol} resumed (ACTIVE): quoting on TradeX"
  done
) &
wait -n "${pids[@]}"
