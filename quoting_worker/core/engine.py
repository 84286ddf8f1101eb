"""The PoolEngine: one symbol's pool as a state machine, events in, actions out.

`PoolEngine.handle(event)` is synchronous and does no I/O: it updates the
book, volatility, member state and guards, and returns the actions to carry
out (places, cancels, cancel-alls, order queries, snapshot requests, a risk
halt, simulated quotes). The runquoter's per-symbol actor
(quoting_worker/runner/actor.py) is its one owner: one task per symbol draining
one queue, so the quoting loop needs no locks. Same events and clock, same
actions: a run can be replayed exactly.

The order gate is open only while all of these hold: the pool is ACTIVE (or
UNWINDING, below), the instrument is known to trade (unknown after a start until the Metadata
Service or the feed says), the book is synced and fresh, a mark price is
known, σ is warmed up.
Entering PAUSED or HALTED cancels every order of every member (each known
order, plus a venue cancel-all per member account for orders MMS lost track
of). A risk breach closes the gate at once, cancels, and asks the authority
to HALT; only an explicit resume opens it again.

UNWINDING (SPEC Part B.20), entered by a person from PAUSED or HALTED:
per member only the side that reduces its position is quoted, never more
than the position (counting every order of that side that may still be live),
with the A-S skew, within `unwind_band_bps` of mid; |position| never grows.
Stale data, an exchange halt and a reject storm halt it as they halt an ACTIVE
pool; the position guard does not (the position only shrinks), and the loss
guard only once the pool's PnL falls `unwind_max_loss_usdt` below what it was
when the unwind began (the loss that halted it does not halt it again). It
ends PAUSED, with an `UnwindFinished` for the authority, when every member is
flat or after `unwind_time_limit_s`.

The engine owns the pool's mode, its guards and the routing of events to
the rooms that keep state: the book, the volatility tracker, the membership
(core/membership.py), the order tracking (core/orders.py) and the quoter
(core/quoter.py), which decides when and what to quote.

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

from collections.abc import Iterable
from decimal import Decimal

from quoting_worker.core.book import OrderBook
from quoting_worker.core.ids import ClientOrderIds, RecentIds
from quoting_worker.core.member import OpenOrder
from quoting_worker.core.membership import Member, Membership
from quoting_worker.core.orders import OrderTracking
from quoting_worker.core.ports import Clock
from quoting_worker.core.quoter import Quoter
from quoting_worker.core.restart import rebuild
from quoting_worker.core.risk import INSTRUMENT_HALTED, Breach, PoolRiskGuards
from quoting_worker.core.status import EngineStatus, pool_status
from quoting_worker.core.types import (
    Action,
    BookDelta,
    BookHeartbeat,
    BookSnapshot,
    CancelAll,
    Command,
    Event,
    Fill,
    FundingPayment,
    Instrument,
    InstrumentStatus,
    MarkPrice,
    MemberSpec,
    OrderAccepted,
    OrderCancelled,
    OrderQueryResult,
    OrderRejected,
    PlaceOutcomeUnknown,
    PoolMode,
    PoolParams,
    PublicTrade,
    RequestSnapshot,
    RiskTriggered,
    Timer,
    UnwindFinished,
    VenueOpenOrders,
    VenuePosition,
)
from quoting_worker.core.volatility import VolatilityTracker

NS_PER_S = 1_000_000_000
# The timer's own look at the position and loss guards, at most this often.
# Every event that moves them (a mark, a fill, a funding payment, new params or
# members) checks them at once; a new UTC day only relaxes the loss guard. So
# the timer's look is a safety net, and at 50 ms for every pool it was a tenth
# of the worker's event loop at 200 pools (bench/load.py under py-spy).
EXPOSURE_RECHECK_NS = NS_PER_S
# Fill and funding ids remembered to drop a redelivery (RecentIds), per pool.
SEEN_IDS = 100_000


class PoolEngine:
    """One symbol's pool. Not thread-safe: one task owns it (the runner's actor)."""

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
        self.membership = Membership(instrument)
        self.members = self.membership.members
        self.by_account = self.membership.by_account
        self.orders = OrderTracking(
            self.symbol, self.members, self.membership.by_short, clock.now_ns
        )
        self.quoter = Quoter(
            instrument=instrument,
            book=self.book,
            membership=self.membership,
            orders=self.orders,
            guards=self.guards,
            ids=self.ids,
            shadow=shadow,
        )
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
        self.active_since_ns = clock.now_ns() if mode.places else 0
        # UNWINDING: when it began, and the pool's total PnL below which it halts.
        self.unwind_since_ns = clock.now_ns() if mode is PoolMode.UNWINDING else 0
        self.unwind_floor_pnl: Decimal | None = None
        # Between hold() and release() quoting waits: a backlog of events is applied
        # and quoted once, off the newest state (see `hold`).
        self.holding = False
        self.held = False
        self._apply_params(params)
        self._set_members(members)

    # ------------------------------------------------------------------ entry

    def handle(self, event: Event) -> list[Action]:
        match event:
            case BookDelta():
                return self._on_delta(event)
            case Timer():
                return self._on_timer(event)
            case MarkPrice():
                return self._on_mark(event)
            case PublicTrade():
                return self._on_trade(event)
            case BookHeartbeat():
                return self._on_heartbeat(event)
            case BookSnapshot():
                return self._on_snapshot(event)
            case OrderAccepted():
                self.orders.accepted(event.client_order_id)
                self.guards.on_accept()
                return []
            case OrderCancelled():
                self._drop_order(event.client_order_id)
                return self._maybe_quote()
            case Fill():
                return self._on_fill(event)
            case OrderRejected():
                return self._on_rejected(event)
            case PlaceOutcomeUnknown():
                return self.orders.outcome_unknown(event.client_order_id)
            case OrderQueryResult():
                return self._on_query_result(event)
            case VenueOpenOrders():
                return self._on_venue_open_orders(event)
            case VenuePosition():
                self.membership.venue_position(event.account_id, event.size)
                return []
            case FundingPayment():
                return self._on_funding(event)
            case InstrumentStatus():
                return self._on_instrument_status(event)
            case Command():
                return self._on_command(event)
        raise TypeError(f"{self.symbol}: no handler for {type(event).__name__}")

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
        self.quoter.dirty = True
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
        if status.halted and self.mode.places:
            return self._trip(Breach("EXCHANGE_HALT", f"{self.symbol} halted by the exchange"))
        self.quoter.dirty = True
        return self._maybe_quote()

    def _on_timer(self, timer: Timer) -> list[Action]:
        now = self.clock.now_ns()
        actions: list[Action] = []
        if self.mode.places:
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
            if self.mode is PoolMode.UNWINDING:
                finished = self._unwind_over(now)
                if finished:
                    return self._finish_unwind(finished)
        actions.extend(self.orders.due_queries(now))
        actions.extend(self._maybe_quote())
        return actions

    # ------------------------------------------------------------------ fills and money

    def _on_fill(self, fill: Fill) -> list[Action]:
        if fill.fill_id in self.seen_fills:
            return []
        member = self.owner_of(fill.client_order_id)
        if member is None:
            # Not ours to book: kept for reconciliation, never guessed onto someone.
            self.unattributed_fills.append(fill)
            return []
        self.seen_fills.add(fill.fill_id)
        order = member.runtime.open_orders.get(fill.client_order_id)
        member.runtime.apply_fill(fill)
        self.orders.filled(member, order, fill.client_order_id, fill.size_lots)
        self.quoter.shares.fill(member.spec.participant_id, fill.side, fill.size_lots, fill.ts_ns)
        self.quoter.dirty = True
        breach = self._check_exposure()
        if breach is not None:
            return self._trip(breach)
        if self.mode is PoolMode.UNWINDING:
            finished = self._unwind_over(self.clock.now_ns())
            if finished:
                return self._finish_unwind(finished)
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

    def participant_of_account(self, account_id: str) -> str | None:
        """The member trading from `account_id` on this pool, if any."""
        return self.by_account.get(account_id)

    def participant_of_order(self, client_order_id: str) -> str | None:
        """The member an order id belongs to (from the id itself when forgotten)."""
        member = self.owner_of(client_order_id)
        return None if member is None else member.spec.participant_id

    def owner_of(self, client_order_id: str) -> Member | None:
        """The member of `client_order_id` (from the id itself for an order this
        engine forgot: a late fill, a restart)."""
        return self.orders.owner_of(client_order_id)

    # ------------------------------------------------------------------ order lifecycle

    def _on_rejected(self, reject: OrderRejected) -> list[Action]:
        """A reject counts towards the storm guard once per order (the venue says it
        twice: the HTTP answer and the engine topic), and only while ACTIVE: the
        rejects of orders in flight when a pool halts must not re-trip it.

        A reject that says the instrument is halted is the exchange halt itself
        (SPEC Part B.24), however it arrives before the feed's status event: it
        trips EXCHANGE_HALT, the trigger ops must read, never REJECT_STORM. The
        instrument's state stays the feed's and the Metadata Service's to say."""
        tracked = self.orders.tracked(reject.client_order_id)
        self._drop_order(reject.client_order_id)
        if not tracked or not self.mode.places:
            return []
        if reject.reason == INSTRUMENT_HALTED:
            detail = f"{self.symbol} halted by the exchange (an order rejected {INSTRUMENT_HALTED})"
            return self._trip(Breach("EXCHANGE_HALT", detail))
        breach = self.guards.on_reject(self.params)
        if breach is not None:
            return self._trip(breach)
        return self._maybe_quote()

    def _on_query_result(self, result: OrderQueryResult) -> list[Action]:
        asks, gone = self.orders.query_result(result, active=self.mode.places)
        if not gone:
            return asks
        self._drop_order(result.client_order_id)
        return [*asks, *self._maybe_quote()]

    def _on_venue_open_orders(self, venue: VenueOpenOrders) -> list[Action]:
        pid = self.by_account.get(venue.account_id)
        if pid is None:
            return []
        return self.orders.venue_open_orders(pid, venue, active=self.mode.places)

    def _drop_order(self, coid: str) -> None:
        slot = self.orders.drop(coid)
        if slot is not None:
            self.quoter.slot_freed(slot)

    # ------------------------------------------------------------------ commands

    def _on_command(self, command: Command) -> list[Action]:
        kind = command.kind
        if kind in ("enable", "resume"):
            self.mode = PoolMode.ACTIVE
            self.active_since_ns = self.clock.now_ns()
            self.halt_reason = ""
            self.guards.reset_rejects()
            self.quoter.dirty = True
            return self._maybe_quote()
        if kind == "unwind":
            return self._start_unwind()
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
                self.quoter.dirty = True
            return self._maybe_quote()
        if kind == "kill":
            return self._trip(Breach("KILL", command.reason or "kill switch"), report=False)
        if kind == "flatten":
            return self._trip(Breach("FLATTEN", command.reason or "flatten"), report=False)
        if kind == "config":
            if command.params is None:
                raise ValueError("a config command carries params")
            self._apply_params(command.params)
            self.quoter.dirty = True
            breach = self._check_exposure()  # a tighter limit applies at once
            return self._trip(breach) if breach is not None else self._maybe_quote()
        if kind == "members":
            actions = self._set_members(command.members)
            self.quoter.dirty = True
            breach = self._check_exposure()
            if breach is not None:
                return [*actions, *self._trip(breach)]
            actions.extend(self._maybe_quote())
            return actions
        raise ValueError(f"{self.symbol}: unknown command {kind!r}")

    def _apply_params(self, params: PoolParams) -> None:
        old = getattr(self, "params", None)
        self.params = params
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
        self.quoter.configure(params)

    def _set_members(self, specs: Iterable[MemberSpec]) -> list[Action]:
        actions = self.membership.update(specs, cancel=self.orders.cancel_member)
        self.quoter.shares.weighted({pid: m.weight for pid, m in self.members.items()})
        return actions

    # ------------------------------------------------------------------ risk

    def _check_exposure(self) -> Breach | None:
        """Position and day-loss guards, at mark (nothing to value without one)."""
        mark = self.mark
        if mark is None:
            return None
        q_notional = self.instrument.size(self.membership.q_lots()) * mark
        breach = self.guards.check_position(q_notional, self.params)
        if breach is None:
            breach = self.guards.check_loss(
                self.clock.now_ns(), self.membership.total_pnl(mark), self.params
            )
        if self.mode is PoolMode.UNWINDING:
            return self._check_unwind_loss(mark)
        return breach if self.mode is PoolMode.ACTIVE else None

    # ------------------------------------------------------------------ unwinding

    def _start_unwind(self) -> list[Action]:
        """A person moved the pool to UNWINDING (the authority allows it from PAUSED
        or HALTED only): reducing orders from now on."""
        if self.mode is PoolMode.UNWINDING:
            return []
        now = self.clock.now_ns()
        self.mode = PoolMode.UNWINDING
        self.unwind_since_ns = now
        self.active_since_ns = now
        self.unwind_floor_pnl = None  # set at the first look with a mark
        self.halt_reason = ""
        self.guards.reset_rejects()
        self.quoter.dirty = True
        finished = self._unwind_over(now)
        if finished:
            return self._finish_unwind(finished)
        return self._maybe_quote()

    def _check_unwind_loss(self, mark: Decimal) -> Breach | None:
        """The loss guard while unwinding: from the pool's total PnL when the unwind
        first saw a mark, a further loss of `unwind_max_loss_usdt` (by default the
        pool's `max_pool_loss_usdt` again) halts it."""
        total = self.membership.total_pnl(mark)
        if self.unwind_floor_pnl is None:
            self.unwind_floor_pnl = total - self._unwind_loss_allowed()
            return None
        if total < self.unwind_floor_pnl:
            lost = self.unwind_floor_pnl + self._unwind_loss_allowed() - total
            return Breach(
                "LOSS",
                f"unwinding: lost {lost:.2f} USDT since the unwind began "
                f"(> {self._unwind_loss_allowed()} USDT allowed)",
            )
        return None

    def _unwind_loss_allowed(self) -> Decimal:
        allowed = self.params.unwind_max_loss_usdt
        return self.params.max_pool_loss_usdt if allowed is None else allowed

    def _unwind_over(self, now_ns: int) -> str:
        """Why the unwind is over ("" while it goes on)."""
        if all(m.runtime.position_lots == 0 for m in self.members.values()):
            return "every member flat"
        limit_ns = self.params.unwind_time_limit_s * 1_000_000_000
        if now_ns - self.unwind_since_ns >= limit_ns:
            return f"time limit ({self.params.unwind_time_limit_s} s) reached"
        return ""

    def _finish_unwind(self, reason: str) -> list[Action]:
        self.mode = PoolMode.PAUSED
        actions = self._cancel_everything(f"unwind over: {reason}")
        actions.append(UnwindFinished(reason))
        return actions

    def _trip(self, breach: Breach, *, report: bool = True) -> list[Action]:
        """Gate closed first (the mode), then every order cancelled, then the halt reported."""
        self.mode = PoolMode.HALTED
        self.halt_reason = f"{breach.trigger}: {breach.detail}"
        actions = self._cancel_everything(self.halt_reason)
        if report:
            actions.append(RiskTriggered(breach.trigger, breach.detail))
        return actions

    def _feed_heard_ns(self) -> int:
        """When the feed was last heard, for staleness: a pool just made ACTIVE gives
        the feed one threshold to speak before it counts as stale."""
        return max(self.book.last_received_ns, self.active_since_ns)

    # ------------------------------------------------------------------ cancelling

    def _cancel_quotes(self) -> list[Action]:
        actions = self.orders.cancel_all(self.members.values())
        self.quoter.withdrawn()
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
        return self.quoter.book_fresh(now_ns)

    def gate(self) -> str:
        """Why no order may go now; "" when the gate is open."""
        if not self.mode.places:
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
        """A quote, if the quoter has one due and the gate is open (a held quote
        waits for `release` whatever the gate)."""
        if self.holding:
            self.held = True
            return []
        mark = self.mark
        if not self.mode.places or self.instrument_halted is not False:
            return []
        if self.suspended or not self.book.synced or mark is None:
            return []
        return self.quoter.maybe(
            self.clock.now_ns(), mark, self.vol, reducing=self.mode is PoolMode.UNWINDING
        )

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
        """The engine rebuilt from what was stored (core/restart.py); the actions
        that leave nothing resting unless the pool is ACTIVE."""
        rebuild(
            self,
            fills=fills,
            open_orders=open_orders,
            funding=funding,
            day_baseline_pnl=day_baseline_pnl,
            day=day,
        )
        if self.mode is PoolMode.ACTIVE:
            return []
        return self._cancel_everything("restart: nothing rests while the pool is not ACTIVE")

    # ------------------------------------------------------------------ status

    def q_lots(self) -> int:
        """The pool's net position in lots: the sum over its current members."""
        return self.membership.q_lots()

    def day_pnl(self) -> Decimal:
        """The pool's PnL over the current UTC day, at mark (0 without one)."""
        mark = self.mark
        return self.guards.day_pnl(self.membership.total_pnl(mark)) if mark else Decimal(0)

    def status(self) -> EngineStatus:
        """The read-safe snapshot published as the pool's live status (core/status.py)."""
        return pool_status(self)
