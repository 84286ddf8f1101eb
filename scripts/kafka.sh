#!/usr/bin/env bash
# The development Kafka node (Apache Kafka, KRaft, one process): devstack/kafka.py.
#
#   bash scripts/kafka.sh start|stop|status
#
# KAFKA_PORT (default 9092) and KAFKA_CONTROLLER_PORT (9093) pick the ports; it
# listens on 127.0.0.1 only. Data, config, log and pid file: var/kafka/node/.
# `make kafka` fetches it from Maven Central first (make run and make test do).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m devstack.kafka "$@"
