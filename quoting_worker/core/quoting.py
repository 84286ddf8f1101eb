"""From a ladder to orders: who quotes what (SPEC Part A "ProRata", Part B.2,
B.3), and what must change at the venue for it.

Plain functions over what the engine hands them:
- `member_targets`: (member, side, level) → (price ticks, lots): the pool's
  size per level split by capital weight (`allocation.allocate`), each
  member capped by its own position limit, counting the orders of unknown
  outcome it cannot replace;
- `quote_diff`: the cancels and placements that turn what rests into the
  targets, and nothing for the rest (a resting order that already matches its
  slot keeps its place in the venue's queue); every placement passes the
  pre-trade check (RELIABILITY.md 5) and is registered with the order
  tracking as it is decided.

Reducing (UNWINDING, SPEC B.20): a member's target is only on the side that
brings its position back to flat, capped at the position; and a placement
goes only while the member's orders on that side that may still be live
(resting, being cancelled, of unknown outcome, and this diff's placements)
stay within the position, so that whatever fills, |position| never grows (a
replaced order's successor waits for the cancel's answer).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from quoting_worker.core.allocation import (
    allocate,
    capacity_within,
    level_lots,
    min_notional_check,
)
from quoting_worker.core.avellaneda import Ladder
from quoting_worker.core.member import OpenOrder, OrderState
from quoting_worker.core.membership import Member
from quoting_worker.core.orders import OrderTracking
from quoting_worker.core.risk import PreTradeCheck
from quoting_worker.core.types import Action, Instrument, PlaceOrder, PoolParams, Side

Slot = tuple[str, Side, int]  # (participant_id, side, level)
Targets = dict[Slot, tuple[int, int]]  # slot → (price ticks, lots)
# A price's pool lots and the venue's minimum-notional test there.
LevelOf = Callable[[int], tuple[int, Callable[[int], bool]]]


@dataclass(slots=True)
class LastQuote:
    """The pool's last quote: when, off which microprice, the ladder, and (shadow
    mode) the targets last reported."""

    ns: int | None = None
    micro: float | None = None  # None after a withdrawal: the next quote re-prices
    ladder: Ladder | None = None
    ladder_micro: float | None = None  # the microprice `ladder` was made off (ticks)
    shadow: Targets = field(default_factory=dict)


class LevelSizes:
    """The pool's lots at a price and the venue's minimum-notional test there,
    remembered per price (exact Decimal work, done once per price and config)."""

    MAX_PRICES = 10_000

    def __init__(self, order_size_usdt: Decimal, instrument: Instrument) -> None:
        self.order_size_usdt = order_size_usdt
        self.instrument = instrument
        self._cache: dict[int, tuple[int, Callable[[int], bool]]] = {}

    def __call__(self, price: int) -> tuple[int, Callable[[int], bool]]:
        cached = self._cache.get(price)
        if cached is None:
            if len(self._cache) > self.MAX_PRICES:
                self._cache.clear()
            cached = (
                level_lots(self.order_size_usdt, price, self.instrument),
                min_notional_check(self.instrument, price),
            )
            self._cache[price] = cached
        return cached


class NewId(Protocol):
    def __call__(self, *, short_id: str, symbol: str, level: int, side: Side) -> str: ...


def locked_lots(member: Member) -> tuple[int, int]:
    """(buy, sell) lots a re-quote cannot replace: orders of unknown outcome."""
    buy = sell = 0
    for order in member.runtime.open_orders.values():
        if order.state is OrderState.UNKNOWN:
            if order.side is Side.BUY:
                buy += order.remaining_lots
            else:
                sell += order.remaining_lots
    return buy, sell


def reducing_capacity(side: Side, position_lots: int, locked_lots: int) -> int:
    """Lots a member may quote on `side` while unwinding: its position, on the
    side that reduces it, less what it cannot replace; nothing on the other."""
    if side is Side.SELL:
        return max(0, position_lots - locked_lots)
    return max(0, -position_lots - locked_lots)


def live_lots(member: Member, side: Side) -> int:
    """The member's lots on `side` that may still be live at the venue: every
    order the engine tracks, resting, being cancelled or of unknown outcome."""
    return sum(o.remaining_lots for o in member.runtime.open_orders.values() if o.side is side)


def member_targets(
    ladder: Ladder,
    members: Sequence[Member],
    *,
    limits: Sequence[int],
    level_of: LevelOf,
    min_lots: int,
    reducing: bool = False,
) -> Targets:
    """See the module docstring; `limits`: each member's position limit in lots."""
    pids = [m.spec.participant_id for m in members]
    weights = [m.weight for m in members]
    locked = [locked_lots(m) for m in members]
    targets: Targets = {}
    for side, prices in ((Side.BUY, ladder.bids), (Side.SELL, ladder.asks)):
        caps = [
            (
                reducing_capacity(side, m.runtime.position_lots, locked[i][side is Side.SELL])
                if reducing
                else capacity_within(
                    side, m.runtime.position_lots, locked[i][side is Side.SELL], limits[i]
                )
            )
            if m.weight
            else 0
            for i, m in enumerate(members)
        ]
        # While no eligible member is near its cap, a split depends on the level's
        # total alone: levels of equal size share one computation.
        split: dict[int, list[int]] = {}
        for level, price in enumerate(prices):
            total, notional_ok = level_of(price)
            if total <= 0:
                continue
            roomy = all(c >= total for c in caps if c > 0)
            lots = split.get(total) if roomy else None
            if lots is None:
                lots = allocate(total, weights, caps, min_lots, notional_ok)
                if roomy:
                    split[total] = lots
            for i, member_lots in enumerate(lots):
                if member_lots:
                    caps[i] -= member_lots
                    targets[(pids[i], side, level)] = (price, member_lots)
    return targets


def quote_diff(
    targets: Targets,
    *,
    members: Mapping[str, Member],
    orders: OrderTracking,
    pretrade: PreTradeCheck,
    params: PoolParams,
    max_order_lots: int,
    mid: float,
    best_bid: int | None,
    best_ask: int | None,
    new_id: NewId,
    symbol: str,
    reducing: bool = False,
    only: Collection[Slot] | None = None,
    unplaced: set[Slot] | None = None,
) -> list[Action]:
    """Cancels and places for what differs from what rests; nothing for the rest.
    Cancels first: freeing a price level before taking a new one. `reducing`:
    placements within each member's reducing room (the module docstring).

    `only`: these slots alone are looked at, with the orders of their members
    (a refill whose targets are the last diff's: every other slot was settled
    then and nothing that could unsettle it has happened). `unplaced`: gets the
    slots looked at that have a target but no order after this diff (refused,
    blocked, waiting); the caller looks at them again at its next refill."""
    cancels: list[Action] = []
    places: list[Action] = []
    resting: dict[Slot, OpenOrder] = {}
    blocked: set[Slot] = set()
    walked: Iterable[Member] = members.values()
    wanted: Iterable[tuple[Slot, tuple[int, int]]] = targets.items()
    if only is not None:
        walked = [members[pid] for pid in {slot[0] for slot in only} if pid in members]
        # In the targets' order: each level's members in queue order (fairness).
        wanted = [(slot, target) for slot, target in targets.items() if slot in only]
    for member in walked:
        pid = member.spec.participant_id
        for coid, order in member.runtime.open_orders.items():
            slot = (pid, order.side, order.level)
            if order.state is OrderState.UNKNOWN:
                blocked.add(slot)
            elif coid not in orders.cancelling:
                if slot in resting or targets.get(slot) != (
                    order.price_ticks,
                    order.remaining_lots,
                ):
                    cancels.append(orders.cancel(coid, member))
                else:
                    resting[slot] = order
    # Prices each member keeps resting per side: the pre-trade duplicate check.
    kept: dict[tuple[str, Side], set[int]] = {}
    for (pid, side, _level), order in resting.items():
        kept.setdefault((pid, side), set()).add(order.price_ticks)
    # Reducing: lots each member may still place per side, after every order of
    # that side that may still be live (what is cancelled now included).
    room: dict[tuple[str, Side], int] = {}
    if reducing:
        for pid, member in members.items():
            position = member.runtime.position_lots
            side = Side.SELL if position > 0 else Side.BUY
            room[(pid, side)] = abs(position) - live_lots(member, side)
    for slot, (price, lots) in wanted:
        if slot in resting:
            continue
        if slot in blocked:
            if unplaced is not None:
                unplaced.add(slot)
            continue
        pid, side, level = slot
        member = members[pid]
        if reducing:
            left = room.get((pid, side), 0)
            if lots > left:
                if unplaced is not None:
                    unplaced.add(slot)
                continue  # waits for a cancel's answer, or the position is smaller now
            room[(pid, side)] = left - lots
        prices = kept.setdefault((pid, side), set())
        reason = pretrade.refuse_reason(
            side=side,
            price_ticks=price,
            size_lots=lots,
            mid_ticks=mid,
            best_bid=best_bid,
            best_ask=best_ask,
            params=params,
            max_order_lots=max_order_lots,
            resting_prices=prices,
        )
        if reason is not None:
            if unplaced is not None:
                unplaced.add(slot)
            continue
        prices.add(price)
        coid = new_id(short_id=member.spec.short_id, symbol=symbol, level=level, side=side)
        orders.placed(member, coid, side, price, lots, level)
        places.append(PlaceOrder(coid, pid, member.spec.account_id, side, level, price, lots))
    return cancels + places
