"""Avellaneda–Stoikov quoting: reservation price, optimal half-spread, the ladder.

The model (Avellaneda & Stoikov 2008, "High-frequency trading in a limit order
book", Quantitative Finance 8(3)):

    reservation price   r = s − q·γ·σ²·τ
    optimal half-spread δ = (γ·σ²·τ)/2 + (1/γ)·ln(1 + γ/κ)
    level 0             bid₀ = r − δ,  ask₀ = r + δ

s is the reference price (the engine passes the microprice, SPEC Part B.2) and
τ = T − t the time left. Note σ², as in the paper: a variant that multiplies by
σ instead has the wrong units (see below) and skews far too little on volatile
symbols and far too much on quiet ones.

Units (SPEC Part B.1). The paper assumes orders of one unit; here that unit is
one unit of the base asset:

    q   net position of the pool, base units (positive = long)
    s   prices, quote currency per base unit (USDT)
    σ   price units per √hour, so σ²·τ is price² with τ in hours
    τ   hours (`PoolParams.tau_hours`)
    κ   per price unit (1/USDT): λ(δ) = A·e^(−κδ) is the fill intensity at
        distance δ from the reference price
    γ   per unit of quote currency (1/USDT): the CARA utility −e^(−γ·wealth)

so q·γ·σ²·τ and (1/γ)·ln(1 + γ/κ) are both price units. The ln term is only
dimensionless because the order size is one base unit: with a clip of Δ base
units the size-aware form uses γΔ in both spread terms,

    δ(Δ) = (γΔ·σ²·τ)/2 + (1/(γΔ))·ln(1 + γΔ/κ),    r unchanged (q in base units),

which is `size_aware_half_spread`; `glft_half_spread` / `glft_inventory_skew`
give the Guéant–Lehalle–Fernandez-Tapia infinite-horizon closed form with the
same γΔ convention.

How γ and κ scale between symbols. Price the same market c times higher (a
symbol at 50 000 instead of 50, or quoted in cents) and everything with price
units must scale by c: σ → c·σ, and

    κ → κ / c           (κ is per price unit: a fill rate that halves every
                         0.01 USDT halves every 0.01·c at the new scale)
    γ → γ / c           (γ·σ²·τ is a price, and σ² grew by c²)

Then r − s and δ scale by exactly c, γ/κ is unchanged, so the ln term is the
same fraction of the price. Change the clip size by m (Δ → m·Δ) and the
quote-per-unit model wants γ → m·γ in the spread terms (the size-aware form
does this for you), while the inventory skew q·γ·σ²·τ is already per base unit
and does not change. A pool config tuned on one symbol therefore does not carry
over to another without rescaling γ and κ by the price ratio.

Representation: the model's maths is float; the ladder leaves this module in
integer ticks, bids rounded down and asks up (SPEC Part B.2, types.py). The
per-pool constants (ln(1 + γ/κ)/γ, γ·τ, the bps fractions, 1/tick) are computed
once per `ASEngine`, so one re-quote costs a few multiplications and one
floor/ceil per level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

from quoting_worker.core.types import PoolParams

__all__ = [
    "ASEngine",
    "Ladder",
    "build_ladder",
    "glft_half_spread",
    "glft_inventory_skew",
    "optimal_half_spread",
    "reservation_price",
    "size_aware_half_spread",
]

# Rounding tolerance in ticks: r − δ that lands on a tick up to float noise
# (99.99999999997) is that tick, not the one below it.
_EPS_TICKS = 1e-9
_BPS = 1e-4
_NO_CAP = 1 << 62


def _check_positive(name: str, value: float) -> None:
    # `not value > 0` also rejects NaN.
    if not value > 0.0 or value == math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_sigma(sigma: float) -> None:
    if not sigma >= 0.0 or sigma == math.inf:
        raise ValueError(f"sigma must be a finite number ≥ 0, got {sigma!r}")


def reservation_price(mid: float, q: float, gamma: float, sigma: float, tau: float) -> float:
    """r = mid − q·γ·σ²·τ: the price at which the market maker is indifferent
    to holding q more or less (quote currency; q base units, τ hours)."""
    if not gamma > 0.0:
        _check_positive("gamma", gamma)
    if not sigma >= 0.0:
        _check_sigma(sigma)
    if not tau > 0.0:
        _check_positive("tau", tau)
    return mid - q * gamma * sigma * sigma * tau


def optimal_half_spread(gamma: float, sigma: float, tau: float, kappa: float) -> float:
    """δ = (γ·σ²·τ)/2 + (1/γ)·ln(1 + γ/κ), in quote currency.

    The first term pays for the inventory risk of the time left; the second is
    the spread that maximises expected fills × edge at fill intensity A·e^(−κδ).
    """
    if not gamma > 0.0:
        _check_positive("gamma", gamma)
    if not sigma >= 0.0:
        _check_sigma(sigma)
    if not tau > 0.0:
        _check_positive("tau", tau)
    if not kappa > 0.0:
        _check_positive("kappa", kappa)
    return 0.5 * gamma * sigma * sigma * tau + math.log1p(gamma / kappa) / gamma


def size_aware_half_spread(
    gamma: float, sigma: float, tau: float, kappa: float, clip: float
) -> float:
    """The A-S half-spread for orders of `clip` base units: γ becomes γΔ.

    δ(Δ) = (γΔ·σ²·τ)/2 + (1/(γΔ))·ln(1 + γΔ/κ); equal to `optimal_half_spread`
    at Δ = 1. The reservation price does not change (q is already in base units).
    """
    _check_positive("clip", clip)
    return optimal_half_spread(gamma * clip, sigma, tau, kappa)


def _glft_omega(gamma: float, sigma: float, kappa: float, intensity: float, clip: float) -> float:
    # ω = sqrt( γσ²/(2AΔκ) · (1 + γΔ/κ)^(1 + κ/(γΔ)) ), price units per base unit.
    g = gamma * clip
    return math.sqrt(
        gamma
        * sigma
        * sigma
        / (2.0 * intensity * clip * kappa)
        * (1.0 + g / kappa) ** (1.0 + kappa / g)
    )


def glft_half_spread(
    gamma: float, sigma: float, kappa: float, intensity: float, clip: float = 1.0
) -> float:
    """Half-spread of the Guéant–Lehalle–Fernandez-Tapia closed-form approximation.

    GLFT (2013, "Dealing with the inventory risk") solve the A-S problem with
    inventory bounds and show the optimal quotes converge, far from the horizon,
    to a form that no longer depends on τ. With clip Δ (Guéant 2017):

        δᵇ ≈ (1/(γΔ))·ln(1 + γΔ/κ) + ((2q + Δ)/2)·ω
        δᵃ ≈ (1/(γΔ))·ln(1 + γΔ/κ) − ((2q − Δ)/2)·ω
        ω  = sqrt( γσ²/(2AΔκ) · (1 + γΔ/κ)^(1 + κ/(γΔ)) )

    so the half-spread (δᵇ + δᵃ)/2 is (1/(γΔ))·ln(1 + γΔ/κ) + (Δ/2)·ω and the
    quotes are centred on s − q·ω (`glft_inventory_skew`). `intensity` is A,
    the fill rate per hour at the reference price (σ per √hour). Units as for
    the A-S functions; q and Δ in base units.
    """
    _check_positive("gamma", gamma)
    _check_sigma(sigma)
    _check_positive("kappa", kappa)
    _check_positive("intensity", intensity)
    _check_positive("clip", clip)
    g = gamma * clip
    return math.log1p(g / kappa) / g + 0.5 * clip * _glft_omega(
        gamma, sigma, kappa, intensity, clip
    )


def glft_inventory_skew(
    gamma: float, sigma: float, kappa: float, intensity: float, clip: float = 1.0
) -> float:
    """ω of the GLFT approximation: the quotes' centre moves by −q·ω (price units
    per base unit of inventory); the counterpart of γ·σ²·τ in A-S."""
    _check_positive("gamma", gamma)
    _check_sigma(sigma)
    _check_positive("kappa", kappa)
    _check_positive("intensity", intensity)
    _check_positive("clip", clip)
    return _glft_omega(gamma, sigma, kappa, intensity, clip)


@dataclass(frozen=True, slots=True)
class Ladder:
    """One re-quote.

    r and half_spread are the model's outputs in quote currency (half_spread is
    δ before the bps clamp); bids and asks are the prices to place, in ticks,
    level 0 first: bids strictly descending, asks strictly ascending, none
    touching the opposite best. Asks always hold num_levels levels (at least
    one tick); bids stop short only where they would fall to zero ticks.
    """

    r: float
    half_spread: float
    bids: tuple[int, ...]
    asks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ASEngine:
    """The A-S quote for one pool: its params and the instrument's tick size,
    with the per-params constants computed once. Build a new one when the pool
    config (or the tick size) changes."""

    params: PoolParams
    tick_size: Decimal
    _tick: float = field(init=False, repr=False, compare=False)
    _inv_tick: float = field(init=False, repr=False, compare=False)
    _gamma_tau: float = field(init=False, repr=False, compare=False)
    _ln_term: float = field(init=False, repr=False, compare=False)
    _min_half_frac: float = field(init=False, repr=False, compare=False)
    _max_half_frac: float = field(init=False, repr=False, compare=False)
    _spacing_frac: float = field(init=False, repr=False, compare=False)
    _num_levels: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = self.params
        _check_positive("gamma", p.gamma)
        _check_positive("kappa", p.kappa)
        _check_positive("tau_hours", p.tau_hours)
        if p.num_levels < 1:
            raise ValueError(f"num_levels must be ≥ 1, got {p.num_levels!r}")
        if not p.level_spacing_bps >= 0.0 or p.level_spacing_bps == math.inf:
            raise ValueError(f"level_spacing_bps must be ≥ 0, got {p.level_spacing_bps!r}")
        if not p.min_spread_bps >= 0.0:
            raise ValueError(f"min_spread_bps must be ≥ 0, got {p.min_spread_bps!r}")
        _check_positive("max_spread_bps", p.max_spread_bps)
        if p.min_spread_bps > p.max_spread_bps:
            raise ValueError(
                f"min_spread_bps ({p.min_spread_bps}) must be ≤ max_spread_bps ({p.max_spread_bps})"
            )
        tick = float(self.tick_size)
        _check_positive("tick_size", tick)
        setattr_ = object.__setattr__
        setattr_(self, "_tick", tick)
        setattr_(self, "_inv_tick", 1.0 / tick)
        setattr_(self, "_gamma_tau", p.gamma * p.tau_hours)
        setattr_(self, "_ln_term", math.log1p(p.gamma / p.kappa) / p.gamma)
        # The clamp is on the full spread ask₀ − bid₀, so half of it per side.
        setattr_(self, "_min_half_frac", 0.5 * p.min_spread_bps * _BPS)
        setattr_(self, "_max_half_frac", 0.5 * p.max_spread_bps * _BPS)
        setattr_(self, "_spacing_frac", p.level_spacing_bps * _BPS)
        setattr_(self, "_num_levels", p.num_levels)

    def ladder(
        self,
        *,
        microprice_ticks: float,
        mid_ticks: float,
        q: float,
        sigma: float,
        best_bid: int | None,
        best_ask: int | None,
    ) -> Ladder:
        """The ladder around r(microprice, q, σ) for the pool's τ.

        microprice_ticks and mid_ticks are prices in ticks (float); q in base
        units; σ in price units per √hour; best_bid/best_ask the opposite bests
        in ticks (None: that side of the book is empty).

        Level-0 spread 2δ is clamped to [min_spread_bps, max_spread_bps] of mid
        and centred on r; level i sits i·level_spacing_bps of mid further out.
        Bids round down, asks up. Post-only: a bid at or above best_ask moves to
        best_ask − 1, an ask at or below best_bid to best_bid + 1, and a level
        that rounding or that move lands on (or inside) the previous one goes
        one tick beyond it, so the levels stay strictly monotonic. The clamp
        applies before rounding, so the placed spread can exceed max_spread_bps
        by up to two ticks (rounding is always outward).
        """
        if not sigma >= 0.0 or sigma == math.inf:
            _check_sigma(sigma)
        if not mid_ticks > 0.0 or mid_ticks == math.inf:
            _check_positive("mid_ticks", mid_ticks)
        inv_tick = self._inv_tick
        risk = self._gamma_tau * sigma * sigma  # γσ²τ, price units
        r_px = microprice_ticks * self._tick - q * risk
        half_px = 0.5 * risk + self._ln_term
        r = r_px * inv_tick
        if not math.isfinite(r) or not math.isfinite(half_px):
            self._diagnose(microprice_ticks, q)
        half = half_px * inv_tick
        lo = mid_ticks * self._min_half_frac
        if half < lo:
            half = lo
        else:
            hi = mid_ticks * self._max_half_frac
            if half > hi:
                half = hi
        step = mid_ticks * self._spacing_frac
        n = self._num_levels
        floor = math.floor
        ceil = math.ceil

        bid_raw = r - half + _EPS_TICKS
        cap = _NO_CAP if best_ask is None else best_ask - 1
        bids: list[int] = []
        for i in range(n):
            b = floor(bid_raw - i * step)
            if b > cap:
                b = cap
            if b <= 0:
                break
            bids.append(b)
            cap = b - 1

        ask_raw = r + half - _EPS_TICKS
        # Ask₀ above bid₀ even when the spread rounds to nothing, and never below
        # one tick.
        low = bids[0] + 1 if bids else 1
        if best_bid is not None and best_bid >= low:
            low = best_bid + 1
        asks: list[int] = []
        for i in range(n):
            a = ceil(ask_raw + i * step)
            if a < low:
                a = low
            asks.append(a)
            low = a + 1
        return Ladder(r_px, half_px, tuple(bids), tuple(asks))

    @staticmethod
    def _diagnose(microprice_ticks: float, q: float) -> None:
        if not math.isfinite(microprice_ticks):
            raise ValueError(f"microprice_ticks must be finite, got {microprice_ticks!r}")
        if not math.isfinite(q):
            raise ValueError(f"q must be finite, got {q!r}")
        raise ValueError("reservation price or half-spread overflowed: q·γ·σ²·τ is not finite")


def build_ladder(
    *,
    params: PoolParams,
    tick_size: Decimal,
    microprice_ticks: float,
    mid_ticks: float,
    q: float,
    sigma: float,
    best_bid: int | None,
    best_ask: int | None,
) -> Ladder:
    """One-off ladder; on the hot path keep an `ASEngine` per pool instead."""
    return ASEngine(params, tick_size).ladder(
        microprice_ticks=microprice_ticks,
        mid_ticks=mid_ticks,
        q=q,
        sigma=sigma,
        best_bid=best_bid,
        best_ask=best_ask,
    )
