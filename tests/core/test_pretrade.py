"""The pre-trade check (issue 8, row 9): no order outside the collar, crossing the
book, off the size limits, under the minimum notional or on a price the pool
already rests at leaves the engine. Generated orders; every one that passes is
checked against each rule stated on its own terms, and an order built to break
exactly one rule is refused for that rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoting_worker.core.risk import PreTradeCheck
from quoting_worker.core.types import Instrument, PoolParams, Side

BTC = Instrument("BTCUSDT-PERP", Decimal("0.1"), Decimal("0.001"), 5, Decimal("100"))
PARAMS = PoolParams(
    gamma=0.1,
    kappa=1.5,
    tau_hours=1.0,
    vol_lookback_seconds=300,
    num_levels=3,
    level_spacing_bps=2.0,
    min_spread_bps=2.0,
    max_spread_bps=50.0,
    order_size_usdt=Decimal("5000"),
    max_pool_position_usdt=Decimal("100000"),
    max_pool_loss_usdt=Decimal("5000"),
    price_collar_bps=500.0,
)
MID = 600_000.0  # ticks: 60,000 USDT
MAX_LOTS = 400


def check(
    side: Side,
    price: int,
    lots: int,
    *,
    best_bid: int | None = 599_995,
    best_ask: int | None = 600_005,
    resting: frozenset[int] = frozenset(),
) -> str | None:
    return PreTradeCheck(BTC).refuse_reason(
        side=side,
        price_ticks=price,
        size_lots=lots,
        mid_ticks=MID,
        best_bid=best_bid,
        best_ask=best_ask,
        params=PARAMS,
        max_order_lots=MAX_LOTS,
        resting_prices=resting,
    )


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(
    side=st.sampled_from(Side),
    price=st.integers(-10, 1_300_000),
    lots=st.integers(0, 1_000),
    best_bid=st.none() | st.integers(500_000, 700_000),
    spread=st.integers(1, 50),
    resting=st.frozensets(st.integers(540_000, 660_000), max_size=8),
)
def test_an_order_that_passes_keeps_every_rule(
    side: Side, price: int, lots: int, best_bid: int | None, spread: int, resting: frozenset[int]
) -> None:
    best_ask = None if best_bid is None else best_bid + spread
    if check(side, price, lots, best_bid=best_bid, best_ask=best_ask, resting=resting) is not None:
        return
    assert price > 0
    assert abs(price - MID) / MID <= PARAMS.price_collar_bps / 10_000
    if side is Side.BUY and best_ask is not None:
        assert price < best_ask
    if side is Side.SELL and best_bid is not None:
        assert price > best_bid
    assert BTC.min_lots <= lots <= MAX_LOTS
    assert Decimal(price) * BTC.tick_size * lots * BTC.lot_size >= BTC.min_notional
    assert price not in resting


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        ({"side": Side.BUY, "price": 0, "lots": 10}, "price_not_positive"),
        ({"side": Side.BUY, "price": 569_000, "lots": 10}, "price_outside_collar"),
        ({"side": Side.SELL, "price": 631_000, "lots": 10}, "price_outside_collar"),
        ({"side": Side.BUY, "price": 600_005, "lots": 10}, "would_cross"),
        ({"side": Side.SELL, "price": 599_995, "lots": 10}, "would_cross"),
        ({"side": Side.BUY, "price": 599_990, "lots": 4}, "size_below_minimum"),
        ({"side": Side.BUY, "price": 599_990, "lots": MAX_LOTS + 1}, "size_above_maximum"),
        ({"side": Side.BUY, "price": 5_000, "lots": 10, "collar": False}, "notional_below_minimum"),
        (
            {"side": Side.BUY, "price": 599_990, "lots": 10, "resting": frozenset({599_990})},
            "duplicate_of_resting_order",
        ),
    ],
)
def test_an_order_breaking_one_rule_is_refused_for_it(order: dict, reason: str) -> None:
    if order.pop("collar", True) is False:
        # Far below mid is outside any collar: test the notional rule at a low mid.
        result = PreTradeCheck(BTC).refuse_reason(
            side=order["side"],
            price_ticks=order["price"],
            size_lots=order["lots"],
            mid_ticks=5_000.0,
            best_bid=None,
            best_ask=None,
            params=PARAMS,
            max_order_lots=MAX_LOTS,
            resting_prices=frozenset(),
        )
    else:
        result = check(
            order["side"], order["price"], order["lots"], resting=order.get("resting", frozenset())
        )
    assert result == reason
    assert check(Side.BUY, 599_990, 10) is None  # the same order, rules kept, goes
