"""The engine's safety invariants over random event schedules (hypothesis).

Every step feeds one event and checks what the engine emitted against an
independent model of what is allowed:

- no order is placed while the pool is not ACTIVE, nor after a kill switch
  until an explicit resume, nor while the worker has it suspended (its
  database down) until it unsuspends it;
- no quote crosses or touches the opposite best; prices on ticks; sizes on
  lots, at least the minimum; per-level member sizes sum to at most the pool's;
- positions and PnL equal an independent recomputation from the fills;
  every fill is booked once, to exactly one member;
- a stale or unsynced book never produces quotes;
- entering PAUSED or HALTED, or a suspension, cancels every open order;
- a restart rebuilt from fills and orders keeps positions and the day's guard.
"""

from __future__ import annotations

import os
from collections import defaultdict
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from quoting_worker.core.allocation import level_lots
from quoting_worker.core.engine import PoolEngine
from quoting_worker.core.types import (
    Action,
    BookDelta,
    BookHeartbeat,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    Command,
    Fill,
    InstrumentStatus,
    MarkPrice,
    OrderAccepted,
    OrderCancelled,
    OrderQueryResult,
    OrderRejected,
    PlaceOrder,
    PlaceOutcomeUnknown,
    PoolMode,
    PublicTrade,
    RiskTriggered,
    Side,
    Timer,
    UnwindFinished,
    VenueOpenOrders,
)
from tests.core.engine_world import BTC, MEMBERS, MID, MS, ActionTrace, World, with_params

PARAMS = with_params(quote_interval_ms=50, reject_storm_count=4, vol_min_samples=3)

# MMS_ACTION_TRACE=path records every step (tests/test_core_builds.py compares
# the compiled and the interpreted core's traces of the same schedules, and the
# incremental re-quote's with MMS_FULL_REQUOTE=1's, every slot every time).
TRACE = ActionTrace.to(os.environ.get("MMS_ACTION_TRACE"))
INCREMENTAL = os.environ.get("MMS_FULL_REQUOTE") != "1"


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World(params=PARAMS)
        self.engine = self.world.engine
        self.engine.quoter.incremental = INCREMENTAL
        self.mid = MID
        self.model_mode = PoolMode.PAUSED
        # Why the worker suspended the pool (its database down); "" when it did not.
        self.model_suspended = ""
        self.book_bids: dict[int, int] = {}
        self.book_asks: dict[int, int] = {}
        self.fills: list[tuple[str, Fill]] = []  # (participant id, fill), as stored
        self.position: dict[str, int] = defaultdict(int)
        self.cash: dict[str, Decimal] = defaultdict(Decimal)
        self.fees: dict[str, Decimal] = defaultdict(Decimal)
        self.fill_counter = 0
        self.instrument_halted: bool | None = None  # unknown until a status arrives
        self.last_received = self.world.now()
        self._snapshot(MID)
        self.instrument_status(False)
        # σ warm, a mark known and the pool enabled: it quotes from the first step
        # (left to the rules, a schedule almost never got there: nothing was placed).
        for offset in (-10, 10, -10, 10):
            self.world.clock.advance(100 * MS)
            self.heartbeat()
            self.trade(offset)
        self.mark(0)
        self.command("enable")

    # ---------------------------------------------------------------- plumbing

    def feed(self, event: object) -> list[Action]:
        synced_before = self.engine.book.synced
        out = self.engine.handle(event)  # type: ignore[arg-type]
        if TRACE is not None:
            TRACE.step(event, out)
        self.check_step(out, synced_before)
        return out

    def check_step(self, out: list[Action], synced_before: bool) -> None:
        orders = [a for a in out if isinstance(a, PlaceOrder)]
        if any(isinstance(a, RiskTriggered) for a in out):
            self.model_mode = PoolMode.HALTED
        elif any(isinstance(a, UnwindFinished) for a in out):
            assert self.model_mode is PoolMode.UNWINDING
            self.model_mode = PoolMode.PAUSED
        if self.engine.mode is PoolMode.UNWINDING:
            # Whatever may still be live on a member's reducing side never exceeds its
            # position, and nothing rests on the other side: no fill can grow |q|.
            for member in self.engine.members.values():
                position = member.runtime.position_lots
                for side in (Side.BUY, Side.SELL):
                    live = sum(
                        o.remaining_lots
                        for o in member.runtime.open_orders.values()
                        if o.side is side
                    )
                    reduces = position < 0 if side is Side.BUY else position > 0
                    assert live <= (abs(position) if reduces else 0) or not any(
                        isinstance(a, PlaceOrder)
                        and a.participant_id == member.spec.participant_id
                        and a.side is side
                        for a in out
                    ), f"unwinding: {live} lots may fill against a position of {position}"
        if orders:
            assert self.model_mode.places, f"placed while {self.model_mode}"
            assert self.engine.mode is self.model_mode
            assert not self.model_suspended, "placed while suspended"
            assert not self.engine.suspended
            assert self.instrument_halted is False, "placed while the instrument is not trading"
            assert self.engine.book.synced, "placed off an unsynced book"
            age_ms = (self.world.now() - self.last_received) // MS
            assert age_ms <= PARAMS.staleness_threshold_ms, "placed off a stale book"
        best_bid = max(self.book_bids) if self.book_bids else None
        best_ask = min(self.book_asks) if self.book_asks else None
        per_level: dict[tuple[Side, int, int], int] = defaultdict(int)
        for order in orders:
            assert isinstance(order.price_ticks, int)
            assert order.price_ticks > 0
            assert isinstance(order.size_lots, int)
            assert order.size_lots >= BTC.min_lots
            assert BTC.notional(order.price_ticks, order.size_lots) >= BTC.min_notional
            if order.side is Side.BUY and best_ask is not None:
                assert order.price_ticks < best_ask, "a bid touches or crosses the best ask"
            if order.side is Side.SELL and best_bid is not None:
                assert order.price_ticks > best_bid, "an ask touches or crosses the best bid"
            per_level[(order.side, order.level, order.price_ticks)] += order.size_lots
        for (_side, _level, price), lots in per_level.items():
            assert lots <= level_lots(PARAMS.order_size_usdt, price, BTC)
        if not self.engine.mode.places or not self.engine.book.synced or self.model_suspended:
            # Every order still open is being cancelled.
            for member in self.engine.members.values():
                for coid in member.runtime.open_orders:
                    assert coid in self.engine.orders.cancelling, f"{coid} left resting"

    def _snapshot(self, mid: int) -> None:
        self.book_bids = {mid - 5 - 10 * i: 300 for i in range(8)}
        self.book_asks = {mid + 5 + 10 * i: 300 for i in range(8)}
        self.world.seq += 1
        self.last_received = self.world.now()
        self.feed(
            BookSnapshot(
                self.world.seq,
                tuple(sorted(self.book_bids.items(), reverse=True)),
                tuple(sorted(self.book_asks.items())),
                self.world.now(),
            )
        )

    def _open_orders(self) -> list[tuple[str, str]]:
        return sorted(
            (pid, coid) for pid, m in self.engine.members.items() for coid in m.runtime.open_orders
        )

    # ---------------------------------------------------------------- market

    @rule(shift=st.integers(-300, 300))
    def snapshot(self, shift: int) -> None:
        self.mid = max(1000, self.mid + shift)
        self._snapshot(self.mid)

    @rule(
        bid_change=st.tuples(st.integers(0, 7), st.integers(0, 600)),
        ask_change=st.tuples(st.integers(0, 7), st.integers(0, 600)),
    )
    def delta(self, bid_change: tuple[int, int], ask_change: tuple[int, int]) -> None:
        self.world.seq += 1
        self.last_received = self.world.now()
        bid_price = self.mid - 5 - 10 * bid_change[0]
        ask_price = self.mid + 5 + 10 * ask_change[0]
        if self.engine.book.synced:
            for book, price, size in (
                (self.book_bids, bid_price, bid_change[1]),
                (self.book_asks, ask_price, ask_change[1]),
            ):
                if size:
                    book[price] = size
                else:
                    book.pop(price, None)
        self.feed(
            BookDelta(
                self.world.seq,
                ((bid_price, bid_change[1]),),
                ((ask_price, ask_change[1]),),
                self.world.now(),
            )
        )

    @rule()
    def gap(self) -> None:
        self.world.seq += 2
        self.last_received = self.world.now()
        self.feed(BookDelta(self.world.seq, (), (), self.world.now()))

    @rule()
    def heartbeat(self) -> None:
        self.last_received = self.world.now()
        self.feed(BookHeartbeat(self.world.seq, self.world.now()))

    @rule(offset=st.integers(-20, 20))
    def trade(self, offset: int) -> None:
        self.feed(PublicTrade(self.mid + offset, 1, self.world.now()))

    @rule(bps=st.integers(-200, 200))
    def mark(self, bps: int) -> None:
        price = BTC.price(self.mid) * (1 + Decimal(bps) / 10_000)
        self.feed(MarkPrice(price, self.world.now()))

    @rule(ms=st.sampled_from([10, 60, 400, 2000, 7000]))
    def time_passes(self, ms: int) -> None:
        self.world.clock.advance(ms * MS)
        self.feed(Timer(self.world.now()))

    @rule()
    def hold(self) -> None:
        """A runner found a backlog: events apply, quoting waits for `release`."""
        self.engine.hold()

    @rule()
    def release(self) -> None:
        synced_before = self.engine.book.synced
        self.check_step(self.engine.release(), synced_before)

    @rule(halted=st.booleans())
    def instrument_status(self, halted: bool) -> None:
        self.instrument_halted = halted
        self.feed(InstrumentStatus(halted, self.world.now()))

    # ---------------------------------------------------------------- venue answers

    @precondition(lambda self: bool(self._open_orders()))
    @rule(data=st.data(), partial=st.booleans())
    def fill(self, data: st.DataObject, partial: bool) -> None:
        pid, coid = data.draw(st.sampled_from(self._open_orders()))
        order = self.engine.members[pid].runtime.open_orders[coid]
        lots = max(1, order.remaining_lots // 2) if partial else order.remaining_lots
        self.fill_counter += 1
        fill = Fill(
            f"fill-{self.fill_counter}",
            coid,
            order.side,
            order.price_ticks,
            lots,
            Decimal("-0.0125"),
            self.world.now(),
        )
        self._book_fill(pid, fill)
        self.feed(fill)

    @precondition(lambda self: bool(self.fills))
    @rule(data=st.data())
    def duplicate_fill(self, data: st.DataObject) -> None:
        self.feed(data.draw(st.sampled_from(self.fills))[1])

    def _book_fill(self, pid: str, fill: Fill) -> None:
        self.fills.append((pid, fill))
        signed = fill.size_lots if fill.side is Side.BUY else -fill.size_lots
        self.position[pid] += signed
        self.cash[pid] -= BTC.notional(fill.price_ticks, fill.size_lots) * (1 if signed > 0 else -1)
        self.fees[pid] += fill.fee

    @precondition(lambda self: bool(self._open_orders()))
    @rule(data=st.data(), answer=st.sampled_from(["accept", "reject", "cancel", "unknown"]))
    def order_answer(self, data: st.DataObject, answer: str) -> None:
        _pid, coid = data.draw(st.sampled_from(self._open_orders()))
        now = self.world.now()
        event = {
            "accept": OrderAccepted(coid, f"v-{coid}", now),
            "reject": OrderRejected(coid, "post only", now),
            "cancel": OrderCancelled(coid, now),
            "unknown": PlaceOutcomeUnknown(coid, now),
        }[answer]
        self.feed(event)

    @precondition(lambda self: bool(self._open_orders()))
    @rule(data=st.data(), found=st.booleans(), is_open=st.booleans())
    def query_answer(self, data: st.DataObject, found: bool, is_open: bool) -> None:
        _pid, coid = data.draw(st.sampled_from(self._open_orders()))
        self.feed(OrderQueryResult(coid, found, is_open and found, self.world.now()))

    @rule(data=st.data(), stranger=st.booleans())
    def venue_listing(self, data: st.DataObject, stranger: bool) -> None:
        """Reconciliation: the venue lists some of a member's orders, maybe one we lost."""
        member = data.draw(st.sampled_from(MEMBERS))
        ours = [c for pid, c in self._open_orders() if pid == member.participant_id]
        listed = set(data.draw(st.lists(st.sampled_from(ours), unique=True))) if ours else set()
        if stranger:
            listed.add(f"mm-{member.short_id}-BTCUSDT-PERP-0-BUY-{len(self.fills) + 7}")
        self.feed(VenueOpenOrders(member.account_id, frozenset(listed), self.world.now()))

    # ---------------------------------------------------------------- commands

    @rule(kind=st.sampled_from(["enable", "resume", "pause", "kill", "flatten", "unwind"]))
    def command(self, kind: str) -> None:
        if kind == "unwind":
            # The authority allows it from PAUSED or HALTED only.
            if self.model_mode not in (PoolMode.PAUSED, PoolMode.HALTED):
                return
            self.model_mode = PoolMode.UNWINDING
        elif kind in ("enable", "resume"):
            self.model_mode = PoolMode.ACTIVE
        elif kind == "pause":
            self.model_mode = PoolMode.PAUSED
        else:
            self.model_mode = PoolMode.HALTED
        self.feed(Command(kind, self.world.now(), reason="test"))

    @rule(reason=st.sampled_from(["fill not recorded", "order not recorded"]))
    def suspend(self, reason: str) -> None:
        """The worker could not put a fill, halt or order on record: the mode stays."""
        again = bool(self.model_suspended)
        self.model_suspended = self.model_suspended or reason
        mode = self.engine.mode
        out = self.feed(Command("suspend", self.world.now(), reason=reason))
        assert self.engine.mode is mode
        if again:
            assert out == []
        else:
            accounts = tuple(sorted(m.account_id for m in MEMBERS))
            assert [a for a in out if isinstance(a, CancelAll)] == [
                CancelAll(accounts, f"suspend: {reason}")
            ]

    @rule()
    def unsuspend(self) -> None:
        """The database answers again (the worker may say so when nothing was suspended)."""
        self.model_suspended = ""
        mode = self.engine.mode
        self.feed(Command("unsuspend", self.world.now()))
        assert self.engine.mode is mode

    @rule()
    def restart(self) -> None:
        """A new engine rebuilt from the persisted fills and orders replaces this one."""
        old = self.engine
        twin = PoolEngine(
            instrument=BTC,
            params=PARAMS,
            members=MEMBERS,
            clock=self.world.clock,
            ids=old.ids,
            mode=PoolMode.PAUSED if old.mode is PoolMode.ACTIVE else old.mode,
        )
        twin.quoter.incremental = INCREMENTAL
        boot = twin.restore(
            fills=self.fills,
            open_orders=[
                (pid, order)
                for pid, m in old.members.items()
                for order in m.runtime.open_orders.values()
            ],
            day_baseline_pnl=old.guards.day_baseline_pnl,
            day=old.guards.day,
        )
        for pid, member in old.members.items():
            assert twin.members[pid].runtime.position_lots == member.runtime.position_lots
            assert twin.members[pid].runtime.total_pnl(Decimal(1)) == member.runtime.total_pnl(
                Decimal(1)
            )
        # A new process knows nothing of the instrument until told, and read its
        # state from the database: that answers, so nothing is suspended.
        self.instrument_halted = None
        self.model_suspended = ""
        # Booting never quotes: an ACTIVE pool comes back PAUSED (SPEC B.9).
        if self.model_mode is PoolMode.ACTIVE:
            self.model_mode = PoolMode.PAUSED
        self.world.engine = self.engine = twin
        cancelled = {a.client_order_id for a in boot if isinstance(a, CancelOrder)}
        assert cancelled == {coid for _pid, coid in self._open_orders()}
        self._snapshot(self.mid)
        if old.mark is not None:
            self.feed(MarkPrice(old.mark, self.world.now()))

    # ---------------------------------------------------------------- invariants

    @invariant()
    def positions_and_pnl_match_an_independent_recomputation(self) -> None:
        mark = Decimal("60000")
        for pid, member in self.engine.members.items():
            runtime = member.runtime
            assert runtime.position_lots == self.position[pid]
            expected = self.cash[pid] + BTC.size(self.position[pid]) * mark - self.fees[pid]
            assert runtime.total_pnl(mark) == expected
        assert self.engine.unattributed_fills == []

    @invariant()
    def open_orders_and_own_levels_agree(self) -> None:
        totals: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        for member in self.engine.members.values():
            for order in member.runtime.open_orders.values():
                side = totals[order.side]
                side[order.price_ticks] = side.get(order.price_ticks, 0) + order.remaining_lots
        assert totals == self.engine.orders.own_levels

    @invariant()
    def a_suspension_keeps_the_gate_closed(self) -> None:
        assert self.engine.suspended == self.model_suspended
        if self.model_suspended and self.engine.mode is PoolMode.ACTIVE:
            assert self.engine.gate() == f"suspended: {self.model_suspended}"

    @invariant()
    def the_remembered_microprice_is_the_current_one(self) -> None:
        """The book remembers its microprice between deltas that cannot move it;
        whatever happened to the book or the pool's own orders, it is current."""
        own = self.engine.orders.own_levels
        book = self.engine.book
        remembered = book.microprice(own[Side.BUY], own[Side.SELL], self.engine.orders.own_version)
        assert remembered == book.microprice(own[Side.BUY], own[Side.SELL])

    @invariant()
    def cancels_only_name_known_orders(self) -> None:
        for coid in self.engine.orders.cancelling:
            assert coid in self.engine.orders.owner


# Examples come from the profile (tests/core/conftest.py); each runs up to 60 steps.
EngineMachine.TestCase.settings = settings(stateful_step_count=60)
TestEngineInvariants = EngineMachine.TestCase
