"""The incremental re-quote (Quoter: targets kept while their inputs are the
same, a refill diffing only the freed and unplaced slots) decides exactly what
a re-quote that works out and diffs every slot decides.

Two engines are fed the same events, one incremental and one not; the events
are drawn to make refills common (the venue cancelling and rejecting orders,
outcomes turning unknown, partial fills, the mark moving a member onto its
limit, the book moving a little or a lot), and at every step both must emit the
same actions."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from quoting_worker.core.engine import PoolEngine
from quoting_worker.core.ports import FakeClock
from quoting_worker.core.types import (
    Action,
    BookDelta,
    BookHeartbeat,
    BookSnapshot,
    Command,
    Event,
    Fill,
    InstrumentStatus,
    MarkPrice,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    PlaceOrder,
    PlaceOutcomeUnknown,
    PublicTrade,
    Timer,
)
from tests.core.engine_world import BTC, MEMBERS, MID, MS, book_levels, with_params

PARAMS = with_params(quote_interval_ms=50, vol_min_samples=3, reject_storm_count=1000)
# A tight limit for one member, so that fills and mark moves change its room.
SPECS = (replace(MEMBERS[0], max_position_usdt=Decimal("8000")), *MEMBERS[1:])

step = st.one_of(
    st.tuples(st.just("venue_cancel"), st.integers(0, 200)),
    st.tuples(st.just("reject"), st.integers(0, 200)),
    st.tuples(st.just("unknown"), st.integers(0, 200)),
    st.tuples(st.just("accept"), st.integers(0, 200)),
    st.tuples(st.just("fill"), st.integers(0, 200), st.integers(1, 40)),
    st.tuples(st.just("tick"), st.integers(1, 400)),
    st.tuples(st.just("mark"), st.integers(-300, 300)),
    st.tuples(st.just("top"), st.integers(1, 900)),
    st.tuples(st.just("move"), st.integers(-2000, 2000)),
    st.tuples(st.just("confirm_cancels"), st.just(0)),
)


class Pair:
    """The two engines, their clock, and the venue's side of the conversation."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.engines = [
            PoolEngine(instrument=BTC, params=PARAMS, members=SPECS, clock=self.clock)
            for _ in range(2)
        ]
        self.engines[1].quoter.incremental = False
        self.seq = 0
        self.mid = MID
        self.fills = 0
        self.steps = 0
        self.placed: list[str] = []  # client order ids, in the order they were placed

    def send(self, event: Event) -> list[Action]:
        incremental, full = (engine.handle(event) for engine in self.engines)
        assert incremental == full, f"step {self.steps}: {event!r}"
        self.steps += 1
        self.placed.extend(a.client_order_id for a in incremental if isinstance(a, PlaceOrder))
        return incremental

    def now(self) -> int:
        return self.clock.now_ns()

    def snapshot(self) -> None:
        self.seq += 1
        bids, asks = book_levels(self.mid)
        self.send(BookSnapshot(self.seq, bids, asks, self.now()))

    def start(self) -> None:
        self.send(InstrumentStatus(halted=False, ts_ns=self.now()))
        self.snapshot()
        self.send(MarkPrice(BTC.price(self.mid), self.now()))
        for i in range(5):
            self.clock.advance(1000 * MS)
            self.send(BookHeartbeat(self.seq, self.now()))
            self.send(PublicTrade(self.mid + (10 if i % 2 else -10), 1, self.now()))
        self.send(Command("enable", self.now()))
        self.tick(200)

    def tick(self, ms: int) -> None:
        self.clock.advance(ms * MS)
        self.send(BookHeartbeat(self.seq, self.now()))
        self.send(Timer(self.now()))

    def resting(self, index: int) -> tuple[str, object] | None:
        """The `index`-th (modulo) order the incremental engine tracks, by id."""
        orders = sorted(
            (coid, order)
            for member in self.engines[0].members.values()
            for coid, order in member.runtime.open_orders.items()
        )
        return orders[index % len(orders)] if orders else None

    def apply(self, kind: str, first: int, second: int = 0) -> None:
        now = self.now()
        if kind == "tick":
            self.tick(first)
        elif kind == "mark":
            self.send(MarkPrice(BTC.price(self.mid) * (1 + Decimal(first) / 10_000), now))
        elif kind == "top":
            self.seq += 1
            self.send(BookDelta(self.seq, ((self.mid - 5, first),), (), now))
        elif kind == "move":
            self.mid += first
            self.snapshot()
        elif kind == "confirm_cancels":
            for coid in sorted(self.engines[0].orders.cancelling):
                self.send(OrderCancelled(coid, now))
        else:
            found = self.resting(first)
            if found is None:
                return
            coid, order = found
            if kind == "venue_cancel":
                self.send(OrderCancelled(coid, now))
            elif kind == "reject":
                self.send(OrderRejected(coid, "POST_ONLY_WOULD_CROSS", now))
            elif kind == "unknown":
                self.send(PlaceOutcomeUnknown(coid, now))
            elif kind == "accept":
                self.send(OrderAccepted(coid, f"v-{coid}", now))
            elif kind == "fill":
                self.fills += 1
                lots = min(second, order.remaining_lots)  # type: ignore[attr-defined]
                self.send(
                    Fill(
                        f"f-{self.fills}",
                        coid,
                        order.side,  # type: ignore[attr-defined]
                        order.price_ticks,  # type: ignore[attr-defined]
                        lots,
                        Decimal("0.01"),
                        now,
                    )
                )


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(step, min_size=5, max_size=60))
def test_the_incremental_requote_decides_what_the_full_one_decides(
    steps: list[tuple[str, int] | tuple[str, int, int]],
) -> None:
    pair = Pair()
    pair.start()
    assert pair.placed  # the pool quotes from the start
    for kind, *args in steps:
        pair.apply(kind, *args)
