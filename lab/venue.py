"""One pool's PoolEngine against TradeX's background market and matching engine,
in one process, on simulated time.

`SimulatedVenue` wires the live engine (quoting_worker.core) to the simulator's
`Exchange` and `Market` (simulator/) the way the runquoter and TradeX's feed
and Order Service do, without Kafka or HTTP in between:

- the exchange's events become the engine's: every level change a `BookDelta`
  (one sequence per change), public trades `PublicTrade`, marks `MarkPrice`,
  the pool's fills `Fill`, order answers `OrderAccepted` / `OrderRejected` /
  `OrderCancelled`; a heartbeat and a timer every `tick_ms`;
- the engine's actions reach the exchange `order_latency_ms` after they were
  decided, in the order the engine gave them (as the Order Service sink sends a
  price's placements one after another), so orders at one price queue in the
  engine's order; a query is answered from the exchange's order; a snapshot
  request is answered with the exchange's depth.

Deterministic for a seed: the market's draws depend on the seed alone, and
the engine and the exchange are driven from one loop.

`VenueShares` watches the exchange for the fairness study (SPEC Part B.19):
per member, the maker volume it was filled and the volume its share of the
pool's resting size on that side entitled it to, that share read from the
exchange's own orders just before each taker reached the pool.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from quoting_worker.core.engine import PoolEngine
from quoting_worker.core.ports import FakeClock
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
    Instrument,
    InstrumentStatus,
    MarkPrice,
    MemberSpec,
    OrderAccepted,
    OrderCancelled,
    OrderQueryResult,
    OrderRejected,
    PlaceOrder,
    PoolParams,
    PublicTrade,
    QueryOrder,
    RequestSnapshot,
    RiskTriggered,
    Side,
    Timer,
)
from simulator import model as sim
from simulator.exchange import Exchange
from simulator.market import PROFILES, Market, SymbolProfile
from simulator.model import INSTRUMENTS, InstrumentRules

NS_PER_MS = 1_000_000
DEPTH = 20  # levels a side in a snapshot


def instrument_of(rules: InstrumentRules) -> Instrument:
    """The engine's view of the simulator's instrument rules."""
    min_lots = int(rules.min_size / rules.lot_size)
    return Instrument(rules.symbol, rules.tick_size, rules.lot_size, min_lots, rules.min_notional)


@dataclass
class MemberFills:
    """One member's maker fills as the exchange saw them, in lots."""

    filled: int = 0
    entitled: float = 0.0
    fills: int = 0
    largest: int = 0


@dataclass
class VenueShares:
    """Per member account: maker volume filled, and the volume its share of the
    pool's resting size entitled it to (see the module docstring)."""

    instrument: Instrument
    accounts: frozenset[str]
    members: dict[str, MemberFills] = field(default_factory=dict)
    # (account, side) → lots resting now, kept from the exchange's events.
    resting: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    # The take under way: its side and time, and the shares before it reached the pool.
    _take: tuple[str, int] | None = None
    _shares: dict[str, float] = field(default_factory=dict)

    def accepted(self, account: str, side: str, lots: int) -> None:
        self.resting[account, side] += lots

    def gone(self, account: str, side: str, lots: int) -> None:
        self.resting[account, side] -= lots

    def filled(self, account: str, side: str, lots: int, ts_ns: int) -> None:
        if self._take != (side, ts_ns):
            self._take = (side, ts_ns)
            total = sum(self.resting[a, side] for a in self.accounts)
            self._shares = {a: self.resting[a, side] / total for a in self.accounts if total}
        for holder, share in self._shares.items():
            self.members.setdefault(holder, MemberFills()).entitled += share * lots
        member = self.members.setdefault(account, MemberFills())
        member.filled += lots
        member.fills += 1
        member.largest = max(member.largest, lots)
        self.gone(account, side, lots)

    def table(self) -> list[dict[str, float | int | str]]:
        """Per member: fills, volume share, size share, their difference, and the
        tolerance max(2 × largest fill ÷ pool volume, 0.02) (issue 19)."""
        volume = sum(m.filled for m in self.members.values())
        largest = max((m.largest for m in self.members.values()), default=0)
        tolerance = max(2 * largest / volume, 0.02) if volume else 1.0
        rows: list[dict[str, float | int | str]] = []
        for account in sorted(self.accounts):
            m = self.members.get(account, MemberFills())
            vol_share = m.filled / volume if volume else 0.0
            size_share = m.entitled / volume if volume else 0.0
            rows.append(
                {
                    "account": account,
                    "fills": m.fills,
                    "volume": str(self.instrument.size(m.filled)),
                    "volume_share": round(vol_share, 4),
                    "size_share": round(size_share, 4),
                    "difference": round(vol_share - size_share, 4),
                    "tolerance": round(tolerance, 4),
                }
            )
        return rows


class SimulatedVenue:
    """One pool on the simulator, in process (see the module docstring)."""

    def __init__(
        self,
        *,
        symbol: str,
        params: PoolParams,
        members: Iterable[MemberSpec],
        seed: int,
        start_ns: int,
        profile: SymbolProfile | None = None,
        order_latency_ms: int = 20,
        tick_ms: int = 100,
    ) -> None:
        rules = next(r for r in INSTRUMENTS if r.symbol == symbol)
        self.instrument = instrument_of(rules)
        self.symbol = symbol
        self.members = tuple(members)
        self.clock = FakeClock(start_ns)
        self.exchange = Exchange([rules], on_event=self._on_exchange)
        self.market = Market(
            self.exchange, [profile or PROFILES[symbol]], seed=seed, start_ns=start_ns
        )
        self.engine = PoolEngine(
            instrument=self.instrument, params=params, members=self.members, clock=self.clock
        )
        self.shares = VenueShares(self.instrument, frozenset(m.account_id for m in self.members))
        self.latency_ns = order_latency_ms * NS_PER_MS
        self.tick_ns = tick_ms * NS_PER_MS
        self.seq = 0
        self.halts: list[RiskTriggered] = []
        self._inbox: list[Event] = []  # exchange events for the engine, in order
        self._due: list[tuple[int, int, Action]] = []  # (when, order, action) heap
        self._order = itertools.count()
        self._accounts = {m.participant_id: m.account_id for m in self.members}

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """The instrument open, a snapshot and a mark; the pool enabled (it quotes
        once σ is warm)."""
        now = self.clock.now_ns()
        self.market.advance(now)
        self._deliver(InstrumentStatus(halted=False, ts_ns=now))
        self._deliver(self._snapshot(now))
        self._deliver(MarkPrice(self.market.mark(self.symbol), now))
        self._deliver(Command("enable", now, reason="lab"))

    def run_until(self, end_ns: int) -> None:
        """Simulated time up to `end_ns`: market steps, the engine's timer and
        heartbeat each tick, its actions at the exchange after the latency."""
        while self.clock.now_ns() < end_ns:
            now = self.clock.now_ns() + self.tick_ns
            while self._due and self._due[0][0] <= now:
                when, _, action = heapq.heappop(self._due)
                self._step_to(when)
                self._carry_out(action, when)
            self._step_to(now)
            self._deliver(BookHeartbeat(self.seq, now))
            self._deliver(Timer(now))

    def _step_to(self, ts_ns: int) -> None:
        if ts_ns > self.clock.now_ns():
            self.clock.set(ts_ns)
        self.market.advance(ts_ns)
        self._drain()

    def _drain(self) -> None:
        while self._inbox:
            inbox, self._inbox = self._inbox, []
            for event in inbox:
                self._deliver(event)

    def _deliver(self, event: Event) -> None:
        for action in self.engine.handle(event):
            if isinstance(action, RiskTriggered):
                self.halts.append(action)
            elif isinstance(action, PlaceOrder | CancelOrder | CancelAll | QueryOrder):
                when = self.clock.now_ns() + self.latency_ns
                heapq.heappush(self._due, (when, next(self._order), action))
            elif isinstance(action, RequestSnapshot):
                self._inbox.append(self._snapshot(self.clock.now_ns()))

    # ------------------------------------------------------------------ the exchange

    def _carry_out(self, action: Action, now: int) -> None:
        exchange, inst = self.exchange, self.instrument
        if isinstance(action, PlaceOrder):
            exchange.place(
                account_id=action.account_id,
                client_order_id=action.client_order_id,
                symbol=self.symbol,
                side=action.side.value,
                price=inst.price(action.price_ticks),
                size=inst.size(action.size_lots),
                ts_ns=now,
            )
        elif isinstance(action, CancelOrder):
            if (
                exchange.cancel(
                    account_id=action.account_id,
                    client_order_id=action.client_order_id,
                    ts_ns=now,
                    symbol=self.symbol,
                )
                is None
            ):
                # Not live: filled, never placed or already gone, all the same now.
                self._inbox.append(OrderCancelled(action.client_order_id, now))
        elif isinstance(action, CancelAll):
            for account in action.account_ids:
                exchange.cancel_all(account_id=account, symbol=self.symbol, ts_ns=now)
        elif isinstance(action, QueryOrder):
            order = exchange.order(action.account_id, action.client_order_id)
            self._inbox.append(
                OrderQueryResult(
                    action.client_order_id,
                    found=order is not None,
                    open=order is not None and order.live,
                    ts_ns=now,
                )
            )
        self._drain()

    def _snapshot(self, now: int) -> BookSnapshot:
        self.seq += 1
        inst = self.instrument
        bids, asks = (
            tuple(
                (inst.ticks(price), inst.lots(size))
                for price, size in self.exchange.depth(self.symbol, side, DEPTH)
            )
            for side in ("BUY", "SELL")
        )
        return BookSnapshot(self.seq, bids, asks, now)

    def _on_exchange(self, event: sim.ExchangeEvent) -> None:
        inst, inbox = self.instrument, self._inbox
        match event:
            case sim.LevelChanged():
                self.seq += 1
                level = ((inst.ticks(event.price), inst.lots(event.size)),)
                bids, asks = (level, ()) if event.side == "BUY" else ((), level)
                inbox.append(BookDelta(self.seq, bids, asks, event.ts_ns))
            case sim.Traded():
                inbox.append(
                    PublicTrade(inst.ticks(event.price), inst.lots(event.size), event.ts_ns)
                )
            case sim.MarkChanged():
                inbox.append(MarkPrice(event.mark_price, event.ts_ns))
            case sim.OrderAccepted() if event.account_id in self.shares.accounts:
                order = self.exchange.order(event.account_id, event.client_order_id)
                if order is not None:
                    self.shares.accepted(event.account_id, order.side, inst.lots(order.size))
                inbox.append(OrderAccepted(event.client_order_id, event.order_id, event.ts_ns))
            case sim.OrderRejected() if event.account_id in self.shares.accounts:
                inbox.append(OrderRejected(event.client_order_id, event.reason, event.ts_ns))
            case sim.OrderCancelled() if event.account_id in self.shares.accounts:
                order = self.exchange.order(event.account_id, event.client_order_id)
                if order is not None:
                    self.shares.gone(event.account_id, order.side, inst.lots(order.remaining))
                inbox.append(OrderCancelled(event.client_order_id, event.ts_ns))
            case sim.Filled() if event.account_id in self.shares.accounts:
                lots = inst.lots(event.size)
                self.shares.filled(event.account_id, event.side, lots, event.ts_ns)
                inbox.append(
                    Fill(
                        event.fill_id,
                        event.client_order_id,
                        Side(event.side),
                        inst.ticks(event.price),
                        lots,
                        event.fee,
                        event.ts_ns,
                    )
                )
            case _:
                pass

    # ------------------------------------------------------------------ reading

    def pool_fills(self) -> int:
        return sum(m.fills for m in self.shares.members.values())

    def position(self, participant_id: str) -> Decimal:
        account = self.exchange.accounts.get(self._accounts[participant_id])
        return Decimal(0) if account is None else account.positions.get(self.symbol, Decimal(0))
