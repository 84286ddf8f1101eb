"""One instrument's book in the matching engine: both sides, price → level,
each level its resting orders in arrival order (price-time priority) with
their total kept as they change."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from sortedcontainers import SortedDict

from simulator.model import Side

if TYPE_CHECKING:
    from simulator.exchange import Order

ZERO = Decimal(0)


@dataclass(slots=True)
class Level:
    # order_id → order in arrival order: FIFO at the front, O(1) removal anywhere.
    orders: OrderedDict[str, Order] = field(default_factory=OrderedDict)
    total: Decimal = ZERO  # Σ remaining of `orders`, kept as they change


class Book:
    """Both sides of one instrument: price → level, in SortedDicts (O(log n) per level)."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = SortedDict()
        self.asks = SortedDict()

    def side(self, side: Side) -> SortedDict:
        return self.bids if side == "BUY" else self.asks

    def best(self, side: Side) -> tuple[Decimal, Level] | None:
        levels = self.side(side)
        if not levels:
            return None
        price, level = levels.peekitem(-1 if side == "BUY" else 0)
        return price, level

    def levels(self, side: Side) -> Iterator[tuple[Decimal, Level]]:
        """Best first."""
        levels = self.side(side)
        for price in reversed(levels) if side == "BUY" else iter(levels):
            yield price, levels[price]

    def add(self, order: Order) -> Decimal:
        """Rests `order` at the back of its level; the level's new total."""
        levels = self.side(order.side)
        level = levels.get(order.price)
        if level is None:
            level = levels[order.price] = Level()
        level.orders[order.order_id] = order
        level.total += order.remaining
        return level.total

    def remove(self, order: Order, size: Decimal) -> Decimal:
        """Takes `size` off `order`'s level, and the order itself when it is no longer
        live; the level's new total (0 when the level is gone)."""
        levels = self.side(order.side)
        level: Level = levels[order.price]
        level.total -= size
        if not order.live:
            del level.orders[order.order_id]
        if not level.orders:
            del levels[order.price]
            return ZERO
        return level.total
