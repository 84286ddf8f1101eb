"""The stack a bench runs MMS against, started here and stopped at the end: an
Apache Kafka node of the run's own (devstack/kafka.py's KafkaNode: KRaft, one
JVM that is broker and controller, formatted in a folder under the run's log
directory, on free ports), the stand-ins (devstack/standins.py, each log in that
directory) and the QuoterWorker in a thread of the bench's process (so its
engines can be watched), as tests/adapters/test_worker.py runs it.

Stopping order: the worker (its shutdown cancels every order, unmetered), then
the stand-ins (all signalled, then waited for), then the Kafka node last: the
others may still use it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from devstack import standins
from devstack.kafka import KafkaNode
from devstack.standins import StandIn, free_port

__all__ = ["Stack", "WorkerThread", "free_port", "log_directory", "wait_for"]

STOP_TIMEOUT_S = 20.0
WORKER_STOP_TIMEOUT_S = 60.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, step: float = 0.05) -> Any:
    """Polls `check` until it returns something true (returned); raises after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def log_directory(
    prefix: str, *, keep: bool, keep_on_failure: bool = True, announce: bool = True
) -> Iterator[Path]:
    """A temporary folder for the run's logs; removed at the end unless `keep`, or
    the run failed and `keep_on_failure` (the exception names the folder too)."""
    logdir = Path(tempfile.mkdtemp(prefix=prefix))
    if announce:
        print(f"logs in {logdir}", flush=True)
    failed = False
    try:
        yield logdir
    except BaseException:
        failed = True
        raise
    finally:
        if keep:
            print(f"logs kept in {logdir}")
        elif not (failed and keep_on_failure):
            shutil.rmtree(logdir, ignore_errors=True)


class Stack:
    """The run's processes, each stopped by its own handle at the end (`stop_all`)."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.standins: list[StandIn] = []
        self.kafka: KafkaNode | None = None

    def start_kafka(self, timeout: float = 120.0) -> KafkaNode:
        """Returns once the node is ready (a topic created, an idempotent producer wrote)."""
        port = free_port()
        controller_port = free_port()
        while controller_port == port:
            controller_port = free_port()
        node = KafkaNode(home=self.logdir / "kafka", port=port, controller_port=controller_port)
        self.kafka = node  # stopped even if the start fails half-way
        node.start(timeout=timeout)
        return node

    def _add(self, standin: StandIn) -> StandIn:
        self.standins.append(standin)
        return standin

    def _log(self, name: str) -> Path:
        return self.logdir / f"{name}.log"

    def schema_registry(self) -> StandIn:
        return self._add(standins.schema_registry(log=self._log("schema-registry")))

    def metadata(self, instruments: Iterable[str] = ()) -> StandIn:
        return self._add(
            standins.metadata_service(instruments=instruments, log=self._log("metadata"))
        )

    def order_service(self, instruments: Iterable[str] = ()) -> StandIn:
        return self._add(
            standins.order_service(instruments=instruments, log=self._log("order-service"))
        )

    def tradex(self, *args: str, launcher: str | None = None) -> StandIn:
        return self._add(standins.tradex(*args, launcher=launcher, log=self._log("tradex")))

    def pids(self) -> dict[str, int]:
        """The stand-ins' pids by name (and the Kafka node's, as "kafka")."""
        pids = {standin.name: standin.pid for standin in self.standins}
        kafka_pid = self.kafka.pid() if self.kafka is not None else None
        if kafka_pid is not None:
            pids["kafka"] = kafka_pid
        return pids

    def stop_all(self) -> None:
        for standin in reversed(self.standins):
            standin.terminate()
        for standin in reversed(self.standins):
            standin.wait(STOP_TIMEOUT_S)
        if self.kafka is not None:
            self.kafka.stop()  # SIGTERM; SIGKILL after 30 s


class WorkerThread:
    """A QuoterWorker running in a thread of this process, on its own event loop.
    What the worker changes is read on that loop (`on_loop`)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.thread: threading.Thread | None = None
        self.stop_s: float | None = None  # how long the graceful stop took
        self._running = threading.Event()

    def start(self) -> None:
        self.thread = threading.Thread(target=self._serve, name="quoter", daemon=True)
        self.thread.start()
        self._running.wait(30)

    def start_hosting(self, n: int, timeout: float) -> float:
        """Starts the worker and waits until it hosts `n` symbols; the seconds that took."""
        started = time.monotonic()
        self.start()
        wait_for(
            f"the worker to host {n} symbols",
            lambda: len(self.worker.hosted) == n,
            timeout=timeout,
            step=0.2,
        )
        return time.monotonic() - started

    def _serve(self) -> None:
        async def main() -> None:
            self.stop_event = asyncio.Event()
            self.loop = asyncio.get_running_loop()
            self._running.set()
            await self.worker.run(self.stop_event)

        asyncio.run(main())

    def on_loop(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        """`fn()` on the worker's event loop (engines are only touched there); its result."""

        async def call() -> Any:
            return fn()

        if self.loop is None:
            raise RuntimeError("the worker is not running")
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def hosted_engines(self) -> list[Any]:
        return [actor.engine for actor in list(self.worker.hosted.values())]

    def stop(self) -> None:
        """Stops the worker; its shutdown cancels every order: not measured, so not
        rate-limited."""
        from quoting_worker.adapters.order_service import RateBudget

        self.worker.client.budget = RateBudget(rate_per_s=1e9, burst=10**9)
        if self.loop is not None and self.stop_event is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.stop_event.set)
        if self.thread is None:
            return
        started = time.monotonic()
        self.thread.join(WORKER_STOP_TIMEOUT_S)
        self.stop_s = round(time.monotonic() - started, 1)
        if self.thread.is_alive():
            print("warning: the worker thread did not stop within 60 s", file=sys.stderr)
