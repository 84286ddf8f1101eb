"""A Tansu broker whose storage survives a restart: `s3://` storage on a local
S3 stand-in (moto_server), for tests that stop the broker and start it again
(/work/shared/KAFKA.md: memory storage loses topics, data and offsets on restart).

    with s3_tansu_broker(tmp_path, topics={"mm.state.changed.v1": 3}) as broker:
        ...                      # broker.bootstrap == "127.0.0.1:PORT"
        broker.stop()            # SIGKILL, as a crash would (kill=False: SIGTERM)
        broker.start()           # same port, same bucket: topics, records and offsets are back
        broker.restart()         # both

What Tansu needs to store on moto_server (object_store's S3 client, configured
from the environment): AWS_ENDPOINT=http://127.0.0.1:MOTO_PORT, AWS_ALLOW_HTTP=true
(else "BadScheme"), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (any value: without
them it asks the instance-metadata service for credentials), AWS_DEFAULT_REGION,
and a bucket that exists (`s3://BUCKET/`, created here with a PUT; S3 names are
3 to 63 characters). Each fixture has its own moto_server, so its bucket starts
empty. Consumers of this broker should use fetch.wait.max.ms ≥ 100 (KAFKA.md).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from quoting_worker.adapters.kafka_config import ensure_topics
from tests.adapters import broker_fixture
from tests.conftest import free_port, wait_until_serving

BUCKET = "tansu"
# Consumers of an s3-backed Tansu: below this the broker answers slowly or not at all.
S3_FETCH_WAIT_MAX_MS = 100
MOTO_START_TIMEOUT_S = 30.0


def tansu_s3_env(endpoint: str) -> dict[str, str]:
    """The environment that points Tansu's `s3://` storage at `endpoint` (moto_server)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **inherited,
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",  # moto accepts any
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """`python -m moto.server` on a free port; yields its endpoint, "http://127.0.0.1:PORT"."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{endpoint}/moto-api/", proc, timeout=MOTO_START_TIMEOUT_S)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def create_bucket(endpoint: str, bucket: str = BUCKET) -> None:
    response = httpx.put(f"{endpoint}/{bucket}", timeout=10)
    response.raise_for_status()


def bucket_keys(endpoint: str, bucket: str = BUCKET) -> list[str]:
    """The object keys in the bucket (what Tansu has stored), for diagnostics."""
    response = httpx.get(f"{endpoint}/{bucket}", params={"list-type": "2"}, timeout=10)
    response.raise_for_status()
    return [part.split("</Key>")[0] for part in response.text.split("<Key>")[1:]]


class S3Broker:
    """One Tansu broker on `s3://BUCKET/` at a fixed port, stopped and started at will."""

    def __init__(self, endpoint: str, log_dir: Path, bucket: str = BUCKET) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Starts the broker on its port and storage; returns once it answers metadata."""
        assert not self.running, "the broker is already running"
        url = f"tcp://127.0.0.1:{self.port}"
        self.starts += 1
        log = self.log_dir / f"tansu-s3-{self.port}-{self.starts}.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(  # noqa: S603
                [
                    str(broker_fixture.tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    f"s3://{self.bucket}/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=tansu_s3_env(self.endpoint),
            )
        try:
            broker_fixture._wait_until_answering(self.port, self._proc, log)
        except BaseException:
            self.stop()
            raise

    def stop(self, *, kill: bool = True) -> None:
        """Stops the broker: SIGKILL (a crash; what is stored in S3 stays), or SIGTERM."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=broker_fixture.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, *, kill: bool = True) -> None:
        self.stop(kill=kill)
        self.start()


@contextlib.contextmanager
def s3_tansu_broker(tmp: Path, topics: Mapping[str, int] | None = None) -> Iterator[S3Broker]:
    """A moto_server with an empty bucket and a Tansu broker storing in it, with
    `topics` ({name: partitions}) created; yields the S3Broker. Both end with the block."""
    with moto_server(tmp / "moto.log") as endpoint:
        create_bucket(endpoint)
        broker = S3Broker(endpoint, tmp)
        broker.start()
        try:
            if topics:
                ensure_topics(broker.bootstrap, topics, co_partitioned=())
            yield broker
        finally:
            broker.stop()
