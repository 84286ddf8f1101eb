"""The engine's action sink over the Order Service client: the order traffic of
one batch sent at once, holding back only what depends on a request under
way (see `OrderServiceSink`).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from common.failpoints import failpoint
from quoting_worker.adapters.order_service.client import (
    OrderServiceClient,
    OrderServiceUnavailable,
    PlaceResult,
    decimal_str,
)
from quoting_worker.core.types import (
    Action,
    CancelAll,
    CancelOrder,
    Event,
    Instrument,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    PlaceOrder,
    PlaceOutcomeUnknown,
    QueryOrder,
    RequestSnapshot,
    Side,
)

logger = logging.getLogger("quoting_worker.adapters.order_service")

# How many recently confirmed cancels the sink remembers, to answer a query the
# engine decided while the cancel was still waiting for the request budget.
SETTLED_MEMORY = 4096

Taken = frozenset[str] | None  # the ids a cancel-all took; None when it failed
BeforePlaces = Callable[[list[PlaceOrder]], Awaitable[None]]
EventCallback = Callable[[Event], object]  # may return an awaitable (asyncio.Queue.put)


@dataclass(slots=True)
class _Placing:
    """A placement under way: its place in sequence, its answer once it has one,
    and whether a cancel withdrew it before it left."""

    seq: int
    answer: asyncio.Future[PlaceResult]
    withdrawn: bool = False


@dataclass(slots=True)
class _Cancelling:
    """A cancel under way: its place in sequence, and a future done when answered."""

    cancel: CancelOrder
    seq: int
    done: asyncio.Future[None]


def _may_cross(place: PlaceOrder, cancel: CancelOrder) -> bool:
    """Whether `place` could trade against the order `cancel` withdraws (unknown
    side or price: assume it could)."""
    if cancel.side is None or cancel.price_ticks is None:
        return True
    if cancel.side is place.side:
        return False
    if place.side is Side.BUY:
        return place.price_ticks >= cancel.price_ticks
    return place.price_ticks <= cancel.price_ticks


class OrderServiceSink:
    """Carries out the engine's order actions and feeds back what the venue said.

    Within a batch, what need not go never does: a placement the batch also
    cancels, or any placement once the symbol's gate (`may_place`) is closed, is
    withdrawn (it comes back as cancelled) with its cancel and its queries; an
    order is queried once, and not at all if the batch cancels it.

    Batches do not wait for one another: each `execute` sends at once what
    needs nothing else, so a placement left hanging (up to the client's
    timeout) holds up only what truly depends on it. What does, across every
    batch under way:
    - a cancel of an order whose placement has not left yet withdraws it (it is
      never sent and comes back as cancelled; the cancel then needs no request);
      a cancel of one whose placement is out waits for its answer, and goes if
      the venue may hold the order (accepted, or outcome unknown);
    - a query of an order whose placement or cancel is under way is not sent
      (that answer will say; the engine asks again on its timer if it does not);
    - a second cancel of an order whose cancel is under way is not sent;
    - placements go once `before_places` (the order journal's write of the
      placements that go) has finished, and each after the cancels under way it
      could cross (a post-only order that crosses a resting one of the pool is
      a reject, or a self-trade) and the cancel-alls under way for its account
      and symbol. The engine already counts an order being cancelled as
      resting, so a placement overlapping its cancel never exceeds a limit;
    - a batch's placements at one side and price go one after another, in the
      batch's order, each once the previous one is answered: the venue's
      queue at that price then has the engine's order (fair queue position,
      core/fairness.py). Different prices go side by side.
    Cancels and cancel-alls otherwise go at once, so a kill's cancel-all never
    waits behind a placement; a cancel whose account the same batch cancels all
    of (a pause, halt or kill) is left to that cancel-all, and sent only if the
    cancel-all failed or did not take the order.

    Events go to `on_event` as each answer arrives: OrderAccepted /
    OrderRejected / PlaceOutcomeUnknown / OrderCancelled for placements;
    OrderCancelled, or the OrderQueryResult of an unsettled 404, for cancels;
    OrderCancelled for every order a cancel-all took; OrderQueryResult for
    queries. A query the venue does not answer yields nothing (the engine asks
    again on its timer); a failed cancel-all is logged and counted in
    `failures`. RiskTriggered and SimulatedQuote are not order traffic and are
    left to the runquoter. If `before_places` raises, no placement of its batch
    is sent and the error propagates once the batch's other requests are done.

    A query of an order whose cancel the venue confirmed in the last
    SETTLED_MEMORY confirmations is answered from that confirmation, without a
    request: under a tight request budget the engine's query timer fires while
    the cancel still waits its turn, and those queries would eat the budget.
    `saved[kind]` counts the requests spared.
    """

    def __init__(
        self,
        client: OrderServiceClient,
        *,
        instruments: Mapping[str, Instrument] | Callable[[str], Instrument],
        on_event: EventCallback,
        may_place: Callable[[str], bool] | None = None,
    ) -> None:
        self.client = client
        self._instruments = instruments
        self.on_event = on_event
        # Whether the symbol's gate is open, asked as each placement leaves: one
        # that waited (rate budget, Retry-After, connections) past a kill never goes.
        self.may_place = may_place
        # Placements whose outcome is unknown, since when (monotonic s); the first
        # answer to a query of one is its resolution, timed for `on_resolved`.
        self.unknown_since: OrderedDict[str, float] = OrderedDict()
        self.on_resolved: Callable[[float], None] | None = None
        self.failures: Counter[str] = Counter()
        self.saved: Counter[str] = Counter()
        self._settled: OrderedDict[str, OrderCancelled] = OrderedDict()
        # Under way, from the moment `execute` is called until answered:
        # each with its place in sequence, and a future done when it is answered.
        self._seq = itertools.count()
        self._placing: dict[str, _Placing] = {}
        # Per symbol (what a placement could cross), by client order id.
        self._cancelling: defaultdict[str, dict[str, _Cancelling]] = defaultdict(dict)
        # Per symbol and account, by sequence: each future holds the ids its
        # cancel-all took (None: it failed).
        self._cancelling_all: defaultdict[tuple[str, str], dict[int, asyncio.Future[Taken]]] = (
            defaultdict(dict)
        )

    def instrument(self, symbol: str) -> Instrument:
        if callable(self._instruments):
            return self._instruments(symbol)
        return self._instruments[symbol]

    async def execute(
        self,
        symbol: str,
        actions: Sequence[Action],
        *,
        before_places: BeforePlaces | None = None,
    ) -> None:
        """Sends `actions` and returns when every one of them is answered. Call it
        for the next batch without waiting for this one: the ordering above holds
        across batches. What is under way is registered before the first await, in
        sequence (a batch's cancels before its placements), and a request only
        ever waits for one registered before it, so waits can never form a cycle.
        `before_places` is given the placements that will go (none withdrawn)."""
        loop = asyncio.get_running_loop()
        gate_open = self.may_place is None or self.may_place(symbol)
        cancel_ids = {a.client_order_id for a in actions if isinstance(a, CancelOrder)}
        withdrawn = {
            a.client_order_id
            for a in actions
            if isinstance(a, PlaceOrder) and (not gate_open or a.client_order_id in cancel_ids)
        }
        cancelling = self._cancelling[symbol]
        work: list[Awaitable[Any]] = []
        mine: list[str] = []  # this batch's cancels, cleared if never started
        mine_all: list[tuple[str, int]] = []
        covering = self._register_cancel_alls(symbol, actions, work, mine_all)
        for action in actions:
            if isinstance(action, CancelOrder):
                coid = action.client_order_id
                if coid in withdrawn:
                    continue  # its placement never goes: nothing to cancel
                if coid in cancelling:
                    self.saved["cancel"] += 1  # the cancel under way answers it
                    continue
                cancelling[coid] = _Cancelling(action, next(self._seq), loop.create_future())
                mine.append(coid)
                work.append(self._cancel(symbol, action, covering.get(action.account_id)))
        places: list[PlaceOrder] = []
        asked: set[str] = set()
        for action in actions:
            if isinstance(action, PlaceOrder):
                coid = action.client_order_id
                if coid in withdrawn:
                    self.client.outcomes["place.withdrawn"] += 1
                    work.append(self._emit(OrderCancelled(coid, self.client.clock_ns())))
                else:
                    self._placing[coid] = _Placing(next(self._seq), loop.create_future())
                    places.append(action)
            elif isinstance(action, QueryOrder):
                coid = action.client_order_id
                if coid in asked or coid in cancel_ids or coid in withdrawn:
                    self.saved["query"] += 1  # asked already, or its cancel or withdrawal answers
                    continue
                asked.add(coid)
                work.append(self._query(symbol, action))
            elif isinstance(action, RequestSnapshot):
                work.append(self._snapshot(symbol))
        if places:
            work.append(self._places(symbol, places, before_places))
        try:
            results = await asyncio.gather(*work, return_exceptions=True)
        finally:
            # Anything cancelled before it started must not hold up later batches.
            for coid in mine:
                self._cancel_done(symbol, coid)
            for account_id, seq in mine_all:
                self._cancel_all_done(symbol, account_id, seq)
            for place in places:
                coid = place.client_order_id
                self._settle_placing(coid, PlaceOutcomeUnknown(coid, 0))
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _register_cancel_alls(
        self,
        symbol: str,
        actions: Sequence[Action],
        work: list[Awaitable[Any]],
        mine_all: list[tuple[str, int]],
    ) -> dict[str, asyncio.Future[Taken]]:
        """The batch's cancel-alls registered (in sequence) and queued in `work`;
        per account, the first one, which the batch's own cancels wait for."""
        loop = asyncio.get_running_loop()
        covering: dict[str, asyncio.Future[Taken]] = {}
        for action in actions:
            if isinstance(action, CancelAll):
                for account_id in action.account_ids:
                    seq = next(self._seq)
                    taken: asyncio.Future[Taken] = loop.create_future()
                    self._cancelling_all[symbol, account_id][seq] = taken
                    covering.setdefault(account_id, taken)
                    mine_all.append((account_id, seq))
                    work.append(self._cancel_all(symbol, account_id, seq))
        return covering

    async def _places(
        self, symbol: str, places: list[PlaceOrder], before: BeforePlaces | None
    ) -> None:
        try:
            if before is not None:
                await before(places)
        except BaseException:
            for place in places:  # never sent: a cancel waiting on one needs no request
                coid = place.client_order_id
                self._settle_placing(coid, OrderCancelled(coid, 0))
            raise
        failpoint("place.recorded")
        # Orders at one price go one after another, each once the previous one is
        # answered, so the venue queues them in the engine's order (fair queue
        # position, core/fairness.py); prices go side by side.
        at_price: dict[tuple[Side, int], list[PlaceOrder]] = {}
        for place in places:
            at_price.setdefault((place.side, place.price_ticks), []).append(place)
        await asyncio.gather(*(self._place_in_turn(symbol, queue) for queue in at_price.values()))

    async def _place_in_turn(self, symbol: str, queue: list[PlaceOrder]) -> None:
        for place in queue:
            await self._place(symbol, place)

    def _blockers(self, symbol: str, place: PlaceOrder) -> list[asyncio.Future[Any]]:
        """What `place` must wait for: the cancels registered before it that it
        could cross, and the cancel-alls registered before it for its account."""
        placing = self._placing.get(place.client_order_id)
        if placing is None:
            return []
        seq = placing.seq
        blockers: list[asyncio.Future[Any]] = [
            c.done
            for c in self._cancelling[symbol].values()
            if c.seq < seq and _may_cross(place, c.cancel)
        ]
        alls = self._cancelling_all.get((symbol, place.account_id))
        if alls:
            blockers += [taken for all_seq, taken in alls.items() if all_seq < seq]
        return blockers

    def _settle_placing(self, coid: str, result: PlaceResult) -> None:
        placing = self._placing.pop(coid, None)
        if placing is not None and not placing.answer.done():
            placing.answer.set_result(result)

    def _cancel_all_done(self, symbol: str, account_id: str, seq: int, taken: Taken = None) -> None:
        under_way = self._cancelling_all.get((symbol, account_id))
        if under_way is None:
            return
        future = under_way.pop(seq, None)
        if not under_way:
            del self._cancelling_all[symbol, account_id]
        if future is not None and not future.done():
            future.set_result(taken)

    def _cancel_done(self, symbol: str, coid: str) -> None:
        cancelling = self._cancelling[symbol].pop(coid, None)
        if cancelling is not None and not cancelling.done.done():
            cancelling.done.set_result(None)

    async def _emit(self, event: Event) -> None:
        if isinstance(event, OrderCancelled):
            settled = self._settled
            settled[event.client_order_id] = event
            if len(settled) > SETTLED_MEMORY:
                settled.popitem(last=False)
        result = self.on_event(event)
        if inspect.isawaitable(result):
            await result

    async def _place(self, symbol: str, order: PlaceOrder) -> None:
        coid = order.client_order_id
        # Stands in if this task is cancelled: the order may be out, so a cancel goes.
        result: PlaceResult = PlaceOutcomeUnknown(coid, 0)
        try:
            blockers = self._blockers(symbol, order)
            if blockers:
                await asyncio.gather(*(asyncio.shield(b) for b in blockers))
            placing = self._placing.get(coid)
            if placing is not None and placing.withdrawn:
                self.client.outcomes["place.withdrawn"] += 1
                result = OrderCancelled(coid, self.client.clock_ns())
            else:
                result = await self._send_place(symbol, order)
        finally:
            self._settle_placing(coid, result)
        await self._emit(result)

    async def _send_place(self, symbol: str, order: PlaceOrder) -> PlaceResult:
        coid = order.client_order_id
        instrument = self.instrument(symbol)
        gate = None if self.may_place is None else partial(self.may_place, symbol)
        placing = self._placing.get(coid)
        event = await self.client.place(
            order,
            symbol=symbol,
            price=decimal_str(instrument.price(order.price_ticks)),
            size=decimal_str(instrument.size(order.size_lots)),
            gate=lambda: (
                not (placing is not None and placing.withdrawn) and (gate is None or gate())
            ),
        )
        if isinstance(event, OrderAccepted):
            failpoint("place.answered")
        elif isinstance(event, PlaceOutcomeUnknown):
            self.unknown_since[coid] = time.monotonic()
            if len(self.unknown_since) > SETTLED_MEMORY:
                self.unknown_since.popitem(last=False)
        return event

    async def _cancel(
        self, symbol: str, cancel: CancelOrder, covered_by: asyncio.Future[Taken] | None = None
    ) -> None:
        """`covered_by`: a cancel-all of the order's account in the same batch (a
        pause or kill): the order is cancelled by it unless the cancel-all failed
        or did not find it (its placement not yet at the venue); one request per
        account instead of one per order, which at many members is most of a
        kill's requests."""
        coid = cancel.client_order_id
        try:
            if covered_by is not None:
                taken = await asyncio.shield(covered_by)
                if taken is not None and coid in taken:
                    self.saved["cancel"] += 1  # its OrderCancelled comes from the cancel-all
                    return
            placing = self._placing.get(coid)
            if placing is not None:
                # Not left yet: it never will. Out: its answer says whether the
                # venue may hold the order (the placement's own answer reaches the
                # engine either way).
                placing.withdrawn = True
                placed = await asyncio.shield(placing.answer)
                if isinstance(placed, OrderCancelled | OrderRejected):
                    self.saved["cancel"] += 1
                    return
            outcome = await self.client.cancel_outcome(
                coid, account_id=cancel.account_id, symbol=symbol
            )
        finally:
            self._cancel_done(symbol, coid)
        if outcome is not None:
            await self._emit(outcome)

    async def _cancel_all(self, symbol: str, account_id: str, seq: int) -> None:
        taken: Taken = None
        try:
            _, ids = await self.client.cancel_all_ids(account_id, symbol)
            taken = frozenset(ids)
        except OrderServiceUnavailable as exc:
            self.failures["cancel_all"] += 1
            logger.error("%s: cancel-all for %s failed: %s", symbol, account_id, exc)
            return
        finally:
            self._cancel_all_done(symbol, account_id, seq, taken)
        now = self.client.clock_ns()
        for coid in ids:
            await self._emit(OrderCancelled(coid, now))

    async def _query(self, symbol: str, query: QueryOrder) -> None:
        settled = self._settled.get(query.client_order_id)
        if settled is not None:
            self.saved["query"] += 1
            await self._emit(settled)  # the engine drops an order once, whatever it hears twice
            return
        if (
            query.client_order_id in self._cancelling[symbol]
            or query.client_order_id in self._placing
        ):
            self.saved["query"] += 1  # the request under way answers it; else the engine asks again
            return
        try:
            result = await self.client.query(query.client_order_id, query.account_id)
        except OrderServiceUnavailable:
            self.failures["query"] += 1
            return
        since = self.unknown_since.pop(query.client_order_id, None)
        if since is not None and self.on_resolved is not None:
            self.on_resolved(time.monotonic() - since)
        await self._emit(result)

    async def _snapshot(self, symbol: str) -> None:
        try:
            await self.client.request_snapshot(symbol)
        except OrderServiceUnavailable:
            self.failures["snapshot"] += 1
            logger.warning("%s: snapshot request failed", symbol)
