from django.db import models


class Side(models.TextChoices):
    BUY = "BUY"
    SELL = "SELL"


class OrderStatus(models.TextChoices):
    # Intended and sent, outcome not yet known (timeout, 5xx): stays open until
    # a query or reconciliation settles it (RELIABILITY.md).
    PENDING = "PENDING"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


TERMINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
)


class Liquidity(models.TextChoices):
    MAKER = "MAKER"
    TAKER = "TAKER"
