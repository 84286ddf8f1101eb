"""manage.py runquoter: the quoting worker (see quoting_worker/worker.py).

Several may run at once: they share the symbols through one Kafka consumer
group, and each symbol is owned by the worker its partition is assigned to.
SIGTERM/SIGINT close the gate, cancel every order and exit within
SHUTDOWN_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from quoting_worker.worker import QuoterWorker, WorkerConfig


class Command(BaseCommand):
    help = "Run the quoting worker: one PoolEngine per owned symbol."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--partitions", type=int, default=12)
        parser.add_argument("--group", default="mms-quoter")
        parser.add_argument(
            "--development", action="store_true", help="fast Kafka group joins (KAFKA.md)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
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
            development=options["development"] or service.debug,
            order_rate_per_s=service.order_rate_per_s,
            cancel_reserve=service.order_cancel_reserve,
        )
        asyncio.run(self._run(config, service.shutdown_timeout.total_seconds()))

    async def _run(self, config: WorkerConfig, shutdown_timeout: float) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = QuoterWorker(config)
        self.stdout.write(f"runquoter {config.worker_id}: consuming from {config.kafka_brokers}")
        task = asyncio.create_task(worker.run(stop))
        await stop.wait()
        try:
            await asyncio.wait_for(task, timeout=shutdown_timeout)
        except TimeoutError:
            self.stderr.write("runquoter: shutdown took longer than SHUTDOWN_TIMEOUT")
