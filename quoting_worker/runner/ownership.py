"""Ownership: which symbols this worker hosts (SPEC Part B.9, B.11).

The partitions a worker is assigned decide the symbols it owns: a symbol is
owned only with its partition of every consumed topic. Hosting a symbol takes
its lease (a fencing token that grows on every takeover; every order and fill
write carries it), fetches its instrument, pauses an ACTIVE pool first when
this is a boot or a takeover, rebuilds the engine from mm_fills and
mm_orders, and starts its actor. Releasing stops the actor (gate closed,
orders cancelled, queued work finished) and gives the lease back. A worker
whose peers run other code or config hosts nothing (RELIABILITY.md 6).

Doors: `assign`/`revoke` (from the consumer's rebalance callbacks), `host`
(also from control, for a pool enabled while owned), `release`,
`release_all` (shutdown), `owns`, and the `hosted` actors by symbol.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Collection
from functools import partial
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
import structlog

from messaging import topics as names
from messaging.live_status import status_key
from messaging.partitioning import partition_for
from pools import selectors as pool_selectors
from pools.leases import lease_acquire, lease_release
from quoting_worker.adapters import store
from quoting_worker.adapters.identity import WORKER_PATTERN, disagreeing_peers
from quoting_worker.adapters.journal import OrderJournal
from quoting_worker.adapters.metadata import MetadataClient, MetadataError
from quoting_worker.adapters.metrics import QuoterMetrics
from quoting_worker.adapters.order_service import OrderServiceSink
from quoting_worker.core.engine import PoolEngine
from quoting_worker.core.ids import ClientOrderIds
from quoting_worker.core.types import Instrument, InstrumentStatus, RequestSnapshot
from quoting_worker.runner.actor import Clock, PoolActor
from quoting_worker.runner.config import WorkerConfig
from quoting_worker.runner.durable import Database

logger = logging.getLogger("mms.quoter")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def symbol_logged(method: F) -> F:
    """Every log line of the method (and what it awaits) carries its symbol."""

    @functools.wraps(method)
    async def bound(self: Any, symbol: str, *args: Any, **kwargs: Any) -> Any:
        with structlog.contextvars.bound_contextvars(symbol=symbol):
            return await method(self, symbol, *args, **kwargs)

    return cast(F, bound)


class Ownership:
    def __init__(
        self,
        *,
        config: WorkerConfig,
        identity: dict[str, str],
        clock: Clock,
        ids: ClientOrderIds,
        database: Database,
        metadata: MetadataClient,
        redis: aioredis.Redis,
        sink: OrderServiceSink,
        journal: OrderJournal,
        metrics: QuoterMetrics,
        user_ids: dict[str, str],
        instruments: dict[str, Instrument],
        stopping: threading.Event,
    ) -> None:
        self.config = config
        self.identity = identity
        self.clock = clock
        self.ids = ids
        self.database = database
        self.metadata = metadata
        self.redis = redis
        self.sink = sink
        self.journal = journal
        self.metrics = metrics
        # Shared with the Order Service client and sink, which look members and
        # instruments up there; written here (and by control's re-reads).
        self.user_ids = user_ids
        self.instruments = instruments
        self.stopping = stopping
        self.hosted: dict[str, PoolActor] = {}
        self.assigned: set[tuple[str, int]] = set()
        # Symbols whose partitions the group took away because it thought this worker
        # dead (its session expired: a broker outage, a stalled process): getting them
        # back is a takeover, as if another worker had held them meanwhile.
        self.lost: set[str] = set()
        self._lock = asyncio.Lock()
        self._releasing: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------ partitions

    async def assign(self, partitions: set[tuple[str, int]]) -> None:
        self.assigned |= partitions
        for symbol in await self.database.call(pool_selectors.pools_enabled_symbols):
            if self.owns(symbol):
                await self.host(symbol)

    async def revoke(self, partitions: set[tuple[str, int]], *, lost: bool = False) -> None:
        """`lost`: the group took the partitions because it thought this worker dead
        (its session expired); getting them back later is a takeover."""
        self.assigned -= partitions
        for symbol in list(self.hosted):
            if not self.owns(symbol):
                if lost:
                    self.lost.add(symbol)
                await self.release(
                    symbol, reason="consumer group session lost" if lost else "partition revoked"
                )

    def owns(self, symbol: str, assigned: Collection[tuple[str, int]] | None = None) -> bool:
        """A symbol is owned only with its partition of every consumed topic: its
        book, marks and engine events all reach this worker, or none is used
        (`assigned`: the assignment as it was, by default as it is)."""
        assigned = self.assigned if assigned is None else assigned
        partition = partition_for(symbol, self.config.partitions)
        return all((topic, partition) in assigned for topic in names.CONSUMED)

    # ------------------------------------------------------------------ hosting

    async def disagreeing_peers(self) -> list[str]:
        peers = []
        async for key in self.redis.scan_iter(match=WORKER_PATTERN):
            raw = await self.redis.get(key)
            if raw:
                peers.append(json.loads(raw))
        return disagreeing_peers(self.identity, peers)

    @symbol_logged
    async def host(self, symbol: str, *, takeover: bool = True) -> None:
        """Hosts `symbol`'s engine. At boot and on taking a symbol over (`takeover`),
        an ACTIVE pool goes PAUSED first (SPEC B.9); not when the worker starts
        hosting a pool because a person just enabled it."""
        async with self._lock:
            if symbol in self.hosted or self.stopping.is_set():
                return
            strangers = await self.disagreeing_peers()
            if strangers:
                logger.error(
                    "%s: not hosted: peers %s run other code or config than %s",
                    symbol,
                    strangers,
                    self.identity,
                )
                return
            try:
                instrument, halted = await self.metadata.get_instrument(symbol)
            except MetadataError as exc:
                logger.error("%s: no metadata, not hosted: %s", symbol, exc)
                return
            worker_id = self.config.worker_id
            token, previous = await self.database.call(
                lease_acquire, symbol=symbol, owner=worker_id
            )
            lost = symbol in self.lost
            self.lost.discard(symbol)
            if takeover and (previous != worker_id or lost):
                await self.database.call(
                    store.pool_boot_pause,
                    symbol=symbol,
                    worker_id=worker_id,
                    reason="worker start or takeover",
                )
            setup = await self.database.call(store.pool_setup, symbol=symbol)
            if setup is None:
                return
            restore = await self.database.call(
                store.restore_data, symbol=symbol, instrument=instrument
            )
            self.user_ids.update(setup.user_ids)
            self.instruments[symbol] = instrument
            engine = PoolEngine(
                instrument=instrument,
                params=setup.params,
                members=setup.members,
                clock=self.clock,
                ids=self.ids,
                shadow=self.config.shadow,
                mode=setup.mode,
            )
            engine.quoter.on_quote = partial(self.metrics.quote_timed, symbol)
            boot = engine.restore(
                fills=restore.fills, open_orders=restore.open_orders, funding=restore.funding
            )
            boot += engine.handle(InstrumentStatus(halted, self.clock.now_ns()))
            boot.append(RequestSnapshot(f"{symbol}: hosted"))
            actor = PoolActor(
                engine=engine,
                instrument=instrument,
                token=token,
                worker_id=worker_id,
                clock=self.clock,
                database=self.database,
                sink=self.sink,
                journal=self.journal,
                metrics=self.metrics,
            )
            self.hosted[symbol] = actor
            await actor.start(boot)
            logger.info("%s: hosted with token %s (%s)", symbol, token, setup.mode)

    async def release(self, symbol: str, *, reason: str) -> None:
        """Stops quoting `symbol` and gives it up: gate closed, orders cancelled,
        queued work finished, lease released. A release asked for while one is
        under way (a shutdown, and the partition revoke the consumer's close
        brings) waits for that one instead of running a second beside it."""
        releasing = self._releasing.get(symbol)
        if releasing is None:
            releasing = asyncio.create_task(self._release_now(symbol, reason=reason))
            self._releasing[symbol] = releasing
            releasing.add_done_callback(lambda _: self._releasing.pop(symbol, None))
        await asyncio.shield(releasing)

    @symbol_logged
    async def _release_now(self, symbol: str, *, reason: str) -> None:
        actor = self.hosted.get(symbol)
        if actor is None:
            return
        await actor.stop(reason)
        self.hosted.pop(symbol, None)
        self.metrics.forget(symbol)
        await self.redis.delete(status_key(symbol))
        await self.database.call(
            lease_release, symbol=symbol, owner=self.config.worker_id, token=actor.token
        )
        logger.info("%s: released (%s)", symbol, reason)

    async def release_all(self, reason: str) -> None:
        """Every symbol at once: one after another, 200 pools took longer than
        SHUTDOWN_TIMEOUT (bench/load.py). A release that fails is logged; the
        others go on."""
        symbols = list(self.hosted)
        released = await asyncio.gather(
            *(self.release(symbol, reason=reason) for symbol in symbols),
            return_exceptions=True,
        )
        for symbol, outcome in zip(symbols, released, strict=True):
            if isinstance(outcome, BaseException):
                logger.error("%s: release at %s failed: %r", symbol, reason, outcome)
