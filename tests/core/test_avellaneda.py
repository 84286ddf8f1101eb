"""Avellaneda–Stoikov: the formulas by hand, and the ladder a pool would place —
clamped to the spread band, on ticks, post-only and strictly monotonic."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoting_worker.core.avellaneda import (
    ASEngine,
    Ladder,
    build_ladder,
    glft_half_spread,
    glft_inventory_skew,
    optimal_half_spread,
    reservation_price,
    size_aware_half_spread,
)
from quoting_worker.core.types import PoolParams

CENT = Decimal("0.01")


def pool(**overrides: object) -> PoolParams:
    base = PoolParams(
        gamma=0.1,
        kappa=1.5,
        tau_hours=1.0,
        vol_lookback_seconds=300,
        num_levels=3,
        level_spacing_bps=10.0,
        min_spread_bps=0.0,
        max_spread_bps=1000.0,
        order_size_usdt=Decimal(1000),
        max_pool_position_usdt=Decimal(100_000),
        max_pool_loss_usdt=Decimal(10_000),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def ladder(
    params: PoolParams,
    *,
    microprice: float = 10_000.0,
    mid: float | None = None,
    q: float = 0.0,
    sigma: float = 2.0,
    best_bid: int | None = None,
    best_ask: int | None = None,
    tick: Decimal = CENT,
) -> Ladder:
    return ASEngine(params, tick).ladder(
        microprice_ticks=microprice,
        mid_ticks=microprice if mid is None else mid,
        q=q,
        sigma=sigma,
        best_bid=best_bid,
        best_ask=best_ask,
    )


# ---------------------------------------------------------------- the formulas


def test_reservation_price_by_hand() -> None:
    # 100 − 2·0.1·2²·1
    assert reservation_price(100.0, 2.0, 0.1, 2.0, 1.0) == pytest.approx(99.2, abs=1e-12)


def test_optimal_half_spread_by_hand() -> None:
    # 0.1·4·1/2 + (1/0.1)·ln(1 + 0.1/1.5)
    expected = 0.2 + 10.0 * math.log(1.0 + 0.1 / 1.5)
    assert optimal_half_spread(0.1, 2.0, 1.0, 1.5) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.845385, abs=1e-6)


def test_the_paper_average_spread_comes_out_of_the_half_spread() -> None:
    # Paper's table: 1.49 at γ=0.1 is the time average of 2δ over τ ∈ [0, 1].
    avg = optimal_half_spread(0.1, 2.0, 0.5, 1.5) * 2.0
    assert round(avg, 2) == 1.49


def test_skew_grows_with_sigma_squared_not_sigma() -> None:
    skew_at_2 = 100.0 - reservation_price(100.0, 1.0, 0.1, 2.0, 1.0)
    skew_at_4 = 100.0 - reservation_price(100.0, 1.0, 0.1, 4.0, 1.0)
    assert skew_at_4 == pytest.approx(4.0 * skew_at_2)


def test_long_inventory_lowers_the_reservation_price_short_raises_it() -> None:
    assert reservation_price(100.0, 3.0, 0.1, 2.0, 1.0) < 100.0
    assert reservation_price(100.0, -3.0, 0.1, 2.0, 1.0) > 100.0
    assert reservation_price(100.0, 0.0, 0.1, 2.0, 1.0) == 100.0


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("gamma", (0.0, 2.0, 1.0, 1.5)),
        ("gamma", (-0.1, 2.0, 1.0, 1.5)),
        ("gamma", (math.nan, 2.0, 1.0, 1.5)),
        ("sigma", (0.1, -1.0, 1.0, 1.5)),
        ("sigma", (0.1, math.nan, 1.0, 1.5)),
        ("tau", (0.1, 2.0, 0.0, 1.5)),
        ("kappa", (0.1, 2.0, 1.0, 0.0)),
        ("kappa", (0.1, 2.0, 1.0, -1.5)),
    ],
)
def test_half_spread_rejects_invalid_inputs_by_name(
    name: str, args: tuple[float, float, float, float]
) -> None:
    with pytest.raises(ValueError, match=name):
        optimal_half_spread(*args)


@pytest.mark.parametrize(
    ("name", "gamma", "sigma", "tau"),
    [("gamma", 0.0, 2.0, 1.0), ("sigma", 0.1, -2.0, 1.0), ("tau", 0.1, 2.0, -1.0)],
)
def test_reservation_price_rejects_invalid_inputs_by_name(
    name: str, gamma: float, sigma: float, tau: float
) -> None:
    with pytest.raises(ValueError, match=name):
        reservation_price(100.0, 1.0, gamma, sigma, tau)


def test_zero_sigma_is_allowed_and_leaves_only_the_liquidity_term() -> None:
    assert reservation_price(100.0, 5.0, 0.1, 0.0, 1.0) == 100.0
    assert optimal_half_spread(0.1, 0.0, 1.0, 1.5) == pytest.approx(10.0 * math.log(16 / 15))


@pytest.mark.parametrize("c", [0.01, 7.0, 1000.0])
def test_rescaling_price_by_c_with_gamma_and_kappa_divided_by_c_scales_quotes_by_c(
    c: float,
) -> None:
    # The module docstring's scaling rule: σ → cσ, γ → γ/c, κ → κ/c.
    skew = 100.0 - reservation_price(100.0, 2.0, 0.1, 2.0, 1.0)
    half = optimal_half_spread(0.1, 2.0, 1.0, 1.5)
    skew_c = 100.0 * c - reservation_price(100.0 * c, 2.0, 0.1 / c, 2.0 * c, 1.0)
    half_c = optimal_half_spread(0.1 / c, 2.0 * c, 1.0, 1.5 / c)
    assert skew_c == pytest.approx(c * skew, rel=1e-9)
    assert half_c == pytest.approx(c * half, rel=1e-9)


# ---------------------------------------------------------------- size-aware variants


def test_size_aware_half_spread_is_the_seed_formula_at_one_unit_and_uses_gamma_times_clip() -> None:
    assert size_aware_half_spread(0.1, 2.0, 1.0, 1.5, 1.0) == optimal_half_spread(
        0.1, 2.0, 1.0, 1.5
    )
    assert size_aware_half_spread(0.1, 2.0, 1.0, 1.5, 5.0) == pytest.approx(
        0.5 * 0.5 * 4.0 + 2.0 * math.log(1.0 + 0.5 / 1.5)
    )
    with pytest.raises(ValueError, match="clip"):
        size_aware_half_spread(0.1, 2.0, 1.0, 1.5, 0.0)


def test_glft_half_spread_and_skew_by_hand() -> None:
    # γ=0.1, σ=2, κ=1.5, A=140, Δ=1: ω = sqrt(γσ²/(2Aκ)·(1+γ/κ)^(1+κ/γ))
    omega = math.sqrt(0.4 / 420.0 * (16.0 / 15.0) ** 16)
    assert glft_inventory_skew(0.1, 2.0, 1.5, 140.0) == pytest.approx(omega, rel=1e-12)
    assert glft_half_spread(0.1, 2.0, 1.5, 140.0) == pytest.approx(
        10.0 * math.log(16.0 / 15.0) + 0.5 * omega, rel=1e-12
    )


def test_glft_with_a_clip_uses_gamma_times_clip_in_the_liquidity_term() -> None:
    # Δ=2: ln term (1/(γΔ))·ln(1+γΔ/κ); ω = sqrt(γσ²/(2AΔκ)·(1+γΔ/κ)^(1+κ/(γΔ)))
    omega = math.sqrt(0.4 / (2 * 140.0 * 2.0 * 1.5) * (1.0 + 0.2 / 1.5) ** (1.0 + 7.5))
    assert glft_half_spread(0.1, 2.0, 1.5, 140.0, clip=2.0) == pytest.approx(
        5.0 * math.log(1.0 + 0.2 / 1.5) + omega, rel=1e-12
    )


def test_glft_without_volatility_has_no_skew() -> None:
    assert glft_inventory_skew(0.1, 0.0, 1.5, 140.0) == 0.0
    assert glft_half_spread(0.1, 0.0, 1.5, 140.0) == pytest.approx(10.0 * math.log(16 / 15))
    with pytest.raises(ValueError, match="intensity"):
        glft_half_spread(0.1, 2.0, 1.5, 0.0)


# ---------------------------------------------------------------- the ladder


def test_ladder_by_hand_centred_on_r_with_levels_spaced_in_bps_of_mid() -> None:
    # Price 100.00 = 10 000 ticks of 0.01; r = 99.2 (9 920 ticks); δ = 0.845385 (84.54 ticks);
    # spacing 10 bps of 100 = 0.10 = 10 ticks.
    lad = ladder(pool(), q=2.0)

    assert lad.r == pytest.approx(99.2)
    assert lad.half_spread == pytest.approx(0.845385, abs=1e-6)
    assert lad.bids == (9835, 9825, 9815)
    assert lad.asks == (10005, 10015, 10025)


def test_long_inventory_lowers_both_sides_short_raises_both() -> None:
    flat = ladder(pool(), q=0.0)
    long = ladder(pool(), q=3.0)
    short = ladder(pool(), q=-3.0)

    assert all(lo < f for lo, f in zip(long.bids, flat.bids, strict=True))
    assert all(lo < f for lo, f in zip(long.asks, flat.asks, strict=True))
    assert all(hi > f for hi, f in zip(short.bids, flat.bids, strict=True))
    assert all(hi > f for hi, f in zip(short.asks, flat.asks, strict=True))
    # The skew moves the quotes; it does not widen them (up to one tick of rounding).
    widths = {lad.asks[0] - lad.bids[0] for lad in (flat, long, short)}
    assert max(widths) - min(widths) <= 1


def test_spread_is_clamped_up_to_min_spread_bps() -> None:
    # κ huge: δ ≈ 0.001 (0.1 tick); 20 bps of 100 = 0.20, so ±10 ticks around r = mid.
    lad = ladder(pool(kappa=1000.0, min_spread_bps=20.0), sigma=0.0)
    assert lad.bids[0] == 9990
    assert lad.asks[0] == 10010


def test_spread_is_clamped_down_to_max_spread_bps() -> None:
    # γ=1, σ=10: δ = 50 + ln(1+1/1.5) ≈ 50.5; 100 bps of 100 = 1.00, so ±50 ticks.
    lad = ladder(pool(gamma=1.0, max_spread_bps=100.0), sigma=10.0)
    assert lad.half_spread > 50.0  # the model's value is kept for the record
    assert lad.bids[0] == 9950
    assert lad.asks[0] == 10050


def test_bids_round_down_and_asks_up_to_the_tick() -> None:
    # Half-spread clamped to 2.5 ticks around 10 000.3: raw 9 997.8 / 10 002.8.
    lad = ladder(pool(kappa=1e6, min_spread_bps=5.0, num_levels=1), microprice=10_000.3, sigma=0.0)
    assert lad.bids == (9997,)
    assert lad.asks == (10003,)


def test_a_quote_exactly_on_a_tick_is_not_pushed_a_tick_out_by_float_noise() -> None:
    # r − δ = 99.90 exactly in decimal, not exactly in binary.
    lad = ladder(pool(kappa=1e9, min_spread_bps=20.0, num_levels=1), microprice=10_000.0, sigma=0.0)
    assert (lad.bids[0], lad.asks[0]) == (9990, 10010)


def test_short_pool_bids_that_would_cross_the_best_ask_are_placed_below_it() -> None:
    # q = −20: r = 100 + 8 = 108, so the raw bids (≈107) are far through a 100.01 ask.
    lad = ladder(pool(), q=-20.0, best_bid=10_000, best_ask=10_001)

    assert lad.bids == (10_000, 9_999, 9_998)
    assert all(b < 10_001 for b in lad.bids)
    assert lad.asks[0] > lad.bids[0]


def test_long_pool_asks_that_would_cross_the_best_bid_are_placed_above_it() -> None:
    lad = ladder(pool(), q=20.0, best_bid=10_000, best_ask=10_001)

    assert lad.asks == (10_001, 10_002, 10_003)
    assert all(a > 10_000 for a in lad.asks)


def test_a_bid_touching_the_best_ask_moves_one_tick_below_it() -> None:
    # Raw bid₀ is exactly the best ask: touching is not allowed for a post-only order.
    flat = ladder(pool(), q=0.0)
    lad = ladder(pool(), q=0.0, best_ask=flat.bids[0], best_bid=flat.bids[0] - 5)
    assert lad.bids[0] == flat.bids[0] - 1


def test_levels_stay_strictly_monotonic_when_spacing_is_under_a_tick() -> None:
    # 0.1 bps of 100 = 0.001, a tenth of a tick: every level rounds onto level 0.
    lad = ladder(pool(level_spacing_bps=0.1, num_levels=5))

    assert lad.bids == tuple(lad.bids[0] - i for i in range(5))
    assert lad.asks == tuple(lad.asks[0] + i for i in range(5))


def test_ask_stays_above_bid_when_the_spread_rounds_to_nothing() -> None:
    # max 1e-12 bps of mid: a zero-width quote at r = 10 000 exactly.
    lad = ladder(
        pool(kappa=1e9, max_spread_bps=1e-12, level_spacing_bps=0.0, num_levels=2), sigma=0.0
    )
    assert lad.bids[0] < lad.asks[0]
    assert lad.bids == (10_000, 9_999)
    assert lad.asks == (10_001, 10_002)


def test_bids_at_or_below_zero_ticks_are_left_out() -> None:
    lad = ladder(pool(num_levels=5, level_spacing_bps=3000.0), microprice=50.0, sigma=0.0)
    # Spacing 15 ticks at mid 50 from bid₀ = 47: 47, 32, 17, 2 — the fifth would be −13.
    assert lad.bids == (47, 32, 17, 2)
    assert lad.bids
    assert all(b > 0 for b in lad.bids)
    assert len(lad.bids) < 5
    assert len(lad.asks) == 5


def test_ladder_reports_r_and_half_spread_in_quote_currency() -> None:
    lad = ladder(pool(tau_hours=0.5), microprice=12_345.0, q=1.5, sigma=3.0)
    assert lad.r == pytest.approx(reservation_price(123.45, 1.5, 0.1, 3.0, 0.5))
    assert lad.half_spread == pytest.approx(optimal_half_spread(0.1, 3.0, 0.5, 1.5))


def test_build_ladder_matches_the_engine() -> None:
    params = pool()
    kwargs = {
        "microprice_ticks": 10_003.7,
        "mid_ticks": 10_002.0,
        "q": 1.0,
        "sigma": 2.5,
        "best_bid": 10_001,
        "best_ask": 10_003,
    }
    one_off = build_ladder(params=params, tick_size=CENT, **kwargs)  # type: ignore[arg-type]
    assert one_off == ASEngine(params, CENT).ladder(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("gamma", {"gamma": 0.0}),
        ("kappa", {"kappa": -1.0}),
        ("tau_hours", {"tau_hours": 0.0}),
        ("num_levels", {"num_levels": 0}),
        ("level_spacing_bps", {"level_spacing_bps": -1.0}),
        ("min_spread_bps", {"min_spread_bps": 50.0, "max_spread_bps": 10.0}),
        ("max_spread_bps", {"max_spread_bps": 0.0}),
    ],
)
def test_engine_rejects_invalid_pool_params_by_name(
    name: str, overrides: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match=name):
        ASEngine(pool(**overrides), CENT)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("sigma", {"sigma": -1.0}),
        ("sigma", {"sigma": math.nan}),
        ("sigma", {"sigma": math.inf}),
        ("mid_ticks", {"mid": 0.0}),
        ("microprice_ticks", {"microprice": math.nan, "mid": 10_000.0}),
        ("q", {"q": math.inf}),
    ],
)
def test_ladder_rejects_invalid_market_inputs_by_name(name: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=name):
        ladder(pool(), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties


@st.composite
def market(draw: st.DrawFn) -> tuple[PoolParams, dict[str, object]]:
    min_bps = draw(st.floats(0.0, 200.0))
    params = pool(
        gamma=draw(st.floats(1e-4, 10.0)),
        kappa=draw(st.floats(1e-3, 1e4)),
        tau_hours=draw(st.floats(1e-3, 24.0)),
        num_levels=draw(st.integers(1, 8)),
        level_spacing_bps=draw(st.floats(0.0, 100.0)),
        min_spread_bps=min_bps,
        max_spread_bps=draw(st.floats(max(min_bps, 0.01), 2000.0)),
    )
    mid = draw(st.floats(100.0, 1e7))
    spread = draw(st.integers(0, 50))
    best_bid = int(mid) - spread // 2
    book = draw(st.sampled_from(["both", "bid", "ask", "none"]))
    kwargs: dict[str, object] = {
        "microprice_ticks": mid + draw(st.floats(-5.0, 5.0)),
        "mid_ticks": mid,
        "q": draw(st.floats(-1e3, 1e3)),
        "sigma": draw(st.floats(0.0, 1e3)),
        "best_bid": best_bid if book in ("both", "bid") else None,
        "best_ask": best_bid + max(spread, 1) if book in ("both", "ask") else None,
    }
    return params, kwargs


@settings(max_examples=400, deadline=None)
@given(market())
def test_any_valid_input_gives_a_post_only_monotonic_ladder_on_ticks(
    case: tuple[PoolParams, dict[str, object]],
) -> None:
    params, kwargs = case
    lad = ASEngine(params, Decimal("0.5")).ladder(**kwargs)  # type: ignore[arg-type]
    best_bid = kwargs["best_bid"]
    best_ask = kwargs["best_ask"]

    assert all(type(p) is int for p in lad.bids + lad.asks)
    assert len(lad.asks) == params.num_levels
    assert len(lad.bids) <= params.num_levels
    assert all(b > 0 for b in lad.bids)
    if lad.bids:
        assert lad.bids[0] < lad.asks[0]
    assert all(a > b for a, b in zip(lad.bids, lad.bids[1:], strict=False))
    assert all(a < b for a, b in zip(lad.asks, lad.asks[1:], strict=False))
    if isinstance(best_ask, int):
        assert all(b < best_ask for b in lad.bids)
    if isinstance(best_bid, int):
        assert all(a > best_bid for a in lad.asks)
