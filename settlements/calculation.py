"""Monthly settlement figures (SPEC Part B.14-B.15, B.21), aggregated in PostgreSQL.

Per participant × symbol × UTC month [start, next month's start):

    realised   = Σ mm_fills.realized_pnl_usdt of the month's fills (each fill's
                 average-cost PnL, stored 8 places half-even by the runquoter)
    fees       = Σ mm_fills.fee_usdt (paid to the venue; a maker rebate is negative)
    funding    = Σ mm_funding_payments.amount_usdt (received; paid is negative)
    gross      = realised − fees + funding

The high-water mark is the participant's, across its symbols (B.21), carried
from its latest earlier participant-month (0 before the first):

    month gross = Σ over the participant's symbols of gross
    cumulative  = previous cumulative + month gross
    base        = max(0, cumulative − previous mark)
    new mark    = max(previous mark, cumulative)

so a loss, in a month or in a symbol, yields no platform share and is carried
forward: profit anywhere first makes it good. Under PERCENTAGE_SPLIT the
month's share is base × revenue_share_pct / 100, rounded half-even to 8 places
(the one rounding: the sums are exact, every input having 8 places); under
KEEP_ALL it is 0. The terms applied are those in force at the start of the
month (mm_participant_terms; for a participant enrolled during the month, its
first terms).

The share is allocated to the symbols pro rata to positive gross (a symbol
whose gross is ≤ 0 gets none): each symbol's exact part share × gross⁺ / Σ gross⁺
is rounded down to 1e-8, and the quanta still missing from the share (fewer
than the symbols with a positive gross) go one each to the largest remainders,
ties to the symbol first in alphabetical order. The parts sum to the share
exactly, and no symbol's part exceeds its gross. Each symbol's net is its
gross − its part, by subtraction, so the parts always reconcile.

The inputs (per symbol the fill and funding counts, sums and last ids; the
participant-month the mark came from; the terms) are hashed (SHA-256 of
canonical JSON): approval recomputes the hash and refuses if the inputs
moved since the figures were computed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db.models import Count, Max, Q, Sum

from participants.enums import RevenueModel
from participants.models import Participant, ParticipantTerms
from settlements.enums import HighWaterMarkScope
from settlements.models import ParticipantMonth
from trading.models import MMFill, MMFundingPayment
from trading.selectors import FILL_NOTIONAL

ZERO = Decimal(0)
USDT = Decimal("0.00000001")
USDT_PLACES = 8
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Activity:
    """One participant × symbol's month, as the database sums it."""

    fill_count: int = 0
    realised: Decimal = ZERO
    fees: Decimal = ZERO
    volume: Decimal = ZERO
    last_fill_id: int = 0
    funding_count: int = 0
    funding: Decimal = ZERO
    last_funding_id: int = 0


@dataclass(frozen=True)
class Terms:
    revenue_model: str
    revenue_share_pct: Decimal


@dataclass(frozen=True)
class Carried:
    """What the participant's latest earlier month leaves: cumulative gross and the mark."""

    participant_month_id: str | None = None
    cumulative: Decimal = ZERO
    high_water_mark: Decimal = ZERO


@dataclass(frozen=True)
class SymbolFigures:
    """One settlement's figures: the symbol's month and its part of the share."""

    realized_pnl_usdt: Decimal
    fees_usdt: Decimal
    funding_usdt: Decimal
    gross_usdt: Decimal
    platform_share_usdt: Decimal
    net_usdt: Decimal
    fill_count: int
    funding_count: int
    volume_usdt: Decimal


@dataclass(frozen=True)
class MonthFigures:
    """One participant-month: the figures across symbols and each symbol's."""

    gross_usdt: Decimal
    positive_gross_usdt: Decimal
    high_water_mark_usdt: Decimal
    cumulative_gross_usdt: Decimal
    high_water_mark_after_usdt: Decimal
    share_base_usdt: Decimal
    platform_share_usdt: Decimal
    net_usdt: Decimal
    revenue_model: str
    revenue_share_pct: Decimal
    inputs_sha256: str
    symbols: dict[str, SymbolFigures] = field(default_factory=dict)

    def month_fields(self) -> dict[str, Any]:
        """The ParticipantMonth's fields."""
        fields = {k: v for k, v in asdict(self).items() if k != "symbols"}
        return {**fields, "high_water_mark_scope": HighWaterMarkScope.PARTICIPANT}

    def settlement_fields(self, symbol: str) -> dict[str, Any]:
        """The Settlement's fields for `symbol`."""
        return {
            **asdict(self.symbols[symbol]),
            "revenue_model": self.revenue_model,
            "revenue_share_pct": self.revenue_share_pct,
            "inputs_sha256": self.inputs_sha256,
        }


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(first: dt.date) -> dt.date:
    return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def bounds(first: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC month starting `first`, half-open."""
    if first.day != 1:
        raise ValueError(f"a settlement month starts on the 1st, not {first}")
    start = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
    return start, dt.datetime.combine(next_month(first), dt.time(), tzinfo=dt.UTC)


def month_activity(
    first: dt.date, *, participant_ids: Iterable[str] | None = None
) -> dict[tuple[str, str], Activity]:
    """(participant id, symbol) → the month's sums: two GROUP BY queries, never a
    loop over fills. `participant_ids` narrows it to those participants."""
    start, end = bounds(first)
    fill_filter = Q(filled_at__gte=start, filled_at__lt=end)
    funding_filter = Q(paid_at__gte=start, paid_at__lt=end)
    if participant_ids is not None:
        wanted = Q(participant_id__in=list(participant_ids))
        fill_filter &= wanted
        funding_filter &= wanted
    fills = (
        MMFill.objects.filter(fill_filter)
        .values("participant_id", "symbol")
        .annotate(
            n=Count("id"),
            realised=Sum("realized_pnl_usdt"),
            fees=Sum("fee_usdt"),
            volume=Sum(FILL_NOTIONAL),
            last=Max("id"),
        )
        .order_by()
    )
    funding = (
        MMFundingPayment.objects.filter(funding_filter)
        .values("participant_id", "symbol")
        .annotate(n=Count("id"), amount=Sum("amount_usdt"), last=Max("id"))
        .order_by()
    )
    result: dict[tuple[str, str], dict[str, Any]] = {}
    for row in fills:
        result.setdefault((str(row["participant_id"]), row["symbol"]), {}).update(
            fill_count=row["n"],
            realised=row["realised"],
            fees=row["fees"],
            volume=row["volume"],
            last_fill_id=row["last"],
        )
    for paid in funding:
        result.setdefault((str(paid["participant_id"]), paid["symbol"]), {}).update(
            funding_count=paid["n"], funding=paid["amount"], last_funding_id=paid["last"]
        )
    return {key: Activity(**values) for key, values in result.items()}


def by_participant(
    activity: Mapping[tuple[str, str], Activity],
) -> dict[str, dict[str, Activity]]:
    """participant id → symbol → its month, each in sorted order."""
    grouped: dict[str, dict[str, Activity]] = {}
    for (pid, symbol), month in sorted(activity.items()):
        grouped.setdefault(pid, {})[symbol] = month
    return grouped


def terms_at(participant: Participant, instant: dt.datetime) -> Terms:
    """The revenue terms in force at `instant`: the latest set at or before it; for
    a participant enrolled later, its first; without any record, its current ones."""
    history = ParticipantTerms.objects.filter(participant=participant)
    row = history.filter(effective_at__lte=instant).order_by("-effective_at", "-id").first()
    if row is None:
        row = history.order_by("effective_at", "id").first()
    if row is None:
        return Terms(participant.revenue_model, participant.revenue_share_pct)
    return Terms(row.revenue_model, row.revenue_share_pct)


def carried(participant_id: str, first: dt.date) -> Carried:
    """Cumulative gross and high-water mark after the participant's latest month before `first`."""
    earlier = (
        ParticipantMonth.objects.filter(participant_id=participant_id, period_start__lt=first)
        .order_by("-period_start")
        .first()
    )
    if earlier is None:
        return Carried()
    return Carried(
        participant_month_id=str(earlier.pk),
        cumulative=earlier.cumulative_gross_usdt,
        high_water_mark=earlier.high_water_mark_after_usdt,
    )


def _units(amount: Decimal) -> int:
    """An amount of at most 8 places as a whole number of 1e-8 USDT."""
    scaled = amount.scaleb(USDT_PLACES)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than {USDT_PLACES} places")
    return int(scaled)


def _amount(units: int) -> Decimal:
    return Decimal(units).scaleb(-USDT_PLACES).quantize(USDT)


def allocate(share: Decimal, gross: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """`share` split over the symbols of `gross` pro rata to their positive gross,
    by the largest-remainder rule of the module docstring; the parts sum to
    `share` exactly. Integer arithmetic in 1e-8 units: nothing is approximated."""
    weights = {symbol: max(0, _units(g)) for symbol, g in gross.items()}
    total_weight = sum(weights.values())
    total = _units(share)
    if total < 0:
        raise ValueError(f"a share is never negative, got {share}")
    if total and total_weight == 0:
        raise ValueError(f"a share of {share} with no positive gross to allocate it to")
    if total == 0:
        return {symbol: _amount(0) for symbol in gross}
    parts = {symbol: total * w // total_weight for symbol, w in weights.items()}
    remainders = {symbol: total * w % total_weight for symbol, w in weights.items()}
    missing = total - sum(parts.values())
    for symbol in sorted(weights, key=lambda s: (-remainders[s], s))[:missing]:
        parts[symbol] += 1
    return {symbol: _amount(units) for symbol, units in parts.items()}


def symbol_figures(activity: Activity, share: Decimal) -> SymbolFigures:
    gross = activity.realised - activity.fees + activity.funding
    return SymbolFigures(
        realized_pnl_usdt=activity.realised,
        fees_usdt=activity.fees,
        funding_usdt=activity.funding,
        gross_usdt=gross,
        platform_share_usdt=share,
        net_usdt=gross - share,
        fill_count=activity.fill_count,
        funding_count=activity.funding_count,
        volume_usdt=activity.volume.quantize(USDT, rounding=ROUND_HALF_EVEN),
    )


def figures(
    activity: Mapping[str, Activity],
    terms: Terms,
    before: Carried,
    *,
    key: dict[str, str],
    symbols: Iterable[str] = (),
) -> MonthFigures:
    """The participant-month's figures from its inputs (see the module docstring);
    `activity` maps each symbol to its month; `symbols` without activity (a
    settlement whose fills are gone) get zero figures and leave the hash alone."""
    gross = {symbol: a.realised - a.fees + a.funding for symbol, a in activity.items()}
    month_gross = sum(gross.values(), ZERO)
    cumulative = before.cumulative + month_gross
    base = max(ZERO, cumulative - before.high_water_mark)
    if terms.revenue_model == RevenueModel.PERCENTAGE_SPLIT:
        share = (base * terms.revenue_share_pct / HUNDRED).quantize(USDT, rounding=ROUND_HALF_EVEN)
    else:
        share = ZERO
    parts = allocate(share, gross)
    return MonthFigures(
        gross_usdt=month_gross,
        positive_gross_usdt=sum((g for g in gross.values() if g > 0), ZERO),
        high_water_mark_usdt=before.high_water_mark,
        cumulative_gross_usdt=cumulative,
        high_water_mark_after_usdt=max(before.high_water_mark, cumulative),
        share_base_usdt=base,
        platform_share_usdt=share,
        net_usdt=month_gross - share,
        revenue_model=terms.revenue_model,
        revenue_share_pct=terms.revenue_share_pct,
        inputs_sha256=inputs_hash(key, activity, terms, before),
        symbols={
            symbol: symbol_figures(activity.get(symbol, Activity()), parts.get(symbol, ZERO))
            for symbol in sorted({*activity, *symbols})
        },
    )


def _canonical(value: object) -> str:
    """One spelling per value: 20, 20.0 and 20.00 hash alike."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def inputs_hash(
    key: dict[str, str], activity: Mapping[str, Activity], terms: Terms, before: Carried
) -> str:
    document = {
        "participant_month": key,
        "activity": {
            symbol: {k: _canonical(v) for k, v in asdict(month).items()}
            for symbol, month in activity.items()
        },
        "terms": {k: _canonical(v) for k, v in asdict(terms).items()},
        "carried": {k: _canonical(v) for k, v in asdict(before).items()},
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def compute(
    participant: Participant,
    first: dt.date,
    *,
    activity: Mapping[str, Activity] | None = None,
    symbols: Iterable[str] = (),
) -> MonthFigures:
    """One participant-month's figures, from the database as it is now; `activity`
    (symbol → month), when the month's sums are already at hand (the monthly job
    sums every participant at once); `symbols`, those of its settlements (see
    `figures`)."""
    pid = str(participant.pk)
    if activity is None:
        activity = by_participant(month_activity(first, participant_ids=[pid])).get(pid, {})
    start, _ = bounds(first)
    return figures(
        activity,
        terms_at(participant, start),
        carried(pid, first),
        key={"participant_id": pid, "period_start": first.isoformat()},
        symbols=symbols,
    )
