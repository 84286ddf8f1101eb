"""The Q-score: each member's share of one symbol's pool for one UTC day, pure.

Members of one symbol's pool all quote the same prices, so the score measures
what each member *contributes*: two-sided depth close to mid, and uptime (a
member at its limit, suspended, or quoting one side only loses it). Efficiency
(score share ÷ capital-weight share) shows who falls short of their capital, and
each member's uptime is checked against its tier SLA floor. The shape follows
the liquidity rewards of dYdX and Polymarket, built to resist their gaming:
depth far from mid earns nothing, one-sided quoting earns nothing, splitting an
account in two gains nothing, and uptime is raised to a high power.

Units: prices and notionals in USDT (notional = price × size, size in base
units), distances and spreads in basis points of mid, uptime and shares are
dimensionless fractions in [0, 1]. Every number is a `Decimal`, never a float.

Per order (v = `max_spread_bps`, d = distance from mid in bps):

    d    = |price − mid| / mid × 10⁴                                  [bps]
    S(d) = ((v − d) / v)²   for 0 ≤ d < v,   0 for d ≥ v              [0, 1]

Per sample (one member at one instant):

    bid_depth, ask_depth = Σ notional of that side's orders with d < v   [USDT]
    bid_score, ask_score = Σ notional × S(d) over that side's orders     [USDT]
    spread    = (own best ask − own best bid) / mid × 10⁴ over all own orders
                (None when a side has no order)                          [bps]
    quoting   = bid_depth ≥ min_depth and ask_depth ≥ min_depth, both > 0
    liquidity = min(bid_score, ask_score) if quoting else 0               [USDT]

Each instant's liquidity is normalised across the symbol's members sampled at
that instant (`shares`), so quiet and busy hours weigh the same. Per member i
and day, over the samples taken while the pool was ACTIVE:

    U_i = quoting samples_i / active samples_i      (0 with no active sample)
    Λ_i = L_i / Σ_j L_j,   L_i = Σ over samples of i's liquidity share
    V_i = maker volume_i / Σ_j maker volume_j                  [USDT / USDT]
    qualified_i = U_i ≥ min_uptime and trades_i ≥ min_trades and active_i > 0
    R_i = U_i^p × Λ_i^α × V_i^(1−α)   if qualified_i, else 0
    q_i = R_i / Σ_j R_j                (all 0 when Σ_j R_j = 0)
    efficiency_i = q_i / (weight_i / Σ_j weight_j)

with p = `uptime_exponent` and α = `liquidity_exponent` (maker volume gets
β = 1 − α). If the symbol had no maker volume that day (Σ_j volume_j = 0) the
volume term is left out and liquidity takes the whole exponent:
R_i = U_i^p × Λ_i. With α = 1 the volume term is absent, with α = 0 the
liquidity term is absent (so 0⁰ never decides a score). Because α + β = 1, R is
homogeneous of degree 1 in (Λ, V): one member split into two accounts with half
the liquidity and half the volume each scores exactly what it scored whole.
Trade count is an activity gate only; it is never scored.

Output precision: U is reported to 6 places (rounded down, so a reported uptime
never shows an SLA as met that is not; the gates and the SLA flag use the exact
fraction), q to 10 places by the largest-remainder method so that one
symbol-day's scores sum to exactly 1 (or are all 0), efficiency to 8 places
(half-even).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

BPS = Decimal(10_000)
PRECISION = 34
"""Significant digits for the score's intermediate arithmetic (powers, ratios)."""

UPTIME_QUANTUM = Decimal("0.000001")
SCORE_PLACES = 10
EFFICIENCY_PLACES = 8

BUY = "BUY"
SELL = "SELL"

_ZERO = Decimal(0)
_ONE = Decimal(1)


def _require(ok: bool, name: str, value: object, requirement: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {requirement}, got {value!r}")


def _finite(value: Decimal) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


@dataclass(frozen=True)
class QScoreConfig:
    max_spread_bps: Decimal = Decimal("50")
    """v: an order this far from mid (or further) scores 0."""
    min_depth_usdt: Decimal = Decimal("100")
    """Per side, within the band, for a sample to count as quoting."""
    uptime_exponent: Decimal = Decimal("5")
    """p."""
    liquidity_exponent: Decimal = Decimal("0.5")
    """α; maker volume gets β = 1 − α."""
    min_uptime: Decimal = Decimal("0.5")
    """Uptime gate: below it a member scores 0."""
    min_trades: int = 0
    """Activity gate: trade count is never scored, only required."""

    def __post_init__(self) -> None:
        v = self.max_spread_bps
        _require(_finite(v) and v > 0, "max_spread_bps", v, "a finite Decimal > 0")
        d = self.min_depth_usdt
        _require(_finite(d) and d >= 0, "min_depth_usdt", d, "a finite Decimal >= 0")
        p = self.uptime_exponent
        _require(_finite(p) and p >= 1, "uptime_exponent", p, "a finite Decimal >= 1")
        a = self.liquidity_exponent
        _require(_finite(a) and 0 <= a <= 1, "liquidity_exponent", a, "a Decimal in [0, 1]")
        u = self.min_uptime
        _require(_finite(u) and 0 <= u <= 1, "min_uptime", u, "a Decimal in [0, 1]")
        t = self.min_trades
        _require(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0,
            "min_trades",
            t,
            "an int >= 0",
        )


def spread_weight(distance_bps: Decimal, max_spread_bps: Decimal) -> Decimal:
    """S(d) = ((v − d)/v)² for 0 ≤ d < v, else 0: full weight at mid, none at the band's edge."""
    _require(_finite(distance_bps) and distance_bps >= 0, "distance_bps", distance_bps, ">= 0")
    _require(
        _finite(max_spread_bps) and max_spread_bps > 0, "max_spread_bps", max_spread_bps, "> 0"
    )
    if distance_bps >= max_spread_bps:
        return _ZERO
    ratio = (max_spread_bps - distance_bps) / max_spread_bps
    return ratio * ratio


@dataclass(frozen=True)
class RestingOrder:
    side: str
    """"BUY" or "SELL"."""
    price: Decimal
    """USDT per base unit, > 0."""
    size: Decimal
    """Base units, > 0."""

    def __post_init__(self) -> None:
        _require(self.side in (BUY, SELL), "side", self.side, '"BUY" or "SELL"')
        _require(_finite(self.price) and self.price > 0, "price", self.price, "> 0")
        _require(_finite(self.size) and self.size > 0, "size", self.size, "> 0")

    @property
    def notional(self) -> Decimal:
        """price × size, in USDT."""
        return self.price * self.size


@dataclass(frozen=True)
class Sample:
    bid_depth_usdt: Decimal
    """Σ notional of bids within the band (d < v)."""
    ask_depth_usdt: Decimal
    """Σ notional of asks within the band (d < v)."""
    spread_bps: Decimal | None
    """Own best ask − own best bid over all own orders, in bps of mid; None if a side is empty."""
    liquidity: Decimal
    """min(bid score, ask score) when quoting, else 0 (USDT)."""
    quoting: bool
    """The uptime sample: both sides present within the band with the minimum depth."""


def sample(orders: Iterable[RestingOrder], mid: Decimal, config: QScoreConfig) -> Sample:
    """One member's resting orders at one instant, measured against the symbol's mid."""
    _require(_finite(mid) and mid > 0, "mid", mid, "> 0")
    v = config.max_spread_bps
    depth = {BUY: _ZERO, SELL: _ZERO}
    score = {BUY: _ZERO, SELL: _ZERO}
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    for order in orders:
        if order.side == BUY:
            best_bid = order.price if best_bid is None else max(best_bid, order.price)
        else:
            best_ask = order.price if best_ask is None else min(best_ask, order.price)
        distance = abs(order.price - mid) / mid * BPS
        if distance < v:
            depth[order.side] += order.notional
            score[order.side] += order.notional * spread_weight(distance, v)

    spread = None if best_bid is None or best_ask is None else (best_ask - best_bid) / mid * BPS
    bid_depth, ask_depth = depth[BUY], depth[SELL]
    quoting = (
        bid_depth > 0
        and ask_depth > 0
        and bid_depth >= config.min_depth_usdt
        and ask_depth >= config.min_depth_usdt
    )
    return Sample(
        bid_depth_usdt=bid_depth,
        ask_depth_usdt=ask_depth,
        spread_bps=spread,
        liquidity=min(score[BUY], score[SELL]) if quoting else _ZERO,
        quoting=quoting,
    )


def shares(values: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Each value ÷ the sum, at the current decimal context; all 0 when the sum is 0."""
    for key, value in values.items():
        _require(_finite(value) and value >= 0, f"values[{key!r}]", value, "a Decimal >= 0")
    total = sum(values.values(), _ZERO)
    if total == 0:
        return dict.fromkeys(values, _ZERO)
    return {key: value / total for key, value in values.items()}


@dataclass(frozen=True)
class MemberDay:
    participant_id: str
    weight: Decimal
    """Capital weight, ≥ 0 (0: no longer a member of the pool; its efficiency is 0)."""
    active_samples: int
    """Sampling instants of the day while the pool was ACTIVE."""
    quoting_samples: int
    """Of those, how many had quoting=True."""
    liquidity_share_sum: Decimal
    """Σ over the active samples of this member's normalised liquidity share."""
    trade_count: int
    maker_volume_usdt: Decimal
    uptime_floor: Decimal = _ZERO
    """The member's tier SLA: the uptime it must reach."""

    def __post_init__(self) -> None:
        who = f"member {self.participant_id!r}: "
        w = self.weight
        _require(_finite(w) and w >= 0, who + "weight", w, ">= 0")
        a, q = self.active_samples, self.quoting_samples
        _require(a >= 0, who + "active_samples", a, ">= 0")
        _require(0 <= q <= a, who + "quoting_samples", q, f"in [0, active_samples={a}]")
        s = self.liquidity_share_sum
        _require(_finite(s) and s >= 0, who + "liquidity_share_sum", s, ">= 0")
        _require(self.trade_count >= 0, who + "trade_count", self.trade_count, ">= 0")
        m = self.maker_volume_usdt
        _require(_finite(m) and m >= 0, who + "maker_volume_usdt", m, ">= 0")
        f = self.uptime_floor
        _require(_finite(f) and 0 <= f <= 1, who + "uptime_floor", f, "in [0, 1]")


@dataclass(frozen=True)
class DayScore:
    participant_id: str
    uptime: Decimal
    """U = quoting/active (0 when active = 0), 6 places, rounded down."""
    liquidity_share: Decimal
    """Λ."""
    volume_share: Decimal
    """V (0 when the symbol had no maker volume)."""
    qualified: bool
    q_score: Decimal
    """10 places; one symbol-day's scores sum to exactly 1 or are all 0."""
    efficiency: Decimal
    """q ÷ (weight ÷ Σ weights), 8 places half-even."""
    sla_met: bool
    """U ≥ uptime_floor."""


def _power(base: Decimal, exponent: Decimal) -> Decimal:
    """base**exponent for base ≥ 0, with x⁰ = 1 (also 0⁰) and 0^x = 0 for x > 0."""
    if exponent == 0:
        return _ONE
    if base == 0:
        return _ZERO
    return base**exponent


def raw_score(
    uptime: Decimal,
    liquidity_share: Decimal,
    volume_share: Decimal | None,
    config: QScoreConfig,
) -> Decimal:
    """R = U^p × Λ^α × V^(1−α); with `volume_share` None (no maker volume), R = U^p × Λ.

    No gates here: `day_scores` decides who qualifies.
    """
    for name, value in (("uptime", uptime), ("liquidity_share", liquidity_share)):
        _require(_finite(value) and 0 <= value <= 1, name, value, "in [0, 1]")
    if volume_share is not None:
        _require(
            _finite(volume_share) and 0 <= volume_share <= 1,
            "volume_share",
            volume_share,
            "in [0, 1]",
        )
    alpha = config.liquidity_exponent
    with localcontext(prec=PRECISION, rounding=ROUND_HALF_EVEN):
        uptime_term = _power(uptime, config.uptime_exponent)
        if volume_share is None or alpha == 1:
            return uptime_term * liquidity_share
        if alpha == 0:
            return uptime_term * volume_share
        return uptime_term * _power(liquidity_share, alpha) * _power(volume_share, _ONE - alpha)


def _largest_remainder(raw: Sequence[Decimal], keys: Sequence[str]) -> list[Decimal]:
    """raw_i / Σ raw at `SCORE_PLACES` places, summing to exactly 1 (all 0 if Σ raw = 0).

    Exact rational arithmetic: each share is rounded down to the quantum, and the
    quanta still missing from 1 go one each to the largest remainders (ties by key).
    At most one quantum per member is missing, since each remainder is < 1 quantum.
    """
    total = sum((Fraction(r) for r in raw), Fraction(0))
    if total == 0:
        return [_ZERO.scaleb(-SCORE_PLACES)] * len(raw)
    scale = 10**SCORE_PLACES
    exact = [Fraction(r) / total * scale for r in raw]
    units = [math.floor(x) for x in exact]
    missing = scale - sum(units)
    ranked = sorted(range(len(raw)), key=lambda i: (-(exact[i] - units[i]), keys[i]))
    for i in ranked[:missing]:
        units[i] += 1
    return [Decimal(u).scaleb(-SCORE_PLACES) for u in units]


def _to_places(value: Fraction, places: int) -> Decimal:
    """An exact fraction rounded half-even to `places` decimal places."""
    scaled = round(value * 10**places)  # round() on a Fraction is exact and half-even
    return Decimal(scaled).scaleb(-places)


def day_scores(members: Sequence[MemberDay], config: QScoreConfig) -> list[DayScore]:
    """The day's scores of one symbol's members, in the order given."""
    ids = [m.participant_id for m in members]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    _require(not duplicates, "members", duplicates, "one MemberDay per participant_id")
    if not members:
        return []

    with localcontext(prec=PRECISION, rounding=ROUND_HALF_EVEN):
        share_total = sum((m.liquidity_share_sum for m in members), _ZERO)
        volume_total = sum((m.maker_volume_usdt for m in members), _ZERO)
        weight_total = sum((m.weight for m in members), _ZERO)

        uptimes: list[Decimal] = []
        liquidity: list[Decimal] = []
        volume: list[Decimal] = []
        qualified: list[bool] = []
        raw: list[Decimal] = []
        for m in members:
            u = Decimal(m.quoting_samples) / m.active_samples if m.active_samples else _ZERO
            lam = m.liquidity_share_sum / share_total if share_total else _ZERO
            vol = m.maker_volume_usdt / volume_total if volume_total else None
            # Gates on the exact fraction: quoting/active ≥ floor ⇔ quoting ≥ floor × active.
            ok = (
                m.active_samples > 0
                and m.quoting_samples >= config.min_uptime * m.active_samples
                and m.trade_count >= config.min_trades
            )
            uptimes.append(u)
            liquidity.append(lam)
            volume.append(_ZERO if vol is None else vol)
            qualified.append(ok)
            raw.append(raw_score(u, lam, vol, config) if ok else _ZERO)

    q_scores = _largest_remainder(raw, ids)
    result = []
    for i, m in enumerate(members):
        efficiency = (
            Fraction(q_scores[i]) * Fraction(weight_total) / Fraction(m.weight)
            if m.weight
            else Fraction(0)
        )
        result.append(
            DayScore(
                participant_id=m.participant_id,
                uptime=uptimes[i].quantize(UPTIME_QUANTUM, rounding=ROUND_DOWN),
                liquidity_share=liquidity[i],
                volume_share=volume[i],
                qualified=qualified[i],
                q_score=q_scores[i],
                efficiency=_to_places(efficiency, EFFICIENCY_PLACES),
                sla_met=m.quoting_samples >= m.uptime_floor * m.active_samples,
            )
        )
    return result


@dataclass(frozen=True)
class SampleRow:
    taken_at: int
    """Any sortable key for the sampling instant."""
    participant_id: str
    liquidity: Decimal
    quoting: bool
    pool_active: bool


def member_days(
    rows: Iterable[SampleRow],
    *,
    weights: Mapping[str, Decimal],
    trades: Mapping[str, int],
    maker_volume: Mapping[str, Decimal],
    uptime_floors: Mapping[str, Decimal] | None = None,
) -> list[MemberDay]:
    """The reference rollup of one symbol-day's raw samples into `MemberDay`s.

    Only samples taken while the pool was ACTIVE count. At each instant the
    liquidity is normalised across the members sampled then (`shares`), and each
    member's share is added to its `liquidity_share_sum`. Members in `weights`
    without samples get zeros. Sorted by participant_id.
    """
    floors = uptime_floors or {}
    for name, mapping in (
        ("trades", trades),
        ("maker_volume", maker_volume),
        ("uptime_floors", floors),
    ):
        unknown = sorted(set(mapping) - set(weights))
        _require(not unknown, name, unknown, "keyed by participants that have a weight")

    by_instant: dict[int, dict[str, Decimal]] = defaultdict(dict)
    active: dict[str, int] = dict.fromkeys(weights, 0)
    quoting: dict[str, int] = dict.fromkeys(weights, 0)
    for row in rows:
        if not row.pool_active:
            continue
        pid = row.participant_id
        _require(pid in weights, "rows", pid, "for participants that have a weight")
        instant = by_instant[row.taken_at]
        _require(pid not in instant, "rows", (row.taken_at, pid), "one row per instant and member")
        instant[pid] = row.liquidity
        active[pid] += 1
        quoting[pid] += int(row.quoting)

    share_sums: dict[str, Decimal] = dict.fromkeys(weights, _ZERO)
    with localcontext(prec=PRECISION, rounding=ROUND_HALF_EVEN):
        for taken_at in sorted(by_instant):
            for pid, share in shares(by_instant[taken_at]).items():
                share_sums[pid] += share

    return [
        MemberDay(
            participant_id=pid,
            weight=weights[pid],
            active_samples=active[pid],
            quoting_samples=quoting[pid],
            liquidity_share_sum=share_sums[pid],
            trade_count=trades.get(pid, 0),
            maker_volume_usdt=maker_volume.get(pid, _ZERO),
            uptime_floor=floors.get(pid, _ZERO),
        )
        for pid in sorted(weights)
    ]
