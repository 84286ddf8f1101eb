"""Decoded records become core events exactly, or are refused; keys map to partitions
as Kafka's own partitioner places them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messaging.partitioning import murmur2, partition_for
from quoting_worker.adapters.translate import ticks, to_event
from quoting_worker.core.types import (
    BookDelta,
    BookHeartbeat,
    Fill,
    Instrument,
    InstrumentStatus,
    OrderRejected,
    Side,
)

BTC = Instrument("BTCUSDT-PERP", Decimal("0.1"), Decimal("0.001"), 1, Decimal("5"))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ("abc", 479470107),
    ],
)
def test_murmur2_matches_kafkas_reference_vectors(key: str, expected: int) -> None:
    assert murmur2(key.encode()) == expected


def test_partition_for_is_stable_and_in_range() -> None:
    assert all(0 <= partition_for(f"SYM{i}-PERP", 12) < 12 for i in range(200))
    assert partition_for("BTCUSDT-PERP", 12) == partition_for("BTCUSDT-PERP", 12)


def test_book_records_become_ticks_and_lots() -> None:
    delta = to_event(
        "md.orderbook.delta.v1",
        {
            "type": "BookDelta",
            "symbol": "BTCUSDT-PERP",
            "seq": 7,
            "bids": [{"price": "60000.1", "size": "1.250"}],
            "asks": [{"price": "60000.2", "size": "0"}],
            "ts_ns": 5,
        },
        BTC,
    )
    assert delta == BookDelta(7, ((600_001, 1250),), ((600_002, 0),), 5)
    beat = to_event(
        "md.orderbook.delta.v1",
        {"type": "BookHeartbeat", "symbol": "BTCUSDT-PERP", "seq": 7, "ts_ns": 6},
        BTC,
    )
    assert beat == BookHeartbeat(7, 6)


@pytest.mark.parametrize(("price", "size"), [("60000.15", "1"), ("60000.1", "0.0005")])
def test_prices_off_the_tick_and_sizes_off_the_lot_are_refused(price: str, size: str) -> None:
    with pytest.raises(ValueError, match=r"not on the tick|not a multiple of the lot"):
        to_event(
            "md.orderbook.snap.v1",
            {
                "symbol": "BTCUSDT-PERP",
                "seq": 1,
                "bids": [{"price": price, "size": size}],
                "asks": [],
                "reason": "START",
                "ts_ns": 1,
            },
            BTC,
        )


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(
    units=st.integers(min_value=0, max_value=10**12),
    fraction_digits=st.integers(min_value=0, max_value=10),
    unit=st.sampled_from(["0.1", "0.01", "0.001", "0.5", "1", "1000", "0.0000001", "0.25"]),
    spelling=st.sampled_from(["plain", "trailing zeros", "exponent", "leading zeros"]),
)
def test_the_fast_decimal_reading_agrees_with_exact_decimal_arithmetic(
    units: int, fraction_digits: int, unit: str, spelling: str
) -> None:
    """Every spelling of a number reads as Decimal arithmetic says: whole units
    exactly, anything else refused."""
    value = Decimal(units).scaleb(-fraction_digits)
    text = {
        "plain": format(value, "f"),
        "trailing zeros": format(value, "f") + ("0" if "." in format(value, "f") else ".00"),
        "exponent": f"{value:E}",
        "leading zeros": "00" + format(value, "f"),
    }[spelling]
    instrument = Instrument("X-PERP", Decimal(unit), Decimal(unit), 1, Decimal(0))
    exact = Decimal(text) / Decimal(unit)
    if exact == exact.to_integral_value():
        assert ticks(instrument, text) == int(exact)
    else:
        with pytest.raises(ValueError, match="not on the tick"):
            ticks(instrument, text)


def test_only_mms_orders_are_kept_from_the_engine_topic() -> None:
    theirs = {
        "type": "Fill",
        "fill_id": "f-1",
        "order_id": "o-1",
        "client_order_id": "someone-else-1",
        "account_id": "acct-x",
        "symbol": "BTCUSDT-PERP",
        "side": "BUY",
        "price": "60000.0",
        "size": "0.010",
        "fee": "-0.06",
        "fee_asset": "USDT",
        "liquidity": "MAKER",
        "ts_ns": 9,
    }
    assert to_event("engine.event.v1", theirs, BTC) is None
    ours = {**theirs, "client_order_id": "mm-aaaaaaaa-BTCUSDT-PERP-0-BUY-1"}
    assert to_event("engine.event.v1", ours, BTC) == Fill(
        "f-1", ours["client_order_id"], Side.BUY, 600_000, 10, Decimal("-0.06"), 9
    )
    reject = {
        "type": "OrderRejected",
        "client_order_id": ours["client_order_id"],
        "account_id": "acct-a",
        "symbol": "BTCUSDT-PERP",
        "reason": "POST_ONLY_WOULD_CROSS",
        "ts_ns": 10,
    }
    assert to_event("engine.event.v1", reject, BTC) == OrderRejected(
        ours["client_order_id"], "POST_ONLY_WOULD_CROSS", 10
    )
    halt = {"type": "InstrumentStatus", "symbol": "BTCUSDT-PERP", "status": "HALTED", "ts_ns": 11}
    assert to_event("engine.event.v1", halt, BTC) == InstrumentStatus(True, 11)
