"""Splitting a level's pool size across members: capital weight, caps, minimum
sizes, position-limit capacity and the USDT → lots conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from quoting_worker.core.allocation import (
    WEIGHT_SCALE,
    allocate,
    capacity_lots,
    level_lots,
    min_notional_check,
    weight_units,
)
from quoting_worker.core.types import Instrument, Side

BTC = Instrument(
    symbol="BTCUSDT",
    tick_size=Decimal("0.1"),
    lot_size=Decimal("0.001"),
    min_lots=1,
    min_notional=Decimal("5"),
)
BIG = 10**9  # a cap that never binds


# ------------------------------------------------------------ allocate: worked examples


def test_weights_1_2_3_split_100_lots_with_the_leftover_to_the_largest_remainder() -> None:
    # 100·1/6 = 16.67, 100·2/6 = 33.33, 100·3/6 = 50: floors 16/33/50, one lot left,
    # and the first member has the largest remainder (4/6).
    assert allocate(100, [1, 2, 3], [BIG, BIG, BIG], min_lots=1) == [17, 33, 50]


def test_equal_remainders_go_to_the_lower_index() -> None:
    assert allocate(10, [1, 1, 1], [BIG] * 3, min_lots=1) == [4, 3, 3]
    assert allocate(11, [1, 1, 1], [BIG] * 3, min_lots=1) == [4, 4, 3]


def test_decimal_weights_split_exactly() -> None:
    weights = [weight_units(Decimal(w)) for w in ("0.25", "0.25", "0.5")]
    assert allocate(8, weights, [BIG] * 3, min_lots=1) == [2, 2, 4]


def test_an_inactive_or_full_member_gets_nothing_and_its_share_goes_to_the_others() -> None:
    # Weight 0 (not ACTIVE) and cap 0 (at its limit on this side) both drop out of W.
    assert allocate(90, [1, 0, 1, 1], [BIG, BIG, 0, BIG], min_lots=1) == [45, 0, 0, 45]


def test_no_eligible_member_or_nothing_to_split_gives_all_zeros() -> None:
    assert allocate(50, [0, 0], [BIG, BIG], min_lots=1) == [0, 0]
    assert allocate(50, [1, 1], [0, 0], min_lots=1) == [0, 0]
    assert allocate(0, [1, 1], [BIG, BIG], min_lots=1) == [0, 0]
    assert allocate(50, [], [], min_lots=1) == []


def test_a_capped_member_gets_its_cap_and_the_rest_goes_round_robin_to_the_others() -> None:
    # Floors 10/30/60; the third is capped at 20, so 40 lots are left over. They go one
    # at a time by largest remainder (all 0 → by index), round after round.
    assert allocate(100, [1, 3, 6], [BIG, BIG, 20], min_lots=1) == [30, 50, 20]


def test_leftover_stops_when_everyone_is_at_their_cap() -> None:
    assert allocate(100, [1, 1, 1], [5, 7, 9], min_lots=1) == [5, 7, 9]


def test_a_leftover_round_skips_members_that_reached_their_cap() -> None:
    # Floors 33/33/33 (+1 leftover), caps cut 30 from the first: 31 lots left over;
    # the second fills up at 40 after 7, the third takes the other 24.
    assert allocate(100, [1, 1, 1], [3, 40, BIG], min_lots=1) == [3, 40, 57]


def test_a_member_below_min_size_gets_zero_and_its_lots_are_dropped() -> None:
    # 1:1:18 of 20 lots → 1/1/18; min 2 zeroes the small two, nobody else gets theirs.
    assert allocate(20, [1, 1, 18], [BIG] * 3, min_lots=2) == [0, 0, 18]


def test_a_member_below_min_notional_gets_zero() -> None:
    # 5 USDT minimum at 100.0 with 0.001 lots (0.1 USDT a lot) is 50 lots.
    at_100 = min_notional_check(BTC, price_ticks=1000)
    assert allocate(120, [1, 1, 2], [BIG] * 3, min_lots=1, lot_notional_ok=at_100) == [
        0,
        0,
        60,
    ]


def test_min_notional_check_is_exact_at_the_boundary() -> None:
    at_100 = min_notional_check(BTC, price_ticks=1000)
    assert not at_100(49)
    assert at_100(50)
    no_minimum = Instrument(symbol="X", tick_size=Decimal(1), lot_size=Decimal(1))
    assert min_notional_check(no_minimum, price_ticks=7)(1)


def test_weights_and_caps_must_line_up() -> None:
    with pytest.raises(ValueError, match="2 weights but 1 caps"):
        allocate(10, [1, 1], [5], min_lots=1)


def test_weight_units_scale_by_1e8_and_truncate() -> None:
    assert weight_units(Decimal("1")) == WEIGHT_SCALE
    assert weight_units(Decimal("0.12345678")) == 12_345_678
    assert weight_units(Decimal("0.123456789")) == 12_345_678
    assert weight_units(Decimal("1E+3")) == 1000 * WEIGHT_SCALE
    assert weight_units(Decimal(0)) == 0
    with pytest.raises(ValueError, match="≥ 0"):
        weight_units(Decimal("-1"))
    with pytest.raises(ValueError, match="finite"):
        weight_units(Decimal("NaN"))


# ------------------------------------------------------------ allocate: properties

members = st.integers(min_value=0, max_value=12)


@st.composite
def allocation_inputs(draw: st.DrawFn) -> tuple[int, list[int], list[int], int]:
    count = draw(members)
    weights = draw(
        st.lists(
            st.one_of(st.just(0), st.integers(1, 10 * WEIGHT_SCALE)),
            min_size=count,
            max_size=count,
        )
    )
    caps = draw(
        st.lists(st.one_of(st.just(0), st.integers(1, 2_000)), min_size=count, max_size=count)
    )
    total = draw(st.integers(min_value=-5, max_value=5_000))
    min_lots = draw(st.integers(min_value=1, max_value=20))
    return total, weights, caps, min_lots


@given(allocation_inputs())
def test_never_more_than_the_pool_size_nor_any_cap(
    inputs: tuple[int, list[int], list[int], int],
) -> None:
    total, weights, caps, min_lots = inputs
    result = allocate(total, weights, caps, min_lots)
    assert len(result) == len(weights)
    assert sum(result) <= max(total, 0)
    for lots, weight, cap in zip(result, weights, caps, strict=True):
        assert 0 <= lots <= max(cap, 0)
        assert lots == 0 or lots >= min_lots
        if weight == 0:
            assert lots == 0


@given(allocation_inputs())
def test_the_whole_pool_size_is_used_when_caps_allow_and_no_one_is_too_small(
    inputs: tuple[int, list[int], list[int], int],
) -> None:
    total, weights, caps, _ = inputs
    result = allocate(total, weights, caps, min_lots=1)
    room = sum(cap for weight, cap in zip(weights, caps, strict=True) if weight > 0 and cap > 0)
    assert sum(result) == min(max(total, 0), room)


@given(allocation_inputs())
def test_more_weight_never_means_fewer_lots_unless_capped(
    inputs: tuple[int, list[int], list[int], int],
) -> None:
    total, weights, caps, _ = inputs
    result = allocate(total, weights, caps, min_lots=1)
    for i, (lots_i, weight_i, cap_i) in enumerate(zip(result, weights, caps, strict=True)):
        for lots_j, weight_j, cap_j in zip(
            result[i + 1 :], weights[i + 1 :], caps[i + 1 :], strict=True
        ):
            if cap_i <= 0 or cap_j <= 0 or lots_i >= cap_i or lots_j >= cap_j:
                continue
            if weight_i > weight_j:
                assert lots_i >= lots_j
            elif weight_j > weight_i:
                assert lots_j >= lots_i


@given(
    total=st.integers(1, 5_000),
    weights=st.lists(st.integers(1, 1_000), min_size=1, max_size=12),
)
def test_uncapped_shares_are_within_one_lot_of_the_exact_proportion(
    total: int, weights: list[int]
) -> None:
    result = allocate(total, weights, [BIG] * len(weights), min_lots=1)
    assert sum(result) == total
    weight_sum = sum(weights)
    for lots, weight in zip(result, weights, strict=True):
        # |lots − total·w/W| < 1, in integers.
        assert abs(lots * weight_sum - total * weight) < weight_sum


# ------------------------------------------------------------ capacity


ONE = Instrument(symbol="X", tick_size=Decimal("0.01"), lot_size=Decimal(1))


def test_flat_member_can_add_up_to_its_limit_on_either_side() -> None:
    # 1000 USDT at mark 100 is 10 lots either way.
    assert capacity_lots(Side.BUY, 0, 0, Decimal(1000), Decimal(100), ONE) == 10
    assert capacity_lots(Side.SELL, 0, 0, Decimal(1000), Decimal(100), ONE) == 10


def test_long_member_has_less_room_to_buy_and_more_to_sell() -> None:
    assert capacity_lots(Side.BUY, 4, 0, Decimal(1000), Decimal(100), ONE) == 6
    # Selling first takes it back to flat (4), then short up to the limit (10).
    assert capacity_lots(Side.SELL, 4, 0, Decimal(1000), Decimal(100), ONE) == 14


def test_short_member_buys_back_to_flat_before_using_its_limit() -> None:
    assert capacity_lots(Side.BUY, -5, 0, Decimal(1000), Decimal(100), ONE) == 15
    assert capacity_lots(Side.SELL, -5, 0, Decimal(1000), Decimal(100), ONE) == 5


def test_resting_orders_on_the_side_count_against_the_limit() -> None:
    assert capacity_lots(Side.BUY, 4, 3, Decimal(1000), Decimal(100), ONE) == 3
    assert capacity_lots(Side.SELL, 4, 3, Decimal(1000), Decimal(100), ONE) == 11
    assert capacity_lots(Side.BUY, 4, 9, Decimal(1000), Decimal(100), ONE) == 0


def test_a_member_past_its_limit_has_no_capacity_on_the_side_that_adds() -> None:
    # 12 lots long at 100 is 1200 USDT: over the 1000 limit.
    assert capacity_lots(Side.BUY, 12, 0, Decimal(1000), Decimal(100), ONE) == 0
    assert capacity_lots(Side.SELL, 12, 0, Decimal(1000), Decimal(100), ONE) == 22


def test_limit_in_lots_rounds_down_exactly() -> None:
    # 1000 / (30000 · 0.001) = 33.33… lots → 33; 999.99 / 30 → 33; 990 / 30 = 33 exactly.
    assert capacity_lots(Side.BUY, 0, 0, Decimal(1000), Decimal(30000), BTC) == 33
    assert capacity_lots(Side.BUY, 0, 0, Decimal("990"), Decimal(30000), BTC) == 33
    assert capacity_lots(Side.BUY, 0, 0, Decimal("989.99"), Decimal(30000), BTC) == 32


def test_no_valid_mark_or_no_limit_means_no_capacity() -> None:
    assert capacity_lots(Side.BUY, 0, 0, Decimal(1000), Decimal(0), ONE) == 0
    assert capacity_lots(Side.SELL, -3, 0, Decimal(0), Decimal(100), ONE) == 0


@given(
    side=st.sampled_from(Side),
    position=st.integers(-1_000, 1_000),
    resting=st.integers(0, 500),
    limit=st.decimals(min_value=0, max_value=10**6, places=2),
    mark=st.decimals(min_value=Decimal("0.01"), max_value=10**5, places=2),
)
def test_filling_the_capacity_keeps_exposure_within_the_limit(
    side: Side, position: int, resting: int, limit: Decimal, mark: Decimal
) -> None:
    capacity = capacity_lots(side, position, resting, limit, mark, BTC)
    assume(capacity > 0)
    sign = 1 if side is Side.BUY else -1
    worst = position + sign * (resting + capacity)
    assert abs(worst) * BTC.lot_size * mark <= limit
    # …and one lot more would breach it.
    assert abs(worst + sign) * BTC.lot_size * mark > limit


# ------------------------------------------------------------ level size


def test_level_size_in_usdt_becomes_whole_lots_at_the_level_price() -> None:
    # 1000 USDT at 30000.0 with 0.001 lots (30 USDT a lot) → 33.3 → 33 lots.
    assert level_lots(Decimal(1000), 300_000, BTC) == 33
    assert level_lots(Decimal(990), 300_000, BTC) == 33
    assert level_lots(Decimal("989.99"), 300_000, BTC) == 32
    assert level_lots(Decimal(10), 300_000, BTC) == 0
    assert level_lots(Decimal(1000), 0, BTC) == 0
    assert level_lots(Decimal(0), 300_000, BTC) == 0


@given(
    size=st.decimals(min_value=0, max_value=10**7, places=8),
    ticks=st.integers(1, 10**9),
)
def test_level_lots_is_the_largest_lot_count_within_the_size(size: Decimal, ticks: int) -> None:
    lots = level_lots(size, ticks, BTC)
    assert BTC.notional(ticks, lots) <= size < BTC.notional(ticks, lots + 1)
