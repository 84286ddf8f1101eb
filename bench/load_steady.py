# mypy: ignore-errors
# (reads the worker's internals)
"""bench/load.py's steady state: the monitor (a thread: the producer's overload
guard every second, a sample of memory, lag and the worker's structures every
--sample-every-s) and the kill cycles (the desk's emergency_kill, the gates
closing, the venue emptying, the resume and the pools quoting again)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from typing import Any

from harness.probes import read_structures
from harness.report import LagHistogram, prometheus_buckets
from harness.sampling import CpuShares, machine_cpu, proc_rss_mb, rss_mb

VENUE_POLL_S = 0.05
GATE_POLL_S = 0.01  # finer polling from this process takes the GIL from the worker
LAG = "mm_pool_event_lag_seconds"
WAIT = "mm_kafka_consume_wait_seconds"


def kafka_rss_mb(pid: int | None) -> float | None:
    """The Kafka JVM's resident set, MB (None when it is gone)."""
    rss = None if pid is None else proc_rss_mb(pid)
    return None if rss is None else round(rss, 1)


class Monitor:
    """1 s ticks: the producer's overload guard; every sample interval, a sample."""

    def __init__(self, bench: Any, steady_rate: float) -> None:
        import httpx

        self.bench = bench
        self.steady_rate = steady_rate
        self.samples: list[dict[str, Any]] = []
        self.totals = {k: LagHistogram() for k in ("lag", "to_append", "from_append")}
        self.kafka_pid = bench.kafka.pid()
        self.overload = {"pauses": 0, "paused_s": 0.0}
        self.stop_flag = threading.Event()
        self.errors: list[str] = []
        self.stats_client = httpx.Client(base_url=bench.order_url, timeout=10)
        self.thread: threading.Thread | None = None

    def structures(self) -> dict[str, Any]:
        submitted = time.monotonic()
        loop = self.bench.thread.loop
        future = asyncio.run_coroutine_threadsafe(
            read_structures(self.bench.worker, submitted), loop
        )
        return future.result(timeout=30)

    def before(self) -> None:
        """The counters the steady state's figures are taken against."""
        bench = self.bench
        registry = bench.worker.metrics.registry
        self.prom_before = prometheus_buckets(registry, LAG)
        self.wait_before = prometheus_buckets(registry, WAIT)
        self.orders_before = Counter(bench.worker.client.outcomes)
        self.stats_before = bench.venue_stats()
        self.machine0 = machine_cpu()
        self.cpu0 = time.process_time()
        pids = {standin.name: standin.pid for standin in bench.stack.standins}
        pids["market (child)"] = bench.market.proc.pid
        pids["this process (worker + bench)"] = os.getpid()
        if self.kafka_pid is not None:
            pids["kafka"] = self.kafka_pid
        self.cpu = CpuShares(pids)
        self.cpu.start()
        bench.tap.take()  # calibration's lag is not the steady state's
        bench.split.take()

    def start(self, t0: float) -> None:
        self.t0 = t0
        self.thread = threading.Thread(target=self.run, name="monitor", daemon=True)
        self.thread.start()

    def _guard(self, now_t: float, pending: int, paused_at: float | None) -> float | None:
        """A backlog beyond --max-backlog-s of the rate drops the market to a trickle
        until it drains; when the market was dropped, else None."""
        bench, rate = self.bench, self.steady_rate
        if paused_at is None and pending > bench.args.max_backlog_s * rate:
            self.overload["pauses"] += 1
            bench.market.set_rate(bench.trickle)
            return now_t
        if paused_at is not None and pending < 0.1 * rate:
            self.overload["paused_s"] += now_t - paused_at
            bench.market.set_rate(rate)
            return None
        return paused_at

    def run(self) -> None:
        bench = self.bench
        last_sample = self.t0 - bench.args.sample_every_s
        paused_at: float | None = None
        self.mark = (bench.applied_total(), bench.market.produced.value, self.t0)
        while not self.stop_flag.is_set():
            now_t = time.monotonic()
            pending = bench.backlog()
            paused_at = self._guard(now_t, pending, paused_at)
            if now_t - last_sample >= bench.args.sample_every_s - 0.05:
                last_sample = now_t
                try:
                    self.sample(now_t, pending)
                except Exception as exc:  # a sample lost is reported, the run goes on
                    self.errors.append(repr(exc))
            self.stop_flag.wait(1.0)
        if paused_at is not None:
            self.overload["paused_s"] += time.monotonic() - paused_at

    def _take_lags(self) -> tuple[LagHistogram, LagHistogram, LagHistogram]:
        lag = self.bench.tap.take()
        to_append, from_append = self.bench.split.take()
        for key, hist in (("lag", lag), ("to_append", to_append), ("from_append", from_append)):
            self.totals[key].merge(hist)
        return lag, to_append, from_append

    def sample(self, now_t: float, pending: int) -> None:
        bench = self.bench
        lag, to_append, from_append = self._take_lags()
        state = self.structures()
        applied, produced = bench.applied_total(), bench.market.produced.value
        applied0, produced0, at0 = self.mark
        dt = max(1e-9, now_t - at0)
        stats = self.stats_client.get("/admin/stats").json()
        self.samples.append(
            {
                "t": round(now_t - self.t0, 1),
                "rss_mb": round(rss_mb(), 1),
                "kafka_rss_mb": kafka_rss_mb(self.kafka_pid),
                "produced_per_s": round((produced - produced0) / dt),
                "applied_per_s": round((applied - applied0) / dt),
                "backlog": pending,
                "producer_queue": bench.market.queued.value,
                "lag": lag.summary(),
                "producer_to_broker_append": to_append.summary(),
                "broker_append_to_consumer": from_append.summary(),
                "venue_live_orders": stats["live_orders"],
                "venue_dms_fired": stats["dead_man_switch"]["fired"],
                **state,
            }
        )
        self.mark = (applied, produced, now_t)
        x = self.samples[-1]
        print(
            f"t={x['t']:.0f} s rss {x['rss_mb']} MB (kafka {x['kafka_rss_mb']} MB), "
            f"{x['applied_per_s']}/s applied, "
            f"backlog {pending} ({x['producer_queue']} in the producer), "
            f"lag p99 {x['lag']['p99_ms']} max {x['lag']['max_ms']} ms (to append "
            f"{x['producer_to_broker_append']['p99_ms']}, from append "
            f"{x['broker_append_to_consumer']['p99_ms']}), active {x['active']} "
            f"quoting {x['quoting']}, tasks {x['tasks']}, "
            f"queue max {x['queue_max']}, loop delay {x['loop_delay_ms']} ms",
            flush=True,
        )

    def finish(self, kill_lag: LagHistogram) -> dict[str, Any]:
        """Stops the monitor; one last sample at the end of the steady state, and
        the steady state's figures."""
        bench = self.bench
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(60)
        steady_s = time.monotonic() - self.t0
        registry = bench.worker.metrics.registry
        steady = {
            "steady_s": steady_s,
            "machine": (self.machine0, machine_cpu()),
            "cpu_s": time.process_time() - self.cpu0,
            "cpu_share": self.cpu.shares(steady_s),
            "prom": (self.prom_before, prometheus_buckets(registry, LAG)),
            "wait": (self.wait_before, prometheus_buckets(registry, WAIT)),
        }
        lag, to_append, from_append = self._take_lags()
        end_state = self.structures()
        end_rss = rss_mb()
        self.samples.append(
            {
                "t": round(steady_s, 1),
                "rss_mb": round(end_rss, 1),
                "kafka_rss_mb": kafka_rss_mb(self.kafka_pid),
                "backlog": bench.backlog(),
                "lag": lag.summary(),
                "producer_to_broker_append": to_append.summary(),
                "broker_append_to_consumer": from_append.summary(),
                **end_state,
            }
        )
        quiet = LagHistogram()  # outside kill cycles = all - during
        quiet.merge(self.totals["lag"])
        quiet.subtract(kill_lag)
        orders_during = Counter(bench.worker.client.outcomes)
        orders_during.subtract(self.orders_before)
        steady.update(end_state=end_state, end_rss=end_rss, quiet=quiet, kill_lag=kill_lag)
        steady.update(orders_during=orders_during, stats_after=bench.venue_stats())
        steady.update(samples=self.samples, overload=self.overload, errors=self.errors)
        steady.update(totals=self.totals, stats_before=self.stats_before)
        return steady


class KillCycles:
    """Every --kill-every s (the first at half of it) until 5 s before the end:
    emergency_kill, then the pools resumed."""

    def __init__(self, bench: Any, t0: float) -> None:
        self.bench = bench
        self.t0 = t0
        self.kills: list[dict[str, Any]] = []
        self.gate_per_pool: list[float] = []
        self.lag = LagHistogram()

    def run(self) -> None:
        args, t0 = self.bench.args, self.t0
        duration = args.minutes * 60
        k = 0
        while True:
            kill_at = t0 + (k + 0.5) * args.kill_every
            if kill_at > t0 + duration - 5:
                break
            time.sleep(max(0.0, kill_at - time.monotonic()))
            self.cycle(k)
            k += 1

    def _gates(self, watched: list[tuple[str, Any]], killed: float) -> tuple[dict[str, float], int]:
        """The wall time each pool's gate was seen closed; how many never closed."""
        from quoting_worker.core.types import PoolMode

        closed: dict[str, float] = {}
        open_ = dict(watched)
        while open_ and time.monotonic() - killed < 240:
            for symbol, engine in list(open_.items()):
                if engine.mode is not PoolMode.ACTIVE:
                    closed[symbol] = time.time()
                    del open_[symbol]
            time.sleep(GATE_POLL_S)
        return closed, len(open_)

    def _venue_empty(self, killed: float) -> float | None:
        """The wall time the venue showed no live order (within 300 s of the kill)."""
        while time.monotonic() - killed < 300:
            if self.bench.venue_stats()["live_orders"] == 0:
                return time.time()
            time.sleep(VENUE_POLL_S)
        return None

    def _resume(self, k: int) -> tuple[dict[str, Any], float | None]:
        """Every pool resumed; the answer, and resume -> every pool quoting (None: not
        before the next kill, or the end)."""
        bench, args, t0 = self.bench, self.bench.args, self.t0
        bench.desk.send("resume", k)
        answer = bench.desk.result()
        deadline = min(t0 + (k + 1.5) * args.kill_every - 1.0, t0 + args.minutes * 60)
        while time.monotonic() < deadline:
            if bench.quoting_count() == len(bench.symbols):
                return answer, time.time() - answer["t0"]
            time.sleep(0.05)
        return answer, None

    def cycle(self, k: int) -> None:
        from quoting_worker.core.types import PoolMode

        bench = self.bench
        hosted = list(bench.worker.hosted.values())
        watched = [(h.symbol, h.engine) for h in hosted if h.engine.mode is PoolMode.ACTIVE]
        quoting_before = bench.quoting_count()
        live_before = bench.venue_stats()["live_orders"]
        bench.tap.kill = LagHistogram()
        killed = time.monotonic()
        bench.desk.send("kill", k)
        closed, never_closed = self._gates(watched, killed)
        empty_wall = self._venue_empty(killed)
        answer = bench.desk.result()
        killed_wall = answer["t0"]
        gates = [t - killed_wall for t in closed.values()]
        log = bench.venue.get("/admin/requests", params={"route": "cancel_all"}).json()
        cancel_alls = [r["t"] for r in log["requests"] if r["t"] >= killed_wall]
        self.gate_per_pool.extend(gates)
        resumed, requote_s = self._resume(k)
        kill_hist, bench.tap.kill = bench.tap.kill, None
        self.lag.merge(kill_hist)
        times = {
            "call_s": answer["t1"] - answer["t0"],
            "gates_s": max(gates) if gates else None,
            "empty_s": None if empty_wall is None else empty_wall - killed_wall,
            "last_cancel_all_s": max(cancel_alls) - killed_wall if cancel_alls else None,
            "requote_s": requote_s,
        }
        counts = {
            "active": len(watched),
            "quoting": quoting_before,
            "live": live_before,
            "never_closed": never_closed,
            "cancel_alls": len(cancel_alls),
        }
        self.kills.append(_kill_row(k, killed - self.t0, counts, answer, resumed, times, kill_hist))
        _print_kill(k, killed - self.t0, times)


def _r(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)


def _kill_row(
    k: int,
    at_s: float,
    counts: dict[str, int],
    answer: dict[str, Any],
    resumed: dict[str, Any],
    times: dict[str, Any],
    lag: LagHistogram,
) -> dict[str, Any]:
    return {
        "n": k,
        "at_s": round(at_s, 1),
        "pools_active_at_kill": counts["active"],
        "pools_quoting_at_kill": counts["quoting"],
        "venue_live_orders_at_kill": counts["live"],
        "pools_halted_by_call": answer["n"],
        "emergency_kill_call_s": round(times["call_s"], 4),
        "kill_to_all_gates_closed_s": _r(times["gates_s"], 4),
        "gates_never_closed": counts["never_closed"],
        "kill_to_venue_empty_s": _r(times["empty_s"], 4),
        "kill_to_last_cancel_all_arrival_s": _r(times["last_cancel_all_s"], 4),
        "cancel_alls_logged": counts["cancel_alls"],
        "pools_resumed": resumed["n"],
        "resume_calls_s": round(resumed["t1"] - resumed["t0"], 3),
        "resume_to_all_quoting_s": _r(times["requote_s"], 3),
        "event_lag_during_cycle": lag.summary(),
    }


def _print_kill(k: int, at_s: float, times: dict[str, Any]) -> None:
    print(
        f"kill {k} at {at_s:.0f} s: emergency_kill {times['call_s']:.2f} s, all gates closed "
        f"{_r(times['gates_s'], 3)} s, venue empty {_r(times['empty_s'], 3)} s, "
        f"all quoting again {_r(times['requote_s'], 1)} s after the resume began",
        flush=True,
    )
