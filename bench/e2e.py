# mypy: ignore-errors
# (a benchmark that instruments the worker and the simulator by wrapping internals at run time)
"""The full stack against the TradeX simulator: its own matching speed, market data
to order latency, and the orders per second one pool sustains.

    .venv/bin/python bench/e2e.py [--ops 100000] [--market-hours 24] [--latency-s 15]
                                  [--window-s 10] [--drive-ms 200,20] [--keep-logs]

(1) The simulator alone, in this process, no I/O (the exchange's events go to a
    counting sink instead of the Kafka feed):
    (a) `simulator.exchange.Exchange` on BTCUSDT-PERP, a seeded mix over a book of
        400 orders: 50% post-only placements (a few % priced to cross, so
        refused), 38% cancels of a random order placed before (some already
        filled: a miss), 12% IOC takes. Each call timed alone (p50/p99 per kind);
        ops/s from a second, untimed replay of the same calls on a fresh exchange.
    (b) `simulator.market.Market` + the exchange stepping --market-hours of
        simulated time (BTC's profile, 0.1 s steps, as TradeX runs it): each step
        timed; simulated seconds per wall second and exchange calls per second.

(2)/(3) The full stack, torn down at the end: a throwaway PostgreSQL database
    (migrated here, dropped at exit), Redis database 12, an Apache Kafka 4.1.1
    node of its own (devstack/kafka.py's KafkaNode: KRaft, one JVM that is
    broker and controller, in a folder under this run's log directory, stopped
    at exit; MMS's topics from messaging.topics, no namespace, created by
    ensure_topics: the consumed ones stamped by the broker, LogAppendTime),
    the schema registry and the Metadata stand-in, all on free ports; TradeX
    (`python -m simulator`'s own `main`, --symbol ETHUSDT-PERP --seed 11
    --speed 1) as a subprocess; the QuoterWorker in a thread of this process
    (as tests/e2e and bench/quoter_throughput.py run it), with the default
    Order Service budget (WorkerConfig.order_rate_per_s = 100/s,
    ORDER_SERVICE_RATE_PER_S's default). One pool, ETHUSDT-PERP, created,
    joined and resumed through pools.services, re-quoting on every move
    (quote_interval_ms 1, price_threshold_bps 0). Everything the bench reads of
    the worker's state it reads on the worker's event loop.

    TradeX runs through a small launcher (TRADEX_SERVER below) that wraps, at
    run time and in its own process only, five methods and adds two routes;
    no simulator code is changed:
      - `Feed._produce`: for every BookDelta, (symbol, seq, wall time just after
        the producer took it, what caused it: "market" = a market step,
        "shaker" = see below, "client" = an Order Service request; the cause
        is set on entering `Market.advance`, `Venue.place`, `Venue.cancel`,
        `Venue.cancel_all` and the shaker, all on TradeX's one event loop);
      - `Venue.place` / `Venue.cancel`: per client order id, the wall time the
        request reached the venue and the time the exchange had accepted
        (or cancelled) it, and the reject code;
      - GET /bench/log returns those logs; POST /bench/shake starts a "shaker":
        a house account (bg-bench-shaker, like the other makers) that every
        interval_ms alternately joins and leaves the other makers' best bid
        with that level's size, then flushes the feed: one delta that moves the
        microprice (net of MMS's orders) by about a sixth of the makers'
        spread, tens of ticks, so every order of the pool is replaced. The market's own flow (one
        step every 100 ms, takers, ladder moves) goes on beside it.

Correlation (2): "published" = the simulator's feed handing the BookDelta to its
    Kafka producer (the launcher's stamp, keyed by (symbol, seq)). Not the
    record's ts_ns: a market step's deltas carry the step's grid time, up to
    one step (100 ms) before the flush that publishes them. "Accepted" = the
    simulator's exchange has accepted the placement (the launcher's stamp, by
    client order id; the 201 is written right after the feed flush). The link
    between the two is made in the worker: a hook on each engine's `handle`
    keeps, per BookDelta (symbol, seq), the client order ids of the
    PlaceOrders that delta's re-quote decided. So one delta's latency = the
    accept time of the first of its placements the venue accepted − its
    publish time; "every placement" uses the last. All stamps are
    time.time_ns() on one machine (CLOCK_REALTIME, shared by the processes;
    the broker's JVM stamps from the same clock).
    Deltas whose re-quote placed nothing (targets unchanged), and placements
    never sent (withdrawn by the worker's sender when a later re-quote
    cancelled them before they left), or refused, are counted, not timed.
    The legs, from hooks in the worker (bench only: a Consumer subclass from
    bench/quoter_throughput.py stamping each poll()/consume() return, the
    worker's `_take` (the record's broker append time, LogAppendTime), the
    codec's decode, each engine's handle, the sender's `_send`, the order
    journal's `record`, the client's `place`/`cancel_outcome`, and the httpx
    transport), add up exactly to the total: publish → the worker's consumer
    call returns it (split at the broker's append) → engine.handle starts →
    ends (or, when the drain held a backlog, the engine's release that quoted
    it ends) → the sender takes the batch → client.place is called
    (write-ahead journal; a placement that could cross an order being
    cancelled waits for that cancel) → the request enters httpx (the rate
    budget) → Venue.place → accepted.
    The Kafka leg is split at the broker's append stamp: publish → append
    (the simulator's producer: its linger, the request, the append) and
    append → the worker's consumer call returns it (the fetch). The stamp has
    millisecond resolution: it is taken at the middle of its millisecond
    (each share within ±0.5 ms; their sum, the Kafka leg, is exact).
    Cross-check: the simulator's own /admin/requests?route=place log (arrival
    time `t`, no order id) is paired with the launcher's log in order (both
    are appended in one synchronous stretch per request), giving the leg
    "endpoint arrival → Venue.place" and checking the count.
    The pool: 2 members × 1 level a side, a shaker every --latency-shake-ms
    (200 ms); --latency-s with the default budget (100/s), then as long with
    the budget replaced by 5000/s (burst 5000, reserve 10): the I/O path
    without the budget's waits.

(3) Orders per second: the pool grows to 4 members × 5 levels a side (40
    orders: a full replace is 80 requests); for each shaker interval of
    --drive-ms (200 and 20 ms: each asks for more re-quotes than can be
    carried out), with the default budget and then with 5000/s: 2 s of
    warm-up, then over --window-s the simulator's counters (/admin/stats:
    placements answered 201, cancels answered 200) per second. Beside them:
    placements the engine decided, the client's outcomes, request round trips,
    the longest the engine's queue and the sender's queue grew (sampled),
    the CPU of the simulator, the Kafka JVM and this process (the worker), and when a
    window halted the pool (the audit log's reason). Between windows the
    shaker stops until the worker's queues have drained, so one window's
    backlog does not spill into the next; a halted pool is resumed
    (pools.services.pool_resume) first. At the end the pool is paused
    (pools.services.pool_pause) and drained before the worker stops.

(4) The quoting core's figures (bench/results/quote_path.json) beside the full
    stack's: the cost of the I/O path.

Prints a table and writes bench/results/e2e-kafka.json (the Tansu run's
e2e.json is kept for comparison). The probes stay installed in (3); their cost
is a few µs per event and request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quoter_throughput import (  # noqa: E402  (bench/ is on sys.path when run as a script)
    Hold,
    Processes,
    bench_consumer_class,
    free_port,
    machine_busy,
    machine_cpu,
    stamp_appends,
    start_kafka,
    stats_ms,
    wait_for,
    wait_port,
)
from scratch import scratch_database  # noqa: E402

from messaging.topics import DELTA  # noqa: E402
from simulator.order_service import REQUEST_LOG_LIMIT  # noqa: E402

ETH = "ETHUSDT-PERP"
PARTITIONS = 3
REDIS_URL = "redis://127.0.0.1:6379/12"
RESULTS = ROOT / "bench" / "results"
HIGH_BUDGET = 5000
WARMUP_S = 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the TradeX launcher

TRADEX_SERVER = r"""
import asyncio, sys, time
from messaging.topics import DELTA
from starlette.responses import JSONResponse
from starlette.routing import Route
from simulator import tradex as tradex_module
from simulator.feed import Feed
from simulator.market import Market
from simulator.model import is_house_account
from simulator.order_service import Venue

SHAKER = "bg-bench-shaker"
now = time.time_ns
source = ["start"]
deltas, places, cancels = [], [], []
state = {"tradex": None, "shaker": None}

produce = Feed._produce
def bench_produce(self, topic, symbol, record):
    produce(self, topic, symbol, record)
    if topic == DELTA and record.get("type") == "BookDelta":
        deltas.append((symbol, record["seq"], now(), source[0]))
Feed._produce = bench_produce

advance = Market.advance
def bench_advance(self, ts_ns):
    source[0] = "market"
    advance(self, ts_ns)
Market.advance = bench_advance

place = Venue.place
def bench_place(self, body, *, now_ns, force_reject):
    source[0] = "client"
    t_in = now()
    outcome = place(self, body, now_ns=now_ns, force_reject=force_reject)
    order = outcome.order
    if order is not None and not is_house_account(order.account_id):
        code = outcome.code or ("REPLAYED" if outcome.replayed else "")
        places.append((order.client_order_id, t_in, now(), code))
    return outcome
Venue.place = bench_place

cancel = Venue.cancel
def bench_cancel(self, account_id, client_order_id, symbol, *, now_ns):
    source[0] = "client"
    t_in = now()
    order = cancel(self, account_id, client_order_id, symbol, now_ns=now_ns)
    cancels.append((client_order_id, t_in, now(), order is not None))
    return order
Venue.cancel = bench_cancel

cancel_all = Venue.cancel_all
def bench_cancel_all(self, *args, **kwargs):
    source[0] = "client"
    return cancel_all(self, *args, **kwargs)
Venue.cancel_all = bench_cancel_all

async def shake(tradex, symbol, interval_s):
    exchange, feed, market = tradex.exchange, tradex.feed, tradex.market
    loop = asyncio.get_running_loop()
    resting, n, due = None, 0, loop.time()
    while True:
        due = max(due + interval_s, loop.time())
        await asyncio.sleep(due - loop.time())
        source[0] = "shaker"
        ts = tradex.clock.now_ns()
        if resting is not None and resting.live:
            exchange.cancel(account_id=SHAKER, client_order_id=resting.client_order_id, ts_ns=ts)
            resting = None
        else:
            bids = [o for o in market._symbols[symbol].bids.values() if o.live]
            if bids:
                top = max(bids, key=lambda o: o.price)
                n += 1
                outcome = exchange.place(
                    account_id=SHAKER, client_order_id=f"shake-{n}", symbol=symbol,
                    side="BUY", price=top.price, size=top.remaining, ts_ns=ts,
                )
                resting = None if outcome.code else outcome.order
        feed.flush()

async def bench_log(request):
    return JSONResponse(
        {"deltas": deltas, "places": places, "cancels": cancels, "now_ns": now()}
    )

async def bench_shake(request):
    body = await request.json()
    task = state["shaker"]
    if task is not None:
        task.cancel()
        state["shaker"] = None
    if body.get("interval_ms"):
        state["shaker"] = asyncio.create_task(
            shake(state["tradex"], body["symbol"], body["interval_ms"] / 1000)
        )
    return JSONResponse({"shaking": state["shaker"] is not None})

routes = tradex_module.TradeX.routes
def bench_routes(self):
    state["tradex"] = self
    return [
        *routes(self),
        Route("/bench/log", bench_log, methods=["GET"]),
        Route("/bench/shake", bench_shake, methods=["POST"]),
    ]
tradex_module.TradeX.routes = bench_routes

tradex_module.main(sys.argv[1:])
"""


# ---------------------------------------------------------------- helpers


def stats_us(samples_ns: Any) -> dict[str, float]:
    if not len(samples_ns):
        return {"n": 0}
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3

    return {
        "p50_us": at(0.50),
        "p99_us": at(0.99),
        "max_us": ordered[-1] / 1e3,
        "mean_us": statistics.fmean(ordered) / 1e3,
        "n": len(ordered),
    }


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def other_test_processes() -> int:
    """pytest processes on the machine not started by this script (another helper's)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes().split(b"\0")
            if any(arg.endswith(b"pytest") for arg in args):
                count += 1
    return count


def answers(http: Any, url: str) -> bool:
    try:
        http.get(url, timeout=0.5)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------- (1) the simulator alone


def bench_exchange(n_ops: int, seed: int) -> dict[str, Any]:
    from simulator.exchange import Exchange
    from simulator.model import INSTRUMENTS

    rules = INSTRUMENTS[0]
    symbol, tick, lot = rules.symbol, rules.tick_size, rules.lot_size
    mid = 600_000  # ticks: 60,000.0
    makers = [f"acct-{i}" for i in range(10)]

    def fresh() -> tuple[Exchange, list[int]]:
        events = [0]

        def sink(event: Any) -> None:
            events[0] += 1

        exchange = Exchange([rules], on_event=sink)
        rng = random.Random(seed)
        for i in range(400):
            side = "BUY" if i % 2 else "SELL"
            away = 1 + rng.randrange(200)
            exchange.place(
                account_id=makers[i % 10],
                client_order_id=f"seed-{i}",
                symbol=symbol,
                side=side,
                price=Decimal(mid - away if side == "BUY" else mid + away) * tick,
                size=rng.randint(1, 500) * lot,
                ts_ns=i,
            )
        return exchange, events

    exchange, events = fresh()
    rng = random.Random(seed + 1)
    live: list[tuple[str, str]] = [(makers[i % 10], f"seed-{i}") for i in range(400)]
    plan: list[tuple[str, dict[str, Any]]] = []
    samples: dict[str, array] = {}
    fills = 0
    perf = time.perf_counter_ns

    def ticks(price: Decimal | None, default: int) -> int:
        return default if price is None else int(price / tick)

    gc.collect()
    for i in range(n_ops):
        ts = 10_000 + i
        r = rng.random()
        bid = ticks(exchange.best_bid(symbol), mid - 1)
        ask = ticks(exchange.best_ask(symbol), mid + 1)
        if r < 0.50 or not live:
            side = "BUY" if rng.random() < 0.5 else "SELL"
            behind = 0 if rng.random() < 0.04 else 1 + int(rng.expovariate(0.1))
            price = ask - behind if side == "BUY" else bid + behind
            account = makers[rng.randrange(10)]
            kwargs = {
                "account_id": account,
                "client_order_id": f"o-{i}",
                "symbol": symbol,
                "side": side,
                "price": Decimal(max(1, price)) * tick,
                "size": rng.randint(1, 500) * lot,
                "ts_ns": ts,
            }
            t = perf()
            outcome = exchange.place(**kwargs)
            dt = perf() - t
            kind = "place_refused" if outcome.code else "place"
            if not outcome.code:
                live.append((account, f"o-{i}"))
            plan.append(("place", kwargs))
        elif r < 0.88:
            k = rng.randrange(len(live))
            live[k], live[-1] = live[-1], live[k]
            account, coid = live.pop()
            kwargs = {"account_id": account, "client_order_id": coid, "ts_ns": ts}
            t = perf()
            order = exchange.cancel(**kwargs)
            dt = perf() - t
            kind = "cancel" if order is not None else "cancel_miss"
            plan.append(("cancel", kwargs))
        else:
            side = "BUY" if rng.random() < 0.5 else "SELL"
            reach = rng.randint(0, 10)
            limit = None
            if rng.random() > 0.1:
                limit = Decimal(ask + reach if side == "BUY" else max(1, bid - reach)) * tick
            kwargs = {
                "account_id": "taker",
                "symbol": symbol,
                "side": side,
                "size": rng.randint(1, 300) * lot,
                "limit_price": limit,
                "ts_ns": ts,
            }
            t = perf()
            got = exchange.take(**kwargs)
            dt = perf() - t
            fills += len(got)
            kind = "take" if got else "take_no_fill"
            plan.append(("take", kwargs))
        samples.setdefault(kind, array("q")).append(dt)
    timed_events = events[0]
    order_count, live_count = exchange.order_count(), exchange.live_count()

    # The same calls, untimed, on a fresh exchange: the throughput.
    replay, _ = fresh()
    calls = [(getattr(replay, name), kwargs) for name, kwargs in plan]
    gc.collect()
    t = time.perf_counter()
    for fn, kwargs in calls:
        fn(**kwargs)
    elapsed = time.perf_counter() - t
    if (replay.order_count(), replay.live_count()) != (order_count, live_count):
        raise RuntimeError("the replay did not reproduce the timed run's book")
    every = array("q")
    for values in samples.values():
        every.extend(values)
    return {
        "symbol": symbol,
        "ops": n_ops,
        "seed": seed,
        "mix": {kind: len(values) for kind, values in sorted(samples.items())},
        "ops_per_s": n_ops / elapsed,
        "us_per_op": elapsed / n_ops * 1e6,
        "all_timed": stats_us(every),
        "per_kind": {kind: stats_us(values) for kind, values in sorted(samples.items())},
        "taker_fills": fills,
        "events": timed_events,
        "live_orders_at_end": live_count,
        "event_sink": "a counting function (TradeX's is the Kafka feed)",
    }


def bench_market(hours: float, seed: int) -> dict[str, Any]:
    from simulator.exchange import Exchange
    from simulator.market import PROFILES, Market
    from simulator.model import INSTRUMENTS, is_house_account

    events: Counter[str] = Counter()

    def sink(event: Any) -> None:
        events[type(event).__name__] += 1

    exchange = Exchange(INSTRUMENTS[:1], on_event=sink, forget_finished=is_house_account)
    calls: Counter[str] = Counter()
    for name in ("place", "cancel", "take"):
        method = getattr(exchange, name)

        def counted(_method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _method(**kwargs)

        setattr(exchange, name, counted)
    start = 1_700_000_000 * 10**9
    step_ns = 100_000_000
    market = Market(exchange, [PROFILES["BTCUSDT-PERP"]], seed=seed, start_ns=start, step_s=0.1)
    steps = round(hours * 3600 * 1e9 / step_ns)
    samples = array("q", bytes(8 * steps))
    perf = time.perf_counter_ns
    advance = market.advance
    gc.collect()
    t0 = time.perf_counter()
    for k in range(steps):
        t = perf()
        advance(start + (k + 1) * step_ns)
        samples[k] = perf() - t
    elapsed = time.perf_counter() - t0
    ops = sum(calls.values())
    return {
        "symbol": "BTCUSDT-PERP",
        "simulated_hours": hours,
        "steps": steps,
        "wall_s": elapsed,
        "simulated_s_per_wall_s": hours * 3600 / elapsed,
        "steps_per_s": steps / elapsed,
        "step": stats_us(samples),
        "exchange_calls": dict(calls),
        "exchange_calls_per_s": ops / elapsed,
        "us_per_exchange_call": elapsed / max(1, ops) * 1e6,
        "events": dict(events),
        "events_per_s": sum(events.values()) / elapsed,
        "orders_kept": exchange.order_count(),
    }


# ---------------------------------------------------------------- (2)/(3) worker probes


class StackProbe:
    """The worker's side of every delta and order, by (symbol, seq) and client order
    id. Installed on the worker's event loop (engines are only touched there)."""

    def __init__(self, worker: Any, hold: Hold) -> None:
        self.worker = worker
        self.hold = hold
        self.taken: dict[tuple[str, int], tuple[int, int, int | None]] = {}
        self.deltas: dict[tuple[str, int], dict[str, Any]] = {}
        self.placed: list[tuple[int, str, int]] = []  # (when, trigger event type, placements)
        self.handled: Counter[str] = Counter()  # events by type
        self.handle_ns: Counter[str] = Counter()  # time in engine.handle by event type
        self.batches: dict[str, int] = {}  # coid → the sender took its batch
        self.journal: dict[str, tuple[int, int]] = {}
        self.calls: dict[str, int] = {}  # coid → client.place / cancel_outcome called
        self.requests: dict[tuple[str, str], tuple[int, int, int]] = {}
        self.engines: list[Any] = []

    def frozen(self) -> StackProbe:
        """A copy to read from another thread (call it on the worker's loop)."""
        copy = StackProbe(self.worker, self.hold)
        copy.deltas = dict(self.deltas)
        copy.placed = list(self.placed)
        copy.batches = dict(self.batches)
        copy.journal = dict(self.journal)
        copy.calls = dict(self.calls)
        copy.requests = dict(self.requests)
        return copy

    def install(self) -> None:

        from quoting_worker.core.types import BookDelta, CancelOrder, PlaceOrder

        w, hold, now = self.worker, self.hold, time.time_ns
        taken, deltas = self.taken, self.deltas
        decode = w.codec.decode

        def probe_decode(topic: str, data: bytes) -> dict[str, Any]:
            record = decode(topic, data)
            if topic == DELTA and record.get("type") == "BookDelta":
                taken[(record["symbol"], record["seq"])] = (
                    hold.received_ns,
                    now(),
                    hold.append_ns,
                )
            return record

        def wrap(engine: Any) -> None:
            handle, release, symbol = engine.handle, engine.release, engine.symbol
            # Under the drain's hold the quote comes from `release`, off the newest
            # state: its actions belong to the last event handled in the hold.
            last: dict[str, Any] = {}

            def account(kind: str, key: Any, t1: int, t2: int, actions: list[Any]) -> None:
                places = [a.client_order_id for a in actions if type(a) is PlaceOrder]
                if places:
                    self.placed.append((t2, kind, len(places)))
                entry = deltas.get(key) if key is not None else None
                if entry is not None:
                    entry["t2"] = t2
                    entry["places"] += places
                    entry["cancels"] += sum(type(a) is CancelOrder for a in actions)

            def probe_handle(event: Any) -> Any:
                t1 = now()
                actions = handle(event)
                t2 = now()
                kind = type(event).__name__
                self.handled[kind] += 1
                self.handle_ns[kind] += t2 - t1
                key = None
                if type(event) is BookDelta:
                    got = taken.pop((symbol, event.seq), None)
                    if got is not None:
                        key = (symbol, event.seq)
                        deltas[key] = {
                            "t0": got[0],
                            "decoded": got[1],
                            "appended": got[2],
                            "t1": t1,
                            "t2": t2,
                            "places": [],
                            "cancels": 0,
                        }
                last["kind"] = kind
                if key is not None:
                    last["key"] = key  # the newest delta of the hold
                account(kind, key, t1, t2, actions)
                return actions

            def probe_release() -> Any:
                t1 = now()
                actions = release()
                t2 = now()
                self.handle_ns["release"] += t2 - t1
                if actions:
                    account(last.get("kind", "release"), last.get("key"), t1, t2, actions)
                last.pop("key", None)
                return actions

            engine.handle = probe_handle
            engine.release = probe_release
            self.engines.append(engine)

        send = w._send

        async def probe_send(hosted: Any, actions: list[Any]) -> Any:
            t = now()
            for action in actions:
                coid = getattr(action, "client_order_id", None)
                if coid is not None:
                    self.batches.setdefault(coid, t)
            return await send(hosted, actions)

        record = w.journal.record

        async def probe_record(**kwargs: Any) -> Any:
            t = now()
            try:
                return await record(**kwargs)
            finally:
                end = now()
                for order in kwargs["placed"]:
                    self.journal[order.client_order_id] = (t, end)

        place, cancel_outcome = w.client.place, w.client.cancel_outcome

        async def probe_place(order: Any, **kwargs: Any) -> Any:
            self.calls.setdefault(order.client_order_id, now())
            return await place(order, **kwargs)

        async def probe_cancel(client_order_id: str, **kwargs: Any) -> Any:
            self.calls.setdefault(client_order_id, now())
            return await cancel_outcome(client_order_id, **kwargs)

        requests = self.requests

        exchange = w.client._exchange

        async def probe_exchange(method: str, url: str, **options: Any) -> Any:
            t = now()
            coid = None
            if method == "POST" and url == "/v1/orders":
                coid = options["json"]["client_order_id"]
            elif method == "DELETE" and url.startswith("/v1/orders/"):
                coid = unquote(url.rsplit("/", 1)[1])
            reply = await exchange(method, url, **options)
            if coid is not None:
                requests.setdefault((method, coid), (t, now(), reply.status_code))
            return reply

        w.codec.decode = probe_decode
        w._send = probe_send
        w.journal.record = probe_record
        w.client.place = probe_place
        w.client.cancel_outcome = probe_cancel
        w.client._exchange = probe_exchange
        stamp_appends(w, hold)
        for hosted in w.hosted.values():
            wrap(hosted.engine)


# ---------------------------------------------------------------- correlation


LEGS = (
    ("broker", "publish -> worker's consumer has it (Kafka)"),
    ("hand_over", "-> engine.handle starts (decode, queue)"),
    ("core", "engine.handle: the quoting core"),
    ("to_sender", "-> the sender takes the batch"),
    ("sender", "-> client.place (journal, cancels first)"),
    ("budget", "-> request enters the HTTP client (rate budget)"),
    ("http_in", "-> TradeX's Venue.place (HTTP)"),
    ("match", "-> accepted by the exchange"),
)


def correlate(
    sim: dict[str, Any],
    probe: StackProbe,
    t_from: int,
    t_to: int,
    sources: set[str],
    arrivals: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Delta published → first (and last) placement accepted, for the deltas the
    simulator published in [t_from, t_to) from `sources`, with the legs; `arrivals`
    (client order id → the endpoint's arrival time) splits the HTTP leg."""
    arrivals = arrivals or {}
    published = {(s, seq): (t, src) for s, seq, t, src in sim["deltas"]}
    accepted = {coid: (t_in, t_acc, code) for coid, t_in, t_acc, code in sim["places"]}
    series: dict[str, list[int]] = {
        k: []
        for k in (
            "first",
            "all",
            "response",
            "journal",
            "to_append",
            "from_append",
            "to_endpoint",
            "endpoint_to_venue",
            *(leg for leg, _ in LEGS),
        )
    }
    by_source: dict[str, list[int]] = {}
    counts: Counter[str] = Counter()
    places_per_delta: list[int] = []
    for key, (t_pub, src) in published.items():
        if not t_from <= t_pub < t_to or src not in sources:
            continue
        counts["published"] += 1
        rec = probe.deltas.get(key)
        if rec is None:
            counts["not_applied_by_the_worker"] += 1
            continue
        if not rec["places"]:
            counts["no_placement_decided"] += 1
            continue
        counts["placed"] += 1
        places_per_delta.append(len(rec["places"]))
        ok = [c for c in rec["places"] if c in accepted and accepted[c][2] == ""]
        if not ok:
            sent = [c for c in rec["places"] if ("POST", c) in probe.requests]
            refused = [c for c in rec["places"] if c in accepted]
            if refused:
                counts["placements_refused"] += 1
            elif sent:
                counts["placements_sent_no_venue_record"] += 1
            else:
                counts["placements_withdrawn_before_sending"] += 1
            continue
        first = min(ok, key=lambda c: accepted[c][1])
        t_in, t_acc, _ = accepted[first]
        request = probe.requests.get(("POST", first))
        t_batch, t_call = probe.batches.get(first), probe.calls.get(first)
        if request is None or t_batch is None or t_call is None:
            counts["incomplete_worker_stamps"] += 1
            continue
        counts["timed"] += 1
        total = t_acc - t_pub
        series["first"].append(total)
        by_source.setdefault(src, []).append(total)
        series["all"].append(max(accepted[c][1] for c in ok) - t_pub)
        if len(ok) < len(rec["places"]):
            counts["timed_with_some_placements_not_accepted"] += 1
        series["broker"].append(rec["t0"] - t_pub)
        if rec["appended"] is not None:
            series["to_append"].append(rec["appended"] - t_pub)
            series["from_append"].append(rec["t0"] - rec["appended"])
        else:
            counts["timed_without_broker_append_time"] += 1
        series["hand_over"].append(rec["t1"] - rec["t0"])
        series["core"].append(rec["t2"] - rec["t1"])
        series["to_sender"].append(t_batch - rec["t2"])
        series["sender"].append(t_call - t_batch)
        series["budget"].append(request[0] - t_call)
        series["http_in"].append(t_in - request[0])
        series["match"].append(t_acc - t_in)
        series["response"].append(request[1] - t_acc)
        if first in arrivals:
            series["to_endpoint"].append(arrivals[first] - request[0])
            series["endpoint_to_venue"].append(t_in - arrivals[first])
        if first in probe.journal:
            start, end = probe.journal[first]
            series["journal"].append(end - start)
    return {
        "delta_to_first_accepted": stats_ms(series["first"]),
        "delta_to_every_placement_accepted": stats_ms(series["all"]),
        "legs": {leg: stats_ms(series[leg]) for leg, _ in LEGS},
        "journal_write": stats_ms(series["journal"]),
        "kafka_publish_to_broker_append": stats_ms(series["to_append"]),
        "kafka_broker_append_to_consumer": stats_ms(series["from_append"]),
        "http_request_to_endpoint": stats_ms(series["to_endpoint"]),
        "http_endpoint_to_venue": stats_ms(series["endpoint_to_venue"]),
        "accepted_to_worker_has_201": stats_ms(series["response"]),
        "by_source": {src: stats_ms(v) for src, v in sorted(by_source.items())},
        "counts": dict(counts),
        "placements_per_delta": statistics.fmean(places_per_delta) if places_per_delta else 0,
    }


def pair_request_log(lines: list[dict[str, Any]], places: list[list[Any]]) -> dict[str, Any]:
    """The simulator's request log (route=place, arrival `t`, no order id) beside the
    launcher's log of Venue.place calls: both appended in order, in one synchronous
    stretch per request, for the requests that reached Venue.place."""
    reached = [
        line
        for line in lines
        if line["route"] == "place" and line["outcome"] in ("200", "201", "409", "422")
    ]
    # The log keeps its last REQUEST_LOG_LIMIT lines (every route): a full one may
    # have dropped its first lines, and then the two no longer start together.
    n = 0 if len(lines) >= REQUEST_LOG_LIMIT else min(len(reached), len(places))
    arrivals = {places[i][0]: round(reached[i]["t"] * 1e9) for i in range(n)}
    legs = [places[i][1] - arrivals[places[i][0]] for i in range(n)]
    return {
        "arrivals": arrivals,
        "log_lines_reaching_venue": len(reached),
        "launcher_places": len(places),
        "paired": n,
        "pairs_out_of_order": sum(1 for leg in legs if leg < 0),
        "endpoint_arrival_to_venue_place": stats_ms([leg for leg in legs if leg >= 0]),
        "log_lines": len(lines),
        "accepted_201_in_log": sum(1 for line in reached if line["outcome"] == "201"),
        "accepted_by_launcher": sum(1 for p in places if p[3] == ""),
    }


# ---------------------------------------------------------------- the bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000, help="exchange calls in (1a)")
    parser.add_argument("--market-hours", type=float, default=24.0, help="simulated, in (1b)")
    parser.add_argument("--latency-s", type=float, default=15.0, help="each window of (2)")
    parser.add_argument("--latency-shake-ms", type=float, default=200.0)
    parser.add_argument("--window-s", type=float, default=10.0, help="each window of (3)")
    parser.add_argument(
        "--drive-ms",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[200.0, 20.0],
        help="the shaker's intervals in (3), comma-separated",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    started = time.monotonic()
    load_at_start = os.getloadavg()
    others_at_start = other_test_processes()

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)  # so the clean-up below runs

    # ------------------------------------------------------------ (1) in-process, first
    print(f"load at start {load_at_start[0]:.2f} (other pytest processes: {others_at_start})")
    exchange = bench_exchange(args.ops, args.seed)
    print(
        f"exchange: {args.ops:,} calls, {exchange['ops_per_s']:,.0f}/s "
        f"({exchange['us_per_op']:.1f} µs each)",
        flush=True,
    )
    market = bench_market(args.market_hours, args.seed)
    print(
        f"market + exchange: {args.market_hours:g} h simulated in {market['wall_s']:.1f} s "
        f"({market['simulated_s_per_wall_s']:,.0f}× real time)",
        flush=True,
    )

    logdir = Path(tempfile.mkdtemp(prefix="e2e-bench-"))
    procs = Processes(logdir)
    ctx: dict[str, Any] = {}
    stack: dict[str, Any] = {}

    def worker_log() -> None:
        handler = logging.FileHandler(logdir / "worker.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logging.getLogger().handlers = [handler]  # the worker's log, not this table
        logging.getLogger("mms.quoter").setLevel(logging.INFO)

    try:
        with contextlib.ExitStack() as cleanup:
            cleanup.enter_context(
                scratch_database("mms_bench_e2e", redis_url=REDIS_URL, before_migrate=worker_log)
            )
            cleanup.callback(stop_stack, ctx, procs)
            stack = run_stack(args, procs, ctx)
    except BaseException:
        for name in ("worker", "tradex"):
            with contextlib.suppress(OSError):
                tail = (logdir / f"{name}.log").read_text().splitlines()[-15:]
                print(f"--- last lines of {name}.log", *tail, sep="\n", file=sys.stderr)
        raise
    finally:
        if args.keep_logs:
            print(f"logs kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    quote_path_file = RESULTS / "quote_path.json"
    quote_path = json.loads(quote_path_file.read_text()) if quote_path_file.exists() else None
    result = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "loadavg_at_start": load_at_start,
        "other_pytest_processes_at_start": others_at_start,
        "loadavg_at_end": os.getloadavg(),
        "parameters": vars(args),
        "simulator_alone": {"exchange_mix": exchange, "market_day": market},
        **stack,
        "quote_path_json": quote_path,
        "worker_graceful_stop_s": ctx.get("worker_stop_s"),
        "wall_s": round(time.monotonic() - started, 1),
    }
    report(result)
    out = RESULTS / "e2e-kafka.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out.relative_to(ROOT)} (wall time {result['wall_s']} s)")


def stop_stack(ctx: dict[str, Any], procs: Processes) -> None:
    """Stops the shaker, the worker thread (its shutdown cancels unmetered) and the processes."""
    worker, loop, stop = ctx.get("worker"), ctx.get("loop"), ctx.get("stop")
    if ctx.get("tradex_url"):
        with contextlib.suppress(Exception):
            import httpx

            httpx.post(f"{ctx['tradex_url']}/bench/shake", json={"interval_ms": 0}, timeout=5)
    if worker is not None:
        # Shutdown cancels the pool's orders: not measured, so not rate-limited.
        from quoting_worker.adapters.order_service import RateBudget

        worker.client.budget = RateBudget(rate_per_s=1e9, burst=10**9)
    if loop is not None and stop is not None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)
    thread = ctx.get("thread")
    if thread is not None:
        t = time.monotonic()
        thread.join(60)
        ctx["worker_stop_s"] = round(time.monotonic() - t, 1)
        if thread.is_alive():
            print("warning: the worker thread did not stop within 60 s", file=sys.stderr)
    procs.stop_all()  # TradeX and the stand-ins, then the Kafka node


def run_stack(args: argparse.Namespace, procs: Processes, ctx: dict[str, Any]) -> dict[str, Any]:
    import httpx

    from common.actors import Actor
    from common.models import AuditLog
    from participants.models import Participant
    from pools import services
    from pools.models import PoolConfig
    from quoting_worker import worker as worker_module
    from quoting_worker.adapters.kafka_config import ensure_topics, mms_topics
    from quoting_worker.adapters.order_service import RateBudget
    from quoting_worker.core.types import PoolMode, Side
    from quoting_worker.worker import QuoterWorker, WorkerConfig

    ops = Actor("bench-ops")
    http = httpx.Client(timeout=30)

    # ------------------------------------------------------------ processes
    kafka = start_kafka(procs)
    bootstrap = kafka.bootstrap
    rport, mport, tport = free_port(), free_port(), free_port()
    rproc = procs.start(
        "schema-registry", [sys.executable, "-m", "simulator.schema_registry", "--port", str(rport)]
    )
    mproc = procs.start(
        "metadata", [sys.executable, "-m", "simulator.metadata_service", "--port", str(mport)]
    )
    wait_port(rport, rproc, "schema registry")
    registry = f"http://127.0.0.1:{rport}"
    wait_for("the schema registry", lambda: answers(http, f"{registry}/subjects"))
    ensure_topics(bootstrap, mms_topics(PARTITIONS))
    tproc = procs.start(
        "tradex",
        [
            sys.executable,
            "-c",
            TRADEX_SERVER,
            "--port",
            str(tport),
            "--brokers",
            bootstrap,
            "--registry",
            registry,
            "--symbol",
            ETH,
            "--seed",
            "11",
            "--speed",
            "1",
        ],
    )
    tradex = f"http://127.0.0.1:{tport}"
    ctx["tradex_url"] = tradex
    wait_port(tport, tproc, "tradex")
    wait_port(mport, mproc, "metadata")
    wait_for("TradeX", lambda: answers(http, f"{tradex}/healthz"))
    tradex_started = time.monotonic()

    # ------------------------------------------------------------ the pool
    pool, _ = services.pool_create_or_update(
        symbol=ETH,
        config={
            "enabled": True,
            "gamma": Decimal("0.0001"),
            "kappa": Decimal("20"),
            "vol_lookback_seconds": 300,
            "tau": Decimal("1"),
            "num_levels": 1,
            "level_spacing_bps": Decimal("3"),
            "min_spread_bps": Decimal("2.5"),
            "max_spread_bps": Decimal("50"),
            "order_size_usdt": Decimal("2000"),
            "max_pool_position_usdt": Decimal("1000000"),
            "max_pool_loss_usdt": Decimal("1000000"),
            "check_staleness": True,
            "staleness_threshold_ms": 3000,
            "quote_interval_ms": 1,
            "price_threshold_bps": Decimal("0"),
        },
        actor=ops,
    )

    def join(n: int, weight: int) -> None:
        pid = uuid.uuid4()
        participant = Participant.objects.create(
            id=pid,
            short_id=str(pid)[:8],
            name=f"bench member {n}",
            user_id=f"user-e2e-{n}",
            account_id=f"acct-e2e-{n}",
            tier="TIER_2",
            state="ACTIVE",
        )
        services.member_add(
            pool=pool,
            participant=participant,
            weight=Decimal(weight),
            max_position_usdt=Decimal("500000"),
            actor=ops,
        )

    join(0, 3)
    join(1, 1)

    # ------------------------------------------------------------ the worker
    hold = Hold()
    worker_module.Consumer = bench_consumer_class(hold)  # bench-only: stamps each receipt
    worker = QuoterWorker(
        WorkerConfig(
            kafka_brokers=bootstrap,
            registry_url=registry,
            order_service_url=tradex,
            metadata_target=f"127.0.0.1:{mport}",
            redis_url=REDIS_URL,
            group_id=f"bench-e2e-{uuid.uuid4().hex[:8]}",
            partitions=PARTITIONS,
            worker_id="bench-e2e",
        )
    )
    ctx["worker"] = worker
    default_budget = {
        "rate_per_s": worker.config.order_rate_per_s,
        "reserve": worker.config.cancel_reserve,
    }

    def serve() -> None:
        async def main() -> None:
            ctx["stop"] = asyncio.Event()
            ctx["loop"] = asyncio.get_running_loop()
            await worker.run(ctx["stop"])

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="quoter", daemon=True)
    ctx["thread"] = thread
    thread.start()
    wait_for("the worker to host ETH", lambda: ETH in worker.hosted, timeout=60)
    engine = worker.hosted[ETH].engine

    def on_loop(fn: Callable[[], Any]) -> Any:
        """`fn()` on the worker's event loop: what the worker changes is read there."""

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), ctx["loop"]).result(30)

    def warmed() -> bool:
        return on_loop(
            lambda: (
                engine.book.synced
                and engine.mark is not None
                and engine.vol.sigma(time.time_ns()) is not None
            )
        )

    wait_for("book, mark and σ (20 public trades) in the engine", warmed, timeout=90, step=0.2)
    print(
        f"stack up; σ warm {time.monotonic() - tradex_started:.1f} s after TradeX started",
        flush=True,
    )
    probe = StackProbe(worker, hold)
    on_loop(probe.install)
    services.pool_resume(pool=PoolConfig.objects.get(pk=pool.pk), actor=ops, note="bench")

    def quoting(levels: int, members: int) -> bool:
        return on_loop(
            lambda: (
                engine.gate() == ""
                and len(engine.members) == members
                and engine.params.num_levels == levels
                and any(engine.own_levels[Side.BUY].values())
                and any(engine.own_levels[Side.SELL].values())
                and not engine.unknown
            )
        )

    wait_for("the pool ACTIVE with quotes resting", lambda: quoting(1, 2), timeout=60)
    print("pool ACTIVE and quoting (2 members × 1 level)", flush=True)

    def shake(interval_ms: float) -> None:
        http.post(
            f"{tradex}/bench/shake", json={"symbol": ETH, "interval_ms": interval_ms}
        ).raise_for_status()

    def stats() -> dict[str, Any]:
        return http.get(f"{tradex}/admin/stats").json()

    # ------------------------------------------------------------ windows
    tpid, kpid = tproc.pid, kafka.pid()

    def set_budget(rate: int) -> None:
        # As WorkerConfig builds it: one second's burst, the cancel reserve kept.
        worker.client.budget = RateBudget(
            rate_per_s=rate, burst=rate, reserve=default_budget["reserve"]
        )

    def snapshot() -> dict[str, Any]:
        stamps = {
            "stats": stats(),
            "cpu": (proc_cpu_s(tpid), proc_cpu_s(kpid), time.process_time(), machine_cpu()),
        }
        return {
            **stamps,
            **on_loop(
                lambda: {
                    "t_ns": time.time_ns(),
                    "outcomes": Counter(worker.client.outcomes),
                    "handled": Counter(probe.handled),
                    "handle_ns": Counter(probe.handle_ns),
                }
            ),
        }

    def window(seconds: float, budget: int) -> dict[str, Any]:
        a = snapshot()
        queues: list[tuple[int, int]] = []  # (engine queue, sender queue), every 0.25 s
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            hosted = worker.hosted.get(ETH)
            if hosted is not None:  # a deque's length: safe to read from here
                queues.append((hosted.queue.qsize(), hosted.sends.qsize()))
            time.sleep(min(0.25, max(0.0, ends - time.monotonic())))
        b = snapshot()
        elapsed = (b["t_ns"] - a["t_ns"]) / 1e9
        before, after = a["stats"]["requests"], b["stats"]["requests"]
        routes = {}
        for route in sorted(set(before) | set(after)):
            for outcome in sorted(set(before.get(route, {})) | set(after.get(route, {}))):
                n = after.get(route, {}).get(outcome, 0) - before.get(route, {}).get(outcome, 0)
                if n:
                    routes[f"{route}.{outcome}"] = n
        outcomes = b["outcomes"]
        outcomes.subtract(a["outcomes"])
        handled, handle_ns = b["handled"], b["handle_ns"]
        handled.subtract(a["handled"])
        handle_ns.subtract(a["handle_ns"])
        decided: Counter[str] = Counter()
        for t, trigger, n in on_loop(lambda: list(probe.placed)):
            if a["t_ns"] <= t < b["t_ns"]:
                decided[trigger] += n
        placed, cancelled = routes.get("place.201", 0), routes.get("cancel.200", 0)
        return {
            "budget_per_s": budget,
            "seconds": elapsed,
            "t_from_ns": a["t_ns"],
            "t_to_ns": b["t_ns"],
            "placed_per_s": placed / elapsed,
            "cancelled_per_s": cancelled / elapsed,
            "orders_per_s": (placed + cancelled) / elapsed,
            "venue_requests_per_s": sum(routes.values()) / elapsed,
            "placements_decided_per_s": sum(decided.values()) / elapsed,
            "placements_decided_by_trigger": dict(decided),
            "simulator_requests": routes,
            "client_outcomes": {k: v for k, v in outcomes.items() if v},
            "engine_events_per_s": {k: v / elapsed for k, v in handled.items() if v},
            "engine_handle_share_of_a_core": sum(handle_ns.values()) / 1e9 / elapsed,
            "engine_queue_max": max((q for q, _ in queues), default=0),
            "sender_queue_max": max((q for _, q in queues), default=0),
            "cpu_busy": {
                "tradex": (b["cpu"][0] - a["cpu"][0]) / elapsed,
                "kafka": (b["cpu"][1] - a["cpu"][1]) / elapsed,
                "bench_process_worker": (b["cpu"][2] - a["cpu"][2]) / elapsed,
                "machine_of_2_cores": machine_busy(a["cpu"][3], b["cpu"][3]),
            },
            "loadavg_after": os.getloadavg(),
            "pool_mode_after": str(engine.mode),
        }

    def settle(timeout: float = 15.0) -> float:
        """With the shaker stopped, waits until the sender's queue is empty and the
        engine's nearly so (a window's backlog must not spill into the next); the
        seconds it took, or -1 after `timeout`."""
        shake(0)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            hosted = worker.hosted.get(ETH)
            if hosted is None or (hosted.sends.qsize() == 0 and hosted.queue.qsize() < 10):
                time.sleep(0.5)
                return round(time.monotonic() - started, 1)
            time.sleep(0.1)
        return -1.0

    def ensure_active(levels: int, members: int) -> str:
        """Resumes the pool when the last window halted it; the reason, or ""."""
        if engine.mode is PoolMode.ACTIVE:
            return ""
        settle()
        row = (
            AuditLog.objects.filter(entity_type="pool", entity_id=ETH, action="halt")
            .order_by("-created_at")
            .first()
        )
        services.pool_resume(
            pool=PoolConfig.objects.get(pk=pool.pk), actor=ops, note="bench: next window"
        )
        wait_for("the pool to quote again", lambda: quoting(levels, members), timeout=30)
        return row.reason if row is not None else str(engine.mode)

    # ------------------------------------------------------------ (2) latency
    latency_windows: dict[str, Any] = {}
    shake(args.latency_shake_ms)
    for label, rate in (("default", default_budget["rate_per_s"]), ("high", HIGH_BUDGET)):
        resumed = ensure_active(1, 2)
        if resumed:
            shake(args.latency_shake_ms)
        if label == "high":
            set_budget(rate)
        time.sleep(1.0)
        latency_windows[label] = {**window(args.latency_s, rate), "resumed_before": resumed}
        print(f"latency window, budget {rate}/s: done", flush=True)
    shake(0)
    time.sleep(0.5)  # the last deltas' orders
    request_log = http.get(f"{tradex}/admin/requests").json()["requests"]
    sim_after_latency = http.get(f"{tradex}/bench/log").json()

    # ------------------------------------------------------------ (3) orders per second
    ensure_active(1, 2)
    set_budget(default_budget["rate_per_s"])
    services.pool_update(
        pool=PoolConfig.objects.get(pk=pool.pk), config={"num_levels": 5}, actor=ops
    )
    join(2, 2)
    join(3, 1)
    wait_for("4 members × 5 levels quoting", lambda: quoting(5, 4), timeout=60)
    windows: list[dict[str, Any]] = []
    for drive_ms in args.drive_ms:
        for label, rate in (("default", default_budget["rate_per_s"]), ("high", HIGH_BUDGET)):
            settled = settle()
            resumed = ensure_active(5, 4)
            set_budget(rate)
            drive_started = time.time_ns()
            shake(drive_ms)
            time.sleep(WARMUP_S)
            w = {
                "label": label,
                "drive_ms": drive_ms,
                "drive_started_ns": drive_started,
                "settled_before_s": settled,
                "resumed_before": resumed,
                **window(args.window_s, rate),
            }
            windows.append(w)
            print(
                f"shaker {drive_ms:g} ms, budget {rate}/s: {w['orders_per_s']:,.0f} orders/s "
                f"({w['placed_per_s']:,.0f} placed + {w['cancelled_per_s']:,.0f} cancelled), "
                f"pool {w['pool_mode_after']}",
                flush=True,
            )
    settle()
    sim = http.get(f"{tradex}/bench/log").json()
    final_stats = stats()
    probe = on_loop(probe.frozen)
    # A pool that rests nothing shuts down at once (the worker's own shutdown is
    # not measured here, and after an overload its backlog can take a minute).
    if engine.mode is PoolMode.ACTIVE:
        services.pool_pause(pool=PoolConfig.objects.get(pk=pool.pk), actor=ops, reason="bench")
    settle(30.0)
    transitions = [
        {
            "at": row.created_at.isoformat(),
            "at_ns": round(row.created_at.timestamp() * 1e9),
            "action": row.action,
            "from": row.from_state,
            "to": row.to_state,
            "actor": row.actor,
            "reason": row.reason,
        }
        for row in AuditLog.objects.filter(entity_type="pool", entity_id=ETH).order_by(
            "created_at", "id"
        )
        if row.from_state or row.to_state
    ]

    # ------------------------------------------------------------ analysis
    outside = {"market", "shaker"}
    cross_check = pair_request_log(request_log, sim_after_latency["places"])
    arrivals = cross_check.pop("arrivals")
    for w in latency_windows.values():
        w.update(correlate(sim, probe, w["t_from_ns"], w["t_to_ns"], outside, arrivals))
        own = correlate(sim, probe, w["t_from_ns"], w["t_to_ns"], {"client"})
        w["own_request_deltas"] = own["counts"]
    for w in windows:
        w["halted_after_s"] = [
            round((t["at_ns"] - w["drive_started_ns"]) / 1e9, 1)
            for t in transitions
            if t["action"] == "halt" and w["drive_started_ns"] <= t["at_ns"] < w["t_to_ns"]
        ]
        w["latency_under_load"] = correlate(sim, probe, w["t_from_ns"], w["t_to_ns"], outside)
        rtt: dict[str, list[int]] = {"POST": [], "DELETE": []}
        for (method, _coid), (t_req, t_resp, _status) in probe.requests.items():
            if w["t_from_ns"] <= t_req < w["t_to_ns"]:
                rtt[method].append(t_resp - t_req)
        w["request_round_trip"] = {
            "place": stats_ms(rtt["POST"]),
            "cancel": stats_ms(rtt["DELETE"]),
        }
    by_trigger: Counter[str] = Counter()
    for _t, trigger, n in probe.placed:
        by_trigger[trigger] += n
    return {
        "stack": {
            "worker": "QuoterWorker in a thread of this process (as tests/e2e run it)",
            "tradex": f"python -m simulator's main via the bench launcher: --symbol {ETH} "
            "--seed 11 --speed 1",
            "kafka": f"Apache Kafka 4.1.1 (KRaft, one node: devstack/kafka.py), {PARTITIONS} "
            "partitions, consumed topics stamped LogAppendTime",
            "default_budget": default_budget,
        },
        "latency": {
            "pool": {
                "symbol": ETH,
                "members": 2,
                "levels_per_side": 1,
                "quote_interval_ms": 1,
                "price_threshold_bps": 0,
            },
            "seconds": args.latency_s,
            "shake_ms": args.latency_shake_ms,
            "windows": latency_windows,
            "request_log_cross_check": cross_check,
        },
        "orders_per_second": {
            "pool": {"symbol": ETH, "members": 4, "levels_per_side": 5},
            "warmup_s": WARMUP_S,
            "windows": windows,
        },
        "placements_decided_by_trigger": dict(by_trigger),
        "pool_transitions": transitions,
        "engine_replaced_during_run": worker.hosted.get(ETH) is None
        or worker.hosted[ETH].engine is not engine,
        "pool_mode_at_end": str(engine.mode),
        "simulator_at_end": {
            "duplicate_live_orders": final_stats.get("duplicate_live_orders"),
            "dead_man_switch": final_stats.get("dead_man_switch"),
            "orders_total": final_stats.get("orders_total"),
        },
    }


# ---------------------------------------------------------------- the table


def report(r: dict[str, Any]) -> None:
    ex, mk = r["simulator_alone"]["exchange_mix"], r["simulator_alone"]["market_day"]
    print()
    print(
        f"TradeX, MMS and the full stack; Python {r['python']}, {r['machine']}, load at start "
        f"{r['loadavg_at_start'][0]:.2f} / {r['loadavg_at_start'][1]:.2f} / "
        f"{r['loadavg_at_start'][2]:.2f} (1/5/15 min), other pytest processes: "
        f"{r['other_pytest_processes_at_start']}"
    )
    print()
    print(f"(1) the simulator alone, in-process{'ops/s':>25}{'µs/op':>9}{'p50 µs':>9}{'p99 µs':>9}")
    label = f"Exchange, seeded mix on {ex['symbol']} ({ex['ops']:,} calls)"
    print(
        f"{label:<60}{ex['ops_per_s']:>9,.0f}{ex['us_per_op']:>9.1f}"
        f"{ex['all_timed']['p50_us']:>9.1f}{ex['all_timed']['p99_us']:>9.1f}"
    )
    names = {
        "place": "post-only placement, rests",
        "place_refused": "placement refused (would cross)",
        "cancel": "cancel",
        "cancel_miss": "cancel of an order already gone",
        "take": "IOC take that traded",
        "take_no_fill": "IOC take, nothing within its limit",
    }
    for kind, s in ex["per_kind"].items():
        label = f"    {names.get(kind, kind)} (n={s['n']:,})"
        print(f"{label:<78}{s['p50_us']:>9.1f}{s['p99_us']:>9.1f}")
    label = f"Market + Exchange, {mk['simulated_hours']:g} h simulated ({mk['steps']:,} steps)"
    print(
        f"{label:<60}{mk['exchange_calls_per_s']:>9,.0f}{mk['us_per_exchange_call']:>9.1f}"
        f"{mk['step']['p50_us']:>9.1f}{mk['step']['p99_us']:>9.1f}  per step"
    )
    print(
        f"    {mk['simulated_s_per_wall_s']:,.0f}× real time, {mk['steps_per_s']:,.0f} steps/s, "
        f"{mk['events_per_s']:,.0f} events/s; calls {mk['exchange_calls']}"
    )

    lat = r["latency"]
    wins = lat["windows"]
    print()
    print(
        f"(2) delta published -> order accepted by TradeX: {lat['pool']['symbol']}, "
        f"{lat['pool']['members']} members × {lat['pool']['levels_per_side']} level a side, "
        f"re-quote on every move, {lat['seconds']:g} s per budget "
        f"(market steps + a shaker every {lat['shake_ms']:g} ms)"
    )
    print(
        f"{'':<48}"
        + "".join(f"{'budget ' + str(w['budget_per_s']) + '/s':>38}" for w in wins.values())
    )
    print(f"{'ms':<48}" + f"{'p50':>14}{'p99':>9}{'max':>9}{'n':>6}" * len(wins))

    def cells(s: dict[str, Any]) -> str:
        if not s.get("n"):
            return f"{'-':>14}{'':>24}"
        return f"{s['p50_ms']:>14.3f}{s['p99_ms']:>9.3f}{s['max_ms']:>9.3f}{s['n']:>6}"

    def row(name: str, pick: Any) -> None:
        print(f"{name:<48}{''.join(cells(pick(w)) for w in wins.values())}")

    row("publish -> first placement accepted", lambda w: w["delta_to_first_accepted"])
    row("publish -> every placement accepted", lambda w: w["delta_to_every_placement_accepted"])
    for src in ("market", "shaker"):
        row(f"    deltas from {src}", lambda w, src=src: w["by_source"].get(src, {}))
    for leg, name in LEGS:
        row(f"  {name}", lambda w, leg=leg: w["legs"][leg])
        if leg == "broker":
            row(
                "    of which publish -> broker append",
                lambda w: w["kafka_publish_to_broker_append"],
            )
            row(
                "    of which append -> consumer call",
                lambda w: w["kafka_broker_append_to_consumer"],
            )
        if leg == "sender":
            row("    of which the write-ahead journal", lambda w: w["journal_write"])
        if leg == "http_in":
            row("    of which to TradeX's endpoint", lambda w: w["http_request_to_endpoint"])
            row("    endpoint -> Venue.place (body, JSON)", lambda w: w["http_endpoint_to_venue"])
    row("after: accepted -> the worker has the 201", lambda w: w["accepted_to_worker_has_201"])
    for w in wins.values():
        print(
            f"budget {w['budget_per_s']}/s: deltas {w['counts']}; MMS's own echoes "
            f"{w['own_request_deltas']}; placements decided by trigger "
            f"{w['placements_decided_by_trigger']}; "
            f"TradeX answered {w['venue_requests_per_s']:,.0f} "
            f"requests/s; machine CPU {w['cpu_busy']['machine_of_2_cores']:.0%}"
        )
    cross = lat["request_log_cross_check"]
    s = cross["endpoint_arrival_to_venue_place"]
    print(
        f"cross-check with /admin/requests?route=place: {cross['paired']} paired "
        f"({cross['pairs_out_of_order']} out of order), 201s {cross['accepted_201_in_log']} in "
        f"the log vs {cross['accepted_by_launcher']} by the launcher; endpoint arrival -> "
        f"Venue.place p50 {s.get('p50_ms', 0):.3f} p99 {s.get('p99_ms', 0):.3f} ms"
    )

    qp = r.get("quote_path_json")
    print()
    print(f"(4) the quoting core vs the full stack{'p50 ms':>25}{'p99 ms':>9}")
    if qp:
        for key, name in (
            ("delta_no_requote", "core: a delta, no re-quote"),
            ("full_requote_unchanged", "core: re-quote 10×5, nothing to send"),
            ("full_requote_all_replaced", "core: re-quote 10×5, 200 actions"),
        ):
            s = qp[key]
            print(
                f"{name + ' (quote_path.json)':<55}"
                f"{s['p50_us'] / 1000:>8.4f}{s['p99_us'] / 1000:>9.4f}"
            )
    for w in wins.values():
        core, e2e = w["legs"]["core"], w["delta_to_first_accepted"]
        if not (core.get("n") and e2e.get("n")):
            continue
        b = f"budget {w['budget_per_s']}/s"
        print(
            f"{'core in the stack: engine.handle, ' + b:<55}"
            f"{core['p50_ms']:>8.4f}{core['p99_ms']:>9.4f}"
        )
        print(
            f"{'full stack: publish -> accepted, ' + b:<55}"
            f"{e2e['p50_ms']:>8.3f}{e2e['p99_ms']:>9.3f}"
        )
        print(
            f"{'  the I/O path (full stack - core)':<55}{e2e['p50_ms'] - core['p50_ms']:>8.3f}"
            f"{e2e['p99_ms'] - core['p99_ms']:>9.3f}  = {e2e['p50_ms'] / core['p50_ms']:,.0f}× "
            "the core's decision at p50"
        )

    ops = r["orders_per_second"]
    print()
    print(
        f"(3) orders per second one pool sustains, at TradeX: {ops['pool']['symbol']}, "
        f"{ops['pool']['members']} members × {ops['pool']['levels_per_side']} levels a side "
        f"(40 orders), {ops['windows'][0]['seconds']:.0f} s windows"
    )
    print(
        f"{'shaker':>7}{'budget':>8}{'placed/s':>9}{'cancel/s':>9}{'orders/s':>9}{'decided/s':>10}"
        f"{'place rtt p50/p99':>20}{'lat p50':>10}{'TradeX':>7}{'worker':>7}{'Kafka':>6}"
        f"{'machine':>8}  pool after"
    )
    for w in ops["windows"]:
        rt = w["request_round_trip"]["place"]
        lu = w["latency_under_load"]["delta_to_first_accepted"]
        cpu = w["cpu_busy"]
        rtt = f"{rt['p50_ms']:.0f}/{rt['p99_ms']:.0f} ms" if rt.get("n") else "-"
        lat50 = f"{lu['p50_ms']:.0f} ms" if lu.get("n") else "-"
        print(
            f"{w['drive_ms']:>5g}ms{w['budget_per_s']:>8}{w['placed_per_s']:>9,.0f}"
            f"{w['cancelled_per_s']:>9,.0f}{w['orders_per_s']:>9,.0f}"
            f"{w['placements_decided_per_s']:>10,.0f}{rtt:>20}{lat50:>10}"
            f"{cpu['tradex']:>7.0%}{cpu['bench_process_worker']:>7.0%}{cpu['kafka']:>6.0%}"
            f"{cpu['machine_of_2_cores']:>8.0%}  {w['pool_mode_after']}"
            + (f" {w['halted_after_s']} s after the drive began" if w["halted_after_s"] else "")
        )
    for w in ops["windows"]:
        events = {k: round(v) for k, v in w["engine_events_per_s"].items() if v >= 0.5}
        print(
            f"  {w['drive_ms']:g} ms, {w['budget_per_s']}/s: TradeX answered "
            f"{w['simulator_requests']}; engine.handle {w['engine_handle_share_of_a_core']:.0%} "
            f"of a core, events/s {events}; queue max: engine {w['engine_queue_max']:,}, "
            f"sender {w['sender_queue_max']:,} batches"
        )
    halts = [t for t in r["pool_transitions"] if t["action"] == "halt"]
    print(
        f"pool halts: {[(t['at'][11:19], t['reason']) for t in halts]}; duplicate live orders at "
        f"TradeX: {r['simulator_at_end']['duplicate_live_orders']}; venue dead-man's switches "
        f"{r['simulator_at_end']['dead_man_switch']}; the worker stopped in "
        f"{r['worker_graceful_stop_s']} s; load at end {r['loadavg_at_end'][0]:.2f}"
    )


if __name__ == "__main__":
    main()
