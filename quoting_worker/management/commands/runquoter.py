"""manage.py runquoter: the quoting worker (see quoting_worker/worker.py).

Several may run at once: they share the symbols through one Kafka consumer
group, and each symbol is owned by the worker its partition is assigned to.
`--processes N` (N ≥ 2) runs N such workers as children of one supervisor on
this machine, one core each (quoting_worker/runner/supervisor.py says what
they split and share); child K serves its metrics on METRICS_PORT + K.
SIGTERM/SIGINT close the gate, cancel every order and exit within
SHUTDOWN_TIMEOUT (exit code 1 if the release overran it; a hard exit, with
every thread's stack on stderr, EXIT_GRACE_S later if anything still holds the
process). Prometheus metrics are served on METRICS_PORT
(quoting_worker/adapters/metrics.py); traces go to OPENOBSERVE_OTLP_ENDPOINT
when it is set.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import signal
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from quoting_worker.runner.supervisor import Supervisor, child_config
from quoting_worker.worker import QuoterWorker, WorkerConfig, tune_garbage_collector
from telemetry import tracing

logger = logging.getLogger("mms.quoter")

EXIT_GRACE_S = 5.0


class Command(BaseCommand):
    help = "Run the quoting worker: one PoolEngine per owned symbol."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--partitions", type=int, default=12)
        parser.add_argument("--group", default="mms-quoter")
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="worker processes on this machine, under one supervisor (one core each)",
        )
        parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        processes, child = options["processes"], options["child"]
        if processes < 1:
            raise CommandError(f"--processes {processes}: expected 1 or more")
        if child is None and processes > 1:
            self._supervise(processes, options)
            return
        service = settings.SERVICE
        config = WorkerConfig(
            kafka_brokers=service.kafka_brokers,
            registry_url=service.schema_registry_url,
            order_service_url=service.order_service_url,
            metadata_target=service.metadata_service_grpc_url,
            redis_url=service.redis_url,
            group_id=options["group"],
            partitions=options["partitions"],
            shadow=service.shadow_mode,
            topic_namespace=service.kafka_topic_namespace,
            session_timeout_ms=int(service.kafka_session_timeout.total_seconds() * 1000),
            order_rate_per_s=service.order_rate_per_s,
            cancel_reserve=service.order_cancel_reserve,
        )
        metrics_port = service.metrics_port
        if child is not None:
            try:
                config = child_config(config, child, processes)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            metrics_port += child
        tracing.configure("mms-quoter", service.otlp_endpoint)
        # `kill -USR1 <pid>` prints every thread's stack to stderr: what a stuck
        # quoter is waiting on, without stopping it.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        tune_garbage_collector()
        try:
            asyncio.run(self._run(config, service.shutdown_timeout.total_seconds(), metrics_port))
        finally:
            tracing.shutdown()

    def _supervise(self, processes: int, options: dict[str, Any]) -> None:
        """The supervisor: no worker of its own, `processes` children."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        command = [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "runquoter",
            "--partitions",
            str(options["partitions"]),
            "--group",
            options["group"],
            "--processes",
            str(processes),
        ]
        shutdown = settings.SERVICE.shutdown_timeout.total_seconds()
        supervisor = Supervisor(
            lambda k: [*command, "--child", str(k)],
            processes,
            stop_timeout_s=shutdown + 2 * EXIT_GRACE_S,
        )
        logger.info("runquoter supervisor: %d processes, group %s", processes, options["group"])
        code = supervisor.run(stop)
        logger.info("runquoter supervisor: stopped (exit %d)", code)
        if code:
            raise CommandError(f"a child exited with {code}")

    async def _run(self, config: WorkerConfig, shutdown_timeout: float, port: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = QuoterWorker(config)
        try:
            worker.metrics.serve(port)
        except OSError as exc:
            raise CommandError(f"METRICS_PORT {port}: cannot serve metrics there: {exc}") from exc
        logger.info("runquoter %s: consuming from %s", config.worker_id, config.kafka_brokers)
        task = asyncio.create_task(worker.run(stop))
        await stop.wait()
        started = time.monotonic()
        logger.info("runquoter %s: stopping", config.worker_id)
        # Past the limit and a grace for what follows the release (span export,
        # thread joins at exit), every thread's stack goes to stderr and the
        # process exits 1, whatever it waits on: one that cannot be stopped
        # cannot be replaced (RELIABILITY.md).
        faulthandler.dump_traceback_later(shutdown_timeout + EXIT_GRACE_S, exit=True)
        try:
            await asyncio.wait_for(task, timeout=shutdown_timeout)
        except TimeoutError:
            # Exit 1: whoever stops the process learns the release was cut short
            # (the venue's dead-man's switch is then what cancels what is left).
            raise CommandError(
                f"shutdown took longer than SHUTDOWN_TIMEOUT ({shutdown_timeout:g} s)"
            ) from None
        logger.info("runquoter: stopped in %.2f s", time.monotonic() - started)
