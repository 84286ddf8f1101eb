"""Upkeep: the runquoter's periodic chores.

- the engines' timer (a Timer event every `timer_interval_s`: staleness, the
  guards' windows, re-quote cadence);
- the live status (SPEC Part B.10): every second each pool's status to the
  metrics and to Redis with an expiry, and this worker's identity (build and
  config hash) for its peers; a Redis outage costs the live status (the API
  reads the pool as down), not the metrics;
- the venue's dead-man's switch (RELIABILITY.md), renewed per member account
  and symbol of every ACTIVE pool;
- reconciliation: every member account's open orders at the venue compared
  with the engine's (strangers cancelled, missing ones queried), and its
  position with the member's (a difference two checks confirm is reported in
  the status and the metrics);
- the venue's answers' status changes to mm_orders, in batches.

Doors: the six `*_forever` loops.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from messaging.live_status import LIVE_TTL_SECONDS, status_key, status_payload
from quoting_worker.adapters.identity import WORKER_KEY
from quoting_worker.adapters.live import status_record
from quoting_worker.adapters.metrics import PoolSample, QuoterMetrics
from quoting_worker.adapters.order_service import OrderServiceClient
from quoting_worker.core.membership import Member
from quoting_worker.core.types import Timer, VenueOpenOrders, VenuePosition
from quoting_worker.runner.actor import Clock, PoolActor
from quoting_worker.runner.config import WorkerConfig

logger = logging.getLogger("mms.quoter")

# The venue cancels a member's orders on a symbol if not renewed within this;
# renewed every third of it, so two renewals may be lost before it fires.
DEAD_MANS_SWITCH_MS = 15_000
DEAD_MANS_SWITCH_SLOTS = 10  # a round of renewals goes out in at most this many steps
STATUS_BATCH_S = 0.02  # venue answers' status changes reach mm_orders in batches this often


class Upkeep:
    """`hosted`: the symbols' actors, by symbol (ownership's)."""

    def __init__(
        self,
        *,
        config: WorkerConfig,
        identity: dict[str, str],
        clock: Clock,
        redis: aioredis.Redis,
        client: OrderServiceClient,
        metrics: QuoterMetrics,
        hosted: Mapping[str, PoolActor],
    ) -> None:
        self.config = config
        self.identity = identity
        self.clock = clock
        self.redis = redis
        self.client = client
        self.metrics = metrics
        self.hosted = hosted

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.timer_interval_s)
            now = self.clock.now_ns()
            for actor in list(self.hosted.values()):
                actor.put(Timer(now), None, None)

    async def record_statuses_forever(self) -> None:
        while True:
            await asyncio.sleep(STATUS_BATCH_S)
            for actor in list(self.hosted.values()):
                if actor.status_changes:
                    await actor.flush_statuses()

    async def publish_status_forever(self) -> None:
        """Every status interval: each pool's live status to the metrics and Redis."""
        while True:
            statuses = []
            for actor in list(self.hosted.values()):
                status = actor.engine.status()
                self.metrics.sample(
                    actor.symbol,
                    PoolSample(
                        status,
                        queue_depth=actor.queue.qsize(),
                        book_received_ns=actor.engine.book.last_received_ns,
                        mark=actor.engine.mark,
                    ),
                )
                statuses.append((actor, status))
            try:
                await self.redis.set(
                    WORKER_KEY.format(worker_id=self.config.worker_id),
                    json.dumps(self.identity),
                    ex=LIVE_TTL_SECONDS,
                )
                for actor, status in statuses:
                    actor.version += 1
                    record = status_record(
                        status,
                        worker_id=self.config.worker_id,
                        version=actor.version,
                        now_ns=self.clock.now_ns(),
                    )
                    await self.redis.set(
                        status_key(actor.symbol), status_payload(record), ex=LIVE_TTL_SECONDS
                    )
            except (RedisError, OSError) as exc:
                logger.warning("live status not published: %r", exc)
            await asyncio.sleep(self.config.status_interval_s)

    async def reconcile_forever(self) -> None:
        """Every reconcile interval, each member account's open orders at the venue are
        compared with the engine's (RELIABILITY.md): strangers are cancelled, missing
        ones queried."""
        while True:
            await asyncio.sleep(self.config.reconcile_interval_s)
            for actor, member in self._every_member():
                account = member.spec.account_id
                asked_ns = self.clock.now_ns()
                try:
                    listed = await self.client.open_orders(account, actor.symbol)
                except Exception:
                    logger.warning(
                        "%s: reconciliation of %s failed",
                        actor.symbol,
                        account,
                        extra={
                            "symbol": actor.symbol,
                            "participant_id": member.spec.participant_id,
                        },
                    )
                    continue
                event = VenueOpenOrders(
                    account, frozenset(o.client_order_id for o in listed), asked_ns
                )
                actor.put(event, None, None)

    async def check_positions_forever(self) -> None:
        """Every position check interval, each member account's position at the
        venue goes to its engine to compare with the member's (a difference
        the next check confirms shows in the status and the metrics)."""
        while True:
            await asyncio.sleep(self.config.position_check_interval_s)
            for actor, member in self._every_member():
                await self._check_position(
                    actor, member.spec.account_id, member.spec.participant_id
                )

    def _every_member(self) -> list[tuple[PoolActor, Member]]:
        """Each hosted pool's members as they are now (the walks await between them)."""
        return [
            (actor, member)
            for actor in list(self.hosted.values())
            for member in list(actor.engine.members.values())
        ]

    async def _check_position(self, actor: PoolActor, account: str, participant_id: str) -> None:
        """One account's position at the venue, to the engine's queue."""
        asked_ns = self.clock.now_ns()
        try:
            size = await self.client.position(account, actor.symbol)
        except Exception:
            logger.warning(
                "%s: the venue's position of %s could not be read",
                actor.symbol,
                account,
                extra={"symbol": actor.symbol, "participant_id": participant_id},
            )
            return
        actor.put(VenuePosition(account, size, asked_ns), None, None)

    async def renew_dead_mans_switches_forever(self) -> None:
        """Every member account's timer on every ACTIVE symbol is renewed once per
        period (a third of its timeout). A round goes out in at most
        DEAD_MANS_SWITCH_SLOTS steps spread over the period, and no renewal waits
        for another's answer: the load stays smooth (one burst of requests would
        stall quoting), and a busy loop delays a round by a few of its
        iterations, never by one per account."""
        loop = asyncio.get_running_loop()
        period_s = DEAD_MANS_SWITCH_MS / 3000
        # At most one renewal per (account, symbol) under way: when the request
        # budget cannot keep up, rounds are skipped (and counted) instead of
        # piling up tasks without bound.
        pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        try:
            while True:
                started = loop.time()
                pairs = [
                    (member.spec.account_id, actor.symbol)
                    for actor in list(self.hosted.values())
                    if actor.engine.mode.places and not self.config.shadow
                    for member in list(actor.engine.members.values())
                ]
                per_slot = max(1, -(-len(pairs) // DEAD_MANS_SWITCH_SLOTS))
                for slot, first in enumerate(range(0, len(pairs), per_slot)):
                    due = started + slot * period_s / DEAD_MANS_SWITCH_SLOTS
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    for pair in pairs[first : first + per_slot]:
                        if pair in pending:
                            self.metrics.renewals_skipped.inc()
                            continue
                        task = asyncio.create_task(self._renew(*pair))
                        pending[pair] = task
                        task.add_done_callback(partial(_forget, pending, pair))
                await asyncio.sleep(max(0.0, started + period_s - loop.time()))
        finally:
            for task in list(pending.values()):
                task.cancel()

    async def _renew(self, account_id: str, symbol: str) -> None:
        try:
            await self.client.renew_dead_mans_switch(account_id, symbol, DEAD_MANS_SWITCH_MS)
        except Exception as exc:
            actor = self.hosted.get(symbol)
            logger.warning(
                "%s: dead-man's switch renewal for %s failed: %r",
                symbol,
                account_id,
                exc,
                extra={
                    "symbol": symbol,
                    "participant_id": (
                        actor.engine.participant_of_account(account_id) if actor else None
                    ),
                },
            )


def _forget(pending: dict[Any, Any], key: Any, _task: asyncio.Task[None]) -> None:
    pending.pop(key, None)
