"""Control: the runquoter applies what the database says (SPEC Part B.9, B.13).

The pool row is the one authority. Pool changes reach the worker as notices
on Redis right after they commit, and through a re-read of every hosted and
enabled pool every few seconds; either way the rows are read again (all the
pools named, in one read) and the difference between a row and its engine
becomes the engine's commands (`adapters.live.commands_for`). A notice of a
pause or halt closes the gate at once, before the re-read: never trusted to
open it, it can only stop quoting, the safe direction. A pool enabled while
this worker owns its partition is hosted; one archived or disabled is
released. Durable flatten requests are carried out here (cancel-all for every
member account on every symbol, hosted here or not) and their completion
recorded once.

Doors: the three loops (`listen_forever`, `sync_noticed_forever`,
`reread_forever`) and `sync`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from common.notify import FLATTEN_CHANNEL, POOL_CHANGED_CHANNEL
from pools import selectors as pool_selectors
from pools import services as pool_services
from quoting_worker.adapters import store
from quoting_worker.adapters.live import commands_for
from quoting_worker.adapters.order_service import OrderServiceClient
from quoting_worker.core.types import CancelAll, Command
from quoting_worker.runner.actor import Clock, PoolActor
from quoting_worker.runner.config import WorkerConfig
from quoting_worker.runner.durable import Database
from quoting_worker.runner.ownership import Ownership, symbol_logged
from telemetry import tracing
from telemetry.tracing import Cause

logger = logging.getLogger("mms.quoter")

# A change notice naming one of these states closes the gate before the re-read.
CLOSING_STATES = {"PAUSED": "pause", "HALTED": "kill"}


class Control:
    def __init__(
        self,
        *,
        config: WorkerConfig,
        clock: Clock,
        database: Database,
        redis: aioredis.Redis,
        ownership: Ownership,
        client: OrderServiceClient,
    ) -> None:
        self.config = config
        self.clock = clock
        self.database = database
        self.redis = redis
        self.ownership = ownership
        self.client = client
        # Symbols a change notice named, waiting for their re-read (in arrival order).
        self.noticed: asyncio.Queue[tuple[str, Cause | None]] = asyncio.Queue()

    # ------------------------------------------------------------------ notices

    async def listen_forever(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(POOL_CHANGED_CHANNEL, FLATTEN_CHANNEL)
        try:
            async for message in pubsub.listen():
                channel = message["channel"].decode()
                if channel == FLATTEN_CHANNEL:
                    await self.flatten_pending()
                    continue
                notice = json.loads(message["data"])
                cause = tracing.context_from_carrier(notice.get("trace"))
                self._close_on_notice(notice, cause)
                self.noticed.put_nowait((notice["symbol"], cause))
        finally:
            await pubsub.aclose()

    def _close_on_notice(self, notice: dict[str, Any], cause: Cause | None) -> None:
        """A pause or halt closes the gate as soon as it is heard, before the row is
        read again: each re-read waits its turn on the one database thread, which
        at a kill of every pool is one pool after another. A notice is never
        trusted to open the gate (the re-read decides a resume), so a stray one
        can only stop quoting, the safe direction."""
        kind = CLOSING_STATES.get(str(notice.get("state")))
        actor = self.ownership.hosted.get(notice["symbol"])
        if kind is None or actor is None:
            return
        # A re-read under way may have read the row before the change: its ACTIVE
        # must not resume the engine, whatever its mode now (the notice's own
        # re-read comes after, and a later resume has a notice of its own).
        actor.closed_ns = max(actor.closed_ns, time.monotonic_ns())
        if actor.engine.mode.places:
            reason = f"{notice.get('reason', 'change')} notice"
            actor.command(Command(kind, self.clock.now_ns(), reason=reason), cause)

    async def sync_noticed_forever(self) -> None:
        """Re-reads the pools change notices name: every notice waiting is taken
        in one read (a kill of every pool sends one notice each)."""
        while True:
            noticed = dict([await self.noticed.get()])
            while not self.noticed.empty():
                symbol, cause = self.noticed.get_nowait()
                noticed[symbol] = cause
            await self.sync(noticed)

    async def reread_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.reread_interval_s)
            await self.sync(every_enabled=True)
            await self.flatten_pending()

    # ------------------------------------------------------------------ re-reads

    async def sync(
        self, noticed: Mapping[str, Cause | None] | None = None, *, every_enabled: bool = False
    ) -> None:
        """Applies what the database says (the one authority) about the `noticed`
        pools (with the trace of the notice that asked), or, with `every_enabled`,
        about every hosted and every enabled pool: all of them in one read."""
        noticed = noticed or {}
        hosted_now = self.ownership.hosted
        # Decided before reading the rows: a symbol assigned meanwhile is hosted by
        # the assignment (with its boot pause), never from a row read before it.
        assigned = frozenset(self.ownership.assigned)
        named = noticed.keys() | (hosted_now.keys() if every_enabled else set())
        actors = {symbol: hosted_now.get(symbol) for symbol in named}
        read_ns = time.monotonic_ns()
        setups = await self.database.call(self.setups, list(actors), every_enabled)
        for symbol in sorted(actors.keys() | setups.keys()):
            await self._sync_one(
                symbol,
                setups.get(symbol),
                actors.get(symbol),
                owned_before=self.ownership.owns(symbol, assigned),
                read_ns=read_ns,
                cause=noticed.get(symbol),
            )

    @staticmethod
    def setups(symbols: list[str], every_enabled: bool) -> dict[str, store.PoolSetup]:
        """The rows of `symbols` (and of every enabled pool), on the database thread."""
        return store.pool_setups(symbols=symbols, every_enabled=every_enabled)

    @symbol_logged
    async def _sync_one(
        self,
        symbol: str,
        setup: store.PoolSetup | None,
        actor: PoolActor | None,
        *,
        owned_before: bool,
        read_ns: int,
        cause: Cause | None,
    ) -> None:
        """`symbol`'s row, read at `read_ns` while `actor` was its engine, applied."""
        if actor is None:
            owned = owned_before and self.ownership.owns(symbol)
            if setup is not None and setup.enabled and owned:
                # Enabled while this worker owns the partition: not a takeover, so an
                # ACTIVE pool stays ACTIVE (the engine starts in the row's state).
                await self.ownership.host(symbol, takeover=False)
            return
        if self.ownership.hosted.get(symbol) is not actor:
            return  # released (or hosted again, from a read of its own) meanwhile
        if setup is None or not setup.enabled:
            await self.ownership.release(symbol, reason="pool archived or disabled")
            return
        self.ownership.user_ids.update(setup.user_ids)  # a new member's, read with the row
        for command in commands_for(setup, actor.engine, now_ns=self.clock.now_ns()):
            actor.command(command, cause, read_ns=read_ns)

    # ------------------------------------------------------------------ flatten

    async def flatten_pending(self) -> None:
        """Carries out durable flatten requests: cancel-all for every member account on
        every symbol, hosted here or not; completion recorded once. A child of a
        supervisor other than child 0 leaves them to child 0 (one cancel-all per
        account and symbol, not one per process; its own engines halt on the
        kill's notices)."""
        if not self.config.carries_out_flattens:
            return
        requests = await self.database.call(pool_selectors.flattens_pending)
        if not requests:
            return
        pairs = await self.database.call(pool_selectors.member_accounts_all)
        for account_id, symbol in pairs:
            try:
                await self.client.cancel_all(account_id, symbol)
            except Exception:
                logger.exception(
                    "flatten: cancel-all %s %s failed", account_id, symbol, extra={"symbol": symbol}
                )
                return
        for actor in list(self.ownership.hosted.values()):
            actions = actor.engine.handle(Command("flatten", self.clock.now_ns()))
            await actor.execute([a for a in actions if not isinstance(a, CancelAll)])
        await self.database.call(
            pool_services.flatten_complete,
            request_ids=requests,
            actor=store.quoter_actor(self.config.worker_id),
        )
