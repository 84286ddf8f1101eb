"""The development Kafka node: Apache Kafka in KRaft mode, one JVM that is both
broker and controller, on 127.0.0.1 (KAFKA.md, SPEC Part B.8).

Its classpath is resolved from Maven Central by `make kafka` (ops/kafka/pom.xml
into var/kafka/libs); its settings are ops/kafka/server.properties, filled in
per node with the ports and the data folder; it logs through log4j2
(ops/kafka/log4j2.yaml) to `<home>/kafka.log`.

A node lives in a folder of its own (`home`): the rendered config, the data
(formatted once with a new cluster id, then reused, so a restart keeps topics,
records and committed offsets), the log and a pid file. `make run` keeps one in
var/kafka/node; the test session starts one in a temporary folder; a restart
or outage test starts its own.

"Ready" means what a client needs, not an open port: the cluster answers a
describe and a topic can be created.

    python -m devstack.kafka start|stop|status [--home DIR] [--port N]
        (defaults: KAFKA_HOME or var/kafka/node, KAFKA_PORT or 9092)
    python -m devstack.kafka wait --bootstrap HOST:PORT [--timeout S]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
LIBS = ROOT / "var" / "kafka" / "libs"
INSTALLED_STAMP = LIBS / ".installed"
CONFIG_TEMPLATE = ROOT / "ops" / "kafka" / "server.properties"
LOG_CONFIG = ROOT / "ops" / "kafka" / "log4j2.yaml"
DEFAULT_HOME = ROOT / "var" / "kafka" / "node"

# Two cores are shared with everything else: a small heap and one GC thread.
# C1 only: the broker's load here is light, and C2's compilations cost whole
# cores for minutes after every start.
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx384m",
    "-XX:+UseG1GC",
    "-XX:ParallelGCThreads=1",
    "-XX:ConcGCThreads=1",
    "-XX:CICompilerCount=1",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
READY_PROBE_TOPIC = "mms.ready.probe"
STOP_TIMEOUT_S = 30.0


class KafkaSetupError(RuntimeError):
    """The node cannot be started: not installed, no Java, or it failed at start."""


def installed() -> bool:
    return INSTALLED_STAMP.exists()


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaSetupError("java not found: the development Kafka broker needs Java 17")
    return java


def new_cluster_id() -> str:
    """A random cluster id in Kafka's form (a UUID, base64url without padding).
    Never one that starts with "-", as Kafka's own generator: the storage tool's
    command line would take it for an option (one start in 64 failed so)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


def wait_ready(bootstrap: str, *, timeout: float, alive: object = None) -> None:
    """Returns once the cluster at `bootstrap` answers a describe and a topic can
    be created; raises TimeoutError after `timeout` s. `alive`, when given, is
    called between tries and may raise to give up early (a node that exited)."""
    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + timeout
    # The port first: librdkafka logs every refused connection.
    while not port_open(int(port), host):
        if callable(alive):
            alive()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"Kafka at {bootstrap}: nothing listens after {timeout:g} s")
        time.sleep(0.05)
    # Quiet: refused and dropped connections are what waiting for a start looks like.
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "client.id": "mms-ready-probe", "log_level": 2}
    )
    last: object = None
    while time.monotonic() < deadline:
        if callable(alive):
            alive()
        try:
            admin.describe_cluster(request_timeout=2).result(timeout=3)
            futures = admin.create_topics(
                [NewTopic(READY_PROBE_TOPIC, num_partitions=1, replication_factor=1)],
                operation_timeout=2,
                request_timeout=3,
            )
            try:
                futures[READY_PROBE_TOPIC].result(timeout=4)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            _write_probe(bootstrap, timeout=max(1.0, deadline - time.monotonic()))
            return
        except KafkaException as exc:
            last = exc.args[0] if exc.args else exc
            time.sleep(0.1)
    raise TimeoutError(f"Kafka at {bootstrap} is not ready after {timeout:g} s: {last}")


def _write_probe(bootstrap: str, *, timeout: float) -> None:
    """One record through an idempotent producer, as MMS's producers are: the
    first one after a start waits for the broker to load its producer-id state
    (otherwise the first real producer does, with a warning per retry)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "client.id": "mms-ready",
            "log_level": 2,  # its "coordinator load in progress" retries are expected
        }
    )
    errors: list[object] = []
    producer.produce(READY_PROBE_TOPIC, b"ready", on_delivery=lambda err, _msg: errors.append(err))
    if producer.flush(timeout) != 0 or errors != [None]:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"probe write: {errors}"))


@dataclass
class KafkaNode:
    """One Kafka node in `home`, listening on 127.0.0.1:`port` (clients) and
    127.0.0.1:`controller_port` (its KRaft controller)."""

    home: Path
    port: int
    controller_port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_path(self) -> Path:
        return self.home / "kafka.log"

    @property
    def pid_path(self) -> Path:
        return self.home / "kafka.pid"

    def _jvm(self, main: str, *args: str) -> list[str]:
        if not installed():
            raise KafkaSetupError(f"Kafka is not installed in {LIBS}: run `make kafka`")
        return [
            _java(),
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={LOG_CONFIG}",
            f"-Dkafka.log.file={self.log_path}",
            "-cp",
            f"{LIBS}/*",
            main,
            *args,
        ]

    def prepare(self) -> None:
        """Writes the config (the ports may differ from the last run) and formats
        the data folder the first time; a formatted folder is kept as it is."""
        self.home.mkdir(parents=True, exist_ok=True)
        rendered = string.Template(CONFIG_TEMPLATE.read_text()).substitute(
            port=self.port, controller_port=self.controller_port, log_dir=self.data_dir
        )
        self.config_path.write_text(rendered)
        if (self.data_dir / "meta.properties").exists():
            return
        command = self._jvm(
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            new_cluster_id(),
            "--config",
            str(self.config_path),
            "--standalone",
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise KafkaSetupError(
                f"formatting {self.data_dir} failed ({result.returncode}): "
                f"{result.stdout}{result.stderr}"
            )

    def start(self, *, timeout: float = 60.0) -> KafkaNode:
        """Starts the node and returns once it is ready (see `wait_ready`)."""
        if self.alive():
            raise KafkaSetupError(f"a Kafka node already runs in {self.home} (pid {self.pid()})")
        for port in (self.port, self.controller_port):
            if port_open(port):
                raise KafkaSetupError(f"port {port} is taken by another process")
        self.prepare()
        with (self.home / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603
                self._jvm("kafka.Kafka", str(self.config_path)),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal reaches the scripts, not it
            )
        self.pid_path.write_text(str(self.process.pid))
        try:
            wait_ready(self.bootstrap, timeout=timeout, alive=self._check_running)
        except BaseException:
            self.stop()
            raise
        return self

    def _check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise KafkaSetupError(
                f"Kafka exited with {self.process.returncode} at start; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for path in (self.log_path, self.home / "stdout.log"):
            with contextlib.suppress(OSError):
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        try:
            return int(self.pid_path.read_text())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        """The pid on record is a running Kafka of this home (not a stranger reusing it)."""
        if self.process is not None:
            return self.process.poll() is None
        pid = self.pid()
        if pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in cmdline and str(self.config_path).encode() in cmdline

    def signal(self, sig: signal.Signals) -> None:
        pid = self.pid()
        if pid is not None and self.alive():
            os.kill(pid, sig)

    def stop(self, *, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (a controlled shutdown that flushes the logs), SIGKILL after `timeout`."""
        if not self.alive():
            self.pid_path.unlink(missing_ok=True)
            return
        self.signal(signal.SIGTERM)
        if not self._wait_exit(timeout):
            self.kill()
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: a crash. The next start recovers the logs from disk."""
        self.signal(signal.SIGKILL)
        self._wait_exit(10.0)
        self.pid_path.unlink(missing_ok=True)

    def _wait_exit(self, timeout: float) -> bool:
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.kafka", description=__doc__)
    parser.add_argument("action", choices=("start", "stop", "status", "wait"))
    parser.add_argument(
        "--home", type=Path, default=Path(os.environ.get("KAFKA_HOME", DEFAULT_HOME))
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_PORT", "9092")))
    parser.add_argument(
        "--controller-port",
        type=int,
        default=int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093")),
    )
    parser.add_argument("--bootstrap", help="for wait: the cluster to wait for")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    node = KafkaNode(home=args.home, port=args.port, controller_port=args.controller_port)
    try:
        if args.action == "start":
            if node.alive():
                print(f"kafka: already running in {node.home} (pid {node.pid()})")
                return 0
            node.start(timeout=args.timeout)
            print(f"kafka: Apache Kafka on {node.bootstrap} (pid {node.pid()})")
        elif args.action == "stop":
            running = node.alive()
            node.stop()
            print("kafka: stopped" if running else "kafka: not running")
        elif args.action == "status":
            if not node.alive():
                print("kafka: not running")
                return 3
            print(f"kafka: running on {node.bootstrap} (pid {node.pid()})")
        else:
            bootstrap = args.bootstrap or node.bootstrap
            wait_ready(bootstrap, timeout=args.timeout)
            print(f"kafka: {bootstrap} is ready")
    except (KafkaSetupError, TimeoutError) as exc:
        print(f"kafka: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
