"""The pre-trade check (issue 8, row 9): no order outside the collar, crossing the
book, off the size limits, under the minimum notional or on a price the pool
already rests at leaves the engine. Generated orders; every one that passes is
checked against each rule stated on its own terms, and an order built to break
exactly one rule is refused for that rule."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoting_worker.core.risk import PreTradeCheck
from quoting_worker.core.types import Side
from tests.core.engine_world import BTC as WORLD_BTC
from tests.core.engine_world import PARAMS as WORLD_PARAMS

# The engine tests' instrument and pool, with a minimum size and notional every
# rule can be broken against.
BTC = replace(WORLD_BTC, min_lots=5, min_notional=Decimal("100"))
PARAMS = WORLD_PARAMS
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
    pretrade: PreTradeCheck | None = None,
) -> str | None:
    """Why `pretrade` (a fresh check by default) refuses the order; None: it goes."""
    return (pretrade or PreTradeCheck(BTC)).refuse_reason(
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
    assert rules_broken(side, price, lots, best_bid, best_ask, resting) == []


def rules_broken(
    side: Side,
    price: int,
    lots: int,
    best_bid: int | None,
    best_ask: int | None,
    resting: frozenset[int],
) -> list[str]:
    """Each rule an order breaks, stated on its own terms (not the check's code)."""
    broken = []
    if price <= 0:
        broken.append("price not positive")
    if abs(price - MID) / MID > PARAMS.price_collar_bps / 10_000:
        broken.append("outside the collar")
    if (side is Side.BUY and best_ask is not None and price >= best_ask) or (
        side is Side.SELL and best_bid is not None and price <= best_bid
    ):
        broken.append("crosses the book")
    if not BTC.min_lots <= lots <= MAX_LOTS:
        broken.append("size off the limits")
    if Decimal(price) * BTC.tick_size * lots * BTC.lot_size < BTC.min_notional:
        broken.append("notional below the minimum")
    if price in resting:
        broken.append("on a resting price")
    return broken


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
