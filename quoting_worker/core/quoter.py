"""The Quoter: when one pool quotes, and what it sends when it does.

It owns the re-quote decision and its state: the last quote (when, off which
microprice, the ladder), whether something changed since (`dirty`: a fill,
members, config, a snapshot), whether an order went while nothing else
changed (`freed`). Asked to quote, it:

1. throttles: not within `quote_interval_ms` of the last quote, and not
   unless the microprice (net of the pool's own orders) moved at least
   `price_threshold_bps` or something changed; a freed slot alone is
   refilled at the last quote's prices, not re-priced (core/engine.py says
   why);
2. prices: never off a stale book, never before σ is warmed up; the
   Avellaneda-Stoikov ladder at the pool's inventory;
3. allocates and diffs (core/quoting.py): the members' targets, then the
   cancels and placements that make what rests match them, each placement
   through the pre-trade check; in shadow mode the targets are reported as
   simulated quotes instead. At each price the members' placements go in
   fair queue order (core/fairness.py).

Incremental (issue 20): the book remembers its microprice until a delta
reaches the net best or the pool's own orders change; the targets are kept
while their inputs (ladder, members in queue order with weights, positions
and limits, orders of unknown outcome) are the same; and a refill with
unchanged targets diffs only the slots freed since and those the last diff
left empty, not every order. `incremental = False` turns the last two off:
tests/core/test_incremental_requote.py holds the two ways to the same actions.

The engine decides whether the gate is open (mode, instrument, sync,
suspension); the Quoter trusts that and reads the market through the book and
the volatility tracker it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from time import perf_counter_ns

from quoting_worker.core.allocation import level_lots
from quoting_worker.core.avellaneda import ASEngine, Ladder
from quoting_worker.core.book import OrderBook
from quoting_worker.core.fairness import FillShares
from quoting_worker.core.ids import ClientOrderIds
from quoting_worker.core.membership import Membership
from quoting_worker.core.orders import OrderTracking
from quoting_worker.core.quoting import (
    LastQuote,
    LevelSizes,
    Slot,
    Targets,
    member_targets,
    quote_diff,
)
from quoting_worker.core.risk import NS_PER_MS, PoolRiskGuards, PreTradeCheck
from quoting_worker.core.types import Action, Instrument, PoolParams, Side, SimulatedQuote
from quoting_worker.core.volatility import VolatilityTracker

# The largest single order the pre-trade check lets through, as a multiple of
# the pool's per-level size: a fat-finger stop, not a sizing rule.
MAX_ORDER_MULTIPLE = 2


class Quoter:
    """One pool's re-quote decision and its output. Owned by its PoolEngine."""

    def __init__(
        self,
        *,
        instrument: Instrument,
        book: OrderBook,
        membership: Membership,
        orders: OrderTracking,
        guards: PoolRiskGuards,
        ids: ClientOrderIds,
        shadow: bool,
    ) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.book = book
        self.membership = membership
        self.orders = orders
        self.guards = guards
        self.pretrade = PreTradeCheck(instrument)
        self.ids = ids
        self.shadow = shadow
        self.last = LastQuote()
        # The day's fills against each member's share of size: who stands first
        # at a price (core/fairness.py).
        self.shares = FillShares()
        self.dirty = True
        # The slots of orders that went (cancelled, rejected, given up) since the
        # last quote: while nothing else changed they are refilled at the last
        # quote's prices, not re-priced. With the slots the last diff left without
        # an order though they have a target (refused, blocked, waiting), they are
        # all a refill whose targets are unchanged looks at.
        self.freed: set[Slot] = set()
        self.unplaced: set[Slot] = set()
        # The last targets and everything they were worked out from (`_targets`).
        self.targets: Targets = {}
        self.targets_key: tuple[object, ...] | None = None
        # False: every re-quote works out and diffs every slot (the reference the
        # tests compare the incremental path with; tests/test_core_builds.py).
        self.incremental = True
        self.reducing = False  # UNWINDING's quotes (see `maybe`)
        # Told each quote's decision time and the allocation's share of it, in ns
        # (the worker's latency histograms); None costs nothing.
        self.on_quote: Callable[[int, int], None] | None = None

    def configure(self, params: PoolParams) -> None:
        """New pool parameters: the ladder's model, the level sizes, the throttle."""
        self.params = params
        self.as_engine = ASEngine(params, self.instrument.tick_size)
        self.level_sizes = LevelSizes(params.order_size_usdt, self.instrument)
        self.interval_ns = params.quote_interval_ms * NS_PER_MS
        self.threshold = params.price_threshold_bps / 10_000

    def invalidate(self) -> None:
        """Forget everything worked out: the next quote reads the book's
        microprice, prices, allocates and diffs every slot from scratch."""
        self.configure(self.params)
        self.dirty = True
        self.targets_key = None
        self.book.forget_microprice()

    def withdrawn(self) -> None:
        """Every quote was cancelled: the next one is priced afresh."""
        self.last.micro = None
        self.last.shadow.clear()
        self.targets_key = None
        self.freed.clear()
        self.unplaced.clear()

    def slot_freed(self, slot: Slot) -> None:
        """An order that rested in `slot` is gone (cancelled, rejected, given up)."""
        self.freed.add(slot)

    def book_fresh(self, now_ns: int) -> bool:
        """Whether the book was heard from within the staleness threshold at `now_ns`."""
        return self.guards.check_stale(now_ns, self.book.last_received_ns, self.params) is None

    def maybe(
        self, now: int, mark: Decimal, vol: VolatilityTracker, *, reducing: bool = False
    ) -> list[Action]:
        """A quote if one is due (the gate is the caller's: it is open); `reducing`
        (UNWINDING): only orders that bring each member back towards flat."""
        self.reducing = reducing
        last = self.last
        if last.ns is not None and now - last.ns < self.interval_ns:
            return []
        own = self.orders.own_levels
        micro = self.book.microprice(own[Side.BUY], own[Side.SELL], self.orders.own_version)
        if micro is None:
            return []
        if (
            not self.dirty
            and last.micro is not None
            and abs(micro - last.micro) < self.threshold * last.micro
        ):
            if self.freed and last.ladder is not None:
                return self._quote(now, last.micro, mark, vol, refill=last.ladder)
            return []
        return self._quote(now, micro, mark, vol)

    def _quote(
        self,
        now: int,
        micro: float,
        mark: Decimal,
        vol: VolatilityTracker,
        *,
        refill: Ladder | None = None,
    ) -> list[Action]:
        """A new ladder from `micro`, or, given `refill` (the last quote's ladder),
        the same prices again for whatever slot has no order."""
        if not self.book_fresh(now):
            # Never a quote off old data. The halt is the timer's to decide (the
            # engine's `_on_timer`): here the data may only be old because newer
            # messages still wait in the queue behind a backlog.
            return []
        sigma = vol.sigma(now)
        mid = self.book.mid_ticks()
        if sigma is None or mid is None:
            return []  # warming up: no quotes until σ is known
        started = perf_counter_ns()
        best_bid, best_ask = self.book.best_bid(), self.book.best_ask()
        if refill is not None:
            ladder = refill
        else:
            q = float(self.instrument.size(self.membership.q_lots())) - self.params.target_inventory
            ladder = self.as_engine.ladder(
                microprice_ticks=micro,
                mid_ticks=mid,
                q=q,
                sigma=sigma,
                best_bid=best_bid,
                best_ask=best_ask,
            )
            self.last.ns, self.last.micro, self.last.ladder = now, micro, ladder
            self.last.ladder_micro = micro
            self.dirty = False
        allocating = perf_counter_ns()
        targets, unchanged = self._targets(ladder, mark, now, mid)
        allocated = perf_counter_ns()
        if self.shadow:
            actions = self._simulate(targets)
        elif refill is not None and unchanged and not self.reducing:
            # Only orders went since the last diff: their slots, and those it left
            # empty, are all that can differ from the targets.
            only = self.freed | self.unplaced
            self.unplaced.difference_update(only)
            actions = self._diff(targets, mid, best_bid, best_ask, only=only)
        else:
            self.unplaced.clear()
            actions = self._diff(targets, mid, best_bid, best_ask)
        self.freed.clear()
        if self.on_quote is not None:
            self.on_quote(perf_counter_ns() - started, allocated - allocating)
        return actions

    def _targets(self, ladder: Ladder, mark: Decimal, now: int, mid: float) -> tuple[Targets, bool]:
        """The members' targets, each level's in queue order: the member furthest
        behind its share of fills first (core/fairness.py). Reducing: each member
        only on the side back to flat, at most its position, within the band.

        With whether they are the last ones, unchanged: the same ladder, members
        in the same order with the same weights, positions and limits, the same
        orders of unknown outcome, not reducing. Those are worked out again only
        when one of them changed."""
        members = list(self.membership.members.values())
        members = self.shares.queue([m.spec.participant_id for m in members], members, now)
        limits = [self.membership.limit_lots(m, mark) for m in members]
        key: tuple[object, ...] | None = None
        if not self.reducing:
            key = (
                ladder,
                tuple(
                    (m.spec.participant_id, m.weight, m.runtime.position_lots, limit)
                    for m, limit in zip(members, limits, strict=True)
                ),
                tuple(sorted(self.orders.unknown)),
            )
            if key == self.targets_key and self.incremental:
                return self.targets, True
        if self.reducing:
            band = self.params.unwind_band_bps / 10_000 * mid
            ladder = replace(
                ladder,
                bids=tuple(p for p in ladder.bids if p >= mid - band),
                asks=tuple(p for p in ladder.asks if p <= mid + band),
            )
        targets = member_targets(
            ladder,
            members,
            limits=limits,
            level_of=self.level_sizes,
            min_lots=self.instrument.min_lots,
            reducing=self.reducing,
        )
        self.shares.quoted(targets)
        self.targets, self.targets_key = targets, key
        return targets, False

    def _diff(
        self,
        targets: Targets,
        mid: float,
        best_bid: int | None,
        best_ask: int | None,
        *,
        only: set[Slot] | None = None,
    ) -> list[Action]:
        max_lots = MAX_ORDER_MULTIPLE * max(
            1, level_lots(self.params.order_size_usdt, max(1, int(mid)), self.instrument)
        )
        return quote_diff(
            targets,
            members=self.membership.members,
            orders=self.orders,
            pretrade=self.pretrade,
            params=self.params,
            max_order_lots=max_lots,
            mid=mid,
            best_bid=best_bid,
            best_ask=best_ask,
            new_id=self.ids.new,
            symbol=self.symbol,
            reducing=self.reducing,
            only=only,
            unplaced=self.unplaced,
        )

    def _simulate(self, targets: Targets) -> list[Action]:
        if targets == self.last.shadow:
            return []
        self.last.shadow = dict(targets)
        return [
            SimulatedQuote(pid, side, level, price, lots)
            for (pid, side, level), (price, lots) in sorted(targets.items())
        ]
