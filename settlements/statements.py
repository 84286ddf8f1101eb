"""What stands behind the settlement figures, read from the database: a
participant's monthly statement, and the evidence finance looks at before
approving one settlement (its fills, funding, daily Q-scores, and whether the
figures reconcile).

Every number is an aggregate computed by PostgreSQL over the same half-open
UTC month the settlement covers (settlements/calculation.py `bounds`), so a
summary agrees with the settlement's stored figures while the inputs are
unchanged. The query count of each read is fixed: it never grows with the
number of fills, payments or days.

Units: money in USDT (Decimal, 8 places; volume = Σ price × size, rounded
half-even to 8 places as in the settlement); q_score a share in [0, 1] and
uptime a fraction in [0, 1], their monthly means rounded half-even to their
columns' precision (10 and 6 places).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TypeVar
from uuid import UUID

from django.db.models import (
    Avg,
    Count,
    Model,
    Q,
    QuerySet,
    Sum,
)

from common.exceptions import InvalidInput
from participants.models import Participant
from performance.models import PerformanceDaily
from performance.selectors import SCORE_QUANTUM, UPTIME_QUANTUM
from settlements import calculation
from settlements.models import ParticipantMonth, Settlement
from trading.enums import Side
from trading.models import MMFill, MMFundingPayment
from trading.selectors import FILL_NOTIONAL

ZERO = Decimal(0)
FILLS_SHOWN = 50
FUNDING_SHOWN = 100

M = TypeVar("M", bound=Model)

# A UTC month, as the API publishes it: ASCII digits (\d would take the digits of
# any script, "２０２５"), years 1000 to 2999 (the next month of 9999-12 is no date).
MONTH_PATTERN = r"^[12][0-9]{3}-(?:0[1-9]|1[0-2])$"
_MONTH = re.compile(MONTH_PATTERN)


def month_parse(text: str) -> dt.date:
    """`YYYY-MM` → the month's first day; anything else is a 400 naming `month`."""
    if _MONTH.fullmatch(text) is None:  # "$" as the schema's reader has it: the end
        raise InvalidInput(
            f"month must be YYYY-MM (years 1000 to 2999), not {text!r}", field="month"
        )
    return dt.date(int(text[:4]), int(text[5:7]), 1)


# --- the aggregates ------------------------------------------------------------


@dataclass(frozen=True)
class FillsSummary:
    """One symbol's fills over a month."""

    symbol: str
    fill_count: int = 0
    buy_count: int = 0
    sell_count: int = 0
    buy_size: Decimal = ZERO
    sell_size: Decimal = ZERO
    volume_usdt: Decimal = ZERO
    fees_usdt: Decimal = ZERO
    realized_pnl_usdt: Decimal = ZERO


@dataclass(frozen=True)
class FundingSummary:
    """One symbol's funding payments over a month (received positive)."""

    symbol: str
    payment_count: int = 0
    amount_usdt: Decimal = ZERO


@dataclass(frozen=True)
class QScoreSummary:
    """One symbol's daily performance rows over a month."""

    symbol: str
    days: int = 0
    mean_q_score: Decimal = ZERO
    mean_uptime: Decimal = ZERO
    sla_days_met: int = 0


def _month_fills(participant_id: UUID | str, first: dt.date) -> QuerySet[MMFill]:
    start, end = calculation.bounds(first)
    return MMFill.objects.filter(
        participant_id=participant_id, filled_at__gte=start, filled_at__lt=end
    )


def _month_funding(participant_id: UUID | str, first: dt.date) -> QuerySet[MMFundingPayment]:
    start, end = calculation.bounds(first)
    return MMFundingPayment.objects.filter(
        participant_id=participant_id, paid_at__gte=start, paid_at__lt=end
    )


def _month_days(participant_id: UUID | str, first: dt.date) -> QuerySet[PerformanceDaily]:
    return PerformanceDaily.objects.filter(
        participant_id=participant_id,
        day__gte=first,
        day__lt=calculation.next_month(first),
    )


def _only(queryset: QuerySet[M], symbols: Iterable[str] | None) -> QuerySet[M]:
    return queryset if symbols is None else queryset.filter(symbol__in=list(symbols))


def fills_by_symbol(
    *, participant_id: UUID | str, first: dt.date, symbols: Iterable[str] | None = None
) -> dict[str, FillsSummary]:
    """symbol → the month's fills summary: one GROUP BY query."""
    buy, sell = Q(side=Side.BUY), Q(side=Side.SELL)
    rows = (
        _only(_month_fills(participant_id, first), symbols)
        .values("symbol")
        .annotate(
            n=Count("id"),
            buys=Count("id", filter=buy),
            sells=Count("id", filter=sell),
            buy_size=Sum("size", filter=buy),
            sell_size=Sum("size", filter=sell),
            volume=Sum(FILL_NOTIONAL),
            fees=Sum("fee_usdt"),
            realised=Sum("realized_pnl_usdt"),
        )
        .order_by("symbol")
    )
    return {
        row["symbol"]: FillsSummary(
            symbol=row["symbol"],
            fill_count=row["n"],
            buy_count=row["buys"],
            sell_count=row["sells"],
            buy_size=row["buy_size"] or ZERO,
            sell_size=row["sell_size"] or ZERO,
            volume_usdt=row["volume"].quantize(calculation.USDT, rounding=ROUND_HALF_EVEN),
            fees_usdt=row["fees"],
            realized_pnl_usdt=row["realised"],
        )
        for row in rows
    }


def funding_by_symbol(
    *, participant_id: UUID | str, first: dt.date, symbols: Iterable[str] | None = None
) -> dict[str, FundingSummary]:
    """symbol → the month's funding: one GROUP BY query."""
    rows = (
        _only(_month_funding(participant_id, first), symbols)
        .values("symbol")
        .annotate(n=Count("id"), amount=Sum("amount_usdt"))
        .order_by("symbol")
    )
    return {
        row["symbol"]: FundingSummary(
            symbol=row["symbol"], payment_count=row["n"], amount_usdt=row["amount"]
        )
        for row in rows
    }


def qscores_by_symbol(
    *, participant_id: UUID | str, first: dt.date, symbols: Iterable[str] | None = None
) -> dict[str, QScoreSummary]:
    """symbol → the month's daily Q-score rows summed up: one GROUP BY query."""
    rows = (
        _only(_month_days(participant_id, first), symbols)
        .values("symbol")
        .annotate(
            days=Count("id"),
            q=Avg("q_score"),
            uptime=Avg("uptime"),
            met=Count("id", filter=Q(sla_met=True)),
        )
        .order_by("symbol")
    )
    return {
        row["symbol"]: QScoreSummary(
            symbol=row["symbol"],
            days=row["days"],
            mean_q_score=row["q"].quantize(SCORE_QUANTUM, rounding=ROUND_HALF_EVEN),
            mean_uptime=row["uptime"].quantize(UPTIME_QUANTUM, rounding=ROUND_HALF_EVEN),
            sla_days_met=row["met"],
        )
        for row in rows
    }


# --- the monthly statement -------------------------------------------------------


@dataclass(frozen=True)
class StatementTotals:
    """The month's settlements added up across symbols."""

    gross_usdt: Decimal = ZERO
    platform_share_usdt: Decimal = ZERO
    net_usdt: Decimal = ZERO


@dataclass(frozen=True)
class Statement:
    participant: Participant
    period_start: dt.date
    period_end: dt.date
    settlements: list[Settlement]
    participant_month: ParticipantMonth | None
    totals: StatementTotals
    fills: list[FillsSummary]
    funding: list[FundingSummary]
    qscores: list[QScoreSummary]

    @property
    def month(self) -> str:
        return f"{self.period_start:%Y-%m}"


def statement_get(*, participant: Participant, first: dt.date) -> Statement:
    """One participant's month: its participant-month (the high-water mark and the
    share across symbols), its settlements (every symbol, every figure, its part
    of the share) and, per symbol, its fills, funding and Q-scores. Four queries,
    whatever the size."""
    settlements = list(
        Settlement.objects.filter(participant=participant, period_start=first)
        .select_related("participant_month")
        .order_by("symbol")
    )
    for settlement in settlements:
        settlement.participant = participant  # already loaded: no query per row
    totals = StatementTotals(
        gross_usdt=sum((s.gross_usdt for s in settlements), ZERO),
        platform_share_usdt=sum((s.platform_share_usdt for s in settlements), ZERO),
        net_usdt=sum((s.net_usdt for s in settlements), ZERO),
    )
    pid = participant.pk
    return Statement(
        participant=participant,
        period_start=first,
        period_end=calculation.next_month(first),
        settlements=settlements,
        participant_month=settlements[0].participant_month if settlements else None,
        totals=totals,
        fills=list(fills_by_symbol(participant_id=pid, first=first).values()),
        funding=list(funding_by_symbol(participant_id=pid, first=first).values()),
        qscores=list(qscores_by_symbol(participant_id=pid, first=first).values()),
    )


# --- one settlement's evidence (the finance panel) -------------------------------


def settlement_fills_summary(*, settlement: Settlement) -> FillsSummary:
    sums = fills_by_symbol(
        participant_id=settlement.participant_id,
        first=settlement.period_start,
        symbols=[settlement.symbol],
    )
    return sums.get(settlement.symbol, FillsSummary(symbol=settlement.symbol))


def settlement_fills(*, settlement: Settlement, limit: int = FILLS_SHOWN) -> list[MMFill]:
    """The month's first fills, oldest first."""
    fills = _month_fills(settlement.participant_id, settlement.period_start).filter(
        symbol=settlement.symbol
    )
    return list(fills.order_by("filled_at", "id")[:limit])


def settlement_funding_summary(*, settlement: Settlement) -> FundingSummary:
    sums = funding_by_symbol(
        participant_id=settlement.participant_id,
        first=settlement.period_start,
        symbols=[settlement.symbol],
    )
    return sums.get(settlement.symbol, FundingSummary(symbol=settlement.symbol))


def settlement_funding(
    *, settlement: Settlement, limit: int = FUNDING_SHOWN
) -> list[MMFundingPayment]:
    """The month's first funding payments, oldest first."""
    payments = _month_funding(settlement.participant_id, settlement.period_start).filter(
        symbol=settlement.symbol
    )
    return list(payments.order_by("paid_at", "id")[:limit])


def settlement_days(*, settlement: Settlement) -> list[PerformanceDaily]:
    """The participant's daily rows in the settlement's symbol and month (≤ 31)."""
    days = _month_days(settlement.participant_id, settlement.period_start).filter(
        symbol=settlement.symbol
    )
    return list(days.order_by("day"))


@dataclass(frozen=True)
class Reconciliation:
    """Whether the stored figures add up, within the settlement and across its
    participant-month, and whether their inputs moved since."""

    gross_expected: Decimal
    gross_ok: bool
    net_expected: Decimal
    net_ok: bool
    month_gross_expected: Decimal
    month_gross_ok: bool
    month_share_expected: Decimal
    month_share_ok: bool
    current_sha256: str
    stored_sha256: str

    @property
    def inputs_recorded(self) -> bool:
        return bool(self.stored_sha256)

    @property
    def inputs_unchanged(self) -> bool:
        return self.current_sha256 == self.stored_sha256


def settlement_reconciliation(*, settlement: Settlement) -> Reconciliation:
    """realised − fees + funding = gross and gross − share = net on the stored
    figures; the participant-month's gross and share are the sums of its
    settlements'; the inputs' hash recomputed from the database as it is now."""
    gross = settlement.realized_pnl_usdt - settlement.fees_usdt + settlement.funding_usdt
    net = settlement.gross_usdt - settlement.platform_share_usdt
    month = settlement.participant_month
    sums = month.settlements.aggregate(gross=Sum("gross_usdt"), share=Sum("platform_share_usdt"))
    current = calculation.compute(settlement.participant, settlement.period_start)
    return Reconciliation(
        gross_expected=gross,
        gross_ok=gross == settlement.gross_usdt,
        net_expected=net,
        net_ok=net == settlement.net_usdt,
        month_gross_expected=sums["gross"],
        month_gross_ok=sums["gross"] == month.gross_usdt,
        month_share_expected=sums["share"],
        month_share_ok=sums["share"] == month.platform_share_usdt,
        current_sha256=current.inputs_sha256,
        stored_sha256=month.inputs_sha256,
    )
