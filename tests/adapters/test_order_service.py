"""The Order Service client and sink against the stand-in, over real HTTP.

The stand-in (simulator/order_service.py) runs as its own process; faults are
injected through its admin routes and checked in its stats and request log.
No database, no Redis, no mocks."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import httpx
import pytest
import yaml

from pools.leases import StaleLease
from quoting_worker.adapters.order_service import (
    OrderServiceClient,
    OrderServiceSink,
    OrderServiceUnavailable,
    RateBudget,
    RequestClass,
    decimal_str,
)
from quoting_worker.core.types import (
    CancelAll,
    CancelOrder,
    Event,
    Instrument,
    OrderAccepted,
    OrderCancelled,
    OrderQueryResult,
    OrderRejected,
    PlaceOrder,
    PlaceOutcomeUnknown,
    QueryOrder,
    RequestSnapshot,
    Side,
)
from simulator.order_service import create_app
from tests.adapters.order_service_fixture import SimAdmin, run_order_service
from tests.figures import record

BTC = Instrument("BTCUSDT-PERP", Decimal("0.1"), Decimal("0.001"), 1, Decimal(5))
ETH = Instrument("ETHUSDT-PERP", Decimal("0.01"), Decimal("0.01"), 1, Decimal(5))
ALPHA, BRAVO = "acct-alpha", "acct-bravo"
USERS = {ALPHA: "user-alpha", BRAVO: "user-bravo"}
CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "order-service.openapi.yaml"
_ns = itertools.count(1_700_000_000_000_000_000)
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _auth_service() -> None:
    """Nothing here authenticates."""


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """Nothing here touches Redis."""


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with run_order_service() as url:
        yield url


@pytest.fixture
def sim(sim_url: str) -> SimAdmin:
    admin = SimAdmin(sim_url)
    admin.reset()
    return admin


def order(
    side: Side = Side.BUY,
    ticks: int = 600_000,
    lots: int = 10,
    account: str = ALPHA,
    instrument: Instrument = BTC,
) -> PlaceOrder:
    coid = f"mm-alpha000-{instrument.symbol}-0-{side}-{next(_ns)}"
    return PlaceOrder(coid, "alpha000-participant", account, side, 0, ticks, lots)


async def place(client: OrderServiceClient, o: PlaceOrder, instrument: Instrument = BTC) -> Any:
    return await client.place(
        o,
        symbol=instrument.symbol,
        price=decimal_str(instrument.price(o.price_ticks)),
        size=decimal_str(instrument.size(o.size_lots)),
    )


@asynccontextmanager
async def connect(sim: SimAdmin, **options: Any) -> AsyncIterator[OrderServiceClient]:
    async with OrderServiceClient(sim.url, user_ids=USERS, **options) as client:
        yield client


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 3.0) -> float:
    """Polls `check` until true; the seconds it took. Fails after `within_s`."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within_s, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def _collector() -> tuple[list[Event], Callable[[Event], Awaitable[None]]]:
    events: list[Event] = []

    async def collect(event: Event) -> None:
        events.append(event)

    return events, collect


def _names(events: list[Event]) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.client_order_id) for e in events]


# ---------------------------------------------------------------- the contract


def test_the_contract_names_every_route_the_simulator_serves() -> None:
    contract = yaml.safe_load(CONTRACT.read_text())
    documented = {
        (method.upper(), path)
        for path, item in contract["paths"].items()
        for method in item
        if method in {"get", "post", "put", "delete"}
    }
    served = {
        (method, route.path)
        for route in create_app().routes
        for method in getattr(route, "methods", set()) - {"HEAD"}
        if route.path != "/healthz"
    }
    assert documented == served
    admin = {path for _, path in documented if path.startswith("/admin")}
    assert admin
    assert all(contract["paths"][p].get("x-simulator-only") for p in admin)


# ---------------------------------------------------------------- placing


def test_a_placement_is_accepted_and_carries_the_members_identity(sim: SimAdmin) -> None:
    o = order()

    async def scenario() -> tuple[Any, Any]:
        async with connect(sim) as client:
            return await place(client, o), await client.open_orders(ALPHA, BTC.symbol)

    accepted, open_orders = run(scenario)
    assert isinstance(accepted, OrderAccepted)
    assert accepted.client_order_id == o.client_order_id
    assert accepted.venue_order_id
    [resting] = open_orders
    assert (resting.client_order_id, resting.side, resting.status) == (
        o.client_order_id,
        Side.BUY,
        "OPEN",
    )
    assert (resting.price, resting.size) == (Decimal("60000.0"), Decimal("0.010"))
    venue = httpx.get(
        f"{sim.url}/v1/orders/{o.client_order_id}", params={"account_id": ALPHA}
    ).json()
    assert (venue["user_id"], venue["account_type"]) == ("user-alpha", "SYSTEM_MARKET_MAKER")


def test_the_same_client_order_id_twice_rests_once(sim: SimAdmin) -> None:
    o = order()

    async def scenario() -> tuple[Any, Any]:
        async with connect(sim) as client:
            return await place(client, o), await place(client, o)

    first, second = run(scenario)
    assert isinstance(first, OrderAccepted)
    assert isinstance(second, OrderAccepted)
    assert first.venue_order_id == second.venue_order_id
    stats = sim.stats()
    assert stats["requests"]["place"] == {"201": 1, "200": 1}
    assert (stats["live_orders"], stats["duplicate_live_orders"]) == (1, 0)


def test_moving_the_book_trades_through_the_orders_in_its_way(sim: SimAdmin) -> None:
    """/admin/book is the other makers' market moving: an ask below the new best
    bid is taken, and the book then shows the best prices asked for."""
    in_the_way, out_of_the_way = order(Side.SELL, 600_005), order(Side.SELL, 601_000)

    async def scenario() -> tuple[Any, Any]:
        async with connect(sim) as client:
            await place(client, in_the_way)
            await place(client, out_of_the_way)
            sim.book(BTC.symbol, "60010.0", "60020.0")
            return (
                await client.query(in_the_way.client_order_id, ALPHA),
                await client.query(out_of_the_way.client_order_id, ALPHA),
            )

    taken, resting = run(scenario)
    assert (taken.found, taken.open) == (True, False)  # filled by the moving market
    assert (resting.found, resting.open) == (True, True)
    assert sim.stats()["live_orders"] == 1  # the venue's clients only: the book's own left out
    bid_too_high = order(Side.SELL, 600_100)  # at the new best bid: would cross it

    async def cross() -> Any:
        async with connect(sim) as client:
            return await place(client, bid_too_high)

    assert isinstance(run(cross), OrderRejected)


@pytest.mark.parametrize(
    ("price", "size", "setup", "code"),
    [
        ("60000.05", "0.010", None, "INVALID_TICK"),
        ("60000.0", "0.0105", None, "INVALID_LOT"),
        ("100.0", "0.001", None, "BELOW_MIN_NOTIONAL"),
        ("60000.0", "0.010", "book", "POST_ONLY_WOULD_CROSS"),
        ("60000.0", "0.010", "halt", "INSTRUMENT_HALTED"),
    ],
)
def test_a_rejected_placement_says_why(
    sim: SimAdmin, price: str, size: str, setup: str | None, code: str
) -> None:
    if setup == "book":
        sim.book(BTC.symbol, "59999.9", "60000.0")  # a bid at the ask would take it
    if setup == "halt":
        sim.halt(BTC.symbol)
    o = order()

    async def scenario() -> tuple[Any, Any]:
        async with connect(sim) as client:
            result = await client.place(o, symbol=BTC.symbol, price=price, size=size)
            return result, await client.query(o.client_order_id, ALPHA)

    rejected, queried = run(scenario)
    assert isinstance(rejected, OrderRejected)
    assert rejected.reason == code
    assert (queried.found, queried.open) == (True, False)  # kept as REJECTED
    assert sim.stats()["live_orders"] == 0


def test_a_5xx_before_the_venue_acts_is_unknown_and_the_query_finds_nothing(
    sim: SimAdmin,
) -> None:
    sim.faults(error_rate=1.0, routes=["place"])
    o = order()

    async def scenario() -> tuple[Any, Any, Any]:
        async with connect(sim) as client:
            unknown = await place(client, o)
            queried = await client.query(o.client_order_id, ALPHA)
            sim.faults()
            return unknown, queried, await place(client, o)

    unknown, queried, retried = run(scenario)
    assert isinstance(unknown, PlaceOutcomeUnknown)
    assert (queried.found, queried.open) == (False, False)
    assert isinstance(retried, OrderAccepted)
    assert sim.stats()["live_orders"] == 1


@pytest.mark.parametrize(
    "faults",
    [
        {"error_after_accept_rate": 1.0},
        {"timeout_after_accept_rate": 1.0, "hang_ms": 1500},
        {"reset_rate": 1.0},
    ],
    ids=["500-after-accept", "timeout-after-accept", "connection-reset"],
)
def test_an_unknown_outcome_is_resolved_by_query_and_a_retry_never_doubles(
    sim: SimAdmin, faults: dict[str, Any]
) -> None:
    sim.faults(routes=["place"], **faults)
    o = order()

    async def scenario() -> tuple[Any, ...]:
        async with connect(sim, timeout_s=0.3) as client:
            unknown = await place(client, o)
            queried = await client.query(o.client_order_id, ALPHA)
            retried_under_fault = await place(client, o)
            sim.faults()
            retried = await place(client, o)
            return unknown, queried, retried_under_fault, retried, client.outcomes

    unknown, queried, retried_under_fault, retried, outcomes = run(scenario)
    assert isinstance(unknown, PlaceOutcomeUnknown)
    assert (queried.found, queried.open) == (True, True)  # the venue had taken it
    assert isinstance(retried_under_fault, PlaceOutcomeUnknown)
    assert isinstance(retried, OrderAccepted)
    assert outcomes["place.unknown"] == 2
    assert outcomes["place.accepted"] == 1
    stats = sim.stats()
    assert (stats["orders_total"], stats["live_orders"], stats["duplicate_live_orders"]) == (
        1,
        1,
        0,
    )


def test_faults_limited_to_one_account_spare_the_others(sim: SimAdmin) -> None:
    sim.faults(error_rate=1.0, routes=["place", "cancel_all"], accounts=[ALPHA])

    async def scenario() -> tuple[Any, ...]:
        async with connect(sim) as client:
            return (
                await place(client, order(account=ALPHA)),
                await place(client, order(account=BRAVO)),
                await client.cancel_all(BRAVO, BTC.symbol),
            )

    failed, placed, cancelled = run(scenario)
    assert isinstance(failed, PlaceOutcomeUnknown)
    assert isinstance(placed, OrderAccepted)
    assert cancelled == 1
    with pytest.raises(OrderServiceUnavailable):
        run(lambda: _cancel_all_of(sim, ALPHA))


async def _cancel_all_of(sim: SimAdmin, account: str) -> int:
    async with connect(sim, attempts=1) as client:
        return await client.cancel_all(account, BTC.symbol)


def test_the_same_seed_replays_the_same_faults(sim: SimAdmin) -> None:
    async def outcomes() -> list[str]:
        sim.reset()
        sim.faults(error_rate=0.5, seed=7, routes=["place"])
        async with connect(sim) as client:
            return [type(await place(client, order())).__name__ for _ in range(12)]

    first, second = run(outcomes), run(outcomes)
    assert first == second
    assert {"OrderAccepted", "PlaceOutcomeUnknown"} == set(first)


# ---------------------------------------------------------------- rate limits


def test_a_placement_held_by_retry_after_never_goes_once_its_gate_closes(
    sim: SimAdmin,
) -> None:
    sim.faults(rate_limit={"requests": 1, "per_seconds": 1})
    gate = {"open": True}
    first, held = order(ticks=600_000), order(ticks=599_999)

    async def scenario() -> tuple[Any, ...]:
        async with connect(sim) as client:
            placed = await place(client, first)
            waiting = asyncio.ensure_future(
                client.place(
                    held,
                    symbol=BTC.symbol,
                    price=decimal_str(BTC.price(held.price_ticks)),
                    size=decimal_str(BTC.size(held.size_lots)),
                    gate=lambda: gate["open"],
                )
            )
            await eventually(lambda: _refused_once(sim))
            gate["open"] = False  # a kill while it waits out the Retry-After
            return placed, await waiting, client.outcomes

    placed, withdrawn, outcomes = run(scenario)
    assert isinstance(placed, OrderAccepted)
    assert withdrawn == OrderCancelled(held.client_order_id, withdrawn.ts_ns)
    assert outcomes["place.withdrawn"] == 1
    assert [r["outcome"] for r in sim.requests("place")] == ["201", "429"]
    assert sim.stats()["live_orders"] == 1


async def _refused_once(sim: SimAdmin) -> bool:
    return any(r["outcome"] == "429" for r in sim.requests("place"))


def test_a_429_holds_placements_for_retry_after_while_a_cancel_still_goes(
    sim: SimAdmin,
) -> None:
    sim.faults(rate_limit={"requests": 2, "per_seconds": 1})
    first, second, third, fourth = (order(ticks=600_000 - i) for i in range(4))

    async def scenario() -> tuple[Any, ...]:
        async with connect(sim) as client:
            accepted = [await place(client, first), await place(client, second)]
            held = asyncio.create_task(place(client, third))  # meets the 429
            await eventually(_async(lambda: client.budget.closed_for(RequestClass.PLACE) > 0))
            queued = asyncio.create_task(place(client, fourth))  # inside the window
            cancelled = await client.cancel(
                first.client_order_id, account_id=ALPHA, symbol=BTC.symbol
            )
            return (*accepted, cancelled, held.done(), await held, await queued)

    *accepted, cancelled, held_done_at_cancel, third_result, fourth_result = run(scenario)
    assert all(isinstance(r, OrderAccepted) for r in [*accepted, third_result, fourth_result])
    assert isinstance(cancelled, OrderCancelled)
    assert not held_done_at_cancel

    places = sim.requests("place")
    [refused] = [r for r in places if r["outcome"] == "429"]  # the client did not hammer
    after = [r["t"] for r in places if r["t"] > refused["t"]]
    [cancel] = sim.requests("cancel")
    inside = sum(1 for t in after if t < refused["t"] + 1.0 - 0.005)  # Retry-After: 1
    record(8, placements_inside_window=inside, cancel_inside_window=cancel["t"] - refused["t"])
    assert len(after) == 2
    assert inside == 0
    assert refused["t"] < cancel["t"] < refused["t"] + 1.0


def test_placements_leave_the_reserve_to_cancels(sim: SimAdmin) -> None:
    # 3 tokens, 2 of them reserved: one placement, then placements wait; cancels don't.
    budget = RateBudget(rate_per_s=2.0, burst=3, reserve=2)
    first, second = order(), order(ticks=599_990)

    async def scenario() -> tuple[Any, ...]:
        async with connect(sim, budget=budget) as client:
            accepted = await place(client, first)
            waiting = asyncio.create_task(place(client, second))
            cancelled = await client.cancel(
                first.client_order_id, account_id=ALPHA, symbol=BTC.symbol
            )
            return accepted, cancelled, waiting.done(), await waiting

    accepted, cancelled, done_at_cancel, later = run(scenario)
    assert isinstance(accepted, OrderAccepted)
    assert isinstance(later, OrderAccepted)
    assert isinstance(cancelled, OrderCancelled)
    assert not done_at_cancel
    routes = [r["route"] for r in sim.requests() if r["route"] in {"place", "cancel"}]
    assert routes == ["place", "cancel", "place"]


# ---------------------------------------------------------------- dead-man's switch


def test_an_unrenewed_dead_mans_switch_cancels_that_accounts_orders(sim: SimAdmin) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with connect(sim) as client:
            for o in (order(), order(Side.SELL, 600_100), order(account=BRAVO)):
                assert isinstance(await place(client, o), OrderAccepted)
            expires_at = await client.renew_dead_mans_switch(ALPHA, BTC.symbol, 300)

            async def alpha_empty() -> bool:
                return not await client.open_orders(ALPHA, BTC.symbol)

            waited = await eventually(alpha_empty)
            return expires_at, waited, await client.open_orders(BRAVO, BTC.symbol)

    expires_at, waited, bravo = run(scenario)
    assert expires_at is not None
    assert abs(expires_at / 1000 - time.time()) < 5
    assert waited >= 0.2  # not before its time
    assert len(bravo) == 1  # another account's orders stay
    assert sim.stats()["dead_man_switch"] == {"armed": 0, "fired": 1, "orders_cancelled": 2}


def test_a_renewed_dead_mans_switch_leaves_the_orders(sim: SimAdmin) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with connect(sim) as client:
            assert isinstance(await place(client, order()), OrderAccepted)
            deadline = time.monotonic() + 0.9  # three timeouts
            while time.monotonic() < deadline:
                await client.renew_dead_mans_switch(ALPHA, BTC.symbol, 300)
                await asyncio.sleep(0.1)  # the worker's renewal cadence
            resting = await client.open_orders(ALPHA, BTC.symbol)
            return resting, await client.renew_dead_mans_switch(ALPHA, BTC.symbol, 0)

    resting, disarmed = run(scenario)
    assert len(resting) == 1
    assert disarmed is None
    assert sim.stats()["dead_man_switch"] == {"armed": 0, "fired": 0, "orders_cancelled": 0}


# ---------------------------------------------------------------- cancels and listing


def test_cancel_all_takes_one_account_on_one_symbol(sim: SimAdmin) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with connect(sim) as client:
            btc = [order(ticks=600_000 - i) for i in range(3)]
            for o in btc:
                await place(client, o)
            await place(client, order(ticks=300_000, lots=100, instrument=ETH), ETH)
            await place(client, order(account=BRAVO))
            before = await client.open_orders(ALPHA, BTC.symbol)
            cancelled = await client.cancel_all(ALPHA, BTC.symbol)
            return (
                {o.client_order_id for o in btc},
                {o.client_order_id for o in before},
                cancelled,
                await client.open_orders(ALPHA, BTC.symbol),
                await client.open_orders(ALPHA, ETH.symbol),
                await client.open_orders(BRAVO, BTC.symbol),
            )

    placed, before, cancelled, alpha_btc, alpha_eth, bravo_btc = run(scenario)
    assert before == placed
    assert cancelled == 3
    assert alpha_btc == []
    assert [o.symbol for o in alpha_eth] == [ETH.symbol]
    assert len(bravo_btc) == 1


def test_a_cancel_is_confirmed_only_when_the_venue_says_the_order_is_gone(
    sim: SimAdmin,
) -> None:
    o, never_placed = order(), order()

    async def scenario() -> tuple[Any, ...]:
        async with connect(sim) as client:
            await place(client, o)
            first = await client.cancel(o.client_order_id, account_id=ALPHA, symbol=BTC.symbol)
            again = await client.cancel(o.client_order_id, account_id=ALPHA, symbol=BTC.symbol)
            unknown = await client.cancel(
                never_placed.client_order_id, account_id=ALPHA, symbol=BTC.symbol
            )
            unknown_detail = await client.cancel_outcome(
                never_placed.client_order_id, account_id=ALPHA, symbol=BTC.symbol
            )
            return first, again, unknown, unknown_detail, client.outcomes

    first, again, unknown, unknown_detail, outcomes = run(scenario)
    assert isinstance(first, OrderCancelled)
    assert isinstance(again, OrderCancelled)  # 404, and the query says CANCELLED: final
    assert unknown is None  # 404 and not found: not final by itself
    assert isinstance(unknown_detail, OrderQueryResult)
    assert not unknown_detail.found
    assert outcomes["cancel.already_final"] == 1
    assert outcomes["cancel.not_found"] == 2


# ---------------------------------------------------------------- the sink


def test_the_sink_carries_out_a_batch_and_feeds_back_what_the_venue_said(
    sim: SimAdmin,
) -> None:
    bid, ask, tiny, later = (
        order(),
        order(Side.SELL, 600_010),
        order(ticks=10, lots=1),  # 1.0 × 0.001 = 0.001 USDT
        order(ticks=599_990),
    )
    ghost = order()

    async def scenario() -> list[list[Any]]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        async with connect(sim) as client:
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=queue.put)
            batches: list[list[Any]] = []
            for actions in (
                [bid, ask, tiny],
                [
                    later,
                    CancelOrder(bid.client_order_id, bid.participant_id, ALPHA),
                    QueryOrder(ask.client_order_id, ALPHA),
                    QueryOrder(ghost.client_order_id, ALPHA),
                    RequestSnapshot("sequence gap"),
                ],
                [CancelAll((ALPHA,), "pause")],
            ):
                await sink.execute(BTC.symbol, actions)
                batches.append([queue.get_nowait() for _ in range(queue.qsize())])
            return batches

    placed, mixed, paused = run(scenario)
    by_id = {e.client_order_id: e for e in placed}
    assert isinstance(by_id[bid.client_order_id], OrderAccepted)
    assert isinstance(by_id[ask.client_order_id], OrderAccepted)
    assert by_id[tiny.client_order_id] == OrderRejected(
        tiny.client_order_id, "BELOW_MIN_NOTIONAL", by_id[tiny.client_order_id].ts_ns
    )

    assert mixed[0] == OrderCancelled(bid.client_order_id, mixed[0].ts_ns)  # cancels first
    rest = {type(e).__name__ + ":" + e.client_order_id: e for e in mixed[1:]}
    assert isinstance(rest[f"OrderAccepted:{later.client_order_id}"], OrderAccepted)
    asked = rest[f"OrderQueryResult:{ask.client_order_id}"]
    assert (asked.found, asked.open) == (True, True)
    assert not rest[f"OrderQueryResult:{ghost.client_order_id}"].found

    assert {e.client_order_id for e in paused} == {
        ask.client_order_id,
        later.client_order_id,
    }
    assert all(isinstance(e, OrderCancelled) for e in paused)
    stats = sim.stats()
    assert stats["live_orders"] == 0
    assert stats["snapshot_requests"] == {BTC.symbol: 1}
    sent = [r["route"] for r in sim.requests() if r["route"] in {"cancel", "place"}]
    assert sent[3:] == ["cancel", "place"]  # the second batch's cancel went before its place


def test_placements_overlap_cancels_unless_they_could_cross_the_cancelled_order(
    sim: SimAdmin,
) -> None:
    """A re-quote's new orders do not wait for the cancels' round trip, except one
    that could trade against an order being cancelled (it waits for the answer)."""
    old_bid = order(ticks=600_000)
    away = order(ticks=599_990)  # below the cancelled bid: cannot cross it
    crossing = order(Side.SELL, 600_000)  # at the cancelled bid's price: could

    async def scenario() -> list[Event]:
        events, collect = _collector()

        async with connect(sim) as client:
            await place(client, old_bid)
            sim.faults(latency_ms=300, routes=["cancel"])
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            cancel = CancelOrder(
                old_bid.client_order_id, old_bid.participant_id, ALPHA, Side.BUY, 600_000
            )
            await sink.execute(BTC.symbol, [cancel, away, crossing])
        return events

    events = run(scenario)
    order_of = _names(events)
    assert order_of == [
        ("OrderAccepted", away.client_order_id),  # while the cancel was in flight
        ("OrderCancelled", old_bid.client_order_id),
        ("OrderAccepted", crossing.client_order_id),  # only after the cancel's answer
    ]


def test_a_query_of_a_cancel_already_confirmed_is_answered_without_a_request(
    sim: SimAdmin,
) -> None:
    """Under a tight budget the engine's query timer fires while the cancel waits
    its turn; by the time the query leaves, the cancel's answer is known."""
    resting, other = order(), order(Side.SELL, 600_010)

    async def scenario() -> tuple[list[Event], OrderServiceSink]:
        events, collect = _collector()

        async with connect(sim) as client:
            await place(client, resting)
            await place(client, other)
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            await sink.execute(
                BTC.symbol, [CancelOrder(resting.client_order_id, resting.participant_id, ALPHA)]
            )
            await sink.execute(
                BTC.symbol,
                [
                    QueryOrder(resting.client_order_id, ALPHA),
                    QueryOrder(other.client_order_id, ALPHA),
                ],
            )
        return events, sink

    events, sink = run(scenario)
    assert _names(events) == [
        ("OrderCancelled", resting.client_order_id),
        ("OrderCancelled", resting.client_order_id),  # the confirmation, again
        ("OrderQueryResult", other.client_order_id),  # asked: nothing known of it
    ]
    assert sink.saved["query"] == 1
    assert [other.client_order_id in r["path"] for r in sim.requests("query")] == [True]


def test_a_query_of_an_order_whose_cancel_is_under_way_is_not_sent(sim: SimAdmin) -> None:
    resting = order()

    async def scenario() -> tuple[list[Event], OrderServiceSink]:
        events, collect = _collector()

        async with connect(sim) as client:
            await place(client, resting)
            sim.faults(latency_ms=300, routes=["cancel"])
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            cancel = CancelOrder(resting.client_order_id, resting.participant_id, ALPHA)
            cancelling = asyncio.ensure_future(sink.execute(BTC.symbol, [cancel]))
            # Until the cancel is out (the sink's first step); no timing involved.
            while resting.client_order_id not in sink._cancelling[BTC.symbol]:  # noqa: ASYNC110
                await asyncio.sleep(0)
            await sink.execute(BTC.symbol, [QueryOrder(resting.client_order_id, ALPHA)])
            await cancelling
        return events, sink

    events, sink = run(scenario)
    assert _names(events) == [("OrderCancelled", resting.client_order_id)]
    assert sink.saved["query"] == 1
    assert sim.requests("query") == []


def test_a_placement_left_hanging_holds_up_no_later_batch_that_does_not_depend_on_it(
    sim: SimAdmin,
) -> None:
    """Batches overlap: a cancel-all and a query sent while a placement hangs are
    answered first (the runquoter hands the sink each batch without waiting for
    the last one; it used to wait, up to the client's timeout)."""
    hanging, other = order(), order(Side.SELL, 600_100, account=BRAVO)
    events, collect = _collector()

    async def scenario() -> OrderServiceSink:
        async with connect(sim) as client:
            await place(client, other)
            sim.faults(latency_ms=600, routes=["place"])
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            placing = asyncio.ensure_future(sink.execute(BTC.symbol, [hanging]))
            await sink.execute(
                BTC.symbol, [QueryOrder(other.client_order_id, BRAVO), CancelAll((BRAVO,), "kill")]
            )
            assert not placing.done()  # both answered while the placement still hung
            await placing
        return sink

    run(scenario)
    names = _names(events)
    assert names[-1] == ("OrderAccepted", hanging.client_order_id)
    assert ("OrderCancelled", other.client_order_id) in names[:-1]
    assert ("OrderQueryResult", other.client_order_id) in names[:-1]


def test_a_cancel_of_a_placement_under_way_waits_for_its_answer_then_cancels(
    sim: SimAdmin,
) -> None:
    """The cancel must not reach the venue before the order it cancels (a 404,
    then the order rests): it waits for the placement's answer, in another batch."""
    slow = order()
    events, collect = _collector()

    async def scenario() -> OrderServiceSink:
        counting = Counting()
        async with connect(sim, trace_configs=[counting.config]) as client:
            sim.faults(latency_ms=300, routes=["place"])  # before the venue acts on it
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            placing = asyncio.ensure_future(sink.execute(BTC.symbol, [slow]))
            while not counting.now:  # noqa: ASYNC110  (until it is out; no timing involved)
                await asyncio.sleep(0)
            cancel = CancelOrder(slow.client_order_id, slow.participant_id, ALPHA)
            await sink.execute(BTC.symbol, [cancel, QueryOrder(slow.client_order_id, ALPHA)])
            await placing
        return sink

    sink = run(scenario)
    assert _names(events) == [
        ("OrderAccepted", slow.client_order_id),
        ("OrderCancelled", slow.client_order_id),
    ]
    assert sim.stats()["live_orders"] == 0
    (placed,), (cancelled,) = sim.requests("place"), sim.requests("cancel")
    assert cancelled["t"] >= placed["t"] + 0.3  # sent once the placement was answered
    assert sim.requests("query") == []  # the answers under way said it
    assert sink.saved["query"] == 1


def test_a_cancel_of_a_placement_that_has_not_left_withdraws_it(sim: SimAdmin) -> None:
    """While the journal write is under way the placement has not left: a cancel
    from a later batch withdraws it, and neither request is sent."""
    unsent = order()
    journal = asyncio.Event()
    events, collect = _collector()

    async def recorded(placed: list[PlaceOrder]) -> None:
        assert placed == [unsent]
        await journal.wait()

    async def scenario() -> OrderServiceSink:
        async with connect(sim) as client:
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            placing = asyncio.ensure_future(
                sink.execute(BTC.symbol, [unsent], before_places=recorded)
            )
            await asyncio.sleep(0)
            cancel = CancelOrder(unsent.client_order_id, unsent.participant_id, ALPHA)
            cancelling = asyncio.ensure_future(sink.execute(BTC.symbol, [cancel]))
            await asyncio.sleep(0)
            journal.set()
            await asyncio.gather(placing, cancelling)
        return sink

    sink = run(scenario)
    assert _names(events) == [("OrderCancelled", unsent.client_order_id)]
    assert sim.requests("place") == []
    assert sim.requests("cancel") == []
    assert sink.saved["cancel"] == 1
    assert sink._placing == {}
    assert not any(sink._cancelling.values())
    assert sink._cancelling_all == {}


def test_a_placement_waits_for_a_crossable_cancel_of_an_earlier_batch(sim: SimAdmin) -> None:
    old_bid = order(ticks=600_000)
    crossing = order(Side.SELL, 600_000)
    events, collect = _collector()

    async def scenario() -> None:
        async with connect(sim) as client:
            await place(client, old_bid)
            sim.faults(latency_ms=300, routes=["cancel"])
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            cancel = CancelOrder(
                old_bid.client_order_id, old_bid.participant_id, ALPHA, Side.BUY, 600_000
            )
            cancelling = asyncio.ensure_future(sink.execute(BTC.symbol, [cancel]))
            await asyncio.sleep(0)
            await sink.execute(BTC.symbol, [crossing])
            await cancelling

    run(scenario)
    assert _names(events) == [
        ("OrderCancelled", old_bid.client_order_id),
        ("OrderAccepted", crossing.client_order_id),  # only after the cancel's answer
    ]
    assert sim.stats()["live_orders"] == 1


def test_orders_at_one_price_reach_the_venue_in_the_batchs_order(sim: SimAdmin) -> None:
    """Fair queue position: the engine orders a price's placements by fill
    deficit, and the venue queues them as they arrive; so the sink sends each
    once the one before it at that price is answered (a slow first one is not
    overtaken), while other prices go at once."""
    slow = order(ticks=600_000)  # ALPHA's placements take 300 ms
    behind = order(ticks=600_000, account=BRAVO)
    elsewhere = order(ticks=599_990, account=BRAVO)
    events, collect = _collector()

    async def scenario() -> None:
        async with connect(sim) as client:
            sim.faults(latency_ms=300, routes=["place"], accounts=[ALPHA])
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            await sink.execute(BTC.symbol, [slow, behind, elsewhere])

    run(scenario)
    assert _names(events) == [
        ("OrderAccepted", elsewhere.client_order_id),  # another price: not held up
        ("OrderAccepted", slow.client_order_id),
        ("OrderAccepted", behind.client_order_id),  # sent only after `slow` was answered
    ]


def test_a_placement_waits_for_a_cancel_all_of_its_account_sent_before_it(
    sim: SimAdmin,
) -> None:
    """Else the cancel-all could take the new order, or miss an old one."""
    old, fresh = order(ticks=599_000), order(ticks=599_500)
    events, collect = _collector()

    async def scenario() -> None:
        async with connect(sim) as client:
            await place(client, old)
            sim.faults(latency_ms=300, routes=["cancel_all"])
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            clearing = asyncio.ensure_future(
                sink.execute(BTC.symbol, [CancelAll((ALPHA,), "restart")])
            )
            await asyncio.sleep(0)
            await sink.execute(BTC.symbol, [fresh])
            await clearing

    run(scenario)
    assert _names(events) == [
        ("OrderCancelled", old.client_order_id),
        ("OrderAccepted", fresh.client_order_id),
    ]
    assert sim.stats()["live_orders"] == 1


def test_a_cancel_all_stands_for_the_cancels_of_its_account_in_the_same_batch(
    sim: SimAdmin,
) -> None:
    """A pause: one request per account, not one per order (at 2,000 members a
    kill's requests were mostly per-order cancels); every order still confirmed."""
    bid, ask = order(ticks=599_000), order(Side.SELL, 601_000)
    events, collect = _collector()

    async def scenario() -> OrderServiceSink:
        async with connect(sim) as client:
            await place(client, bid)
            await place(client, ask)
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            await sink.execute(
                BTC.symbol,
                [
                    CancelOrder(bid.client_order_id, bid.participant_id, ALPHA),
                    CancelOrder(ask.client_order_id, ask.participant_id, ALPHA),
                    CancelAll((ALPHA,), "pause"),
                ],
            )
        return sink

    sink = run(scenario)
    assert sorted(_names(events)) == sorted(
        [("OrderCancelled", bid.client_order_id), ("OrderCancelled", ask.client_order_id)]
    )
    assert sim.requests("cancel") == []
    assert len(sim.requests("cancel_all")) == 1
    assert sink.saved["cancel"] == 2
    assert sim.stats()["live_orders"] == 0


def test_a_cancel_left_to_a_cancel_all_that_failed_is_sent_after_all(sim: SimAdmin) -> None:
    resting = order()
    events, collect = _collector()

    async def scenario() -> None:
        async with connect(sim, attempts=1) as client:
            await place(client, resting)
            sim.faults(error_rate=1.0, routes=["cancel_all"])
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            await sink.execute(
                BTC.symbol,
                [
                    CancelOrder(resting.client_order_id, resting.participant_id, ALPHA),
                    CancelAll((ALPHA,), "kill"),
                ],
            )

    run(scenario)
    assert _names(events) == [("OrderCancelled", resting.client_order_id)]
    assert len(sim.requests("cancel")) == 1
    assert sim.stats()["live_orders"] == 0


def test_within_a_batch_an_order_is_queried_once_and_not_while_the_batch_cancels_it(
    sim: SimAdmin,
) -> None:
    asked, cancelled = order(), order(Side.SELL, 600_010)
    events, collect = _collector()

    async def scenario() -> OrderServiceSink:
        async with connect(sim) as client:
            await place(client, asked)
            await place(client, cancelled)
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            await sink.execute(
                BTC.symbol,
                [
                    QueryOrder(asked.client_order_id, ALPHA),
                    QueryOrder(cancelled.client_order_id, ALPHA),
                    CancelOrder(cancelled.client_order_id, cancelled.participant_id, ALPHA),
                    QueryOrder(asked.client_order_id, ALPHA),
                ],
            )
        return sink

    sink = run(scenario)
    assert sorted(_names(events)) == [
        ("OrderCancelled", cancelled.client_order_id),
        ("OrderQueryResult", asked.client_order_id),
    ]
    assert [asked.client_order_id in r["path"] for r in sim.requests("query")] == [True]
    assert sink.saved["query"] == 2


def test_a_closed_gate_withdraws_a_batchs_placements_unrecorded_but_its_cancels_go(
    sim: SimAdmin,
) -> None:
    """A batch handed over after the pool was paused: its placements never go and
    are never written ahead (the engine hears they were cancelled), nor do their
    cancels and queries; a cancel of an order already out still goes."""
    resting, fresh, other = order(), order(Side.SELL, 600_010), order(ticks=599_990)
    events, collect = _collector()
    recorded: list[PlaceOrder] = []

    async def journal(placed: list[PlaceOrder]) -> None:
        recorded.extend(placed)

    async def scenario() -> None:
        async with connect(sim) as client:
            await place(client, resting)
            sink = OrderServiceSink(
                client,
                instruments={BTC.symbol: BTC},
                on_event=collect,
                may_place=lambda symbol: False,
            )
            await sink.execute(
                BTC.symbol,
                [
                    CancelOrder(resting.client_order_id, resting.participant_id, ALPHA),
                    fresh,
                    other,
                    CancelOrder(fresh.client_order_id, fresh.participant_id, ALPHA),
                    QueryOrder(other.client_order_id, ALPHA),
                ],
                before_places=journal,
            )

    run(scenario)
    assert sorted(_names(events)) == sorted(
        [
            ("OrderCancelled", resting.client_order_id),
            ("OrderCancelled", fresh.client_order_id),
            ("OrderCancelled", other.client_order_id),
        ]
    )
    assert recorded == []
    assert len(sim.requests("place")) == 1  # the resting order's, before the batch
    assert [resting.client_order_id in r["path"] for r in sim.requests("cancel")] == [True]
    assert sim.requests("query") == []


def test_no_placement_is_sent_when_the_journal_refuses_but_cancels_still_go(
    sim: SimAdmin,
) -> None:
    resting, fresh = order(), order(Side.SELL, 600_010)

    async def refused(placed: list[PlaceOrder]) -> None:
        raise StaleLease("BTCUSDT-PERP: fencing token 1 is stale (lease is at 2)")

    async def scenario() -> list[Event]:
        events, collect = _collector()

        async with connect(sim) as client:
            await place(client, resting)
            sink = OrderServiceSink(client, instruments={BTC.symbol: BTC}, on_event=collect)
            cancel = CancelOrder(resting.client_order_id, resting.participant_id, ALPHA)
            with pytest.raises(StaleLease):
                await sink.execute(BTC.symbol, [cancel, fresh], before_places=refused)
        return events

    events = run(scenario)
    assert [type(e).__name__ for e in events] == ["OrderCancelled"]
    assert sim.stats()["live_orders"] == 0
    assert len(sim.requests("place")) == 1  # the first, resting order only


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


def test_every_request_is_timed_by_operation_and_outcome(sim: SimAdmin) -> None:
    """The metrics hook hears each HTTP exchange: what it was and how it ended."""
    heard: list[tuple[str, str]] = []

    async def scenario() -> None:
        async with connect(sim) as client:
            client.on_request = lambda op, outcome, seconds: heard.append((op, outcome))
            o = order()
            await place(client, o)
            await client.lookup(o.client_order_id, ALPHA)
            await client.lookup("mm-alpha000-BTCUSDT-PERP-0-BUY-1", ALPHA)
            await client.cancel(o.client_order_id, account_id=ALPHA, symbol=BTC.symbol)
            await client.open_orders(ALPHA, BTC.symbol)
            sim.faults(error_rate=1.0, routes=["place"])
            await place(client, order())
            sim.faults()

    run(scenario)
    assert heard[:5] == [
        ("place", "ok"),
        ("query", "ok"),
        ("query", "not_found"),
        ("cancel", "ok"),
        ("open_orders", "ok"),
    ]
    assert heard[5] == ("place", "server_error")


def test_a_backlog_of_requests_waits_in_line_without_polling_the_bucket() -> None:
    """1,000 placements queued behind a 10-token bucket: they get their tokens in
    the order they asked, only the head of the line watches the bucket (one wait
    per token, not one per waiter per refill: that starved the event loop when a
    restart queried a thousand orders), and a cancel asked for last still goes
    before the placements' backlog drains."""
    now = [0.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        await asyncio.sleep(0)

    budget = RateBudget(rate_per_s=100, burst=10, reserve=2, clock=lambda: now[0], sleep=sleep)
    served: list[str] = []

    async def ask(name: str, kind: RequestClass) -> None:
        await budget.acquire(kind)
        served.append(name)

    async def scenario() -> None:
        places = [asyncio.create_task(ask(f"p{i}", RequestClass.PLACE)) for i in range(1000)]
        await asyncio.sleep(0)
        cancel = asyncio.create_task(ask("cancel", RequestClass.CANCEL))
        await asyncio.gather(*places, cancel)

    run(scenario)
    placements = [name for name in served if name != "cancel"]
    assert placements == [f"p{i}" for i in range(1000)]
    assert served.index("cancel") < 20, served.index("cancel")
    assert len(sleeps) <= 1000, len(sleeps)
    # 1,000 tokens at 100/s from a bucket of 10 (2 held back): about 9.9 s of waiting.
    assert 9.5 < now[0] < 10.5, now[0]


def test_a_backlog_gets_every_token_the_bucket_holds_each_time_its_watcher_wakes() -> None:
    """On a busy event loop a sleep ends late (here 50 ms after it was due): the
    tokens that came in meanwhile all go to the backlog at that wake-up, in its
    order, and those requests go on together. Handed on one waiter at a time, a
    backlog got one token per turn of the loop: at 200 pools, with turns of
    20-60 ms, about 30 requests a second against a budget of 1,000, and a kill's
    cancel-alls took up to 110 s to leave (bench/load.py)."""
    now = [0.0]
    turns = [0]  # turns of the event loop so far

    async def late(seconds: float) -> None:
        now[0] += seconds + 0.05
        await asyncio.sleep(0)

    budget = RateBudget(rate_per_s=1000, burst=100, reserve=0, clock=lambda: now[0], sleep=late)
    served: list[tuple[int, int]] = []  # (request, the loop turn it went on in)

    async def ask(n: int) -> None:
        await budget.acquire(RequestClass.CANCEL)
        served.append((n, turns[0]))

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def turn() -> None:
            turns[0] += 1
            if len(served) < 500:
                loop.call_soon(turn)

        loop.call_soon(turn)
        await asyncio.gather(*(ask(n) for n in range(500)))

    run(scenario)
    assert [n for n, _ in served] == list(range(500))
    # 100 at once from the bucket, then about 51 at each of 8 wake-ups (one turn
    # each), not one turn per request.
    backlog_turns = {at for n, at in served if n >= 100}
    assert len(backlog_turns) <= 10, len(backlog_turns)
    assert budget.waiting == 0


class Counting:
    """Counts the requests under way at once, through aiohttp's request hooks: from
    the moment one is handed to the connection pool until its answer (or error)."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._started)
        self.config.on_request_end.append(self._ended)
        self.config.on_request_exception.append(self._ended)

    async def _started(self, *_: Any) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    async def _ended(self, *_: Any) -> None:
        self.now -= 1


def test_requests_beyond_the_pools_connections_wait_their_turn_in_the_client(
    sim: SimAdmin,
) -> None:
    """40 queries to a slow venue through 4 connections: never more than 4 under
    way (the rest wait in the client, in order), all answered."""
    sim.faults(latency_ms=100, routes=["query"])
    counting = Counting()

    async def scenario() -> list[Any]:
        async with connect(
            sim,
            max_connections=4,
            trace_configs=[counting.config],
            budget=RateBudget(rate_per_s=1000, burst=100, reserve=0),
        ) as client:
            return await asyncio.gather(
                *(client.lookup(f"mm-alpha000-BTCUSDT-PERP-0-BUY-{i}", ALPHA) for i in range(40))
            )

    try:
        answers = run(scenario)
    finally:
        sim.faults()
    assert answers == [None] * 40  # the venue knows none of them: each a 404
    assert counting.most == 4
