"""Durable writes: the runquoter's one database thread, and what it does when
PostgreSQL cannot be reached.

Every ORM call of the process runs on one thread (one connection, closed at
shutdown), in a copy of the caller's context (its trace and log fields).
`Database.call` runs one; `Database.durably` runs one until it succeeds: a
fill, a funding payment or a halt that is not on record must be neither lost
(its message's offset waits, and so does the symbol's queue) nor quoted past.

The first write that fails suspends every hosted pool (`suspend_all`, given
by the wiring: gate closed, orders withdrawn; a suspension is not a halt, the
mode is kept) and starts a probe; once the database answers again every pool
is told to resume by itself (`resume_all`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from django.db import Error as DatabaseError
from django.db import close_old_connections, connections

from quoting_worker.adapters.metrics import QuoterMetrics

logger = logging.getLogger("mms.quoter")

T = TypeVar("T")

DATABASE_FIRST_DELAY_S = 0.1  # a durable write that failed is tried again after this, doubling
DATABASE_MAX_DELAY_S = 2.0
DATABASE_CHECK_INTERVAL_S = 1.0  # the database thread's connection checked at most this often
UNAVAILABLE = "database unavailable"


def database_answers() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")


class DatabaseCalls:
    """Runs the worker's ORM calls on its one database thread. Before a call, at
    most once every DATABASE_CHECK_INTERVAL_S, the thread's connection is closed
    if it outlived CONN_MAX_AGE, and Django's health check (a `SELECT 1`) armed
    for its next query, so one idle across a server restart is replaced before
    use. Not before every call: at 200 pools those checks were 27 % of the
    thread (bench/load.py, py-spy). On a database error the connection is closed
    if it broke, so the next call connects afresh instead of failing on it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._checked_at = -math.inf

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        now = self._clock()
        if now - self._checked_at >= DATABASE_CHECK_INTERVAL_S:
            close_old_connections()
            self._checked_at = now
        try:
            return fn(*args, **kwargs)
        except DatabaseError:
            close_old_connections()
            raise


class Database:
    """The database thread (see the module docstring). `suspend_all(reason)` and
    `resume_all()` are the wiring's: they tell every hosted engine."""

    def __init__(
        self,
        metrics: QuoterMetrics,
        *,
        suspend_all: Callable[[str], None],
        resume_all: Callable[[], None],
    ) -> None:
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quoter-db")
        self.calls = DatabaseCalls()
        self._suspend_all = suspend_all
        self._resume_all = resume_all
        self.probe: asyncio.Task[None] | None = None  # while the database is lost

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn` on the database thread, in a copy of the caller's context."""
        loop = asyncio.get_running_loop()
        run = partial(contextvars.copy_context().run, self.calls, fn, *args, **kwargs)
        return await loop.run_in_executor(self.executor, run)

    async def durably(
        self,
        symbol: str,
        record: str,
        fn: Callable[..., T],
        /,
        *,
        on_failure: Callable[[str], Awaitable[None]],
        **kwargs: Any,
    ) -> T:
        """`fn` until it succeeds. The first failure suspends quoting everywhere
        (`lost`); `on_failure(reason)` tells the caller's own engine at once,
        since its queue waits here."""
        delay = DATABASE_FIRST_DELAY_S
        while True:
            try:
                return await self.call(fn, **kwargs)
            except DatabaseError as exc:
                self.metrics.database_retries.labels(symbol, record).inc()
                await on_failure(self.lost(f"{symbol} {record}", exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, DATABASE_MAX_DELAY_S)

    def lost(self, what: str, exc: BaseException) -> str:
        """A durable write failed: no pool may quote without its record (nor while a
        pause could not reach it), so every hosted pool is suspended, its orders
        withdrawn, until the database answers again; then each resumes by itself.
        Returns the reason."""
        if self.probe is not None and not self.probe.done():
            return UNAVAILABLE
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.error(
            "%s not recorded (%s): quoting suspended on every pool until the database is back",
            what,
            first_line,
            extra={"record": what},
        )
        self.metrics.database_outages.inc()
        self._suspend_all(UNAVAILABLE)
        self.probe = asyncio.get_running_loop().create_task(self._await_back())
        return UNAVAILABLE

    async def _await_back(self) -> None:
        delay = DATABASE_FIRST_DELAY_S
        lost = time.monotonic()
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, DATABASE_MAX_DELAY_S)
            try:
                await self.call(database_answers)
            except DatabaseError:
                continue
            break
        logger.warning(
            "database back after %.1f s: quoting resumes on every pool", time.monotonic() - lost
        )
        self._resume_all()

    async def close(self) -> None:
        if self.probe is not None:
            self.probe.cancel()
        await self.call(connections.close_all)
        self.executor.shutdown(wait=True)
