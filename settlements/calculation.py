"""Monthly settlement figures (SPEC Part B.14-B.15), aggregated in PostgreSQL.

Per participant × symbol × UTC month [start, next month's start):

    realised   = Σ mm_fills.realized_pnl_usdt of the month's fills (each fill's
                 average-cost PnL, stored 8 places half-even by the runquoter)
    fees       = Σ mm_fills.fee_usdt (paid to the venue; a maker rebate is negative)
    funding    = Σ mm_funding_payments.amount_usdt (received; paid is negative)
    gross      = realised − fees + funding

The high-water mark (per participant × symbol, carried from the latest earlier
settlement; 0 before the first):

    cumulative = previous cumulative + gross
    base       = max(0, cumulative − previous high-water mark)
    new mark   = max(previous mark, cumulative)

so a loss month yields no platform share and is carried forward: the next
months' profit first makes it good. Under PERCENTAGE_SPLIT the platform's
share is base × revenue_share_pct / 100, rounded half-even to 8 places (the one
rounding: the sums are exact, every input having 8 places); under KEEP_ALL it
is 0. The participant's net is gross − share, by subtraction, so the parts
always reconcile. The terms applied are those in force at the start of the
month (mm_participant_terms; for a participant enrolled during the month, its
first terms).

The inputs (fill and funding counts, sums and last ids, the earlier settlement
the mark came from, the terms) are hashed (SHA-256 of canonical JSON):
approval recomputes the hash and refuses if the inputs moved since the
figures were computed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db.models import Count, Max, Q, Sum

from participants.enums import RevenueModel
from participants.models import Participant, ParticipantTerms
from settlements.models import Settlement
from trading.models import MMFill, MMFundingPayment
from trading.selectors import FILL_NOTIONAL

ZERO = Decimal(0)
USDT = Decimal("0.00000001")
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
    """What the latest earlier settlement leaves: cumulative gross and the mark."""

    settlement_id: str | None = None
    cumulative: Decimal = ZERO
    high_water_mark: Decimal = ZERO


@dataclass(frozen=True)
class Figures:
    realized_pnl_usdt: Decimal
    fees_usdt: Decimal
    funding_usdt: Decimal
    gross_usdt: Decimal
    high_water_mark_usdt: Decimal
    cumulative_gross_usdt: Decimal
    share_base_usdt: Decimal
    platform_share_usdt: Decimal
    net_usdt: Decimal
    revenue_model: str
    revenue_share_pct: Decimal
    fill_count: int
    funding_count: int
    volume_usdt: Decimal
    inputs_sha256: str

    def as_fields(self) -> dict[str, Any]:
        return asdict(self)


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
    first: dt.date, *, pairs: Iterable[tuple[str, str]] | None = None
) -> dict[tuple[str, str], Activity]:
    """(participant id, symbol) → the month's sums: two GROUP BY queries, never a
    loop over fills. `pairs` narrows it to those participant × symbol pairs."""
    start, end = bounds(first)
    fill_filter = Q(filled_at__gte=start, filled_at__lt=end)
    funding_filter = Q(paid_at__gte=start, paid_at__lt=end)
    if pairs is not None:
        wanted = Q(pk__in=[])
        for pid, symbol in pairs:
            wanted |= Q(participant_id=pid, symbol=symbol)
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


def carried(participant_id: str, symbol: str, first: dt.date) -> Carried:
    """Cumulative gross and high-water mark after the latest settlement before `first`."""
    earlier = (
        Settlement.objects.filter(
            participant_id=participant_id, symbol=symbol, period_start__lt=first
        )
        .order_by("-period_start")
        .first()
    )
    if earlier is None:
        return Carried()
    return Carried(
        settlement_id=str(earlier.pk),
        cumulative=earlier.cumulative_gross_usdt,
        high_water_mark=max(earlier.high_water_mark_usdt, earlier.cumulative_gross_usdt),
    )


def figures(activity: Activity, terms: Terms, before: Carried, *, key: dict[str, str]) -> Figures:
    """The settlement's figures from its inputs (see the module docstring)."""
    gross = activity.realised - activity.fees + activity.funding
    cumulative = before.cumulative + gross
    base = max(ZERO, cumulative - before.high_water_mark)
    if terms.revenue_model == RevenueModel.PERCENTAGE_SPLIT:
        share = (base * terms.revenue_share_pct / HUNDRED).quantize(USDT, rounding=ROUND_HALF_EVEN)
    else:
        share = ZERO
    return Figures(
        realized_pnl_usdt=activity.realised,
        fees_usdt=activity.fees,
        funding_usdt=activity.funding,
        gross_usdt=gross,
        high_water_mark_usdt=before.high_water_mark,
        cumulative_gross_usdt=cumulative,
        share_base_usdt=base,
        platform_share_usdt=share,
        net_usdt=gross - share,
        revenue_model=terms.revenue_model,
        revenue_share_pct=terms.revenue_share_pct,
        fill_count=activity.fill_count,
        funding_count=activity.funding_count,
        volume_usdt=activity.volume.quantize(USDT, rounding=ROUND_HALF_EVEN),
        inputs_sha256=inputs_hash(key, activity, terms, before),
    )


def _canonical(value: object) -> str:
    """One spelling per value: 20, 20.0 and 20.00 hash alike."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def inputs_hash(key: dict[str, str], activity: Activity, terms: Terms, before: Carried) -> str:
    document = {
        "settlement": key,
        "activity": {k: _canonical(v) for k, v in asdict(activity).items()},
        "terms": {k: _canonical(v) for k, v in asdict(terms).items()},
        "carried": {k: _canonical(v) for k, v in asdict(before).items()},
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def compute(
    participant: Participant, symbol: str, first: dt.date, *, activity: Activity | None = None
) -> Figures:
    """One settlement's figures, from the database as it is now; `activity`, when
    the month's sums are already at hand (the monthly job sums every pair at once)."""
    pid = str(participant.pk)
    if activity is None:
        activity = month_activity(first, pairs=[(pid, symbol)]).get((pid, symbol), Activity())
    start, _ = bounds(first)
    return figures(
        activity,
        terms_at(participant, start),
        carried(pid, symbol, first),
        key={"participant_id": pid, "symbol": symbol, "period_start": first.isoformat()},
    )
