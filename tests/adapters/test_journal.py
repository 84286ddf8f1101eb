"""The order journal: write-ahead records of placements, on the event loop."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from pools.leases import StaleLease, lease_acquire
from quoting_worker.adapters.journal import OrderJournal, conninfo
from quoting_worker.core.types import Instrument, PlaceOrder, Side
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from trading.models import MMOrder

# The journal writes on its own connection: the rows must really be committed.
pytestmark = pytest.mark.django_db(transaction=True)

BTC = Instrument("BTCUSDT-PERP", Decimal("0.1"), Decimal("0.001"), 1, Decimal("5"))
NS = 1_700_000_000_123_456_789


@pytest.fixture
def pid() -> str:
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    member = MemberFactory(pool=pool, participant=ParticipantFactory(state="ACTIVE"))
    return str(member.participant_id)


def _order(pid: str, n: int, side: Side = Side.BUY) -> PlaceOrder:
    return PlaceOrder(f"mm-x-BTCUSDT-PERP-{n}-{side}-{n}", pid, "acct", side, n, 600_001 + n, 12)


def _journal() -> OrderJournal:
    return OrderJournal(conninfo(connection.settings_dict))


def test_orders_are_on_record_as_pending_with_the_writers_token(pid: str) -> None:
    token, _ = lease_acquire(symbol="BTCUSDT-PERP", owner="w1")
    orders = [_order(pid, 0), _order(pid, 1, Side.SELL)]

    async def scenario() -> None:
        journal = _journal()
        try:
            await journal.record(
                symbol="BTCUSDT-PERP", token=token, instrument=BTC, placed=orders, sent_ns=NS
            )
            # The same batch again (a retry after a lost answer) changes nothing.
            await journal.record(
                symbol="BTCUSDT-PERP", token=token, instrument=BTC, placed=orders, sent_ns=NS + 5
            )
        finally:
            await journal.close()

    asyncio.run(scenario())
    rows = list(MMOrder.objects.order_by("level"))
    assert [
        (r.client_order_id, str(r.participant_id), r.side, r.level, r.price, r.size, r.status)
        for r in rows
    ] == [
        (orders[0].client_order_id, pid, "BUY", 0, Decimal("60000.1"), Decimal("0.012"), "PENDING"),
        (
            orders[1].client_order_id,
            pid,
            "SELL",
            1,
            Decimal("60000.2"),
            Decimal("0.012"),
            "PENDING",
        ),
    ]
    assert {r.fencing_token for r in rows} == {token}
    assert [r.created_at.timestamp() for r in rows] == [pytest.approx(NS / 1e9)] * 2


def test_a_stale_token_records_nothing_and_says_so(pid: str) -> None:
    old, _ = lease_acquire(symbol="BTCUSDT-PERP", owner="w1")
    lease_acquire(symbol="BTCUSDT-PERP", owner="w2")

    async def scenario() -> None:
        journal = _journal()
        try:
            await journal.record(
                symbol="BTCUSDT-PERP",
                token=old,
                instrument=BTC,
                placed=[_order(pid, 0)],
                sent_ns=NS,
            )
        finally:
            await journal.close()

    with pytest.raises(StaleLease, match="token 1 is stale"):
        asyncio.run(scenario())
    assert not MMOrder.objects.exists()


def test_a_lost_connection_is_replaced_and_the_order_still_recorded(pid: str) -> None:
    token, _ = lease_acquire(symbol="BTCUSDT-PERP", owner="w1")

    async def scenario() -> None:
        journal = _journal()
        try:
            await journal.record(
                symbol="BTCUSDT-PERP",
                token=token,
                instrument=BTC,
                placed=[_order(pid, 0)],
                sent_ns=NS,
            )
            killer = await psycopg.AsyncConnection.connect(
                **conninfo(connection.settings_dict), autocommit=True
            )
            async with killer:
                await killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'runquoter-journal'"
                )
            await journal.record(
                symbol="BTCUSDT-PERP",
                token=token,
                instrument=BTC,
                placed=[_order(pid, 1)],
                sent_ns=NS,
            )
        finally:
            await journal.close()

    asyncio.run(scenario())
    assert MMOrder.objects.count() == 2


def test_nothing_to_record_touches_nothing() -> None:
    async def scenario() -> None:
        journal = OrderJournal({"host": "unreachable.invalid"})  # would fail if it connected
        await journal.record(symbol="BTCUSDT-PERP", token=1, instrument=BTC, placed=[], sent_ns=NS)

    asyncio.run(scenario())


def test_a_pepe_order_is_on_record_at_its_exact_tick() -> None:
    """The INSERT's `::numeric[]` casts and the columns keep every place of a 1e-9
    tick (numeric(28,8) columns rounded 0.000010006 to 0.00001001 silently)."""
    pepe = Instrument("PEPEUSDT-PERP", Decimal("0.000000001"), Decimal(1000), 1, Decimal("5"))
    member = MemberFactory(
        pool=PoolFactory(symbol=pepe.symbol), participant=ParticipantFactory(state="ACTIVE")
    )
    pid = str(member.participant_id)
    token, _ = lease_acquire(symbol=pepe.symbol, owner="w1")
    orders = [
        PlaceOrder(f"mm-x-PEPEUSDT-PERP-0-BUY-{n}", pid, "acct", Side.BUY, n, ticks, 4)
        for n, ticks in enumerate((10_006, 123))  # 0.000010006, and 1.23E-7 to str()
    ]

    async def scenario() -> None:
        journal = _journal()
        try:
            await journal.record(
                symbol=pepe.symbol, token=token, instrument=pepe, placed=orders, sent_ns=NS
            )
        finally:
            await journal.close()

    asyncio.run(scenario())
    with connection.cursor() as cursor:
        cursor.execute("SELECT price::text, size::text FROM mm_orders ORDER BY level")
        assert cursor.fetchall() == [("0.000010006", "4000"), ("0.000000123", "4000")]
