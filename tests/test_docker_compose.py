"""docker-compose cannot run here (no container engine); this checks what can be
checked: it parses, names every service of the stack, and gives each MMS
process every variable of SPEC's environment table."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC_VARIABLES = {
    "POSTGRES_URL",
    "REDIS_URL",
    "KAFKA_BROKERS",
    "SCHEMA_REGISTRY_URL",
    "ORDER_SERVICE_URL",
    "METADATA_SERVICE_GRPC_URL",
    "HTTP_PORT",
    "METRICS_PORT",
    "MM_SHADOW_MODE",
    "PERFORMANCE_SNAPSHOT_INTERVAL",
    "SHUTDOWN_TIMEOUT",
    "AUTH_SERVICE_URL",
    "DISABLE_AUTH",
    "OPENOBSERVE_OTLP_ENDPOINT",
}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_names_the_whole_stack():
    services = _compose()["services"]
    assert {
        "postgres",
        "redis",
        "kafka",
        "schema-registry",
        "web",
        "quoter",
        "celery-worker",
        "celery-beat",
        "migrate",
        "order-service",
        "metadata-service",
        "outbox-relay",
    } <= set(services)


def test_every_mms_process_gets_every_spec_variable():
    services = _compose()["services"]
    for name in ("web", "quoter", "celery-worker", "celery-beat", "migrate"):
        env = services[name]["environment"]
        assert set(env) >= SPEC_VARIABLES, f"{name} lacks {SPEC_VARIABLES - set(env)}"
        assert env["DISABLE_AUTH"] == "false"


def test_ports_match_spec_defaults():
    services = _compose()["services"]
    assert "8095:8095" in services["web"]["ports"]
    assert "3001:3001" in services["web"]["ports"]
    assert "9090:9090" in services["quoter"]["ports"]


def test_kafka_is_the_version_and_kind_of_the_development_node():
    """docker-compose runs the Kafka version `make kafka` fetches, in KRaft mode
    as one node, with the same one-node settings (SPEC Part B.8)."""
    pom = (ROOT / "ops" / "kafka" / "pom.xml").read_text()
    version = pom.split("<kafka.version>")[1].split("</kafka.version>")[0]
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{version}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    server = dict(
        line.split("=", 1)
        for line in (ROOT / "ops" / "kafka" / "server.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "group.initial.rebalance.delay.ms",
        "auto.create.topics.enable",
    ):
        assert env["KAFKA_" + key.upper().replace(".", "_")] == server[key], key
