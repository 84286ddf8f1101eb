"""Prices and sizes at the instrument's precision (SPEC Part B.14): a PEPE price
on a 1e-9 tick is stored, read and shown as it is, never rounded to 8 places
(issue 19, item 8). Money stays at 8 places."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from pools.leases import lease_acquire
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from trading import services
from trading.models import MMFill, MMOrder

pytestmark = pytest.mark.django_db

PEPE = "PEPEUSDT-PERP"
TICK = Decimal("0.000000001")
LOT = Decimal(1000)


@pytest.fixture
def pepe() -> dict:
    """A PEPE member's order at 10,006 ticks (0.000010006, which 8 places would
    make 0.00001001) for 4,000 lots, filled 1,000 lots there and 3,000 lots at
    10,007 ticks, written as the runquoter writes them: ticks × tick, lots × lot."""
    pool = PoolFactory(symbol=PEPE)
    member = MemberFactory(pool=pool, participant=ParticipantFactory(state="ACTIVE"))
    pid = str(member.participant_id)
    token, _ = lease_acquire(symbol=PEPE, owner="w1")
    now = timezone.now()
    services.orders_record(
        symbol=PEPE,
        token=token,
        placed=[
            services.NewOrder("mm-pepe-1", pid, "BUY", 0, 10_006 * TICK, 4_000 * LOT, now),
        ],
    )

    def fill(n: int, ticks: int, lots: int, fee: str) -> services.NewFill:
        return services.NewFill(
            fill_id=f"f-{n}",
            client_order_id="mm-pepe-1",
            participant_id=pid,
            side="BUY",
            price=ticks * TICK,
            size=lots * LOT,
            fee_usdt=Decimal(fee),
            realized_pnl_usdt=Decimal(0),
            filled_at=now - dt.timedelta(minutes=10 - n),
        )

    services.fills_record(
        symbol=PEPE,
        token=token,
        fills=[fill(1, 10_006, 1_000, "-0.0010006"), fill(2, 10_007, 3_000, "-0.0030021")],
    )
    return {"pid": pid}


def test_a_pepe_price_is_stored_and_read_back_exactly(pepe: dict) -> None:
    order = MMOrder.objects.get()
    assert format(order.price, "f") == "0.000010006"
    assert (order.size, order.filled_size, order.status) == (
        Decimal(4_000_000),
        Decimal(4_000_000),
        "FILLED",
    )
    prices = [
        format(p, "f") for p in MMFill.objects.order_by("filled_at").values_list("price", flat=True)
    ]
    assert prices == ["0.000010006", "0.000010007"]
    with connection.cursor() as cursor:
        # In the database too, not only through the ORM: no column scale rounds it.
        cursor.execute("SELECT price::text FROM mm_fills ORDER BY filled_at")
        assert [row[0] for row in cursor.fetchall()] == ["0.000010006", "0.000010007"]
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name IN ('mm_orders', 'mm_fills')"
            " AND column_name IN ('price', 'size', 'filled_size')"
            " AND data_type = 'numeric' AND numeric_scale IS NULL"
        )
        assert cursor.fetchone()[0] == 5


def test_the_api_shows_pepe_prices_and_sizes_as_stored(pepe: dict, viewer) -> None:
    fills = viewer.get(f"/v1/mm-fills/{PEPE}", {"ordering": "filled_at"}).json()["results"]
    assert [(f["price"], f["size"], f["notional_usdt"], f["fee_usdt"]) for f in fills] == [
        ("0.000010006", "1000000", "10.00600000", "-0.00100060"),
        ("0.000010007", "3000000", "30.02100000", "-0.00300210"),
    ]
    order = viewer.get(f"/v1/mm-orders/{PEPE}").json()["results"][0]
    assert (order["price"], order["size"], order["filled_size"]) == (
        "0.000010006",
        "4000000",
        "4000000",
    )
    # The VWAP to the tick's 9 places and 4 more: 40.027 / 4,000,000.
    summary = viewer.get(f"/v1/mm-fills/{PEPE}/summary").json()
    assert (summary["buy"]["vwap"], summary["buy"]["base_volume"]) == (
        "0.0000100067500",
        "4000000",
    )
    position = viewer.get(f"/v1/mm-analytics/{PEPE}/metrics").json()["positions"][0]
    assert (position["net_position"], position["bought"]) == ("4000000", "4000000")


def test_a_price_below_a_millionth_is_shown_in_plain_notation(pepe: dict, viewer) -> None:
    """str() of such a Decimal is "1.23E-7"; the API never answers exponents."""
    MMFill.objects.filter(fill_id="f-1").update(price=123 * TICK)
    fill = viewer.get(f"/v1/mm-fills/{PEPE}", {"ordering": "price"}).json()["results"][0]
    assert fill["price"] == "0.000000123"
