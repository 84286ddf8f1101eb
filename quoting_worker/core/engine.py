"""The PoolEngine: one symbol's pool as a state machine, events in, actions out.

`PoolEngine.handle(event)` is synchronous and does no I/O: it updates the
book, volatility, member state and guards, and returns the actions to carry
out (places, cancels, cancel-alls, order queries, snapshot requests, a risk
halt, simulated quotes). `run_engine` is the asyncio actor around it: one task
per symbol draining one queue, so the quoting loop needs no locks, and an
`ActionSink` port performs the actions. Same events and clock, same actions:
a run can be replayed exactly.

The order gate is open only while all of these hold: the pool is ACTIVE, the
instrument is known to trade (unknown after a start until the Metadata
Service or the feed says), the book is synced and fresh, a mark price is
known, σ is warmed up.
Entering PAUSED or HALTED cancels every order of every member (each known
order, plus a venue cancel-all per member account for orders MMS lost track
of). A risk breach closes the gate at once, cancels, and asks the authority
to HALT; only an explicit resume opens it again.

Re-quoting is throttled: not more often than `quote_interval_ms`, and only
when the microprice moved at least `price_threshold_bps` since the last
quote, or something else changed (a fill, members, config). An order gone
(cancelled, rejected, given up) while nothing else changed leaves its slot to
be refilled at the last quote's prices, not a re-price of every level: a
cancel confirmed over HTTP before the feed shows it gone shifts the
microprice (net of own orders) by that order for a moment, and re-pricing on
it would feed on itself. Only the orders that differ from what rests are
cancelled and placed.

An order whose placement outcome is unknown stays in the engine's view (its
size counts against limits) and is queried until the venue says what became
of it; its (member, side, level) slot gets no new order meanwhile, so an
unknown never turns into a duplicate.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from time import perf_counter_ns

from quoting_worker.core.allocation import (
    allocate,
    capacity_within,
    level_lots,
    limit_lots,
    min_notional_check,
    weight_units,
)
from quoting_worker.core.avellaneda import ASEngine, Ladder
from quoting_worker.core.book import OrderBook
from quoting_worker.core.ids import ClientOrderIds, RecentIds, parse
from quoting_worker.core.member import MemberRuntime, OpenOrder, OrderState
from quoting_worker.core.ports import ActionSink, Clock
from quoting_worker.core.risk import NS_PER_MS, Breach, PoolRiskGuards, PreTradeCheck
from quoting_worker.core.types import (
    Action,
    BookDelta,
    BookHeartbeat,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    Command,
    Event,
    Fill,
    FundingPayment,
    Instrument,
    InstrumentStatus,
    MarkPrice,
    MemberSpec,
    MemberStatus,
    OrderAbandoned,
    OrderAccepted,
    OrderCancelled,
    OrderQueryResult,
    OrderRejected,
    PlaceOrder,
    PlaceOutcomeUnknown,
    PoolMode,
    PoolParams,
    PublicTrade,
    QueryOrder,
    RequestSnapshot,
    RiskTriggered,
    Side,
    SimulatedQuote,
    Timer,
    VenueOpenOrders,
)
from quoting_worker.core.volatility import VolatilityTracker

NS_PER_S = 1_000_000_000
# "Not found" answers needed before an order of unknown outcome is given up:
# a venue's "not found" can be a lagging replica, not a verdict (RELIABILITY.md).
NOT_FOUND_BEFORE_GIVING_UP = 3
QUERY_INTERVAL_NS = 500 * NS_PER_MS
# A query left unanswered (its cancel still waits for the request budget, or the
# venue is down) is asked again after twice the interval, up to 2**4 times it
# (8 s): under a starved budget, re-asking every 500 ms about each order being
# cancelled became a storm of queries that took the event loop (bench/load.py).
QUERY_BACKOFF_DOUBLINGS = 4
# The timer's own look at the position and loss guards, at most this often.
# Every event that moves them (a mark, a fill, a funding payment, new params or
# members) checks them at once; a new UTC day only relaxes the loss guard. So
# the timer's look is a safety net, and at 50 ms for every pool it was a tenth
# of the worker's event loop at 200 pools (bench/load.py under py-spy).
EXPOSURE_RECHECK_NS = NS_PER_S
# Fill and funding ids remembered to drop a redelivery (RecentIds), per pool.
SEEN_IDS = 100_000
# The largest single order the pre-trade check lets through, as a multiple of
# the pool's per-level size: a fat-finger stop, not a sizing rule.
MAX_ORDER_MULTIPLE = 2

Slot = tuple[str, Side, int]  # (participant_id, side, level)


@dataclass(slots=True)
class _Member:
    spec: MemberSpec
    runtime: MemberRuntime
    weight: int  # weight_units(spec.weight); 0 when the member may not quote
    limit_mark: Decimal | None = None  # the mark `limit` was computed at
    limit: int = 0  # max_position_usdt in lots at limit_mark


@dataclass(frozen=True, slots=True)
class MemberView:
    participant_id: str
    position_lots: int
    position: Decimal
    avg_entry_price: Decimal
    realised_pnl_usdt: Decimal
    unrealised_pnl_usdt: Decimal
    fees_usdt: Decimal
    funding_usdt: Decimal
    volume_usdt: Decimal
    trade_count: int
    open_orders: int
    bid_depth_usdt: Decimal
    ask_depth_usdt: Decimal
    quoting_both_sides: bool
    # The venue-acknowledged orders resting now: (side, price, remaining size).
    # The performance snapshots score them (performance/qscore.py).
    orders: tuple[tuple[str, Decimal, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """The read-safe snapshot published as the pool's live status (SPEC B.10)."""

    symbol: str
    mode: PoolMode
    quoting: bool
    gate_reason: str
    q: Decimal
    sigma: float | None
    reservation_price: float | None
    half_spread: float | None
    best_bid_quoted: Decimal | None
    best_ask_quoted: Decimal | None
    day_pnl_usdt: Decimal
    members: tuple[MemberView, ...]
    # The book's mid price (None until the book has both sides).
    mid: Decimal | None
    refused: dict[str, int]
    halt: str


@dataclass(slots=True)
class _LastQuote:
    ns: int | None = None
    micro: float | None = None
    ladder: Ladder | None = None
    shadow: dict[Slot, tuple[int, int]] = field(default_factory=dict)


class PoolEngine:
    """One symbol's pool. Not thread-safe: one task owns it (see `run_engine`)."""

    def __init__(
        self,
        *,
        instrument: Instrument,
        params: PoolParams,
        members: Iterable[MemberSpec],
        clock: Clock,
        ids: ClientOrderIds | None = None,
        shadow: bool = False,
        mode: PoolMode = PoolMode.PAUSED,
    ) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.clock = clock
        self.ids = ids or ClientOrderIds(clock.now_ns)
        self.shadow = shadow
        self.mode = mode
        self.book = OrderBook(instrument.symbol)
        self.guards = PoolRiskGuards()
        self.pretrade = PreTradeCheck(instrument)
        self.members: dict[str, _Member] = {}
        self.by_short: dict[str, str] = {}
        self.by_account: dict[str, str] = {}
        self.owner: dict[str, str] = {}  # client order id → participant id
        self.own_levels: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        self.cancelling: set[str] = set()
        self.unknown: set[str] = set()  # orders whose placement outcome is unknown
        self.cancel_sent_ns: dict[str, int] = {}
        self.not_found: Counter[str] = Counter()
        self.last_query_ns: dict[str, int] = {}
        self.unanswered_queries: Counter[str] = Counter()
        self.seen_fills = RecentIds(SEEN_IDS)
        self.seen_funding = RecentIds(SEEN_IDS)
        self.unattributed_fills: list[Fill] = []
        self.mark: Decimal | None = None
        self.exposure_checked_ns = 0  # the timer's last look (EXPOSURE_RECHECK_NS)
        # Unknown until the Metadata Service or the feed says: no quoting before.
        self.instrument_halted: bool | None = None
        self.halt_reason = ""
        # Why the adapter cannot keep a durable record now (the database is down):
        # the gate is closed until it can ("" when it can). Self-clearing, no halt.
        self.suspended = ""
        self.active_since_ns = clock.now_ns() if mode is PoolMode.ACTIVE else 0
        self.dirty = True
        # An order went (cancelled, rejected, given up) while nothing else changed:
        # its slot is refilled at the last quote's prices, not re-priced.
        self.refill = False
        # Between hold() and release() quoting waits: a backlog of events is applied
        # and quoted once, off the newest state (see `hold`).
        self.holding = False
        self.held = False
        self.last = _LastQuote()
        # Told each quote's decision time and the allocation's share of it, in ns
        # (the worker's latency histograms); None costs nothing.
        self.on_quote: Callable[[int, int], None] | None = None
        self._apply_params(params)
        self._set_members(members)
        self._handlers: dict[type, Callable[[object], list[Action]]] = {
            BookDelta: self._on_delta,  # type: ignore[dict-item]
            BookSnapshot: self._on_snapshot,  # type: ignore[dict-item]
            BookHeartbeat: self._on_heartbeat,  # type: ignore[dict-item]
            PublicTrade: self._on_trade,  # type: ignore[dict-item]
            MarkPrice: self._on_mark,  # type: ignore[dict-item]
            Fill: self._on_fill,  # type: ignore[dict-item]
            FundingPayment: self._on_funding,  # type: ignore[dict-item]
            OrderAccepted: self._on_accepted,  # type: ignore[dict-item]
            OrderRejected: self._on_rejected,  # type: ignore[dict-item]
            OrderCancelled: self._on_cancelled,  # type: ignore[dict-item]
            PlaceOutcomeUnknown: self._on_unknown,  # type: ignore[dict-item]
            OrderQueryResult: self._on_query_result,  # type: ignore[dict-item]
            VenueOpenOrders: self._on_venue_open_orders,  # type: ignore[dict-item]
            InstrumentStatus: self._on_instrument_status,  # type: ignore[dict-item]
            Timer: self._on_timer,  # type: ignore[dict-item]
            Command: self._on_command,  # type: ignore[dict-item]
        }

    # ------------------------------------------------------------------ entry

    def handle(self, event: Event) -> list[Action]:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"{self.symbol}: no handler for {type(event).__name__}")
        return handler(event)

    def hold(self) -> None:
        """Until `release`, events are applied but quoting waits: a runner that
        finds several events queued applies them all and quotes once, off the
        newest state, instead of re-quoting off each stale one in turn. Only
        quoting waits: a breach trips, a pause cancels, a lost sync withdraws
        at once, as without a hold."""
        self.holding = True

    def release(self) -> list[Action]:
        """Ends a `hold`: the quote the held events asked for, if any."""
        self.holding = False
        if not self.held:
            return []
        self.held = False
        return self._maybe_quote()

    # ------------------------------------------------------------------ market data

    def _on_delta(self, delta: BookDelta) -> list[Action]:
        was_synced = self.book.synced
        if self.book.apply_delta(delta):
            return self._maybe_quote()
        if was_synced and not self.book.synced:
            return self._lost_sync("sequence gap")
        return []

    def _on_heartbeat(self, hb: BookHeartbeat) -> list[Action]:
        was_synced = self.book.synced
        if not self.book.on_heartbeat(hb) and was_synced and not self.book.synced:
            return self._lost_sync("heartbeat ahead of the book")
        return self._maybe_quote()

    def _on_snapshot(self, snap: BookSnapshot) -> list[Action]:
        self.book.apply_snapshot(snap)
        self.dirty = True
        return self._maybe_quote()

    def _lost_sync(self, why: str) -> list[Action]:
        """The gate closes until a snapshot resyncs the book (self-clearing, no halt);
        what rests was priced off a book now known wrong, so it is withdrawn."""
        actions: list[Action] = [RequestSnapshot(f"{self.symbol}: {why}")]
        actions.extend(self._cancel_quotes())
        return actions

    def _on_trade(self, trade: PublicTrade) -> list[Action]:
        self.vol.add_trade(float(self.instrument.price(trade.price_ticks)), trade.ts_ns)
        return []

    def _on_mark(self, mark: MarkPrice) -> list[Action]:
        if mark.price <= 0:
            return []
        self.mark = mark.price
        breach = self._check_exposure()
        if breach is not None:
            return self._trip(breach)
        return self._maybe_quote()

    def _on_instrument_status(self, status: InstrumentStatus) -> list[Action]:
        self.instrument_halted = status.halted
        if status.halted and self.mode is PoolMode.ACTIVE:
            return self._trip(Breach("EXCHANGE_HALT", f"{self.symbol} halted by the exchange"))
        self.dirty = True
        return self._maybe_quote()

    def _on_timer(self, timer: Timer) -> list[Action]:
        now = self.clock.now_ns()
        actions: list[Action] = []
        if self.mode is PoolMode.ACTIVE:
            # Was the feed alive when this tick was queued? Every book message that
            # arrived before it is applied by now (one queue, in order), so a backlog
            # behind a slow write is not taken for a silent feed; a silent feed is.
            as_of = min(now, timer.ts_ns)
            breach = self.guards.check_stale(as_of, self._feed_heard_ns(), self.params)
            if breach is None and now - self.exposure_checked_ns >= EXPOSURE_RECHECK_NS:
                self.exposure_checked_ns = now
                breach = self._check_exposure()
            if breach is not None:
                return self._trip(breach)
        for coid in self._unresolved(now):
            unanswered = min(self.unanswered_queries.get(coid, 0), QUERY_BACKOFF_DOUBLINGS)
            if now - self.last_query_ns.get(coid, 0) >= QUERY_INTERVAL_NS << unanswered:
                actions.append(self._query(coid, now))
        actions.extend(self._maybe_quote())
        return actions

    # ------------------------------------------------------------------ fills and money

    def _on_fill(self, fill: Fill) -> list[Action]:
        if fill.fill_id in self.seen_fills:
            return []
        member = self._owner_of(fill.client_order_id)
        if member is None:
            # Not ours to book: kept for reconciliation, never guessed onto someone.
            self.unattributed_fills.append(fill)
            return []
        self.seen_fills.add(fill.fill_id)
        order = member.runtime.open_orders.get(fill.client_order_id)
        member.runtime.apply_fill(fill)
        if order is not None:
            self._own_add(order.side, order.price_ticks, -min(fill.size_lots, order.remaining_lots))
            if fill.client_order_id not in member.runtime.open_orders:
                self._forget(fill.client_order_id)
        self.dirty = True
        breach = self._check_exposure()
        if breach is not None:
            return self._trip(breach)
        return self._maybe_quote()

    def _on_funding(self, payment: FundingPayment) -> list[Action]:
        if payment.payment_id in self.seen_funding:
            return []
        pid = self.by_account.get(payment.account_id)
        if pid is None:
            return []
        self.seen_funding.add(payment.payment_id)
        self.members[pid].runtime.apply_funding(payment.amount)
        breach = self._check_exposure()
        return self._trip(breach) if breach is not None else []

    def _owner_of(self, client_order_id: str) -> _Member | None:
        pid = self.owner.get(client_order_id)
        if pid is None:
            # A late fill of an order this engine forgot (or never saw, before a
            # restart): the id itself names the participant.
            try:
                parsed = parse(client_order_id)
            except ValueError:
                return None
            if parsed.symbol != self.symbol:
                return None
            pid = self.by_short.get(parsed.short_id)
        return None if pid is None else self.members.get(pid)

    # ------------------------------------------------------------------ order lifecycle

    def _on_accepted(self, ack: OrderAccepted) -> list[Action]:
        member = self._owner_of(ack.client_order_id)
        if member is not None:
            member.runtime.set_order_state(ack.client_order_id, OrderState.OPEN)
            self.unknown.discard(ack.client_order_id)
        self.guards.on_accept()
        return []

    def _on_rejected(self, reject: OrderRejected) -> list[Action]:
        """A reject counts towards the storm guard once per order (the venue says it
        twice: the HTTP answer and the engine topic), and only while ACTIVE: the
        rejects of orders in flight when a pool halts must not re-trip it."""
        member = self._owner_of(reject.client_order_id)
        tracked = member is not None and reject.client_order_id in member.runtime.open_orders
        self._drop_order(reject.client_order_id)
        if not tracked or self.mode is not PoolMode.ACTIVE:
            return []
        breach = self.guards.on_reject(self.params)
        if breach is not None:
            return self._trip(breach)
        return self._maybe_quote()

    def _on_cancelled(self, cancel: OrderCancelled) -> list[Action]:
        self._drop_order(cancel.client_order_id)
        return self._maybe_quote()

    def _on_unknown(self, unknown: PlaceOutcomeUnknown) -> list[Action]:
        member = self._owner_of(unknown.client_order_id)
        if (
            member is None
            or member.runtime.set_order_state(unknown.client_order_id, OrderState.UNKNOWN) is None
        ):
            return []
        self.unknown.add(unknown.client_order_id)
        return [self._query(unknown.client_order_id, self.clock.now_ns())]

    def _on_query_result(self, result: OrderQueryResult) -> list[Action]:
        coid = result.client_order_id
        self.unanswered_queries.pop(coid, None)
        member = self._owner_of(coid)
        if member is None:
            return []
        tracked = coid in member.runtime.open_orders
        if not tracked and coid not in self.cancelling:
            return []
        if result.found:
            self.not_found.pop(coid, None)
            if result.open:
                if tracked:
                    member.runtime.set_order_state(coid, OrderState.OPEN)
                    self.unknown.discard(coid)
                if not tracked or coid in self.cancelling or self.mode is not PoolMode.ACTIVE:
                    return [self._cancel(coid, member)]  # still there: ask again
                return []
            # Final at the venue (filled or cancelled): its fills arrive on their own.
            self._drop_order(coid)
            return self._maybe_quote()
        self.not_found[coid] += 1
        if self.not_found[coid] >= NOT_FOUND_BEFORE_GIVING_UP:
            self._drop_order(coid)
            gone = OrderAbandoned(
                coid, f"not found at the venue after {NOT_FOUND_BEFORE_GIVING_UP} queries"
            )
            return [gone, *self._maybe_quote()]
        return []

    def _on_venue_open_orders(self, venue: VenueOpenOrders) -> list[Action]:
        """Reconciliation (RELIABILITY.md): an order the venue lists that this engine
        does not know, or knows it is cancelling, is cancelled; an order the engine
        believes open that the venue does not list (and that was placed before the
        listing was asked for) is queried, never simply forgotten."""
        pid = self.by_account.get(venue.account_id)
        if pid is None:
            return []
        member = self.members[pid]
        actions: list[Action] = []
        for coid in sorted(venue.client_order_ids):
            known = coid in member.runtime.open_orders
            if (not known or self.mode is not PoolMode.ACTIVE) and coid not in self.cancelling:
                self.owner.setdefault(coid, pid)
                actions.append(self._cancel(coid, member))
        now = self.clock.now_ns()
        for coid, order in member.runtime.open_orders.items():
            placed_ns = _placed_ns(coid)
            if (
                coid not in venue.client_order_ids
                and order.state is OrderState.OPEN
                and placed_ns is not None
                and placed_ns < venue.ts_ns
            ):
                actions.append(self._query(coid, now))
        return actions

    def _query(self, coid: str, now: int) -> QueryOrder:
        self.last_query_ns[coid] = now
        self.unanswered_queries[coid] += 1
        member = self.members[self.owner[coid]]
        return QueryOrder(coid, member.spec.account_id)

    def _unresolved(self, now: int) -> list[str]:
        """Orders to ask the venue about: unknown placements, and cancels not yet
        confirmed after a query interval (a lost answer must not leave them be)."""
        if not self.unknown and not self.cancel_sent_ns:
            return []  # the usual case, on every timer tick of every pool
        late = {
            coid for coid, sent in self.cancel_sent_ns.items() if now - sent >= QUERY_INTERVAL_NS
        }
        return sorted(self.unknown | late)

    def _drop_order(self, coid: str) -> None:
        member = self._owner_of(coid)
        if member is None:
            return
        order = member.runtime.remove_order(coid)
        if order is not None:
            self._own_add(order.side, order.price_ticks, -order.remaining_lots)
            self.refill = True
        self._forget(coid)

    def _forget(self, coid: str) -> None:
        # A late fill still finds its member: the id itself names it (`_owner_of`).
        self.owner.pop(coid, None)
        self.cancelling.discard(coid)
        self.cancel_sent_ns.pop(coid, None)
        self.unknown.discard(coid)
        self.not_found.pop(coid, None)
        self.last_query_ns.pop(coid, None)
        self.unanswered_queries.pop(coid, None)

    def _own_add(self, side: Side, price: int, lots: int) -> None:
        levels = self.own_levels[side]
        total = levels.get(price, 0) + lots
        if total > 0:
            levels[price] = total
        else:
            levels.pop(price, None)

    # ------------------------------------------------------------------ commands

    def _on_command(self, command: Command) -> list[Action]:
        kind = command.kind
        if kind in ("enable", "resume"):
            self.mode = PoolMode.ACTIVE
            self.active_since_ns = self.clock.now_ns()
            self.halt_reason = ""
            self.guards.reset_rejects()
            self.dirty = True
            return self._maybe_quote()
        if kind == "pause":
            self.mode = PoolMode.PAUSED
            return self._cancel_everything(f"pause: {command.reason}")
        if kind == "suspend":
            # Nothing new while a fill or an order could not be put on record; what
            # rests is withdrawn (cancels need no record). The mode is kept.
            if self.suspended:
                return []
            self.suspended = command.reason or "suspended"
            return self._cancel_everything(f"suspend: {self.suspended}")
        if kind == "unsuspend":
            if self.suspended:
                # Like an activation: the book is as old as the suspension (the
                # queue waited too), so staleness gets its grace while it catches up.
                self.suspended = ""
                self.active_since_ns = self.clock.now_ns()
                self.dirty = True
            return self._maybe_quote()
        if kind == "kill":
            return self._trip(Breach("KILL", command.reason or "kill switch"), report=False)
        if kind == "flatten":
            return self._trip(Breach("FLATTEN", command.reason or "flatten"), report=False)
        if kind == "config":
            if command.params is None:
                raise ValueError("a config command carries params")
            self._apply_params(command.params)
            self.dirty = True
            breach = self._check_exposure()  # a tighter limit applies at once
            return self._trip(breach) if breach is not None else self._maybe_quote()
        if kind == "members":
            actions = self._set_members(command.members)
            self.dirty = True
            breach = self._check_exposure()
            if breach is not None:
                return [*actions, *self._trip(breach)]
            actions.extend(self._maybe_quote())
            return actions
        raise ValueError(f"{self.symbol}: unknown command {kind!r}")

    def _apply_params(self, params: PoolParams) -> None:
        old = getattr(self, "params", None)
        self.params = params
        self.as_engine = ASEngine(params, self.instrument.tick_size)
        if (
            old is None
            or old.vol_lookback_seconds != params.vol_lookback_seconds
            or (
                old.vol_min_samples != params.vol_min_samples
                or old.sigma_floor != params.sigma_floor
            )
        ):
            self.vol = VolatilityTracker(
                params.vol_lookback_seconds * NS_PER_S, params.vol_min_samples, params.sigma_floor
            )
        self._levels: dict[int, tuple[int, Callable[[int], bool]]] = {}
        self.interval_ns = params.quote_interval_ms * NS_PER_MS
        self.threshold = params.price_threshold_bps / 10_000

    def _set_members(self, specs: Iterable[MemberSpec]) -> list[Action]:
        """Adds, updates and removes members; a removed member's orders are cancelled."""
        wanted = {spec.participant_id: spec for spec in specs}
        actions: list[Action] = []
        for pid in [p for p in self.members if p not in wanted]:
            gone = self.members.pop(pid)
            actions.extend(self._cancel_member(gone))
            self.by_short.pop(gone.spec.short_id, None)
            self.by_account.pop(gone.spec.account_id, None)
        for pid, spec in wanted.items():
            member = self.members.get(pid)
            weight = weight_units(spec.weight) if spec.status is MemberStatus.ACTIVE else 0
            if member is None:
                member = _Member(spec, MemberRuntime(pid, self.instrument), weight)
                self.members[pid] = member
            else:
                member.spec, member.weight, member.limit_mark = spec, weight, None
                if weight == 0:
                    actions.extend(self._cancel_member(member))
            self.by_short[spec.short_id] = pid
            self.by_account[spec.account_id] = pid
        return actions

    # ------------------------------------------------------------------ risk

    def _check_exposure(self) -> Breach | None:
        """Position and day-loss guards, at mark (nothing to value without one)."""
        mark = self.mark
        if mark is None:
            return None
        q_notional = self.instrument.size(self._q_lots()) * mark
        breach = self.guards.check_position(q_notional, self.params)
        if breach is None:
            breach = self.guards.check_loss(self.clock.now_ns(), self._total_pnl(mark), self.params)
        return breach if self.mode is PoolMode.ACTIVE else None

    def _trip(self, breach: Breach, *, report: bool = True) -> list[Action]:
        """Gate closed first (the mode), then every order cancelled, then the halt reported."""
        self.mode = PoolMode.HALTED
        self.halt_reason = f"{breach.trigger}: {breach.detail}"
        actions = self._cancel_everything(self.halt_reason)
        if report:
            actions.append(RiskTriggered(breach.trigger, breach.detail))
        return actions

    def _q_lots(self) -> int:
        return sum(m.runtime.position_lots for m in self.members.values())

    def _total_pnl(self, mark: Decimal) -> Decimal:
        return sum((m.runtime.total_pnl(mark) for m in self.members.values()), Decimal(0))

    def _feed_heard_ns(self) -> int:
        """When the feed was last heard, for staleness: a pool just made ACTIVE gives
        the feed one threshold to speak before it counts as stale."""
        return max(self.book.last_received_ns, self.active_since_ns)

    # ------------------------------------------------------------------ cancelling

    def _cancel(self, coid: str, member: _Member) -> CancelOrder:
        """Marks the order as being cancelled; it stays counted until the venue confirms."""
        self.cancelling.add(coid)
        self.cancel_sent_ns[coid] = self.clock.now_ns()
        pid, account = member.spec.participant_id, member.spec.account_id
        order = member.runtime.open_orders.get(coid)
        if order is None:
            return CancelOrder(coid, pid, account)
        return CancelOrder(coid, pid, account, order.side, order.price_ticks)

    def _cancel_member(self, member: _Member) -> list[Action]:
        actions: list[Action] = []
        for coid in member.runtime.open_orders:
            if coid not in self.cancelling:
                actions.append(self._cancel(coid, member))
        return actions

    def _cancel_quotes(self) -> list[Action]:
        actions: list[Action] = []
        for member in self.members.values():
            actions.extend(self._cancel_member(member))
        self.last.micro = None
        self.last.shadow.clear()
        return actions

    def _cancel_everything(self, reason: str) -> list[Action]:
        """Every known order, then a venue cancel-all per member account for the
        orders MMS may have lost track of."""
        actions = self._cancel_quotes()
        accounts = tuple(sorted(m.spec.account_id for m in self.members.values()))
        if accounts and not self.shadow:
            actions.append(CancelAll(accounts, reason))
        return actions

    # ------------------------------------------------------------------ quoting

    def book_fresh(self, now_ns: int) -> bool:
        """Whether the book was heard from within the staleness threshold at `now_ns`."""
        return self.guards.check_stale(now_ns, self.book.last_received_ns, self.params) is None

    def gate(self) -> str:
        """Why no order may go now; "" when the gate is open."""
        if self.mode is not PoolMode.ACTIVE:
            return f"pool {self.mode}"
        if self.suspended:
            return f"suspended: {self.suspended}"
        if self.instrument_halted is None:
            return "instrument status unknown"
        if self.instrument_halted:
            return "instrument halted"
        if not self.book.synced:
            return "book not synced"
        if self.mark is None:
            return "no mark price"
        return ""

    def _maybe_quote(self) -> list[Action]:
        if self.holding:
            self.held = True
            return []
        if self.mode is not PoolMode.ACTIVE or self.instrument_halted is not False:
            return []
        if self.suspended or not self.book.synced:
            return []
        now = self.clock.now_ns()
        last = self.last
        if last.ns is not None and now - last.ns < self.interval_ns:
            return []
        micro = self.book.microprice(self.own_levels[Side.BUY], self.own_levels[Side.SELL])
        if micro is None:
            return []
        if (
            not self.dirty
            and last.micro is not None
            and abs(micro - last.micro) < self.threshold * last.micro
        ):
            if self.refill and last.ladder is not None:
                return self._quote(now, last.micro, refill=last.ladder)
            return []
        return self._quote(now, micro)

    def _quote(self, now: int, micro: float, *, refill: Ladder | None = None) -> list[Action]:
        """A new ladder from `micro`, or, given `refill` (the last quote's ladder),
        the same prices again for whatever slot has no order."""
        if self.mark is None:
            return []
        if not self.book_fresh(now):
            # Never a quote off old data. The halt is the timer's to decide (`_on_timer`):
            # here the data may only be old because newer messages still wait in the
            # queue behind a backlog.
            return []
        sigma = self.vol.sigma(now)
        mid = self.book.mid_ticks()
        if sigma is None or mid is None:
            return []  # warming up: no quotes until σ is known
        started = perf_counter_ns()
        best_bid, best_ask = self.book.best_bid(), self.book.best_ask()
        self.refill = False
        if refill is not None:
            ladder = refill
        else:
            q = float(self.instrument.size(self._q_lots()))
            ladder = self.as_engine.ladder(
                microprice_ticks=micro,
                mid_ticks=mid,
                q=q,
                sigma=sigma,
                best_bid=best_bid,
                best_ask=best_ask,
            )
            self.last.ns, self.last.micro, self.last.ladder = now, micro, ladder
            self.dirty = False
        allocating = perf_counter_ns()
        targets = self._targets(ladder)
        allocated = perf_counter_ns()
        if self.shadow:
            actions = self._simulate(targets)
        else:
            actions = self._diff(targets, mid, best_bid, best_ask)
        if self.on_quote is not None:
            self.on_quote(perf_counter_ns() - started, allocated - allocating)
        return actions

    def _targets(self, ladder: Ladder) -> dict[Slot, tuple[int, int]]:
        """(member, side, level) → (price ticks, lots): the pool's size per level split
        by capital weight, each member capped by its own position limit."""
        mark = self.mark
        if mark is None:  # the caller checked; without a mark no limit can be known
            return {}
        members = list(self.members.values())
        pids = [m.spec.participant_id for m in members]
        weights = [m.weight for m in members]
        locked = [self._locked_lots(m) for m in members]
        limits = [self._limit_lots(m, mark) for m in members]
        min_lots = self.instrument.min_lots
        targets: dict[Slot, tuple[int, int]] = {}
        for side, prices in ((Side.BUY, ladder.bids), (Side.SELL, ladder.asks)):
            caps = [
                capacity_within(
                    side, m.runtime.position_lots, locked[i][side is Side.SELL], limits[i]
                )
                if m.weight
                else 0
                for i, m in enumerate(members)
            ]
            # While no eligible member is near its cap, a split depends on the level's
            # total alone: levels of equal size share one computation.
            split: dict[int, list[int]] = {}
            for level, price in enumerate(prices):
                total, notional_ok = self._level(price)
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

    def _level(self, price: int) -> tuple[int, Callable[[int], bool]]:
        """The pool's lots at `price` and the venue's minimum-notional test there,
        remembered per price (exact Decimal work, done once per price and config)."""
        cached = self._levels.get(price)
        if cached is None:
            if len(self._levels) > 10_000:
                self._levels.clear()
            cached = (
                level_lots(self.params.order_size_usdt, price, self.instrument),
                min_notional_check(self.instrument, price),
            )
            self._levels[price] = cached
        return cached

    def _limit_lots(self, member: _Member, mark: Decimal) -> int:
        """The member's position limit in lots at this mark (recomputed when the mark moves)."""
        if member.limit_mark != mark:
            member.limit_mark = mark
            member.limit = limit_lots(member.spec.max_position_usdt, mark, self.instrument)
        return member.limit

    @staticmethod
    def _locked_lots(member: _Member) -> tuple[int, int]:
        """(buy, sell) lots this re-quote cannot replace: orders of unknown outcome."""
        buy = sell = 0
        for order in member.runtime.open_orders.values():
            if order.state is OrderState.UNKNOWN:
                if order.side is Side.BUY:
                    buy += order.remaining_lots
                else:
                    sell += order.remaining_lots
        return buy, sell

    def _diff(
        self,
        targets: dict[Slot, tuple[int, int]],
        mid: float,
        best_bid: int | None,
        best_ask: int | None,
    ) -> list[Action]:
        """Cancels and places for what differs from what rests; nothing for the rest."""
        cancels: list[Action] = []
        places: list[Action] = []
        resting: dict[Slot, OpenOrder] = {}
        blocked: set[Slot] = set()
        for member in self.members.values():
            pid = member.spec.participant_id
            for coid, order in member.runtime.open_orders.items():
                slot = (pid, order.side, order.level)
                if order.state is OrderState.UNKNOWN:
                    blocked.add(slot)
                elif coid not in self.cancelling:
                    if slot in resting or targets.get(slot) != (
                        order.price_ticks,
                        order.remaining_lots,
                    ):
                        cancels.append(self._cancel(coid, member))
                    else:
                        resting[slot] = order
        max_lots = MAX_ORDER_MULTIPLE * max(
            1, level_lots(self.params.order_size_usdt, max(1, int(mid)), self.instrument)
        )
        # Prices each member keeps resting per side: the pre-trade duplicate check.
        kept: dict[tuple[str, Side], set[int]] = {}
        for (pid, side, _level), order in resting.items():
            kept.setdefault((pid, side), set()).add(order.price_ticks)
        refuse = self.pretrade.refuse_reason
        params = self.params
        symbol = self.symbol
        new_id = self.ids.new
        for slot, (price, lots) in targets.items():
            if slot in resting or slot in blocked:
                continue
            pid, side, level = slot
            member = self.members[pid]
            prices = kept.setdefault((pid, side), set())
            reason = refuse(
                side=side,
                price_ticks=price,
                size_lots=lots,
                mid_ticks=mid,
                best_bid=best_bid,
                best_ask=best_ask,
                params=params,
                max_order_lots=max_lots,
                resting_prices=prices,
            )
            if reason is not None:
                continue
            prices.add(price)
            coid = new_id(short_id=member.spec.short_id, symbol=symbol, level=level, side=side)
            member.runtime.add_order(
                client_order_id=coid, side=side, price_ticks=price, size_lots=lots, level=level
            )
            self.owner[coid] = pid
            self._own_add(side, price, lots)
            places.append(PlaceOrder(coid, pid, member.spec.account_id, side, level, price, lots))
        # Cancels first: freeing a price level before taking a new one.
        return cancels + places

    def _simulate(self, targets: dict[Slot, tuple[int, int]]) -> list[Action]:
        if targets == self.last.shadow:
            return []
        self.last.shadow = dict(targets)
        return [
            SimulatedQuote(pid, side, level, price, lots)
            for (pid, side, level), (price, lots) in sorted(targets.items())
        ]

    # ------------------------------------------------------------------ restart

    def restore(
        self,
        *,
        fills: Iterable[tuple[str, Fill]],
        open_orders: Iterable[tuple[str, OpenOrder]] = (),
        funding: Iterable[tuple[str, FundingPayment]] = (),
        day_baseline_pnl: Decimal | None = None,
        day: int | None = None,
    ) -> list[Action]:
        """Rebuilds positions, PnL and the order-owner map from persisted fills,
        funding payments and orders, each with the participant it was attributed
        to (SPEC B.4: a restart never resets a guard).

        A pool not ACTIVE (every pool, at boot) must not leave orders resting, so
        the actions returned cancel each restored order and cancel-all every
        member account; the runquoter carries them out before anything else."""
        for pid, fill in fills:
            member = self.members.get(pid)
            if member is None or fill.fill_id in self.seen_fills:
                continue  # a former member's fills: not part of this pool's q any more
            self.seen_fills.add(fill.fill_id)
            self.owner.setdefault(fill.client_order_id, pid)
            member.runtime.apply_fill(fill)
        for pid, payment in funding:
            member = self.members.get(pid)
            if member is None or payment.payment_id in self.seen_funding:
                continue
            self.seen_funding.add(payment.payment_id)
            member.runtime.apply_funding(payment.amount)
        for pid, order in open_orders:
            holder = self.members.get(pid)
            if holder is None:
                continue
            holder.runtime.add_order(
                client_order_id=order.client_order_id,
                side=order.side,
                price_ticks=order.price_ticks,
                size_lots=order.remaining_lots,
                level=order.level,
                state=order.state,
            )
            self.owner[order.client_order_id] = pid
            self._own_add(order.side, order.price_ticks, order.remaining_lots)
            if order.state is OrderState.UNKNOWN:
                self.unknown.add(order.client_order_id)
        if day_baseline_pnl is not None and day is not None:
            self.guards.day, self.guards.day_baseline_pnl = day, day_baseline_pnl
        if self.mode is PoolMode.ACTIVE:
            return []
        return self._cancel_everything("restart: nothing rests while the pool is not ACTIVE")

    # ------------------------------------------------------------------ status

    def _mid_price(self) -> Decimal | None:
        bid, ask = self.book.best_bid(), self.book.best_ask()
        if bid is None or ask is None:
            return None
        return self.instrument.price(bid + ask) / 2

    def status(self) -> EngineStatus:
        mark = self.mark
        ladder = self.last.ladder
        quoted = self.own_levels
        members = []
        for m in self.members.values():
            rt = m.runtime
            bid_depth = sum(
                (
                    self.instrument.notional(o.price_ticks, o.remaining_lots)
                    for o in rt.open_orders.values()
                    if o.side is Side.BUY and o.level == 0
                ),
                Decimal(0),
            )
            ask_depth = sum(
                (
                    self.instrument.notional(o.price_ticks, o.remaining_lots)
                    for o in rt.open_orders.values()
                    if o.side is Side.SELL and o.level == 0
                ),
                Decimal(0),
            )
            members.append(
                MemberView(
                    participant_id=m.spec.participant_id,
                    position_lots=rt.position_lots,
                    position=self.instrument.size(rt.position_lots),
                    avg_entry_price=rt.avg_entry_price,
                    realised_pnl_usdt=rt.realised_pnl_usdt,
                    unrealised_pnl_usdt=rt.unrealised_pnl(mark) if mark else Decimal(0),
                    fees_usdt=rt.fees_usdt,
                    funding_usdt=rt.funding_usdt,
                    volume_usdt=rt.volume_usdt,
                    trade_count=rt.trade_count,
                    open_orders=len(rt.open_orders),
                    bid_depth_usdt=bid_depth,
                    ask_depth_usdt=ask_depth,
                    quoting_both_sides=bid_depth > 0 and ask_depth > 0,
                    orders=tuple(
                        (
                            o.side.value,
                            self.instrument.price(o.price_ticks),
                            self.instrument.size(o.remaining_lots),
                        )
                        for o in rt.open_orders.values()
                        if o.state is OrderState.OPEN and o.remaining_lots > 0
                    ),
                )
            )
        gate = self.gate()
        return EngineStatus(
            symbol=self.symbol,
            mode=self.mode,
            quoting=gate == "" and bool(quoted[Side.BUY] or quoted[Side.SELL]),
            gate_reason=gate,
            q=self.instrument.size(self._q_lots()),
            sigma=self.vol.sigma(self.clock.now_ns()),
            reservation_price=ladder.r * float(self.instrument.tick_size) if ladder else None,
            half_spread=ladder.half_spread if ladder else None,
            best_bid_quoted=self.instrument.price(max(quoted[Side.BUY]))
            if quoted[Side.BUY]
            else None,
            best_ask_quoted=self.instrument.price(min(quoted[Side.SELL]))
            if quoted[Side.SELL]
            else None,
            day_pnl_usdt=self.guards.day_pnl(self._total_pnl(mark)) if mark else Decimal(0),
            members=tuple(members),
            mid=self._mid_price(),
            refused=dict(self.pretrade.refused),
            halt=self.halt_reason,
        )


def _placed_ns(client_order_id: str) -> int | None:
    try:
        return parse(client_order_id).ns
    except ValueError:
        return None


async def run_engine(
    engine: PoolEngine,
    events: asyncio.Queue[Event | None],
    sink: ActionSink,
    *,
    on_error: Callable[[Event, Exception], Sequence[Action]] | None = None,
) -> None:
    """The actor: drains the queue one event at a time until it receives None.

    The sink runs after each event, so the actions of one event are carried out
    in order before the next event is looked at.
    """
    while True:
        event = await events.get()
        try:
            if event is None:
                return
            try:
                actions = engine.handle(event)
            except Exception as exc:
                if on_error is None:
                    raise
                actions = list(on_error(event, exc))
            if actions:
                await sink.execute(engine.symbol, actions)
        finally:
            events.task_done()
