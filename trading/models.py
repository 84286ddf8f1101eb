from __future__ import annotations

from django.db import models

from common.fields import InstrumentDecimalField
from participants.models import Participant
from trading.enums import Liquidity, OrderStatus, Side


def _usdt() -> models.DecimalField:
    # Money: USDT to 8 places (SPEC Part B.14).
    return models.DecimalField(max_digits=28, decimal_places=8)


class MMOrder(models.Model):
    """An order MMS placed (or meant to place) for a member at the venue."""

    client_order_id = models.CharField(max_length=96, unique=True)
    venue_order_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="orders")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices)
    level = models.PositiveSmallIntegerField()
    # Prices and sizes at the instrument's own precision (common/fields.py).
    price = InstrumentDecimalField()
    size = InstrumentDecimalField()
    filled_size = InstrumentDecimalField(default=0)
    status = models.CharField(max_length=16, choices=OrderStatus.choices)
    # The symbol lease's fencing token the writer held (SPEC Part B.11).
    fencing_token = models.BigIntegerField(default=0)
    reject_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "mm_orders"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__gt=0) & models.Q(size__gt=0),
                name="order_price_size_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(filled_size__gte=0)
                & models.Q(filled_size__lte=models.F("size")),
                name="order_filled_within_size",
            ),
        ]
        indexes = [
            models.Index(fields=["symbol", "created_at"]),
            models.Index(fields=["participant", "created_at"]),
            models.Index(fields=["status", "symbol"]),
            models.Index(fields=["closed_at"]),
        ]

    def __str__(self) -> str:
        return self.client_order_id


class MMFill(models.Model):
    """A fill of a member's order, attributed to the member; the venue fill id
    makes applying the same fill twice impossible."""

    fill_id = models.CharField(max_length=96, unique=True)
    # The order, until retention deletes it (trading/retention.py): the fill keeps
    # its client_order_id, and settlements read fills, never orders.
    order = models.ForeignKey(
        MMOrder, on_delete=models.SET_NULL, null=True, blank=True, related_name="fills"
    )
    client_order_id = models.CharField(max_length=96)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="fills")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices)
    price = InstrumentDecimalField()
    size = InstrumentDecimalField()
    # Positive: paid to the venue. Negative: a maker rebate received. In USDT.
    fee_usdt = _usdt()
    # The trading PnL this fill realised for its member (average cost, before
    # fees), quantised half-even to 8 places when stored: a month's settlement
    # sums these (settlements/calculation.py).
    realized_pnl_usdt = models.DecimalField(max_digits=28, decimal_places=8, default=0)
    liquidity = models.CharField(max_length=5, choices=Liquidity.choices)
    filled_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "mm_fills"
        ordering = ["-filled_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__gt=0) & models.Q(size__gt=0),
                name="fill_price_size_positive",
            ),
        ]
        indexes = [
            models.Index(fields=["symbol", "filled_at"]),
            models.Index(fields=["participant", "symbol", "filled_at"]),
            models.Index(fields=["filled_at"]),
        ]

    def __str__(self) -> str:
        return self.fill_id


class MMFundingPayment(models.Model):
    """A funding payment to (positive) or from (negative) a member's account on a
    symbol, attributed to the member; the venue's payment id makes applying it
    twice impossible. Part of member PnL, the day's loss guard and settlement."""

    payment_id = models.CharField(max_length=128, unique=True)
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="funding_payments"
    )
    symbol = models.CharField(max_length=32)
    amount_usdt = _usdt()
    paid_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "mm_funding_payments"
        ordering = ["-paid_at", "-id"]
        indexes = [
            models.Index(fields=["symbol", "paid_at"]),
            models.Index(fields=["participant", "paid_at"]),
        ]

    def __str__(self) -> str:
        return self.payment_id
