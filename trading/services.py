"""Writes of MMS's orders, fills and funding payments (SPEC Part A "Database
tables", Part B.4, B.11): the one place mm_orders, mm_fills and
mm_funding_payments change through the ORM.

Callers pass plain records (prices, sizes and amounts as Decimal, times as
aware datetimes); the quoting worker's store adapter builds them from the
core's events. Every write carries the symbol's fencing token and is refused
when the token is stale (`pools.leases.lease_check`, inside the same
transaction), so a worker that lost a symbol can never write for it again.
Fills and funding payments are stored once each (unique venue ids): a
redelivered event writes nothing.

The runquoter's write-ahead journal (quoting_worker/adapters/journal.py) is the
one other writer of mm_orders: the PENDING row of a placement, one statement
on the quote path, with no ORM; the status changes and fills after it come
through here.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import models, transaction
from django.utils import timezone

from pools.leases import lease_check
from trading.enums import TERMINAL_ORDER_STATUSES, OrderStatus
from trading.models import MMFill, MMFundingPayment, MMOrder


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order as it was sent, PENDING until the venue answers."""

    client_order_id: str
    participant_id: str
    side: str
    level: int
    price: Decimal
    size: Decimal
    sent_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OrderChange:
    """A status change of one order, as the venue answered."""

    client_order_id: str
    status: OrderStatus
    venue_order_id: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NewFill:
    """A maker fill attributed to its member, with the PnL it realised for it."""

    fill_id: str
    client_order_id: str
    participant_id: str
    side: str
    price: Decimal
    size: Decimal
    fee_usdt: Decimal
    realized_pnl_usdt: Decimal
    filled_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NewFundingPayment:
    payment_id: str
    participant_id: str
    amount_usdt: Decimal
    paid_at: dt.datetime


def orders_record(
    *,
    symbol: str,
    token: int,
    placed: Sequence[NewOrder] = (),
    changes: Sequence[OrderChange] = (),
) -> None:
    """New orders and status changes, in one transaction."""
    if not placed and not changes:
        return
    with transaction.atomic():
        lease_check(symbol=symbol, token=token)
        MMOrder.objects.bulk_create(
            [
                MMOrder(
                    client_order_id=order.client_order_id,
                    participant_id=order.participant_id,
                    symbol=symbol,
                    side=order.side,
                    level=order.level,
                    price=order.price,
                    size=order.size,
                    status=OrderStatus.PENDING,
                    fencing_token=token,
                    created_at=order.sent_at,
                )
                for order in placed
            ],
            ignore_conflicts=True,
        )
        now = timezone.now()
        # One UPDATE per run of consecutive changes that set the same values (a
        # kill's thousands of cancels are one statement, not one each), in the
        # order the venue answered.
        for same, run in itertools.groupby(changes, key=_change_values):
            updates: dict[str, object] = {**dict(same), "updated_at": now}
            if updates["status"] in TERMINAL_ORDER_STATUSES:
                updates["closed_at"] = now
            # A terminal order stays terminal: a late "accepted" never reopens it.
            MMOrder.objects.filter(
                client_order_id__in=[change.client_order_id for change in run]
            ).exclude(status__in=TERMINAL_ORDER_STATUSES).update(**updates)


def _change_values(change: OrderChange) -> tuple[tuple[str, object], ...]:
    values: tuple[tuple[str, object], ...] = (("status", change.status),)
    if change.venue_order_id:
        values += (("venue_order_id", change.venue_order_id),)
    if change.reason:
        values += (("reject_reason", change.reason),)
    return values


def _recorded(model: type[models.Model], field: str, ids: list[str]) -> set[str]:
    """Which of `ids` (a unique venue id column) are already stored."""
    return set(model._default_manager.filter(**{f"{field}__in": ids}).values_list(field, flat=True))


def fills_record(*, symbol: str, token: int, fills: Sequence[NewFill]) -> int:
    """Attributed fills, each once (unique venue fill id); the orders' filled size
    and status follow. Returns how many were new."""
    if not fills:
        return 0
    with transaction.atomic():
        lease_check(symbol=symbol, token=token)
        known = _recorded(MMFill, "fill_id", [f.fill_id for f in fills])
        new = [f for f in fills if f.fill_id not in known]
        orders = {
            o.client_order_id: o
            for o in MMOrder.objects.select_for_update().filter(
                client_order_id__in={f.client_order_id for f in new}
            )
        }
        rows = []
        for fill in new:
            order = orders.get(fill.client_order_id)
            rows.append(
                MMFill(
                    fill_id=fill.fill_id,
                    order=order,
                    client_order_id=fill.client_order_id,
                    participant_id=fill.participant_id,
                    symbol=symbol,
                    side=fill.side,
                    price=fill.price,
                    size=fill.size,
                    fee_usdt=fill.fee_usdt,
                    realized_pnl_usdt=fill.realized_pnl_usdt,
                    liquidity="MAKER",
                    filled_at=fill.filled_at,
                )
            )
            if order is not None:
                order.filled_size = min(order.size, order.filled_size + fill.size)
                if order.filled_size == order.size:
                    order.status = OrderStatus.FILLED
                    order.closed_at = timezone.now()
                elif order.status not in TERMINAL_ORDER_STATUSES:
                    order.status = OrderStatus.PARTIALLY_FILLED
        MMFill.objects.bulk_create(rows, ignore_conflicts=True)
        for order in orders.values():
            order.save(update_fields=["filled_size", "status", "closed_at", "updated_at"])
        return len(rows)


def funding_record(*, symbol: str, token: int, payments: Sequence[NewFundingPayment]) -> int:
    """Attributed funding payments, each once (unique venue payment id). Returns
    how many were new."""
    if not payments:
        return 0
    with transaction.atomic():
        lease_check(symbol=symbol, token=token)
        known = _recorded(MMFundingPayment, "payment_id", [p.payment_id for p in payments])
        rows = [
            MMFundingPayment(
                payment_id=payment.payment_id,
                participant_id=payment.participant_id,
                symbol=symbol,
                amount_usdt=payment.amount_usdt,
                paid_at=payment.paid_at,
            )
            for payment in payments
            if payment.payment_id not in known
        ]
        MMFundingPayment.objects.bulk_create(rows, ignore_conflicts=True)
        return len(rows)
