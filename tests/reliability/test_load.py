"""Issue 8, row 14, the suite's short version: one worker hosting 20 pools x 5
members under a steady synthetic market (bench/load.py runs 200 x 10 for ten
minutes and reports the figures).

A topic namespace on the session's Kafka, the schema registry, Order Service stand-in
(with the 20 synthetic instruments) and a Metadata stand-in serving them, as
processes; the worker in a thread of the test process, so its structures can be
read on its own event loop. The market: 20 size deltas per symbol a second in
steps of 0.1 s (as the simulator's market steps), a mark per symbol a second.

Guarantees checked while the market runs (15 s): the worker keeps up (no
backlog of produced-but-unapplied deltas beyond two seconds of the market), its
per-symbol structures stay bounded (event and order queues, the OffsetTracker's
deques and sets, the engines' per-order maps: members x levels x 2 resting, as
many again in flight, tasks and budget waiters); one pool's feed goes silent and
its staleness guard trips less than 1 s late (it is checked on the worker's
50 ms timer). Then a kill under load closes every pool's gate and empties the
venue within a bound, and nothing is placed after; once the market stops, every
queue, the OffsetTracker and the order maps drain. Figures are recorded for row
14 (tests/figures.py).

The Metadata and Order Service stand-ins are started here with the test's
instruments (`--instrument`) rather than through tests/adapters' fixtures, which
serve only the built-in symbols; the broker, the schema registry and the worker
harness are the shared ones. The engines' order maps, `owner` included (it
forgets an order once final), are held to the bound above.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from common.actors import Actor
from devstack.standins import wait_grpc
from messaging.avro import AvroCodec
from messaging.kafka import producer_config
from pools import services
from pools.models import PoolConfig
from quoting_worker.core.types import PoolMode, Side
from quoting_worker.worker import QuoterWorker
from simulator.model import instrument_options
from tests.adapters.worker_harness import RunningWorker, wait_for, worker_config
from tests.conftest import ROOT, free_port, wait_until_serving
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from tests.figures import record
from tests.kafka import Bus, unique_group

pytestmark = pytest.mark.django_db(transaction=True)

POOLS, MEMBERS, LEVELS = 20, 5, 1
SYMBOLS = [f"LT{i:02d}USDT-PERP" for i in range(POOLS)]
TICK, LOT, MIN_NOTIONAL = "0.1", "0.001", "5"
INSTRUMENTS = instrument_options(f"{s}:{TICK}:{LOT}:{MIN_NOTIONAL}" for s in SYMBOLS)
DELTAS_PER_SYMBOL_S = 20
STEP_S = 0.1
LOAD_S = 15.0
CANARY = SYMBOLS[-1]  # its feed goes silent under load: its staleness guard must trip on time
CANARY_STALENESS_MS = 2000
OPS = Actor("olga-ops")


@contextlib.contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "simulator.metadata_service", "--port", str(port), *INSTRUMENTS]
    with _process(args, tmp_path / "metadata.log") as proc:
        target = f"127.0.0.1:{port}"
        wait_grpc(target, proc, timeout=30.0)
        yield target


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "simulator.order_service", "--port", str(port), *INSTRUMENTS]
    with _process(args, tmp_path / "order-service.log") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{url}/healthz", proc)
        yield url


class SteppedMarket:
    """Every symbol's book (20 levels a side, 2 units each around 60000), then size
    changes in the top ten levels (the microprice moves < 1 bps: no re-quote), in
    steps of STEP_S, round-robin, each stamped with its step's time; a mark per
    symbol a second. `produced` counts the deltas sent. A snapshot the worker asks the
    venue for (a newly hosted engine does, and one whose book lost sync) is published
    within half a second, as the simulator's feed answers one."""

    def __init__(self, bus: Bus, codec: AvroCodec, venue: str) -> None:
        self.bus = bus
        self.producer = Producer(producer_config(bootstrap=bus.bootstrap, client_id="load-market"))
        self.codec = codec
        self.venue = httpx.Client(base_url=venue, timeout=5)
        self.answered: dict[str, int] = {}  # snapshot requests answered, per symbol
        self.seq = dict.fromkeys(SYMBOLS, 0)
        self.produced = 0
        self.silent: set[str] = set()  # symbols that get nothing more
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="market")

    def send(self, topic: str, symbol: str, record: dict[str, Any]) -> None:
        self.producer.produce(
            self.bus.name(topic), key=symbol, value=self.codec.encode(topic, record)
        )

    def open(self) -> None:
        """Snapshots, marks and 30 s of public trades (σ), then the stepped deltas."""
        now = time.time_ns()
        for symbol in SYMBOLS:
            self.seq[symbol] = 1
            self._snapshot(symbol, now, "START")
            self._mark(symbol, now)
            for k in range(30):
                self.send(
                    "engine.event.v1",
                    symbol,
                    {
                        "type": "PublicTrade",
                        "trade_id": f"t-{symbol}-{k}",
                        "symbol": symbol,
                        "price": "60000.5" if k % 2 else "59999.5",
                        "size": "0.010",
                        "aggressor_side": "BUY",
                        "ts_ns": now - (30 - k) * 1_000_000_000,
                    },
                )
        self.producer.flush(10)
        self.thread.start()

    def _snapshot(self, symbol: str, ts_ns: int, reason: str) -> None:
        """The book as of the symbol's last delta (every level back at 2 units)."""
        self.send(
            "md.orderbook.snap.v1",
            symbol,
            {
                "symbol": symbol,
                "seq": self.seq[symbol],
                "bids": [{"price": f"{59_999.5 - i:.1f}", "size": "2.000"} for i in range(20)],
                "asks": [{"price": f"{60_000.5 + i:.1f}", "size": "2.000"} for i in range(20)],
                "reason": reason,
                "ts_ns": ts_ns,
            },
        )

    def _answer_snapshot_requests(self, ts_ns: int) -> None:
        asked = self.venue.get("/admin/stats").json()["snapshot_requests"]
        for symbol, n in asked.items():
            if n > self.answered.get(symbol, 0) and symbol in self.seq:
                self.answered[symbol] = n
                if symbol not in self.silent:
                    self._snapshot(symbol, ts_ns, "REQUEST")

    def _mark(self, symbol: str, ts_ns: int) -> None:
        self.send(
            "md.mark.v1",
            symbol,
            {"symbol": symbol, "mark_price": "60000.0", "index_price": None, "ts_ns": ts_ns},
        )

    def _run(self) -> None:
        per_step = max(1, round(DELTAS_PER_SYMBOL_S * STEP_S))
        step = 0
        next_step = time.monotonic()
        while not self.stop.wait(max(0.0, next_step - time.monotonic())):
            next_step += STEP_S
            now = time.time_ns()
            for symbol in SYMBOLS:
                if symbol in self.silent:
                    continue
                for j in range(per_step):
                    self.seq[symbol] += 1
                    level = (step * per_step + j) % 10
                    size = f"{1 + (step + j) % 3 * 0.5:.3f}"
                    side = "bids" if j % 2 else "asks"
                    price = (
                        f"{59_999.5 - level:.1f}" if side == "bids" else f"{60_000.5 + level:.1f}"
                    )
                    delta: dict[str, Any] = {
                        "type": "BookDelta",
                        "symbol": symbol,
                        "seq": self.seq[symbol],
                        "bids": [],
                        "asks": [],
                        "ts_ns": now,
                    }
                    delta[side] = [{"price": price, "size": size}]
                    self.send("md.orderbook.delta.v1", symbol, delta)
                    self.produced += 1
                if step % round(1 / STEP_S) == 0:
                    self._mark(symbol, now)
            if step % 5 == 0:
                self._answer_snapshot_requests(now)
            self.producer.poll(0)
            step += 1
        self.producer.flush(10)

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(10)


def _tracked(engine: Any) -> tuple[int, int, int]:
    """(orders the engine tracks in any per-order map, its members' open orders,
    those of them in flight: being cancelled or of unknown outcome)."""
    in_flight = set(engine.orders.cancelling) | set(engine.orders.unknown)
    ids = (
        in_flight
        | set(engine.orders.cancel_sent_ns)
        | set(engine.orders.last_query_ns)
        | set(engine.orders.owner)
    )
    ids |= set(engine.orders.not_found)
    open_orders = {c for m in engine.members.values() for c in m.runtime.open_orders}
    return len(ids | open_orders), len(open_orders), len(in_flight)


async def _structures(worker: QuoterWorker) -> dict[str, Any]:
    """The worker's per-symbol and global structures, read on its event loop."""
    hosted = list(worker.hosted.values())
    engines = [h.engine for h in hosted]
    offsets = worker.offsets
    with offsets._lock:
        started = [len(d) for d in offsets._started.values()]
        done = [len(s) for s in offsets._done.values()]
    tracked = [_tracked(e) for e in engines]
    bounds = [len(e.members) * e.params.num_levels * 2 for e in engines]
    return {
        "tasks": len(asyncio.all_tasks()),
        "queue_max": max((h.queue.qsize() for h in hosted), default=0),
        "urgent_max": max((len(h.urgent) for h in hosted), default=0),
        "sends_max": max((h.sends.qsize() for h in hosted), default=0),
        "offsets_started_max": max(started, default=0),
        "offsets_done_max": max(done, default=0),
        "tracked_max": max((t[0] for t in tracked), default=0),
        "open_orders_max": max((t[1] for t in tracked), default=0),
        "in_flight_max": max((t[2] for t in tracked), default=0),
        # Resting beyond members x levels x 2 once what is in flight is set aside, or
        # more tracked than one such set resting and one in flight (a replacement).
        "engines_over_bound": sum(
            1
            for (all_ids, open_orders, flight), bound in zip(tracked, bounds, strict=True)
            if open_orders - flight > bound or all_ids > 2 * bound
        ),
        "owner_max": max((len(e.orders.owner) for e in engines), default=0),
        "sink_settled": len(worker.sink._settled),
        "sink_unknown_since": len(worker.sink.unknown_since),
        "status_changes": sum(len(a.status_changes) for a in worker.hosted.values()),
        "budget_waiters": worker.client.budget.waiting,
    }


def _until(what: str, check: Callable[[], Any], explain: Callable[[], Any], timeout: float) -> Any:
    """`wait_for`, and on a timeout the state that `explain` describes in the message."""
    try:
        return wait_for(what, check, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {explain()}") from None


def _engines_state(worker: QuoterWorker) -> dict[str, Any]:
    """Every pool that does not quote: why (its gate), and what it rests."""
    return {
        h.symbol: {
            "mode": h.engine.mode.value,
            "gate": h.engine.gate(),
            "seq": h.engine.book.seq,
            "synced": h.engine.book.synced,
            "mark": str(h.engine.mark),
            "sigma": h.engine.vol.sigma(time.time_ns()),
            "own": {
                side.value: dict(levels) for side, levels in h.engine.orders.own_levels.items()
            },
            "unknown": len(h.engine.orders.unknown),
            "queue": h.queue.qsize(),
            "sends": h.sends.qsize(),
        }
        for h in list(worker.hosted.values())
        if not _quoting_engine(h.engine)
    }


def _stop(running: RunningWorker) -> None:
    """A graceful stop; if it does not end in time, the worker's side tasks (what each
    awaits) go into the failure message."""
    try:
        running.stop(timeout=60)
    except AssertionError as exc:
        loop = running._loop

        async def awaiting() -> list[str]:
            lines: list[str] = []
            for task in asyncio.all_tasks():
                if task.get_name().startswith(("engine-", "send-")):
                    continue
                chain: list[str] = []
                coro: Any = task.get_coro()
                while coro is not None:
                    frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
                    where = (
                        f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}" if frame else ""
                    )
                    chain.append(f"{getattr(coro, '__qualname__', type(coro).__name__)}@{where}")
                    coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
                lines.append(f"{task.get_name()}: {' -> '.join(chain)}")
            return lines

        tasks: Any = "loop not running"
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                tasks = asyncio.run_coroutine_threadsafe(awaiting(), loop).result(timeout=5)
        raise AssertionError(f"{exc}; its tasks: {tasks}") from None


def _quoting_engine(engine: Any) -> bool:
    return (
        engine.gate() == ""
        and sum(engine.orders.own_levels[Side.BUY].values()) > 0
        and sum(engine.orders.own_levels[Side.SELL].values()) > 0
    )


def _quoting(worker: QuoterWorker) -> int:
    return sum(1 for h in list(worker.hosted.values()) if _quoting_engine(h.engine))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def _lag_buckets(worker: QuoterWorker) -> dict[float, float]:
    """mm_pool_event_lag_seconds: cumulative count per bucket edge, over every symbol."""
    out: dict[float, float] = {}
    for metric in worker.metrics.registry.collect():
        if metric.name == "mm_pool_event_lag_seconds":
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    edge = float(sample.labels["le"])
                    out[edge] = out.get(edge, 0.0) + sample.value
    return out


def _bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    for edge, cumulative in zip(edges, counts, strict=True):
        if counts[-1] and cumulative >= q * counts[-1]:
            return edge
    return math.inf


def test_twenty_pools_under_a_steady_market_stay_bounded_and_a_kill_empties_the_venue(
    broker: Bus,
    schema_registry_url: str,
    metadata: str,
    venue: str,
) -> None:
    codec = AvroCodec(schema_registry_url)
    codec.register_all()
    for symbol in SYMBOLS:
        pool = PoolFactory(
            symbol=symbol,
            enabled=True,
            gamma=Decimal("0.0001"),
            kappa=Decimal("2"),
            vol_lookback_seconds=3600,
            num_levels=LEVELS,
            min_spread_bps=Decimal("2"),
            max_spread_bps=Decimal("40"),
            order_size_usdt=Decimal(120 * MEMBERS),  # 2 lots a member a side
            max_pool_position_usdt=Decimal("10000000"),
            max_pool_loss_usdt=Decimal("1000000"),
            staleness_threshold_ms=CANARY_STALENESS_MS if symbol == CANARY else 5000,
        )
        for _ in range(MEMBERS):
            MemberFactory(
                pool=pool,
                participant=ParticipantFactory(state="ACTIVE"),
                max_position_usdt=Decimal("1000000"),
            )
    bound = MEMBERS * LEVELS * 2  # resting orders a pool may have
    http = httpx.Client(base_url=venue, timeout=10)

    def live_orders() -> int:
        return int(http.get("/admin/stats").json()["live_orders"])

    market = SteppedMarket(broker, codec, venue)
    running = RunningWorker(
        worker_config(
            bus=broker,
            registry_url=schema_registry_url,
            order_service_url=venue,
            metadata_target=metadata,
            group_id=unique_group("load"),
            partitions=3,
        )
    ).start()
    worker = running.worker
    loop = running._loop
    assert loop is not None

    def structures() -> dict[str, Any]:
        return asyncio.run_coroutine_threadsafe(_structures(worker), loop).result(timeout=30)

    def applied() -> int:
        return sum(h.engine.book.seq - 1 for h in list(worker.hosted.values()))

    try:
        wait_for("every pool hosted", lambda: len(worker.hosted) == POOLS, timeout=60)
        market.open()
        _until(
            "books, marks and σ everywhere",
            lambda: all(
                h.engine.book.synced
                and h.engine.mark is not None
                and h.engine.vol.sigma(time.time_ns()) is not None
                for h in list(worker.hosted.values())
            ),
            lambda: _engines_state(worker),
            timeout=30,
        )
        for row in PoolConfig.objects.filter(symbol__in=SYMBOLS):
            services.pool_enable(pool=row, actor=OPS)
        _until(
            "every pool quoting",
            lambda: _quoting(worker) == POOLS,
            lambda: _engines_state(worker),
            timeout=30,
        )
        _until(
            "every order at the venue",
            lambda: live_orders() == POOLS * bound,
            lambda: http.get("/admin/stats").json(),
            timeout=30,
        )

        # ---------------------------------------------------------- under load
        baseline = structures()
        lag_before = _lag_buckets(worker)
        rss_start = _rss_mb()
        rate = POOLS * DELTAS_PER_SYMBOL_S
        samples = []
        canary = worker.hosted[CANARY].engine
        market.silent.add(CANARY)
        stale_lateness_s = None
        load_ends = time.monotonic() + LOAD_S
        next_sample = time.monotonic() + 1.0
        while time.monotonic() < load_ends:
            time.sleep(0.02)
            if stale_lateness_s is None and canary.mode is not PoolMode.ACTIVE:
                heard = max(canary.book.last_received_ns, canary.active_since_ns)
                stale_lateness_s = (time.time_ns() - heard) / 1e9 - CANARY_STALENESS_MS / 1000
                assert canary.halt_reason.startswith("STALE_DATA"), canary.halt_reason
            if time.monotonic() < next_sample:
                continue
            next_sample += 1.0
            backlog = market.produced - applied()
            state = structures()
            samples.append({**state, "backlog": backlog})
            assert backlog <= 2 * rate, f"the worker fell behind the market: {samples[-1]}"
            assert state["engines_over_bound"] == 0, state
            assert state["queue_max"] <= 2 * DELTAS_PER_SYMBOL_S + 50, state
            assert state["offsets_started_max"] <= 2 * rate, state
            assert state["offsets_done_max"] <= 2 * rate, state
            assert state["sends_max"] <= 2 * bound, state
            # Side tasks, engines and senders, and at most one renewal or request a member.
            assert state["tasks"] <= baseline["tasks"] + POOLS * MEMBERS, state
            assert state["budget_waiters"] <= POOLS * MEMBERS, state
        # The guard is checked on the worker's 50 ms timer: under load, late by less than 1 s.
        assert stale_lateness_s is not None, "the silent pool's staleness guard never tripped"
        assert stale_lateness_s < 1.0, f"the staleness guard tripped {stale_lateness_s:.3f} s late"
        _until(
            "every other pool quoting",
            lambda: _quoting(worker) == POOLS - 1,
            lambda: _engines_state(worker),
            timeout=10,
        )
        rss_under_load = _rss_mb()

        # ---------------------------------------------------------- a kill under load
        engines = [h.engine for h in worker.hosted.values() if h.symbol != CANARY]
        killed = time.monotonic()
        services.emergency_kill(actor=OPS, reason="row 14: a kill under load")
        call_s = time.monotonic() - killed
        gate_s: list[float] = []
        active = list(engines)
        while active:
            assert time.monotonic() - killed < 10, f"{len(active)} gates still open"
            for engine in list(active):
                if engine.mode is not PoolMode.ACTIVE:
                    gate_s.append(time.monotonic() - killed)
                    active.remove(engine)
            time.sleep(0.005)
        gates_closed_wall = time.time()
        while live_orders():
            assert time.monotonic() - killed < 20, f"{live_orders()} member orders at the venue"
            time.sleep(0.05)
        empty_s = time.monotonic() - killed
        placed_after = [
            r
            for r in http.get("/admin/requests", params={"route": "place"}).json()["requests"]
            if r["t"] > gates_closed_wall + 0.05
        ]
        assert not placed_after, f"placements after every gate closed: {placed_after[:3]}"
        assert PoolConfig.objects.filter(symbol__in=SYMBOLS).exclude(state="HALTED").count() == 0

        # ---------------------------------------------------------- the market stops
        lag_after = _lag_buckets(worker)
        market.close()
        wait_for("every delta applied", lambda: applied() == market.produced, timeout=30)

        def drained() -> dict[str, Any] | None:
            state = structures()
            quiet = (
                state["queue_max"] <= 1
                and state["urgent_max"] == 0
                and state["sends_max"] == 0
                and state["offsets_started_max"] <= 1
                and state["offsets_done_max"] <= 1
                and state["in_flight_max"] == 0
                and state["open_orders_max"] == 0
                and state["status_changes"] == 0  # every venue answer on record
            )
            return state if quiet else None

        final = _until("queues, offsets and order maps drained", drained, structures, timeout=30)
        assert worker.skipped == {}, worker.skipped
    finally:
        market.close()
        _stop(running)
    peak = {key: max(s[key] for s in samples) for key in samples[0] if key != "backlog"}
    record(
        14,
        pools=POOLS,
        members=MEMBERS,
        deltas_per_s=rate,
        load_s=LOAD_S,
        max_backlog=max(s["backlog"] for s in samples),
        event_lag_p50_le_s=_bucket_quantile(lag_before, lag_after, 0.5),
        event_lag_p99_le_s=_bucket_quantile(lag_before, lag_after, 0.99),
        rss_mb_start=round(rss_start, 1),
        rss_mb_growth_under_load=round(rss_under_load - rss_start, 1),
        emergency_kill_call_s=round(call_s, 3),
        kill_to_all_gates_closed_s=round(max(gate_s), 3),
        kill_to_gate_closed_p50_s=round(sorted(gate_s)[len(gate_s) // 2], 3),
        kill_to_venue_empty_s=round(empty_s, 3),
        staleness_guard_lateness_s=round(stale_lateness_s, 3),
        peak_under_load=peak,
        after_drain=final,
        engine_owner_map_max=final["owner_max"],
    )
