"""VolatilityTracker: σ in price units per √hour from irregularly spaced trades,
over a rolling window, with warm-up and floor."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoting_worker.core.volatility import NS_PER_HOUR, VolatilityTracker

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = NS_PER_HOUR


def feed(tracker: VolatilityTracker, trades: list[tuple[float, int]]) -> None:
    for price, ts_ns in trades:
        tracker.add_trade(price, ts_ns)


def test_alternating_one_unit_every_36_seconds_is_sigma_10_per_root_hour() -> None:
    tracker = VolatilityTracker(lookback_ns=HOUR, min_samples=10)
    # 36 s = 0.01 h; each move is ±1, so σ² = 1 / 0.01 = 100 per hour.
    feed(tracker, [(100.0 + (i % 2), i * 36 * SECOND) for i in range(51)])

    assert tracker.samples == 50
    assert tracker.sigma(50 * 36 * SECOND) == pytest.approx(10.0, rel=1e-12)


def test_irregular_spacing_weights_each_move_by_the_time_it_took() -> None:
    tracker = VolatilityTracker(lookback_ns=HOUR, min_samples=2)
    # +1 over 0.01 h, then −2 over 0.02 h: σ² = (1 + 4) / 0.03 h.
    feed(tracker, [(100.0, 0), (101.0, 36 * SECOND), (99.0, 108 * SECOND)])

    assert tracker.sigma(108 * SECOND) == pytest.approx(math.sqrt(5 / 0.03), rel=1e-12)


def test_trade_rate_does_not_change_sigma_of_the_same_walk() -> None:
    # The same ±1-per-36-s walk, once sampled every trade and once with a
    # trade at an unchanged price between moves: variance per hour is equal.
    sparse = VolatilityTracker(lookback_ns=HOUR, min_samples=1)
    dense = VolatilityTracker(lookback_ns=HOUR, min_samples=1)
    for i in range(20):
        price = 100.0 + (i % 2)
        sparse.add_trade(price, i * 36 * SECOND)
        dense.add_trade(price, i * 36 * SECOND)
        dense.add_trade(price, i * 36 * SECOND + 18 * SECOND)

    now = 20 * 36 * SECOND
    dense_sigma = dense.sigma(now)
    assert dense_sigma is not None
    # The dense tracker's last 18 s of calm add time but no movement.
    assert dense_sigma == pytest.approx(math.sqrt(19 / (19.5 * 0.01)), rel=1e-12)
    assert sparse.sigma(now) == pytest.approx(10.0, rel=1e-12)


def test_warm_up_returns_none_until_min_samples_moves_are_in_the_window() -> None:
    tracker = VolatilityTracker(lookback_ns=HOUR, min_samples=3)

    assert tracker.sigma(0) is None
    tracker.add_trade(100.0, 0)  # the first trade alone is no move
    assert tracker.samples == 0
    tracker.add_trade(101.0, 36 * SECOND)
    tracker.add_trade(100.0, 72 * SECOND)
    assert tracker.samples == 2
    assert tracker.sigma(72 * SECOND) is None

    tracker.add_trade(101.0, 108 * SECOND)

    assert tracker.sigma(108 * SECOND) == pytest.approx(10.0)


def test_floor_stands_in_while_warming_up_and_bounds_the_estimate_below() -> None:
    tracker = VolatilityTracker(lookback_ns=HOUR, min_samples=2, floor=12.0)

    assert tracker.sigma(0) == 12.0
    feed(tracker, [(100.0, 0), (101.0, 36 * SECOND), (100.0, 72 * SECOND)])
    assert tracker.sigma(72 * SECOND) == 12.0  # estimate 10 < floor

    tracker.add_trade(104.0, 108 * SECOND)  # a 4-unit move: σ² = 18 / 0.03 h

    assert tracker.sigma(108 * SECOND) == pytest.approx(math.sqrt(18 / 0.03))


def test_a_flat_market_reads_zero_without_a_floor() -> None:
    tracker = VolatilityTracker(lookback_ns=HOUR, min_samples=2)
    feed(tracker, [(100.0, i * SECOND) for i in range(5)])

    assert tracker.sigma(5 * SECOND) == 0.0


def test_no_elapsed_time_gives_no_estimate() -> None:
    tracker = VolatilityTracker(lookback_ns=HOUR, min_samples=2)
    feed(tracker, [(100.0, 7), (101.0, 7), (100.0, 7)])

    assert tracker.samples == 2
    assert tracker.sigma(7) is None
    with_floor = VolatilityTracker(lookback_ns=HOUR, min_samples=2, floor=3.0)
    feed(with_floor, [(100.0, 7), (101.0, 7), (100.0, 7)])
    assert with_floor.sigma(7) == 3.0


def test_moves_leave_the_window_after_the_lookback() -> None:
    tracker = VolatilityTracker(lookback_ns=10 * MINUTE, min_samples=1)
    # A violent minute, then calm trades every minute.
    feed(tracker, [(100.0, 0), (110.0, MINUTE), (100.0, 2 * MINUTE)])
    feed(tracker, [(100.0, m * MINUTE) for m in range(3, 12)])

    # Window (1 min, 11 min]: the +10 move (ending at 1 min) has left, the −10
    # (ending at 2 min) is in with nine calm minutes: σ² = 100 / (10/60 h).
    assert tracker.sigma(11 * MINUTE) == pytest.approx(math.sqrt(600.0))
    assert tracker.samples == 10

    tracker.add_trade(100.0, 12 * MINUTE)  # now both violent moves are out
    assert tracker.sigma(12 * MINUTE) == 0.0
    assert tracker.samples == 10

    # Reading later, with no new trades, empties the window: back to warm-up.
    assert tracker.sigma(40 * MINUTE) is None
    assert tracker.samples == 0


def test_out_of_order_trades_are_ignored_and_counted() -> None:
    tracker = VolatilityTracker(lookback_ns=HOUR, min_samples=1)
    feed(tracker, [(100.0, 0), (101.0, 36 * SECOND)])

    tracker.add_trade(500.0, 10 * SECOND)

    assert tracker.out_of_order == 1
    assert tracker.samples == 1
    tracker.add_trade(100.0, 72 * SECOND)  # measured from 101, not from 500
    assert tracker.sigma(72 * SECOND) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("lookback_ns", "min_samples", "floor"),
    [(0, 1, None), (HOUR, 0, None), (HOUR, 1, -1.0), (HOUR, 1, math.nan)],
)
def test_invalid_configuration_is_refused(
    lookback_ns: int, min_samples: int, floor: float | None
) -> None:
    with pytest.raises(ValueError, match="must be"):
        VolatilityTracker(lookback_ns=lookback_ns, min_samples=min_samples, floor=floor)


def test_a_non_finite_price_is_refused() -> None:
    tracker = VolatilityTracker(lookback_ns=HOUR, min_samples=1)

    with pytest.raises(ValueError, match="finite"):
        tracker.add_trade(math.inf, 0)


# ---------------------------------------------------------------- against a naive model


def naive_sigma(
    trades: list[tuple[float, int]], lookback_ns: int, min_samples: int, now_ns: int
) -> float | None:
    """Recompute from scratch: accepted trades, their increments, the window, the ratio."""
    accepted: list[tuple[float, int]] = []
    for price, ts in trades:
        if accepted and ts < accepted[-1][1]:
            continue
        accepted.append((price, ts))
    window = [
        ((p1 - p0) ** 2, t1 - t0)
        for (p0, t0), (p1, t1) in itertools.pairwise(accepted)
        if t1 > now_ns - lookback_ns
    ]
    dt_ns = sum(dt for _, dt in window)
    if len(window) < min_samples or dt_ns == 0:
        return None
    return math.sqrt(math.fsum(dp2 for dp2, _ in window) * NS_PER_HOUR / dt_ns)


# A random walk whose moves span ten orders of magnitude, with gaps from 0 to
# 90 s, so big moves enter and leave the window next to tiny ones: the
# worst case for running sums that subtract what they evict.
step_st = st.tuples(
    st.one_of(
        st.just(0.0),
        st.floats(-1e-3, 1e-3, allow_nan=False),
        st.floats(-1.0, 1.0, allow_nan=False),
        st.floats(-1e5, 1e5, allow_nan=False),
    ),
    st.one_of(st.integers(0, 90 * SECOND), st.integers(0, 1_000), st.just(-SECOND)),
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(step_st, min_size=20, max_size=300),
    lookback_minutes=st.integers(1, 10),
    min_samples=st.integers(1, 5),
    read_every=st.integers(1, 3),
)
def test_sigma_equals_a_naive_recomputation_over_the_window(
    steps: list[tuple[float, int]], lookback_minutes: int, min_samples: int, read_every: int
) -> None:
    lookback_ns = lookback_minutes * MINUTE
    tracker = VolatilityTracker(lookback_ns=lookback_ns, min_samples=min_samples)
    trades: list[tuple[float, int]] = []
    ts = now = 0
    price = 1e5
    for i, (move, gap) in enumerate(steps):
        price += move
        if gap < 0:
            trades.append((price, ts + gap))  # stamped before the last trade
        else:
            ts += gap
            trades.append((price, ts))
        tracker.add_trade(*trades[-1])
        if i % read_every == 0:
            now = max(now, ts + abs(gap) % MINUTE)  # the engine's clock never goes back
            expected = naive_sigma(trades, lookback_ns, min_samples, now)
            got = tracker.sigma(now)
            if expected is None:
                assert got is None
            else:
                assert got == pytest.approx(expected, rel=1e-9, abs=0.0)
