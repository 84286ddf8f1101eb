"""The per-symbol actor (SPEC Part A "Actor model"): the one owner of a pool's
PoolEngine in the runquoter. There is no other way an event reaches an engine.

Two tasks per hosted symbol:
- the **drain** takes the engine's queue in order. A fill or a funding payment
  is stored before the engine sees it (`Database.durably`); commands waiting in
  `urgent` go before the next queued event (a pause must not wait behind a
  backlog of deltas); a backlog is applied under the engine's hold and quoted
  once at the end, and the drain yields to the loop every DRAIN_SLICE_S;
- the **sender** works through the order traffic the engine decided, in its
  order, while the drain goes on applying market data (a slow venue never
  stalls the book): each batch goes to the Order Service sink at once,
  write-ahead (an order is on record PENDING before it can exist at the
  venue), and the gate is checked again as each placement leaves.

What the rest of the process may do with an actor: `put` an event, `command`
it, hand it a venue `answer`, ask `may_place`, `flush_statuses` (its orders'
new statuses to mm_orders), read `engine`/`queue` for status and metrics, and
`stop` it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import psycopg
import structlog
from django.db import Error as DatabaseError

from common.failpoints import failpoint
from pools.leases import StaleLease
from quoting_worker.adapters import store
from quoting_worker.adapters.journal import OrderJournal
from quoting_worker.adapters.metrics import QuoterMetrics
from quoting_worker.adapters.order_service import OrderServiceSink
from quoting_worker.core.engine import PoolEngine
from quoting_worker.core.types import (
    Action,
    CancelAll,
    CancelOrder,
    Command,
    Event,
    Fill,
    FundingPayment,
    Instrument,
    OrderAbandoned,
    OrderAccepted,
    OrderCancelled,
    OrderQueryResult,
    OrderRejected,
    PlaceOrder,
    PlaceOutcomeUnknown,
    QueryOrder,
    RequestSnapshot,
    RiskTriggered,
    SimulatedQuote,
    Timer,
    UnwindFinished,
)
from quoting_worker.runner.durable import Database
from telemetry import tracing
from telemetry.tracing import Cause
from trading.enums import OrderStatus

logger = logging.getLogger("mms.quoter")

# An event for the engine, the callback that marks its message done (Kafka
# events), and the trace context it carries when tracing is on.
QueueItem = tuple[Event, Callable[[], None] | None, Cause | None]
DRAIN_SLICE_S = 0.002  # an engine's drain yields to the loop after this much work
ORDER_TRAFFIC = (PlaceOrder, CancelOrder, CancelAll, QueryOrder, RequestSnapshot)
OPENING_COMMANDS = frozenset({"enable", "resume", "unwind"})
REJECT_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,47}")
VENUE_ANSWERS: dict[type, str] = {
    OrderAccepted: "accepted",
    OrderRejected: "rejected",
    OrderCancelled: "cancelled",
    PlaceOutcomeUnknown: "unknown",
}
SENT_AS: dict[type, str] = {
    PlaceOrder: "place",
    CancelOrder: "cancel",
    CancelAll: "cancel_all",
    QueryOrder: "query",
    RequestSnapshot: "snapshot",
}


class Clock(Protocol):
    def now_ns(self) -> int: ...


def reject_reason_label(reason: str) -> str:
    """The venue's reject code as a metric label: codes look like POST_ONLY_WOULD_CROSS;
    anything else (free text) is OTHER, so the label set stays small."""
    return reason if REJECT_CODE.fullmatch(reason) else "OTHER"


def order_change(event: Event) -> store.OrderChange | None:
    """The status an order takes in mm_orders after a venue answer, if any."""
    if isinstance(event, OrderAccepted):
        return store.OrderChange(event.client_order_id, OrderStatus.OPEN, event.venue_order_id)
    if isinstance(event, OrderRejected):
        return store.OrderChange(event.client_order_id, OrderStatus.REJECTED, reason=event.reason)
    if isinstance(event, OrderCancelled):
        return store.OrderChange(event.client_order_id, OrderStatus.CANCELLED)
    if isinstance(event, OrderQueryResult) and event.found and not event.open:
        return store.OrderChange(event.client_order_id, OrderStatus.CANCELLED)
    return None


class PoolActor:
    """One hosted symbol's engine, queue, drain and sender (module docstring)."""

    def __init__(
        self,
        *,
        engine: PoolEngine,
        instrument: Instrument,
        token: int,
        worker_id: str,
        clock: Clock,
        database: Database,
        sink: OrderServiceSink,
        journal: OrderJournal,
        metrics: QuoterMetrics,
    ) -> None:
        self.symbol = engine.symbol
        self.engine = engine
        self.instrument = instrument
        self.token = token
        self.worker_id = worker_id
        self.clock = clock
        self.database = database
        self.sink = sink
        self.journal = journal
        self.metrics = metrics
        self.queue: asyncio.Queue[QueueItem | None] = asyncio.Queue()
        self.version = 0  # of the live status record
        # Commands overtake the market events queued before them: the engine takes
        # these first. Each with the monotonic ns of the row read that decided it
        # (None: not a read).
        self.urgent: deque[tuple[Command, Cause | None, int | None]] = deque()
        # Monotonic ns before which a row read cannot resume the engine: the gate was
        # closed by what the row may not show yet. A kill-switch trip: +inf while its
        # halt is being written, then when it is on record. A change notice: when it
        # was heard (a re-read already under way may have read the row before the
        # change committed).
        self.closed_ns: float = 0.0
        # Order traffic, in the engine's order, for the sender.
        self.sends: asyncio.Queue[tuple[list[Action], Cause | None] | None] = asyncio.Queue()
        # The venue's answers not yet in mm_orders (written in batches: `flush_statuses`).
        self.status_changes: list[store.OrderChange] = []
        # The trace context of the event or command being applied (tracing on): the
        # orders the engine decides now are sent under it.
        self.cause: Cause | None = None
        self.task: asyncio.Task[None] | None = None
        self.sender: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ doors

    async def start(self, boot: Sequence[Action]) -> None:
        """Starts the drain and the sender, then carries out the engine's boot actions."""
        self.task = asyncio.create_task(self._drain(), name=f"engine-{self.symbol}")
        self.sender = asyncio.create_task(self._send_forever(), name=f"send-{self.symbol}")
        await self.execute(boot)

    def put(self, event: Event, done: Callable[[], None] | None, cause: Cause | None) -> None:
        self.queue.put_nowait((event, done, cause))

    def command(
        self, command: Command, cause: Cause | None = None, *, read_ns: int | None = None
    ) -> None:
        """Queues `command` ahead of the engine's events; `read_ns`: when the row
        that decided it was read (control's sync)."""
        self.urgent.append((command, cause, read_ns))
        self.queue.put_nowait((Timer(self.clock.now_ns()), None, None))  # wakes an idle drain

    def answer(self, event: Event) -> None:
        """An Order Service answer: to the engine at once; the order's new status
        goes to mm_orders in the next batch (`flush_statuses`). The record is
        history and the restart's hint, never the engine's source: an order whose
        last status a crash lost is settled by reconciliation."""
        change = order_change(event)
        if change is not None:
            self.status_changes.append(change)
        kind = VENUE_ANSWERS.get(type(event))
        if kind is not None:
            self.metrics.order_events.labels(self.symbol, kind).inc()
        if isinstance(event, OrderRejected):
            self._rejected(event)
        self.queue.put_nowait((event, None, None))

    def may_place(self) -> bool:
        """The gate as a placement leaves the process (after any wait for its turn):
        the pool ACTIVE (or UNWINDING), not suspended, and its book not gone stale
        meanwhile."""
        return (
            self.engine.mode.places
            and not self.engine.suspended
            and self.engine.book_fresh(self.clock.now_ns())
        )

    async def stop(self, reason: str) -> None:
        """Gate closed and orders cancelled (a pause), queued work finished (the
        drain gets 10 s: a durable write still waiting for the database is
        cancelled, its offset not committed, so the next owner reads it again),
        every batch sent, every status change on record."""
        await self.execute(self.engine.handle(Command("pause", self.clock.now_ns(), reason=reason)))
        await self.queue.put(None)
        if self.task is not None:
            done, _ = await asyncio.wait({self.task}, timeout=10)
            if not done:
                self.task.cancel()
        self.sends.put_nowait(None)  # after everything the engine decided
        if self.sender is not None:
            await asyncio.wait({self.sender}, timeout=30)
        await self.flush_statuses()

    async def flush_statuses(self) -> None:
        """The waiting status changes, in one transaction."""
        changes, self.status_changes = self.status_changes, []
        if not changes:
            return
        try:
            await self.database.call(
                store.orders_record,
                symbol=self.symbol,
                token=self.token,
                instrument=self.instrument,
                changes=changes,
            )
            if any(c.status is OrderStatus.OPEN for c in changes):
                failpoint("place.acked")
        except StaleLease:
            logger.error(
                "%s: lease lost; %d status changes not recorded",
                self.symbol,
                len(changes),
                extra={"symbol": self.symbol},
            )
        except DatabaseError as exc:
            # Kept for the next batch (one transaction: nothing of it was written).
            self.status_changes[:0] = changes
            self.database.lost(f"{self.symbol} order statuses", exc)
        except Exception:
            self.status_changes[:0] = changes
            logger.exception(
                "%s: %d status changes not recorded; trying again",
                self.symbol,
                len(changes),
                extra={"symbol": self.symbol},
            )

    # ------------------------------------------------------------------ the drain

    async def _drain(self) -> None:
        """The engine's one consumer. Commands waiting in `urgent` go before the next
        queued event. What is queued is applied under the engine's hold and quoted
        once at the end (a backlog is never re-quoted event by event, each time off
        a state already superseded); after DRAIN_SLICE_S of work the task quotes and
        yields, so a backlog on one symbol never holds up the loop's timers,
        renewals or other symbols."""
        structlog.contextvars.bind_contextvars(symbol=self.symbol)  # this task's lines
        loop = asyncio.get_running_loop()
        lag = self.metrics.event_lag.labels(self.symbol)
        while True:
            item = await self.queue.get()
            if item is None:
                return
            slice_ends = loop.time() + DRAIN_SLICE_S
            # The oldest event of the batch: the most any of it waited.
            lag.observe(max(0, self.clock.now_ns() - item[0].ts_ns) / 1e9)
            stop = False
            self.engine.hold()
            try:
                while True:
                    while self.urgent:
                        command, cause, read_ns = self.urgent.popleft()
                        if self._stale_opening(command, read_ns):
                            continue
                        await self._apply(command, None, cause)
                    await self._apply(*item)
                    if self.queue.empty() or loop.time() >= slice_ends:
                        break
                    next_item = self.queue.get_nowait()
                    if next_item is None:
                        stop = True
                        break
                    item = next_item
            finally:
                await self._quote_held()
                self.cause = None
            if stop:
                return
            if loop.time() >= slice_ends:
                await asyncio.sleep(0)

    def _stale_opening(self, command: Command, read_ns: int | None) -> bool:
        """Whether `command` would open the gate on a row read before the gate was
        last closed by what the row may not show yet (`closed_ns`): that ACTIVE
        is stale, so it is dropped. Judged as the command is applied, not when it
        was decided: a closing notice can be heard in between."""
        if read_ns is None or command.kind not in OPENING_COMMANDS:
            return False
        if read_ns > self.closed_ns:
            return False
        logger.info(
            "%s: %s from a row read before the gate last closed: ignored",
            self.symbol,
            command.kind,
        )
        return True

    async def _quote_held(self) -> None:
        try:
            actions = self.engine.release()
            if actions:
                await self.execute(actions)
        except StaleLease:
            logger.error("%s: another worker holds the symbol now", self.symbol)
        except Exception:
            logger.exception("%s: quoting after a drain failed", self.symbol)

    async def _apply(
        self, event: Event, done: Callable[[], None] | None, cause: Cause | None = None
    ) -> None:
        if cause is not None:
            self.cause = cause
        try:
            if isinstance(event, Fill):
                self.metrics.fills.labels(self.symbol).inc()
                await self._store_fill(event)
                failpoint("fill.stored")
            elif isinstance(event, FundingPayment):
                await self._store_funding(event)
            actions = self.engine.handle(event)
            if actions:
                await self.execute(actions)
        except StaleLease:
            logger.error("%s: another worker holds the symbol now", self.symbol)
        except Exception:
            logger.exception("%s: event %s failed", self.symbol, type(event).__name__)
        finally:
            if done is not None:
                done()

    async def _durably(self, record: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        async def suspend(reason: str) -> None:
            await self.execute(self.engine.handle(Command("suspend", self.clock.now_ns(), reason)))

        return await self.database.durably(self.symbol, record, fn, on_failure=suspend, **kwargs)

    async def _store_funding(self, payment: FundingPayment) -> None:
        """Stored before the engine applies it, as fills are (offsets follow)."""
        pid = self.engine.participant_of_account(payment.account_id)
        if pid is None:
            return
        await self._durably(
            "funding",
            store.funding_record,
            symbol=self.symbol,
            token=self.token,
            payments=[(pid, payment)],
        )

    async def _store_fill(self, fill: Fill) -> None:
        """Stored with the PnL it realises for its member, before the engine books it."""
        member = self.engine.owner_of(fill.client_order_id)
        if member is None:
            return
        await self._durably(
            "fill",
            store.fills_record,
            symbol=self.symbol,
            token=self.token,
            instrument=self.instrument,
            fills=[(member.spec.participant_id, fill)],
            realised={fill.fill_id: member.runtime.realised_by(fill)},
        )

    async def execute(self, actions: Sequence[Action]) -> None:
        """Order traffic to the sender (first: cancels must not wait for a record);
        kill-switch trips and shadow quotes recorded here."""
        traffic: list[Action] = [a for a in actions if isinstance(a, ORDER_TRAFFIC)]
        if traffic:
            self.sends.put_nowait((traffic, self.cause))
        for action in actions:
            if isinstance(action, RiskTriggered):
                await self._record_trip(action, traffic)
            elif isinstance(action, UnwindFinished):
                await self._record_unwind_end(action)
            elif isinstance(action, OrderAbandoned):
                self.status_changes.append(
                    store.OrderChange(
                        action.client_order_id, OrderStatus.CANCELLED, reason=action.reason
                    )
                )
                self.metrics.order_events.labels(self.symbol, "abandoned").inc()
        simulated = [a for a in actions if isinstance(a, SimulatedQuote)]
        if simulated:
            await self.database.call(
                store.simulated_quotes_record,
                symbol=self.symbol,
                instrument=self.instrument,
                quotes=simulated,
                ts_ns=self.clock.now_ns(),
            )

    async def _record_unwind_end(self, finished: UnwindFinished) -> None:
        """The unwind is over (every member flat, or its time limit): the engine is
        PAUSED already; the row follows. Until it does, a re-read of the row (still
        UNWINDING) must not start the unwind again: closed_ns stays at +inf."""
        logger.info(
            "%s: unwind over (%s): pool PAUSED",
            self.symbol,
            finished.reason,
            extra={"symbol": self.symbol},
        )
        self.closed_ns = math.inf
        try:
            await self._durably(
                "unwind over",
                store.pool_unwind_finished,
                symbol=self.symbol,
                worker_id=self.worker_id,
                reason=finished.reason,
            )
        finally:
            self.closed_ns = time.monotonic_ns()

    async def _record_trip(self, trip: RiskTriggered, traffic: Sequence[Action]) -> None:
        """A kill switch fired: counted, logged with the orders it cancels (under the
        trace of the event that tripped it), and the halt put on record."""
        self.metrics.kill_switches.labels(self.symbol, trip.trigger).inc()
        cancelled = sorted(a.client_order_id for a in traffic if isinstance(a, CancelOrder))
        accounts = sorted(
            {acc for a in traffic if isinstance(a, CancelAll) for acc in a.account_ids}
        )
        self.closed_ns = math.inf
        try:
            with tracing.span(
                "pool.halt",
                context=tracing.resolve(self.cause),
                attributes={"mms.symbol": self.symbol, "mms.trigger": trip.trigger},
            ):
                logger.warning(
                    "%s: pool HALTED by %s (%s); cancelling %d orders and all orders of %s",
                    self.symbol,
                    trip.trigger,
                    trip.detail,
                    len(cancelled),
                    accounts,
                    extra={
                        "symbol": self.symbol,
                        "trigger": trip.trigger,
                        "cancelled_orders": cancelled,
                    },
                )
                # Until the halt is on record a re-read of the row (still ACTIVE) is
                # stale and must not resume the pool: closed_ns stays at +inf.
                await self._durably(
                    "halt",
                    store.pool_halt,
                    symbol=self.symbol,
                    worker_id=self.worker_id,
                    trigger=trip.trigger,
                    detail=trip.detail,
                )
        finally:
            self.closed_ns = time.monotonic_ns()

    def _rejected(self, reject: OrderRejected) -> None:
        """A rejection, counted by the venue's reason and logged with its order: a
        run of them trips REJECT_STORM, and the desk will ask why."""
        reason = reject_reason_label(reject.reason)
        self.metrics.order_rejects.labels(self.symbol, reason).inc()
        pid = self.engine.participant_of_order(reject.client_order_id)
        logger.warning(
            "%s: order %s rejected: %s",
            self.symbol,
            reject.client_order_id,
            reject.reason,
            extra={"symbol": self.symbol, "participant_id": pid, "reason": reason},
        )

    # ------------------------------------------------------------------ the sender

    async def _send_forever(self) -> None:
        """Hands each batch of order traffic to the sink at once, without waiting for
        the last batch's answers (the sink orders what depends on a request under
        way); the batch's placements are recorded first (write-ahead). The sink may
        withdraw what it no longer wants: a placement a later cancel withdraws,
        and every placement once the pool is not ACTIVE (the gate is checked when
        an order leaves, not only when it was decided). The engine hears that
        those were never placed. On None, it returns once every batch under way
        is answered."""
        structlog.contextvars.bind_contextvars(symbol=self.symbol)  # this task's lines
        under_way: set[asyncio.Task[None]] = set()
        try:
            while True:
                first = await self.sends.get()
                if first is None:
                    return
                batch, cause = first
                causes = [cause] if cause is not None else []
                stop = False
                while not self.sends.empty():
                    more = self.sends.get_nowait()
                    if more is None:
                        stop = True
                        break
                    batch += more[0]
                    if more[1] is not None and more[1] not in causes:
                        causes.append(more[1])
                if batch:
                    task = asyncio.create_task(self._send_batch(batch, causes))
                    under_way.add(task)
                    task.add_done_callback(under_way.discard)
                if stop:
                    return
        finally:
            if under_way:
                await asyncio.wait(under_way)

    async def _send_batch(self, batch: list[Action], causes: list[Cause]) -> None:
        try:
            parents = [tracing.resolve(c) for c in causes]
            with tracing.span(
                "orders.send",
                context=parents[0] if parents else None,
                links=[p for p in parents[1:] if p is not None],
                attributes={"mms.symbol": self.symbol, "mms.actions": len(batch)},
            ):
                await self._send(batch)
        except StaleLease:
            logger.error("%s: another worker holds the symbol now", self.symbol)
        except (DatabaseError, psycopg.Error) as exc:
            # The write-ahead record failed, so no placement went.
            self.database.lost(f"{self.symbol} orders", exc)
        except Exception:
            logger.exception("%s: order traffic failed", self.symbol)

    async def _send(self, actions: list[Action]) -> None:
        sent = Counter(SENT_AS[type(a)] for a in actions if type(a) in SENT_AS)
        for action, n in sent.items():
            self.metrics.orders_sent.labels(self.symbol, action).inc(n)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s: sending %s",
                self.symbol,
                dict(sent),
                extra={"client_order_ids": [getattr(a, "client_order_id", None) for a in actions]},
            )

        async def journal(placed: list[PlaceOrder]) -> None:
            """Write-ahead: an order is on record before it can exist at the venue
            (the placements that go; cancels need no record and do not wait)."""
            await self.journal.record(
                symbol=self.symbol,
                token=self.token,
                instrument=self.instrument,
                placed=placed,
                sent_ns=self.clock.now_ns(),
            )

        await self.sink.execute(self.symbol, actions, before_places=journal)
