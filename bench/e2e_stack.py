# mypy: ignore-errors
# (reads the worker's internals)
"""bench/e2e.py's stack and its controls: TradeX through the bench's launcher,
the ETH pool and its members, the worker with its probe, and what a window of
the bench does with them (a measured window, the drain between windows, the
resume of a halted pool)."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

from harness import ROOT
from harness.latency import StackProbe
from harness.probes import Hold, install_consumer
from harness.report import counter_diff
from harness.sampling import cpu_seconds, machine_busy, machine_cpu
from harness.stack import Stack, WorkerThread, wait_for

ETH = "ETHUSDT-PERP"
PARTITIONS = 3
LAUNCHER = ROOT / "bench" / "harness" / "tradex_probe.py"
POOL_CONFIG = {
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
}


class TradexControl:
    """The launcher's routes and the simulator's admin routes."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        self.http = httpx.Client(timeout=30)

    def shake(self, interval_ms: float) -> None:
        """The shaker every `interval_ms` (0: stopped)."""
        body = {"symbol": ETH, "interval_ms": interval_ms}
        self.http.post(f"{self.url}/bench/shake", json=body).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return self.http.get(f"{self.url}/admin/stats").json()

    def log(self) -> dict[str, Any]:
        return self.http.get(f"{self.url}/bench/log").json()

    def request_log(self) -> list[dict[str, Any]]:
        return self.http.get(f"{self.url}/admin/requests").json()["requests"]


def _routes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """The simulator's request counters' change, as "route.outcome": n."""
    routes = {}
    for route in sorted(set(before) | set(after)):
        for outcome in sorted(set(before.get(route, {})) | set(after.get(route, {}))):
            n = after.get(route, {}).get(outcome, 0) - before.get(route, {}).get(outcome, 0)
            if n:
                routes[f"{route}.{outcome}"] = n
    return routes


class E2EStack:
    """The stack of (2)/(3) and the window machinery."""

    def __init__(self, args: argparse.Namespace, stack: Stack, redis_url: str) -> None:
        self.args = args
        self.stack = stack
        self.redis_url = redis_url
        self.partitions = PARTITIONS
        self.hold = Hold()

    def start(self, cleanup: contextlib.ExitStack) -> None:
        from messaging.kafka import ensure_topics, mms_topics

        kafka = self.stack.start_kafka()
        self.bootstrap = kafka.bootstrap
        self.registry = self.stack.schema_registry().url
        self.metadata_target = self.stack.metadata().target
        ensure_topics(self.bootstrap, mms_topics(PARTITIONS))
        args = ("--brokers", self.bootstrap, "--registry", self.registry, "--symbol", ETH)
        tradex = self.stack.tradex(
            *args, "--seed", "11", "--speed", "1", launcher=LAUNCHER.read_text()
        )
        self.tradex_pid, self.kafka_pid = tradex.pid, kafka.pid()
        self.tradex = TradexControl(tradex.url)
        # Stopped first at exit: the shaker, then the worker, then the processes.
        tradex_started = time.monotonic()
        self.create_pool()
        self.start_worker(cleanup)
        cleanup.callback(self._stop_shaker)
        self.warm_up(tradex_started)

    def _stop_shaker(self) -> None:
        with contextlib.suppress(Exception):
            self.tradex.shake(0)

    def create_pool(self) -> None:
        from common.actors import Actor
        from pools import services

        self.ops = Actor("bench-ops")
        self.pool, _ = services.pool_create_or_update(
            symbol=ETH, config=POOL_CONFIG, actor=self.ops
        )
        self.join(0, 3)
        self.join(1, 1)

    def join(self, n: int, weight: int) -> None:
        from participants.models import Participant
        from pools import services

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
            pool=self.pool,
            participant=participant,
            weight=Decimal(weight),
            max_position_usdt=Decimal("500000"),
            actor=self.ops,
        )

    def start_worker(self, cleanup: contextlib.ExitStack) -> None:
        from quoting_worker.worker import QuoterWorker, WorkerConfig

        install_consumer(self.hold)  # bench-only: stamps each receipt
        self.worker = QuoterWorker(
            WorkerConfig(
                kafka_brokers=self.bootstrap,
                registry_url=self.registry,
                order_service_url=self.tradex.url,
                metadata_target=self.metadata_target,
                redis_url=self.redis_url,
                group_id=f"bench-e2e-{uuid.uuid4().hex[:8]}",
                partitions=PARTITIONS,
                worker_id="bench-e2e",
            )
        )
        self.default_budget = {
            "rate_per_s": self.worker.config.order_rate_per_s,
            "reserve": self.worker.config.cancel_reserve,
        }
        self.thread = WorkerThread(self.worker)
        cleanup.callback(self.thread.stop)
        self.thread.start()
        wait_for("the worker to host ETH", lambda: ETH in self.worker.hosted, timeout=60)
        self.engine = self.worker.hosted[ETH].engine

    def warm_up(self, tradex_started: float) -> None:
        from pools import services
        from pools.models import PoolConfig

        engine = self.engine

        def warmed() -> bool:
            sigma = engine.vol.sigma(time.time_ns())
            return engine.book.synced and engine.mark is not None and sigma is not None

        wait_for(
            "book, mark and σ (20 public trades) in the engine",
            lambda: self.thread.on_loop(warmed),
            timeout=90,
            step=0.2,
        )
        print(
            f"stack up; σ warm {time.monotonic() - tradex_started:.1f} s after TradeX started",
            flush=True,
        )
        self.probe = StackProbe(self.worker, self.hold)
        self.thread.on_loop(self.probe.install)
        pool = PoolConfig.objects.get(pk=self.pool.pk)
        services.pool_resume(pool=pool, actor=self.ops, note="bench")
        wait_for("the pool ACTIVE with quotes resting", lambda: self.quoting(1, 2), timeout=60)
        print("pool ACTIVE and quoting (2 members × 1 level)", flush=True)

    def quoting(self, levels: int, members: int) -> bool:
        from quoting_worker.core.types import Side

        e = self.engine
        return self.thread.on_loop(
            lambda: (
                e.gate() == ""
                and len(e.members) == members
                and e.params.num_levels == levels
                and any(e.orders.own_levels[Side.BUY].values())
                and any(e.orders.own_levels[Side.SELL].values())
                and not e.orders.unknown
            )
        )

    def grow(self) -> None:
        """(3)'s pool: 4 members × 5 levels a side."""
        from pools import services
        from pools.models import PoolConfig

        pool = PoolConfig.objects.get(pk=self.pool.pk)
        services.pool_update(pool=pool, config={"num_levels": 5}, actor=self.ops)
        self.join(2, 2)
        self.join(3, 1)
        wait_for("4 members × 5 levels quoting", lambda: self.quoting(5, 4), timeout=60)

    def set_budget(self, rate: int) -> None:
        from quoting_worker.adapters.order_service import RateBudget

        # As WorkerConfig builds it: one second's burst, the cancel reserve kept.
        reserve = self.default_budget["reserve"]
        self.worker.client.budget = RateBudget(rate_per_s=rate, burst=rate, reserve=reserve)

    # ------------------------------------------------------------ windows

    def snapshot(self) -> dict[str, Any]:
        probe, worker = self.probe, self.worker
        stamps = {
            "stats": self.tradex.stats(),
            "cpu": (
                cpu_seconds(self.tradex_pid),
                cpu_seconds(self.kafka_pid),
                time.process_time(),
                machine_cpu(),
            ),
        }
        return {
            **stamps,
            **self.thread.on_loop(
                lambda: {
                    "t_ns": time.time_ns(),
                    "outcomes": Counter(worker.client.outcomes),
                    "handled": Counter(probe.handled),
                    "handle_ns": Counter(probe.handle_ns),
                }
            ),
        }

    def _queues(self, seconds: float) -> list[tuple[int, int]]:
        """(engine queue, sender queue) every 0.25 s for `seconds`."""
        queues: list[tuple[int, int]] = []
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            hosted = self.worker.hosted.get(ETH)
            if hosted is not None:  # a deque's length: safe to read from here
                queues.append((hosted.queue.qsize(), hosted.sends.qsize()))
            time.sleep(min(0.25, max(0.0, ends - time.monotonic())))
        return queues

    def window(self, seconds: float, budget: int) -> dict[str, Any]:
        a = self.snapshot()
        queues = self._queues(seconds)
        b = self.snapshot()
        elapsed = (b["t_ns"] - a["t_ns"]) / 1e9
        routes = _routes(a["stats"]["requests"], b["stats"]["requests"])
        handled = counter_diff(b["handled"], a["handled"])
        handle_ns = counter_diff(b["handle_ns"], a["handle_ns"])
        decided: Counter[str] = Counter()
        for t, trigger, n in self.thread.on_loop(lambda: list(self.probe.placed)):
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
            "client_outcomes": counter_diff(b["outcomes"], a["outcomes"]),
            "engine_events_per_s": {k: v / elapsed for k, v in handled.items()},
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
            "pool_mode_after": str(self.engine.mode),
        }

    def settle(self, timeout: float = 15.0) -> float:
        """With the shaker stopped, waits until the sender's queue is empty and the
        engine's nearly so (a window's backlog must not spill into the next); the
        seconds it took, or -1 after `timeout`."""
        self.tradex.shake(0)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            hosted = self.worker.hosted.get(ETH)
            if hosted is None or (hosted.sends.qsize() == 0 and hosted.queue.qsize() < 10):
                time.sleep(0.5)
                return round(time.monotonic() - started, 1)
            time.sleep(0.1)
        return -1.0

    def ensure_active(self, levels: int, members: int) -> str:
        """Resumes the pool when the last window halted it; the reason, or ""."""
        from common.models import AuditLog
        from pools import services
        from pools.models import PoolConfig
        from quoting_worker.core.types import PoolMode

        if self.engine.mode is PoolMode.ACTIVE:
            return ""
        self.settle()
        row = (
            AuditLog.objects.filter(entity_type="pool", entity_id=ETH, action="halt")
            .order_by("-created_at")
            .first()
        )
        pool = PoolConfig.objects.get(pk=self.pool.pk)
        services.pool_resume(pool=pool, actor=self.ops, note="bench: next window")
        wait_for("the pool to quote again", lambda: self.quoting(levels, members), timeout=30)
        return row.reason if row is not None else str(self.engine.mode)

    def finish(self) -> list[dict[str, Any]]:
        """Pauses the pool and lets it drain; the pool's state transitions of the run.
        A pool that rests nothing shuts down at once (the worker's own shutdown is
        not measured here, and after an overload its backlog can take a minute)."""
        from common.models import AuditLog
        from pools import services
        from pools.models import PoolConfig
        from quoting_worker.core.types import PoolMode

        if self.engine.mode is PoolMode.ACTIVE:
            pool = PoolConfig.objects.get(pk=self.pool.pk)
            services.pool_pause(pool=pool, actor=self.ops, reason="bench")
        self.settle(30.0)
        rows = AuditLog.objects.filter(entity_type="pool", entity_id=ETH).order_by(
            "created_at", "id"
        )
        return [
            {
                "at": row.created_at.isoformat(),
                "at_ns": round(row.created_at.timestamp() * 1e9),
                "action": row.action,
                "from": row.from_state,
                "to": row.to_state,
                "actor": row.actor,
                "reason": row.reason,
            }
            for row in rows
            if row.from_state or row.to_state
        ]
