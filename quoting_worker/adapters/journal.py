"""The order journal: an order is on record (mm_orders, PENDING) before it is sent.

This is the write on the quote path, so it skips the ORM and its thread: one
asynchronous psycopg connection owned by the event loop, one prepared statement
per batch (an INSERT … SELECT over arrays), committed on its own. The statement
inserts only while the symbol's lease still holds the writer's fencing token
(SPEC Part B.11), reading the lease row `FOR SHARE` so a takeover waits for
the write in flight, exactly as the ORM path's `lease_check` does.

Everything else the worker writes (status changes, fills, halts) keeps going
through the ORM on the worker's database thread: those writes follow the
venue's answers, which come after the journal has committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from pools.leases import StaleLease
from quoting_worker.core.types import Instrument, PlaceOrder
from trading.enums import OrderStatus

logger = logging.getLogger(__name__)

NS = 1_000_000_000

# `numeric[]` without a typmod, into numeric columns without one: a price keeps
# every place of its tick (SPEC Part B.14); PostgreSQL rounds silently into a
# column or cast with a scale.
_INSERT = """
INSERT INTO mm_orders (
    client_order_id, participant_id, symbol, side, level, price, size,
    filled_size, status, fencing_token, reject_reason, created_at, updated_at
)
SELECT o.coid, o.pid, %(symbol)s::text, o.side, o.level, o.price, o.size,
       0, %(status)s::text, %(token)s::bigint, '', %(at)s::timestamptz, %(at)s::timestamptz
FROM unnest(
    %(coid)s::text[], %(pid)s::uuid[], %(side)s::text[],
    %(level)s::int[], %(price)s::numeric[], %(size)s::numeric[]
) AS o(coid, pid, side, level, price, size)
WHERE (
    SELECT token FROM mm_symbol_leases WHERE symbol = %(symbol)s::text FOR SHARE
) = %(token)s::bigint
ON CONFLICT (client_order_id) DO NOTHING
"""

_LEASE = "SELECT token FROM mm_symbol_leases WHERE symbol = %s"


def conninfo(settings_dict: Mapping[str, Any]) -> dict[str, Any]:
    """psycopg keyword arguments for a Django `DATABASES` entry."""
    keys = {
        "NAME": "dbname",
        "USER": "user",
        "PASSWORD": "password",
        "HOST": "host",
        "PORT": "port",
    }
    params = {arg: settings_dict[key] for key, arg in keys.items() if settings_dict.get(key)}
    options = dict(settings_dict.get("OPTIONS") or {})
    options.pop("pool", None)
    options.pop("server_side_binding", None)
    return {**params, **options}


class OrderJournal:
    """Write-ahead records of placements, on the event loop."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = dict(params)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the one connection

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                **self._params, autocommit=True, application_name="runquoter-journal"
            )
        return self._conn

    async def record(
        self,
        *,
        symbol: str,
        token: int,
        instrument: Instrument,
        placed: Sequence[PlaceOrder],
        sent_ns: int,
    ) -> None:
        """Records `placed` as PENDING orders; StaleLease when `token` no longer holds
        the symbol (then nothing was written and nothing may be sent).

        Idempotent: an order already on record is left as it is, so a retry after a
        lost connection is safe.
        """
        if not placed:
            return
        at = dt.datetime.fromtimestamp(sent_ns / NS, tz=dt.UTC)
        params = {
            "symbol": symbol,
            "token": token,
            "status": OrderStatus.PENDING.value,
            "at": at,
            "coid": [o.client_order_id for o in placed],
            "pid": [o.participant_id for o in placed],
            "side": [o.side.value for o in placed],
            "level": [o.level for o in placed],
            "price": [instrument.price(o.price_ticks) for o in placed],
            "size": [instrument.size(o.size_lots) for o in placed],
        }
        async with self._lock:
            inserted = await self._execute(params)
            if inserted == len(placed):
                return
            # Fewer rows than orders: either the lease moved on, or (after a retry)
            # the orders were already on record.
            conn = await self._connection()
            row = await (await conn.execute(_LEASE, (symbol,))).fetchone()
        current = row[0] if row else None
        if current != token:
            raise StaleLease(f"{symbol}: fencing token {token} is stale (lease is at {current})")

    async def _execute(self, params: dict[str, Any]) -> int:
        """One attempt, and one more on a fresh connection if the first was lost."""
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                cursor = await conn.execute(_INSERT, params, prepare=True)
                return cursor.rowcount
            except psycopg.OperationalError:
                if attempt == 2 or not conn.closed:
                    raise
                logger.warning("order journal: connection lost, reconnecting")
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
