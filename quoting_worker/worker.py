"""The runquoter process: hosts one PoolEngine per owned symbol and wires it to
Kafka, the Order Service, the Metadata Service, PostgreSQL and Redis.

`QuoterWorker` only wires the rooms of quoting_worker/runner/ (see its
package docstring) and runs them: the consumer thread, the side loops (each
supervised: an exception is logged and the loop started again after a
back-off), and the shutdown, which releases every symbol (gate closed, every
order cancelled explicitly: a graceful exit does not fire the venue's
cancel-on-disconnect), closes the consumer and every connection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping

import psycopg
import redis.asyncio as aioredis
from django.db import Error as DatabaseError
from django.db import connections
from redis.exceptions import RedisError

from messaging.avro import AvroCodec
from messaging.topics import Topics
from quoting_worker.adapters.identity import WORKER_KEY, build_hash, config_hash
from quoting_worker.adapters.journal import OrderJournal, conninfo
from quoting_worker.adapters.metadata import MetadataClient
from quoting_worker.adapters.metrics import QuoterMetrics
from quoting_worker.adapters.order_service import (
    OrderServiceClient,
    OrderServiceSink,
    RateBudget,
)
from quoting_worker.core.ids import ClientOrderIds, parse
from quoting_worker.core.types import Command, Event, Instrument
from quoting_worker.runner.actor import PoolActor
from quoting_worker.runner.config import SystemClock, WorkerConfig, tune_garbage_collector
from quoting_worker.runner.consumer import KafkaIntake, OffsetTracker, Partitions
from quoting_worker.runner.control import Control
from quoting_worker.runner.durable import Database
from quoting_worker.runner.ownership import Ownership
from quoting_worker.runner.upkeep import Upkeep

__all__ = ["QuoterWorker", "WorkerConfig", "tune_garbage_collector"]

logger = logging.getLogger("mms.quoter")

SUPERVISOR_FIRST_DELAY_S = 0.1  # a failed side task starts again after this, doubling
SUPERVISOR_MAX_DELAY_S = 5.0
CONSUMER_CLOSE_S = 15.0


class QuoterWorker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.clock = SystemClock()
        self.metrics = QuoterMetrics()
        self.stopping = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.identity = {
            "worker_id": config.worker_id,
            "build": build_hash(),
            "config": config_hash(
                {"partitions": config.partitions, "group": config.group_id, "shadow": config.shadow}
            ),
        }
        self.metrics.info.labels(config.worker_id, self.identity["build"]).set(1)
        user_ids: dict[str, str] = {}
        instruments: dict[str, Instrument] = {}
        self.client = OrderServiceClient(
            config.order_service_url,
            user_ids=user_ids,
            budget=RateBudget(
                rate_per_s=config.order_rate_per_s,
                burst=config.order_rate_per_s,
                reserve=config.cancel_reserve,
            ),
        )
        self.sink = OrderServiceSink(
            self.client,
            instruments=instruments,
            on_event=self._venue_answer,
            may_place=self._may_place,
        )
        self.client.on_request = self.metrics.order_request
        self.sink.on_resolved = self.metrics.unknown_resolved.observe
        self.metadata = MetadataClient(config.metadata_target)
        self.journal = OrderJournal(conninfo(connections["default"].settings_dict))
        self.redis = aioredis.from_url(config.redis_url)
        self.database = Database(
            self.metrics, suspend_all=self._suspend_all, resume_all=self._resume_all
        )
        self.ownership = Ownership(
            config=config,
            identity=self.identity,
            clock=self.clock,
            ids=ClientOrderIds(self.clock.now_ns),
            database=self.database,
            metadata=self.metadata,
            redis=self.redis,
            sink=self.sink,
            journal=self.journal,
            metrics=self.metrics,
            user_ids=user_ids,
            instruments=instruments,
            stopping=self.stopping,
        )
        self.intake = KafkaIntake(
            config=config,
            codec=AvroCodec(config.registry_url),
            metrics=self.metrics,
            hosted=self.ownership.hosted,
            on_assign=self.ownership.assign,
            on_revoke=self._revoke,
            stopping=self.stopping,
        )
        self.control = Control(
            config=config,
            clock=self.clock,
            database=self.database,
            redis=self.redis,
            ownership=self.ownership,
            client=self.client,
        )
        self.upkeep = Upkeep(
            config=config,
            identity=self.identity,
            clock=self.clock,
            redis=self.redis,
            client=self.client,
            metrics=self.metrics,
            hosted=self.ownership.hosted,
        )

    # What tests and benchmarks look at.
    @property
    def hosted(self) -> dict[str, PoolActor]:
        return self.ownership.hosted

    @property
    def topics(self) -> Topics:
        return self.intake.topics

    @property
    def offsets(self) -> OffsetTracker:
        return self.intake.offsets

    @property
    def skipped(self) -> Mapping[str, int]:
        """Messages skipped, by reason (undecodable, untranslatable, no key or value)."""
        return self.intake.skipped

    @property
    def assigned(self) -> set[tuple[str, int]]:
        """The (logical topic, partition) pairs this worker owns."""
        return self.ownership.assigned

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        self.intake.start(self.loop)
        side = [
            asyncio.create_task(self._supervised(loop_body), name=loop_body.__name__)
            for loop_body in (
                self.upkeep.publish_status_forever,
                self.control.listen_forever,
                self.control.sync_noticed_forever,
                self.control.reread_forever,
                self.upkeep.tick_forever,
                self.upkeep.reconcile_forever,
                self.upkeep.check_positions_forever,
                self.upkeep.renew_dead_mans_switches_forever,
                self.upkeep.record_statuses_forever,
            )
        ]
        try:
            await stop.wait()
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await self.shutdown()

    async def _supervised(self, loop_body: Callable[[], Awaitable[None]]) -> None:
        """Runs a side task for the life of the worker: an exception (Redis or the
        database restarting, a broken connection) is logged and counted, and the
        task starts again after a back-off, instead of ending for good while the
        worker goes on without it (no pool changes heard, no re-reads)."""
        name = getattr(loop_body, "__name__", "task").strip("_")
        delay = SUPERVISOR_FIRST_DELAY_S
        while True:
            started = time.monotonic()
            try:
                await loop_body()
                return
            except (DatabaseError, RedisError, psycopg.Error) as exc:
                # An outage the task outlives: one line, not a traceback per retry.
                self.metrics.task_restarts.labels(name).inc()
                logger.error("%s failed (%s); started again in %.1f s", name, exc, delay)
            except Exception:
                self.metrics.task_restarts.labels(name).inc()
                logger.exception("%s failed; started again in %.1f s", name, delay)
            if time.monotonic() - started > SUPERVISOR_MAX_DELAY_S:
                delay = SUPERVISOR_FIRST_DELAY_S  # it had run well for a while
            await asyncio.sleep(delay)
            delay = min(delay * 2, SUPERVISOR_MAX_DELAY_S)

    async def shutdown(self) -> None:
        """Every gate closes and every order is cancelled explicitly, every symbol
        at once; then the consumer and every connection close."""
        self.stopping.set()
        started = time.monotonic()
        count = len(self.ownership.hosted)
        await self.ownership.release_all("shutdown")
        logger.info("shutdown: %d pools released in %.2f s", count, time.monotonic() - started)
        if await self.intake.join(CONSUMER_CLOSE_S):
            logger.info("shutdown: consumer closed at %.2f s", time.monotonic() - started)
        else:
            logger.error("shutdown: the Kafka consumer has not closed after %g s", CONSUMER_CLOSE_S)
        await self.client.aclose()
        await self.metadata.close()
        await self.journal.close()
        await self.redis.delete(WORKER_KEY.format(worker_id=self.config.worker_id))
        await self.redis.aclose()
        await self.database.close()

    # ------------------------------------------------------------------ between rooms

    async def _revoke(self, partitions: Partitions, lost: bool) -> None:
        await self.ownership.revoke(partitions, lost=lost)

    def _suspend_all(self, reason: str) -> None:
        for actor in self.ownership.hosted.values():
            actor.command(Command("suspend", self.clock.now_ns(), reason))

    def _resume_all(self) -> None:
        for actor in self.ownership.hosted.values():
            actor.command(Command("unsuspend", self.clock.now_ns()))

    def _may_place(self, symbol: str) -> bool:
        actor = self.ownership.hosted.get(symbol)
        return actor is not None and actor.may_place()

    async def _venue_answer(self, event: Event) -> None:
        """An Order Service answer, to the actor of the symbol its order id names."""
        coid = getattr(event, "client_order_id", None)
        try:
            symbol = parse(coid).symbol if coid else None
        except ValueError:
            symbol = None
        actor = self.ownership.hosted.get(symbol) if symbol else None
        if actor is not None:
            actor.answer(event)
