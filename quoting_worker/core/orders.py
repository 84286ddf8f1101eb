"""The pool's orders at the venue as the engine knows them, and the venue's
answers about them (RELIABILITY.md 1, 2, 4).

`OrderTracking` owns what the engine knows about each order beyond the member
it belongs to (whose `MemberRuntime` holds the order itself): who owns which
client order id, the pool's own resting size per price (so the microprice is
taken net of MMS's own quotes, SPEC Part B.2), which orders are being
cancelled and since when, whose placement outcome is unknown, and the queries
asked about them. An order is final only when the venue says so: a cancel
stays counted until confirmed, an unknown outcome is queried (with a growing
interval while unanswered), and "not found" is counted
NOT_FOUND_BEFORE_GIVING_UP times before an order is given up.

It decides nothing about quoting or risk: each answer returns what the venue
must be asked next (cancels, queries) and tells the engine whether its
quote may need refilling; the engine applies its own rules around that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from quoting_worker.core.ids import parse
from quoting_worker.core.member import OpenOrder, OrderState
from quoting_worker.core.membership import Member
from quoting_worker.core.risk import NS_PER_MS
from quoting_worker.core.types import (
    Action,
    CancelOrder,
    OrderAbandoned,
    OrderQueryResult,
    QueryOrder,
    Side,
    VenueOpenOrders,
)

# "Not found" answers needed before an order of unknown outcome is given up:
# a venue's "not found" can be a lagging replica, not a verdict (RELIABILITY.md).
NOT_FOUND_BEFORE_GIVING_UP = 3
QUERY_INTERVAL_NS = 500 * NS_PER_MS
# A query left unanswered (its cancel still waits for the request budget, or the
# venue is down) is asked again after twice the interval, up to 2**4 times it
# (8 s): under a starved budget, re-asking every 500 ms about each order being
# cancelled became a storm of queries that took the event loop (bench/load.py).
QUERY_BACKOFF_DOUBLINGS = 4


def placed_ns(client_order_id: str) -> int | None:
    try:
        return parse(client_order_id).ns
    except ValueError:
        return None


class OrderTracking:
    """See the module docstring. `members` and `by_short` are the engine's (by
    participant id, and participant id by short id); `now_ns` its clock."""

    def __init__(
        self,
        symbol: str,
        members: Mapping[str, Member],
        by_short: Mapping[str, str],
        now_ns: Callable[[], int],
    ) -> None:
        self.symbol = symbol
        self.members = members
        self.by_short = by_short
        self.now_ns = now_ns
        self.owner: dict[str, str] = {}  # client order id → participant id
        self.own_levels: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        self.own_version = 0  # changes with every change of own_levels (OrderBook.microprice)
        self.cancelling: set[str] = set()
        self.unknown: set[str] = set()  # orders whose placement outcome is unknown
        self.cancel_sent_ns: dict[str, int] = {}
        self.not_found: Counter[str] = Counter()
        self.last_query_ns: dict[str, int] = {}
        self.unanswered_queries: Counter[str] = Counter()

    # ------------------------------------------------------------------ ownership

    def owner_of(self, client_order_id: str) -> Member | None:
        """The member of `client_order_id`: the owner map, or for an order the
        engine forgot (a late fill, a restart) the participant its id names."""
        pid = self.owner.get(client_order_id)
        if pid is None:
            try:
                parsed = parse(client_order_id)
            except ValueError:
                return None
            if parsed.symbol != self.symbol:
                return None
            pid = self.by_short.get(parsed.short_id)
        return None if pid is None else self.members.get(pid)

    def own_add(self, side: Side, price: int, lots: int) -> None:
        self.own_version += 1
        levels = self.own_levels[side]
        total = levels.get(price, 0) + lots
        if total > 0:
            levels[price] = total
        else:
            levels.pop(price, None)

    def placed(
        self, member: Member, coid: str, side: Side, price: int, lots: int, level: int
    ) -> None:
        """A new order the engine decided to place (or found resting at a restart)."""
        member.runtime.add_order(
            client_order_id=coid, side=side, price_ticks=price, size_lots=lots, level=level
        )
        self.owner[coid] = member.spec.participant_id
        self.own_add(side, price, lots)

    def restored(self, pid: str, order: OpenOrder) -> None:
        member = self.members[pid]
        member.runtime.add_order(
            client_order_id=order.client_order_id,
            side=order.side,
            price_ticks=order.price_ticks,
            size_lots=order.remaining_lots,
            level=order.level,
            state=order.state,
        )
        self.owner[order.client_order_id] = pid
        self.own_add(order.side, order.price_ticks, order.remaining_lots)
        if order.state is OrderState.UNKNOWN:
            self.unknown.add(order.client_order_id)

    def filled(self, member: Member, order: OpenOrder | None, coid: str, lots: int) -> None:
        """A fill of `lots` of `order` (None: not resting any more) was booked."""
        if order is None:
            return
        self.own_add(order.side, order.price_ticks, -min(lots, order.remaining_lots))
        if coid not in member.runtime.open_orders:
            self.forget(coid)

    def drop(self, coid: str) -> tuple[str, Side, int] | None:
        """The order is gone at the venue; the (member, side, level) slot it held
        when it was resting (that slot may be refilled), else None."""
        member = self.owner_of(coid)
        if member is None:
            return None
        order = member.runtime.remove_order(coid)
        self.forget(coid)
        if order is None:
            return None
        self.own_add(order.side, order.price_ticks, -order.remaining_lots)
        return (member.spec.participant_id, order.side, order.level)

    def forget(self, coid: str) -> None:
        # A late fill still finds its member: the id itself names it (`owner_of`).
        self.owner.pop(coid, None)
        self.cancelling.discard(coid)
        self.cancel_sent_ns.pop(coid, None)
        self.unknown.discard(coid)
        self.not_found.pop(coid, None)
        self.last_query_ns.pop(coid, None)
        self.unanswered_queries.pop(coid, None)

    # ------------------------------------------------------------------ asking the venue

    def cancel(self, coid: str, member: Member) -> CancelOrder:
        """Marks the order as being cancelled; it stays counted until the venue confirms."""
        self.cancelling.add(coid)
        self.cancel_sent_ns[coid] = self.now_ns()
        pid, account = member.spec.participant_id, member.spec.account_id
        order = member.runtime.open_orders.get(coid)
        if order is None:
            return CancelOrder(coid, pid, account)
        return CancelOrder(coid, pid, account, order.side, order.price_ticks)

    def cancel_member(self, member: Member) -> list[Action]:
        return [
            self.cancel(coid, member)
            for coid in member.runtime.open_orders
            if coid not in self.cancelling
        ]

    def cancel_all(self, members: Iterable[Member]) -> list[Action]:
        actions: list[Action] = []
        for member in members:
            actions.extend(self.cancel_member(member))
        return actions

    def query(self, coid: str, now: int) -> QueryOrder:
        self.last_query_ns[coid] = now
        self.unanswered_queries[coid] += 1
        member = self.members[self.owner[coid]]
        return QueryOrder(coid, member.spec.account_id)

    def due_queries(self, now: int) -> list[Action]:
        """Orders to ask the venue about now: unknown placements, and cancels not yet
        confirmed after a query interval (a lost answer must not leave them be),
        each at most once per its interval (doubling while unanswered)."""
        if not self.unknown and not self.cancel_sent_ns:
            return []  # the usual case, on every timer tick of every pool
        late = {
            coid for coid, sent in self.cancel_sent_ns.items() if now - sent >= QUERY_INTERVAL_NS
        }
        actions: list[Action] = []
        for coid in sorted(self.unknown | late):
            unanswered = min(self.unanswered_queries.get(coid, 0), QUERY_BACKOFF_DOUBLINGS)
            if now - self.last_query_ns.get(coid, 0) >= QUERY_INTERVAL_NS << unanswered:
                actions.append(self.query(coid, now))
        return actions

    # ------------------------------------------------------------------ the venue's answers

    def accepted(self, coid: str) -> None:
        member = self.owner_of(coid)
        if member is not None:
            member.runtime.set_order_state(coid, OrderState.OPEN)
            self.unknown.discard(coid)

    def tracked(self, coid: str) -> bool:
        """Whether the order is resting in the engine's view."""
        member = self.owner_of(coid)
        return member is not None and coid in member.runtime.open_orders

    def outcome_unknown(self, coid: str) -> list[Action]:
        member = self.owner_of(coid)
        if member is None or member.runtime.set_order_state(coid, OrderState.UNKNOWN) is None:
            return []
        self.unknown.add(coid)
        return [self.query(coid, self.now_ns())]

    def query_result(self, result: OrderQueryResult, *, active: bool) -> tuple[list[Action], bool]:
        """What to ask next after a query's answer, and whether the order is gone
        (so the engine may quote its slot again)."""
        coid = result.client_order_id
        self.unanswered_queries.pop(coid, None)
        member = self.owner_of(coid)
        if member is None:
            return [], False
        tracked = coid in member.runtime.open_orders
        if not tracked and coid not in self.cancelling:
            return [], False
        if result.found:
            self.not_found.pop(coid, None)
            if result.open:
                if tracked:
                    member.runtime.set_order_state(coid, OrderState.OPEN)
                    self.unknown.discard(coid)
                if not tracked or coid in self.cancelling or not active:
                    return [self.cancel(coid, member)], False  # still there: ask again
                return [], False
            # Final at the venue (filled or cancelled): its fills arrive on their own.
            return [], True
        self.not_found[coid] += 1
        if self.not_found[coid] >= NOT_FOUND_BEFORE_GIVING_UP:
            reason = f"not found at the venue after {NOT_FOUND_BEFORE_GIVING_UP} queries"
            return [OrderAbandoned(coid, reason)], True
        return [], False

    def venue_open_orders(self, pid: str, venue: VenueOpenOrders, *, active: bool) -> list[Action]:
        """Reconciliation (RELIABILITY.md): an order the venue lists that the engine
        does not know, or knows it is cancelling, is cancelled; an order the engine
        believes open that the venue does not list (and that was placed before the
        listing was asked for) is queried, never simply forgotten."""
        member = self.members[pid]
        actions: list[Action] = []
        for coid in sorted(venue.client_order_ids):
            known = coid in member.runtime.open_orders
            if (not known or not active) and coid not in self.cancelling:
                self.owner.setdefault(coid, pid)
                actions.append(self.cancel(coid, member))
        now = self.now_ns()
        for coid, order in member.runtime.open_orders.items():
            placed = placed_ns(coid)
            if (
                coid not in venue.client_order_ids
                and order.state is OrderState.OPEN
                and placed is not None
                and placed < venue.ts_ns
            ):
                actions.append(self.query(coid, now))
        return actions
