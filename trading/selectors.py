"""Reads over mm_orders and mm_fills: filtered lists, and the aggregates behind
the order breakdown, the 24 h fill summary and the analytics routes.

Units: sizes and volumes are in base units of the symbol; notional, fees and
VWAP are in USDT. Every aggregate is computed in SQL (exact NUMERIC). Precision
(SPEC Part B.14): money (notional, fees) is quantised once, at the end, to 8
places with ROUND_HALF_EVEN; sums of sizes are exact, at the lot's places, and
never rounded; a VWAP, a division, is rounded half-even to the places of the
prices it averages (the tick's) and AVERAGE_EXTRA_PLACES more, as the live
status shows an average entry price. Fee sums are signed: positive is paid to
the venue, negative a maker rebate. Rolling windows end at timezone.now() and
are inclusive at both ends.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from django.db.models import (
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    Max,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.functions import TruncHour
from django.utils import timezone

from common.fields import InstrumentDecimalField
from common.selectors import filter_given
from trading.enums import TERMINAL_ORDER_STATUSES, OrderStatus, Side
from trading.models import MMFill, MMOrder

_SIGNED_SIZE = Case(
    When(side=Side.BUY, then=F("size")),
    default=-F("size"),
    output_field=InstrumentDecimalField(),
)


def member_position(*, participant_id: uuid.UUID | str, symbol: str) -> Decimal:
    """Net position in base units from the member's fills (positive = long)."""
    total = MMFill.objects.filter(participant_id=participant_id, symbol=symbol).aggregate(
        q=Sum(_SIGNED_SIZE)
    )["q"]
    return total if total is not None else Decimal("0")


QUANTUM = Decimal("0.00000001")  # USDT: 8 places (SPEC Part B.14)
# A VWAP's places beyond its prices' (the tick's), as the live status's average
# entry price (quoting_worker/core/status.py).
AVERAGE_EXTRA_PLACES = 4
SUMMARY_WINDOW = dt.timedelta(hours=24)
MAX_HOURLY_HOURS = 168
# Wide enough that quantising a sum of 16-place products never overflows.
_CONTEXT = Context(prec=80, rounding=ROUND_HALF_EVEN)
# A fill's (or order's) price × size in USDT, for aggregates in the database.
FILL_NOTIONAL = ExpressionWrapper(
    F("price") * F("size"), output_field=DecimalField(max_digits=56, decimal_places=16)
)
# The decimal places a price was stored with: the tick's (common/fields.py).
_PRICE_PLACES = Func(F("price"), function="SCALE", output_field=IntegerField())
_ZERO = Decimal("0")
OPEN_ORDER_STATUSES = tuple(s for s in OrderStatus if s not in TERMINAL_ORDER_STATUSES)


def _q(value: Decimal | None) -> Decimal:
    """Quantise a sum of money to 8 places; SQL's NULL (no rows) is zero."""
    return (value if value is not None else _ZERO).quantize(QUANTUM, context=_CONTEXT)


def _size(value: Decimal | None) -> Decimal:
    """A sum of sizes as it is, exact at the lot's places; NULL (no rows) is zero."""
    return value if value is not None else _ZERO


def _vwap(
    notional: Decimal | None, volume: Decimal | None, price_places: int | None
) -> Decimal | None:
    """notional ÷ volume to the averaged prices' places and AVERAGE_EXTRA_PLACES more."""
    if not volume:
        return None
    quantum = Decimal(1).scaleb(-((price_places or 0) + AVERAGE_EXTRA_PLACES))
    return _CONTEXT.divide(notional or _ZERO, volume).quantize(quantum, context=_CONTEXT)


# --- lists ---------------------------------------------------------------------------


def order_list(
    *,
    symbol: str | None = None,
    status: str | None = None,
    side: str | None = None,
    participant_id: uuid.UUID | str | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    ordering: str = "-created_at",
) -> QuerySet[MMOrder]:
    """Orders matching every given filter; created_at in [created_from, created_to)."""
    orders = MMOrder.objects.select_related("participant")
    orders = filter_given(
        orders,
        symbol=symbol,
        status=status,
        side=side,
        participant_id=participant_id,
        created_at__gte=created_from,
        created_at__lt=created_to,
    )
    # The id breaks ties so pages never overlap or skip a row.
    return orders.order_by(ordering, "-id" if ordering.startswith("-") else "id")


def fill_list(
    *,
    symbol: str | None = None,
    side: str | None = None,
    participant_id: uuid.UUID | str | None = None,
    filled_from: dt.datetime | None = None,
    filled_to: dt.datetime | None = None,
    ordering: str = "-filled_at",
) -> QuerySet[MMFill]:
    """Fills matching every given filter; filled_at in [filled_from, filled_to).
    Each row carries `notional_usdt` = price · size."""
    fills = MMFill.objects.select_related("participant").annotate(notional_usdt=FILL_NOTIONAL)
    fills = filter_given(
        fills,
        symbol=symbol,
        side=side,
        participant_id=participant_id,
        filled_at__gte=filled_from,
        filled_at__lt=filled_to,
    )
    return fills.order_by(ordering, "-id" if ordering.startswith("-") else "id")


# --- order breakdown -----------------------------------------------------------------


@dataclass(frozen=True)
class OrderBreakdownRow:
    side: str
    status: str
    order_count: int
    total_size: Decimal
    filled_size: Decimal
    notional_usdt: Decimal


@dataclass(frozen=True)
class OrderBreakdown:
    symbol: str
    rows: list[OrderBreakdownRow]
    order_count: int
    total_size: Decimal
    filled_size: Decimal
    notional_usdt: Decimal


def order_breakdown(
    *, symbol: str, participant_id: uuid.UUID | str | None = None
) -> OrderBreakdown:
    """Order counts, total and filled size and notional (price · size) by side × status,
    every combination present (zeros where none), in one grouped query."""
    orders = MMOrder.objects.filter(symbol=symbol)
    orders = filter_given(orders, participant_id=participant_id)
    grouped = {
        (g["side"], g["status"]): g
        for g in orders.values("side", "status")
        # Annotation names must not shadow columns: FILL_NOTIONAL's F("size") would bind to it.
        .annotate(
            n=Count("id"), sized=Sum("size"), filled=Sum("filled_size"), notional=Sum(FILL_NOTIONAL)
        )
        .order_by()
    }
    rows = []
    for side in Side:
        for status in OrderStatus:
            g: Mapping[str, Any] = grouped.get((side.value, status.value), {})
            rows.append(
                OrderBreakdownRow(
                    side=side.value,
                    status=status.value,
                    order_count=g.get("n", 0),
                    total_size=_size(g.get("sized")),
                    filled_size=_size(g.get("filled")),
                    notional_usdt=_q(g.get("notional")),
                )
            )
    return OrderBreakdown(
        symbol=symbol,
        rows=rows,
        order_count=sum(r.order_count for r in rows),
        total_size=sum((r.total_size for r in rows), _ZERO),
        filled_size=sum((r.filled_size for r in rows), _ZERO),
        notional_usdt=sum((r.notional_usdt for r in rows), _ZERO),
    )


# --- fill aggregates -----------------------------------------------------------------

_BUY, _SELL = Q(side=Side.BUY), Q(side=Side.SELL)
# One conditional aggregate per figure, so a whole summary is a single query.
_FILL_AGGREGATES: dict[str, Any] = {
    "fills": Count("id"),
    "participants": Count("participant", distinct=True),
    "volume": Sum("size"),
    "notional": Sum(FILL_NOTIONAL),
    "fees": Sum("fee_usdt"),
    "buy_fills": Count("id", filter=_BUY),
    "buy_volume": Sum("size", filter=_BUY),
    "buy_notional": Sum(FILL_NOTIONAL, filter=_BUY),
    "buy_places": Max(_PRICE_PLACES, filter=_BUY),
    "sell_fills": Count("id", filter=_SELL),
    "sell_volume": Sum("size", filter=_SELL),
    "sell_notional": Sum(FILL_NOTIONAL, filter=_SELL),
    "sell_places": Max(_PRICE_PLACES, filter=_SELL),
}


@dataclass(frozen=True)
class FillSide:
    fill_count: int
    base_volume: Decimal
    notional_usdt: Decimal
    vwap: Decimal | None  # None when the side has no fills


@dataclass(frozen=True)
class FillTotals:
    fill_count: int
    participant_count: int
    base_volume: Decimal
    notional_usdt: Decimal
    fees_usdt: Decimal
    buy: FillSide
    sell: FillSide


@dataclass(frozen=True)
class FillSummary(FillTotals):
    symbol: str
    window_start: dt.datetime
    window_end: dt.datetime


def _totals(a: Mapping[str, Any]) -> FillTotals:
    return FillTotals(
        fill_count=a["fills"],
        participant_count=a["participants"],
        base_volume=_size(a["volume"]),
        notional_usdt=_q(a["notional"]),
        fees_usdt=_q(a["fees"]),
        buy=FillSide(
            fill_count=a["buy_fills"],
            base_volume=_size(a["buy_volume"]),
            notional_usdt=_q(a["buy_notional"]),
            vwap=_vwap(a["buy_notional"], a["buy_volume"], a["buy_places"]),
        ),
        sell=FillSide(
            fill_count=a["sell_fills"],
            base_volume=_size(a["sell_volume"]),
            notional_usdt=_q(a["sell_notional"]),
            vwap=_vwap(a["sell_notional"], a["sell_volume"], a["sell_places"]),
        ),
    )


def _window(now: dt.datetime | None, length: dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
    end = now or timezone.now()
    return end - length, end


def fill_summary(
    *,
    symbol: str,
    participant_id: uuid.UUID | str | None = None,
    now: dt.datetime | None = None,
) -> FillSummary:
    """The last 24 h of a symbol's fills (optionally one participant's), in one query."""
    start, end = _window(now, SUMMARY_WINDOW)
    fills = MMFill.objects.filter(symbol=symbol, filled_at__gte=start, filled_at__lte=end)
    fills = filter_given(fills, participant_id=participant_id)
    totals = _totals(fills.aggregate(**_FILL_AGGREGATES))
    return FillSummary(**vars(totals), symbol=symbol, window_start=start, window_end=end)


@dataclass(frozen=True)
class SymbolTotals(FillTotals):
    symbol: str


@dataclass(frozen=True)
class OverviewTotals:
    symbol_count: int
    fill_count: int
    participant_count: int
    notional_usdt: Decimal
    fees_usdt: Decimal
    buy_notional_usdt: Decimal
    sell_notional_usdt: Decimal


@dataclass(frozen=True)
class Overview:
    window_start: dt.datetime
    window_end: dt.datetime
    symbols: list[SymbolTotals]
    total: OverviewTotals


def analytics_overview(*, now: dt.datetime | None = None) -> Overview:
    """24 h fill totals per symbol (one grouped query) and across symbols (one more,
    because distinct participants do not add up). Base volume has no grand total:
    units of different symbols do not add."""
    start, end = _window(now, SUMMARY_WINDOW)
    fills = MMFill.objects.filter(filled_at__gte=start, filled_at__lte=end)
    per_symbol = fills.values("symbol").annotate(**_FILL_AGGREGATES).order_by("symbol")
    symbols = [SymbolTotals(**vars(_totals(a)), symbol=a["symbol"]) for a in per_symbol]
    participants = fills.aggregate(n=Count("participant", distinct=True))["n"]
    total = OverviewTotals(
        symbol_count=len(symbols),
        fill_count=sum(s.fill_count for s in symbols),
        participant_count=participants,
        notional_usdt=sum((s.notional_usdt for s in symbols), _ZERO),
        fees_usdt=sum((s.fees_usdt for s in symbols), _ZERO),
        buy_notional_usdt=sum((s.buy.notional_usdt for s in symbols), _ZERO),
        sell_notional_usdt=sum((s.sell.notional_usdt for s in symbols), _ZERO),
    )
    return Overview(window_start=start, window_end=end, symbols=symbols, total=total)


@dataclass(frozen=True)
class HourlyBucket:
    hour: dt.datetime  # the bucket's start, UTC
    fill_count: int
    base_volume: Decimal | None  # None across symbols: their units do not add
    notional_usdt: Decimal
    fees_usdt: Decimal


@dataclass(frozen=True)
class Hourly:
    symbol: str | None
    hours: int
    window_start: dt.datetime
    window_end: dt.datetime
    buckets: list[HourlyBucket]


def analytics_hourly(
    *, symbol: str | None = None, hours: int = 24, now: dt.datetime | None = None
) -> Hourly:
    """Fills per UTC hour for the last `hours` hours, the current (partial) hour last;
    every hour is present, with zeros where there were no fills. One grouped query."""
    if not 1 <= hours <= MAX_HOURLY_HOURS:
        raise ValueError(f"hours must be between 1 and {MAX_HOURLY_HOURS}, got {hours}")
    end = now or timezone.now()
    current = end.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start = current - dt.timedelta(hours=hours - 1)
    fills = MMFill.objects.filter(filled_at__gte=start, filled_at__lte=end)
    fills = filter_given(fills, symbol=symbol)
    grouped = {
        g["hour"]: g
        for g in fills.annotate(hour=TruncHour("filled_at", tzinfo=dt.UTC))
        .values("hour")
        .annotate(
            n=Count("id"), volume=Sum("size"), notional=Sum(FILL_NOTIONAL), fees=Sum("fee_usdt")
        )
        .order_by("hour")
    }
    buckets = []
    for i in range(hours):
        hour = start + dt.timedelta(hours=i)
        g: Mapping[str, Any] = grouped.get(hour, {})
        buckets.append(
            HourlyBucket(
                hour=hour,
                fill_count=g.get("n", 0),
                base_volume=_size(g.get("volume")) if symbol is not None else None,
                notional_usdt=_q(g.get("notional")),
                fees_usdt=_q(g.get("fees")),
            )
        )
    return Hourly(symbol=symbol, hours=hours, window_start=start, window_end=end, buckets=buckets)


# --- symbol metrics ------------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantPosition:
    participant_id: uuid.UUID
    participant_name: str
    net_position: Decimal  # base units, BUY + / SELL −, over all of the symbol's fills
    bought: Decimal
    sold: Decimal
    fill_count: int
    fees_usdt: Decimal


@dataclass(frozen=True)
class SymbolMetrics:
    symbol: str
    fills_24h: FillSummary
    orders_by_status: dict[str, int]
    order_count: int
    open_order_count: int
    positions: list[ParticipantPosition]


def symbol_metrics(*, symbol: str, now: dt.datetime | None = None) -> SymbolMetrics:
    """Everything about one symbol in three queries: the 24 h fill summary, order
    counts by status (every status present), and each participant's net position."""
    by_status = {s.value: 0 for s in OrderStatus}
    for g in (
        MMOrder.objects.filter(symbol=symbol).values("status").annotate(n=Count("id")).order_by()
    ):
        by_status[g["status"]] = g["n"]
    positions = [
        ParticipantPosition(
            participant_id=g["participant_id"],
            participant_name=g["participant__name"],
            net_position=_size(g["net"]),
            bought=_size(g["bought"]),
            sold=_size(g["sold"]),
            fill_count=g["n"],
            fees_usdt=_q(g["fees"]),
        )
        for g in MMFill.objects.filter(symbol=symbol)
        .values("participant_id", "participant__name")
        .annotate(
            net=Sum(_SIGNED_SIZE),
            bought=Sum("size", filter=_BUY),
            sold=Sum("size", filter=_SELL),
            n=Count("id"),
            fees=Sum("fee_usdt"),
        )
        .order_by("participant__name", "participant_id")
    ]
    return SymbolMetrics(
        symbol=symbol,
        fills_24h=fill_summary(symbol=symbol, now=now),
        orders_by_status=by_status,
        order_count=sum(by_status.values()),
        open_order_count=sum(by_status[s.value] for s in OPEN_ORDER_STATUSES),
        positions=positions,
    )
