"""The development Kafka node as the scripts start it (devstack/kafka.py): ready
means usable, and a broker that is not there is one clear line, not a
traceback wall."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.kafka import KafkaNode, KafkaSetupError, new_cluster_id, wait_ready
from tests.conftest import ROOT, free_port


def test_a_ready_node_creates_a_topic_and_takes_an_idempotent_write_at_once(
    kafka_node: KafkaNode,
) -> None:
    wait_ready(kafka_node.bootstrap, timeout=5)  # already started: returns at once
    topic = f"ready.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_node.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=5)
    producer = Producer(
        {
            "bootstrap.servers": kafka_node.bootstrap,
            "enable.idempotence": True,
            "message.timeout.ms": 3000,
        }
    )
    reports: list[object] = []
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: reports.append(err))
    assert producer.flush(5) == 0
    assert reports == [None]


def test_a_cluster_id_is_never_taken_for_an_option() -> None:
    """One base64url id in 64 starts with "-", which the storage tool's command
    line reads as an option: formatting failed on those (seen in a bench run)."""
    ids = [new_cluster_id() for _ in range(2000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert all(len(cluster_id) == 22 for cluster_id in ids)
    assert len(set(ids)) == len(ids)


def test_waiting_for_a_broker_that_is_not_there_ends_with_what_was_wrong() -> None:
    with pytest.raises(TimeoutError, match=r"nothing listens after 0\.5 s"):
        wait_ready(f"127.0.0.1:{free_port()}", timeout=0.5)


def test_a_node_is_not_started_on_a_port_another_process_holds(
    kafka_node: KafkaNode, tmp_path_factory: pytest.TempPathFactory
) -> None:
    taken = KafkaNode(
        home=tmp_path_factory.mktemp("taken"), port=kafka_node.port, controller_port=free_port()
    )
    with pytest.raises(KafkaSetupError, match=f"port {kafka_node.port} is taken"):
        taken.start(timeout=5)
    assert taken.process is None


def test_the_command_line_says_in_one_line_that_the_broker_did_not_answer() -> None:
    result = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "devstack.kafka",
            "wait",
            "--bootstrap",
            f"127.0.0.1:{free_port()}",
            "--timeout",
            "0.5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kafka: Kafka at 127.0.0.1:")
    assert "nothing listens" in lines[0]
