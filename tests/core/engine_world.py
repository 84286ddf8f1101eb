"""A small deterministic world around one PoolEngine, shared by the engine tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal

from quoting_worker.core.engine import PoolEngine
from quoting_worker.core.ports import FakeClock
from quoting_worker.core.types import (
    Action,
    BookHeartbeat,
    BookSnapshot,
    CancelOrder,
    Command,
    Event,
    Fill,
    Instrument,
    InstrumentStatus,
    MarkPrice,
    MemberSpec,
    PlaceOrder,
    PoolParams,
    PublicTrade,
    Timer,
)

BTC = Instrument(
    "BTCUSDT-PERP",
    tick_size=Decimal("0.1"),
    lot_size=Decimal("0.001"),
    min_lots=1,
    min_notional=Decimal("5"),
)
PARAMS = PoolParams(
    gamma=0.1,
    kappa=1.5,
    tau_hours=1.0,
    vol_lookback_seconds=300,
    num_levels=3,
    level_spacing_bps=2.0,
    min_spread_bps=2.0,
    max_spread_bps=50.0,
    order_size_usdt=Decimal("6000"),
    max_pool_position_usdt=Decimal("200000"),
    max_pool_loss_usdt=Decimal("5000"),
    check_staleness=True,
    staleness_threshold_ms=5000,
    quote_interval_ms=100,
    price_threshold_bps=1.0,
    reject_storm_count=5,
    vol_min_samples=10,
)
MEMBERS = (
    MemberSpec(
        "aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa", "acct-a", Decimal("1"), Decimal("50000")
    ),
    MemberSpec(
        "bbbbbbbb-0000-0000-0000-000000000002", "bbbbbbbb", "acct-b", Decimal("2"), Decimal("50000")
    ),
    MemberSpec(
        "cccccccc-0000-0000-0000-000000000003", "cccccccc", "acct-c", Decimal("3"), Decimal("50000")
    ),
)
MID = 600_000  # ticks: 60,000.0 USDT
MS = 1_000_000


def book_levels(mid: int = MID, depth: int = 10, size: int = 500) -> tuple[tuple, tuple]:
    bids = tuple((mid - 5 - 10 * i, size) for i in range(depth))
    asks = tuple((mid + 5 + 10 * i, size) for i in range(depth))
    return bids, asks


class World:
    """An engine, its clock and the venue-side bookkeeping a test needs."""

    def __init__(
        self,
        params: PoolParams = PARAMS,
        members: Iterable[MemberSpec] = MEMBERS,
        shadow: bool = False,
    ) -> None:
        self.clock = FakeClock()
        self.engine = PoolEngine(
            instrument=BTC, params=params, members=members, clock=self.clock, shadow=shadow
        )
        self.seq = 0
        self.actions: list[Action] = []

    def send(self, event: Event) -> list[Action]:
        out = self.engine.handle(event)
        self.actions.extend(out)
        return out

    def now(self) -> int:
        return self.clock.now_ns()

    def tick(self, ms: int = 200, *, heartbeat: bool = True) -> list[Action]:
        """Time passes; the feed stays alive (a heartbeat) unless told otherwise."""
        self.clock.advance(ms * MS)
        out = self.send(BookHeartbeat(self.seq, self.now())) if heartbeat else []
        return out + self.send(Timer(self.now()))

    def snapshot(self, mid: int = MID) -> list[Action]:
        self.seq += 1
        bids, asks = book_levels(mid)
        return self.send(BookSnapshot(self.seq, bids, asks, self.now()))

    def warm(self, mid: int = MID) -> list[Action]:
        """Book, mark and enough trades for σ: the gate's preconditions."""
        out = self.send(InstrumentStatus(halted=False, ts_ns=self.now()))
        out += self.snapshot(mid)
        out += self.send(MarkPrice(BTC.price(mid), self.now()))
        for i in range(12):
            self.clock.advance(1000 * MS)
            out += self.send(BookHeartbeat(self.seq, self.now()))
            out += self.send(PublicTrade(mid + (10 if i % 2 else -10), 1, self.now()))
        return out

    def command(self, kind: str, **kwargs: object) -> list[Action]:
        return self.send(Command(kind, self.now(), **kwargs))  # type: ignore[arg-type]

    def active(self) -> list[Action]:
        self.warm()
        return self.command("enable") + self.tick()


def with_params(**changes: object) -> PoolParams:
    return replace(PARAMS, **changes)  # type: ignore[arg-type]


def places(actions: Iterable[Action]) -> list[PlaceOrder]:
    return [a for a in actions if isinstance(a, PlaceOrder)]


def cancels(actions: Iterable[Action]) -> list[CancelOrder]:
    return [a for a in actions if isinstance(a, CancelOrder)]


def fill_of(order: PlaceOrder, fill_id: str, lots: int | None = None, ts: int = 0) -> Fill:
    return Fill(
        fill_id=fill_id,
        client_order_id=order.client_order_id,
        side=order.side,
        price_ticks=order.price_ticks,
        size_lots=order.size_lots if lots is None else lots,
        fee=Decimal("-0.01"),
        ts_ns=ts,
    )


class ActionTrace:
    """One line per engine step: the event's type, how many actions it made and
    a digest of the event and the actions as they print. Two builds of the core
    fed the same schedules write the same file, or a step behaved differently."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life

    @classmethod
    def to(cls, path: str | None) -> ActionTrace | None:
        return cls(path) if path else None

    def step(self, event: object, actions: list[Action]) -> None:
        digest = hashlib.sha256(f"{event!r}|{actions!r}".encode()).hexdigest()[:16]
        self.file.write(f"{type(event).__name__} {len(actions)} {digest}\n")
        self.file.flush()
