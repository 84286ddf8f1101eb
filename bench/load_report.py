# mypy: ignore-errors
# (reads the worker's internals)
"""bench/load.py's figures and table: what the run measured, as the result's
JSON (`figures`) and as the printed table (`print_table`)."""

from __future__ import annotations

import os
import statistics
from typing import Any

from harness.report import bucket_quantile, machine, quantiles_s, slope_per_minute, trio
from harness.sampling import machine_busy

PARTITIONS = 12
NOTES = [
    "RSS is the whole bench process: the worker thread, its consumer and DB threads, "
    "and the bench's monitor (constant-memory lag histograms); the market runs in a "
    "child process and the desk's calls in another.",
    "Event lag is the worker's own measure: for each batch its drain takes, now - the "
    "oldest event's timestamp; market events carry their step's time, so the broker "
    "leg is included; timers carry their enqueue time.",
    "Kafka: Apache Kafka 4.1.1, one KRaft node (devstack/kafka.py: JVM heap 384 MB, "
    "C1 only, 2 network and 2 I/O threads); the consumed topics are stamped "
    "LogAppendTime, so each market delta's way through it splits at the broker's "
    "append (ms resolution, taken mid-millisecond: ±0.5 ms per share).",
    "kill -> venue empty counts whatever emptied the venue: MMS's cancels or the "
    "venue's dead-man's switches (see order_service_stand_in.dead_man_switch and "
    "cancel_alls_logged per kill).",
]


def _diff_requests(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for route, outcomes in after.items():
        for outcome, n in outcomes.items():
            d = n - before.get(route, {}).get(outcome, 0)
            if d:
                out.setdefault(route, {})[outcome] = d
    return out


def _config(args: Any) -> dict[str, Any]:
    return {
        "pools": args.pools,
        "members": args.members,
        "levels": args.levels,
        "minutes": args.minutes,
        "kill_every_s": args.kill_every,
        "order_rate_per_s": args.order_rate,
        "staleness_ms": args.staleness_ms,
        "partitions": PARTITIONS,
        "kafka": "Apache Kafka 4.1.1, one KRaft node (devstack/kafka.py)",
        "trade_every_s": args.trade_every_s,
        "load_fraction": None if args.rate else args.load_fraction,
    }


def _steady(s: dict[str, Any]) -> dict[str, Any]:
    rates = [x["applied_per_s"] for x in s["samples"] if x["t"] >= 1 and "applied_per_s" in x]
    return {
        "duration_s": round(s["steady_s"], 1),
        "deltas_per_s_mean": round(statistics.fmean(rates)) if rates else None,
        "overload_pauses": s["overload"]["pauses"],
        "overload_paused_s": round(s["overload"]["paused_s"], 1),
        "worker_process_cpu_s": round(s["cpu_s"], 1),
        "machine_cpu_busy": round(machine_busy(*s["machine"]), 3),
        "cpu_cores_by_process": s["cpu_share"],
        "monitor_errors": s["errors"],
    }


def _rss(s: dict[str, Any]) -> dict[str, Any]:
    samples = s["samples"]
    start_rss = samples[0].get("rss_mb") if samples else None
    end_rss = s["end_rss"]
    kafka_rss = [x["kafka_rss_mb"] for x in samples if x.get("kafka_rss_mb") is not None]
    second_half = [(x["t"], x["rss_mb"]) for x in samples if x["t"] >= s["steady_s"] / 2]
    slope = slope_per_minute(second_half)
    return {
        "source": "/proc/self/status VmRSS (the bench process: worker thread + bench)",
        "start_mb": start_rss,
        "end_mb": round(end_rss, 1),
        "growth_mb": None if start_rss is None else round(end_rss - start_rss, 1),
        "slope_mb_per_min_second_half": None if slope is None else round(slope, 3),
        "max_mb": max(x["rss_mb"] for x in samples) if samples else None,
        "kafka_jvm": {
            "source": "/proc/PID/status VmRSS of the Kafka node's JVM (-Xmx384m)",
            "start_mb": kafka_rss[0] if kafka_rss else None,
            "end_mb": kafka_rss[-1] if kafka_rss else None,
            "max_mb": max(kafka_rss) if kafka_rss else None,
        },
    }


def _event_lag(s: dict[str, Any], unstamped: int) -> dict[str, Any]:
    totals, (prom_before, prom_after), (wait_before, wait_after) = s["totals"], s["prom"], s["wait"]
    return {
        "steady_tap": totals["lag"].summary(),
        "outside_kill_cycles_tap": s["quiet"].summary(),
        "during_kill_cycles_tap": s["kill_lag"].summary(),
        "producer_to_broker_append_tap": totals["to_append"].summary(),
        "broker_append_to_consumer_tap": totals["from_append"].summary(),
        "market_deltas_without_append_time": unstamped,
        "broker_leg_prometheus_buckets": {
            "what": "mm_kafka_consume_wait_seconds: per consumed batch, now - its oldest "
            "message's broker append time (LogAppendTime), as the consumer thread takes it "
            "(before the worker's queues and engines)",
            "p50_le_s": bucket_quantile(wait_before, wait_after, 0.50),
            "p99_le_s": bucket_quantile(wait_before, wait_after, 0.99),
        },
        "steady_prometheus_buckets": {
            "p50_le_s": bucket_quantile(prom_before, prom_after, 0.50),
            "p99_le_s": bucket_quantile(prom_before, prom_after, 0.99),
            "resolution": "bucket edges of mm_pool_event_lag_seconds (IO_BUCKETS)",
        },
    }


def _kill_figures(kills: list[dict[str, Any]], gate_per_pool: list[float]) -> dict[str, Any]:
    def known(key: str) -> list[float]:
        return [k[key] for k in kills if k[key] is not None]

    return {
        "kill_to_all_gates_closed": quantiles_s(known("kill_to_all_gates_closed_s")),
        "kill_to_gate_closed_per_pool": quantiles_s(gate_per_pool),
        "kill_to_venue_empty": quantiles_s(known("kill_to_venue_empty_s")),
        "kill_to_last_cancel_all_arrival": quantiles_s(known("kill_to_last_cancel_all_arrival_s")),
        "emergency_kill_call": quantiles_s([k["emergency_kill_call_s"] for k in kills]),
        "resume_to_all_quoting": quantiles_s(known("resume_to_all_quoting_s")),
        "resumes_not_all_quoting_before_next_kill": sum(
            1 for k in kills if k["resume_to_all_quoting_s"] is None
        ),
    }


def figures(
    bench: Any, load_at_start: Any, calibration: dict[str, Any], s: dict[str, Any]
) -> dict[str, Any]:
    """The result: the run's configuration, set-up, calibration and steady state."""
    samples, end_state = s["samples"], s["end_state"]
    struct_keys = [k for k in end_state if k not in ("loop_delay_ms", "tasks_top")]
    kill_switches, orders_sent = bench.kill_switch_totals()
    stats_before, stats_after = s["stats_before"], s["stats_after"]
    return {
        **machine(),
        "loadavg_at_start": load_at_start,
        "loadavg_at_end": os.getloadavg(),
        "config": _config(bench.args),
        "setup": {
            key: round(bench.setup[key], 1)
            for key in ("setup_s", "host_s", "enable_calls_s", "enable_to_all_quoting_s")
        }
        | {"pools_quoting_after_enable": bench.setup["pools_quoting_after_enable"]},
        "calibration": {
            **calibration,
            "steady_rate_per_s": round(calibration["steady_rate_per_s"]),
        },
        "steady": _steady(s),
        "gc_pauses": s["gc_pauses"],
        "rss": _rss(s),
        "event_lag": _event_lag(s, bench.split.unstamped),
        "kills": s["kills"],
        "kill_figures": _kill_figures(s["kills"], s["gate_per_pool"]),
        "canaries": s["canaries"],
        "structures": {
            "start": samples[0] if samples else {},
            "end": end_state,
            "max": {key: max(x.get(key, 0) or 0 for x in samples) for key in struct_keys},
        },
        "samples": samples,
        "kill_switch_total_by_trigger": dict(kill_switches),
        "orders_sent_total_by_action": dict(orders_sent),
        "order_client_outcomes_steady": {k: v for k, v in s["orders_during"].items() if v},
        "order_service_stand_in": {
            "requests_steady": _diff_requests(stats_before["requests"], stats_after["requests"]),
            "dead_man_switch": stats_after["dead_man_switch"],
            "duplicate_live_orders": stats_after["duplicate_live_orders"],
            "orders_total": stats_after["orders_total"],
        },
        "skipped": dict(bench.worker.skipped),
        "book_gaps": sum(e.book.gaps for e in bench.thread.hosted_engines()),
        "notes": NOTES,
    }


# ---------------------------------------------------------------- the table


def print_table(r: dict[str, Any]) -> None:
    _header(r)
    print()
    print(f"{'figure':<52}{'value':>30}")
    for name, value in _figure_rows(r):
        print(f"{name:<52}{value if value is not None else '-'!s:>30}")
    _structures(r["structures"])
    osi = r["order_service_stand_in"]
    print()
    print(
        f"venue: dead-man's switches fired {osi['dead_man_switch']['fired']} "
        f"({osi['dead_man_switch']['orders_cancelled']} orders); duplicate live orders "
        f"{osi['duplicate_live_orders']}; requests in steady state {osi['requests_steady']}"
    )
    print(
        f"kill switches by trigger: {r['kill_switch_total_by_trigger']}; orders sent by action: "
        f"{r['orders_sent_total_by_action']}"
    )


def _header(r: dict[str, Any]) -> None:
    c, cal, steady = r["config"], r["calibration"], r["steady"]
    print()
    print(
        f"load: {c['pools']} pools x {c['members']} members x {c['levels']} level(s) in one "
        f"worker, {steady['duration_s']:.0f} s steady state, kill every "
        f"{c['kill_every_s']:.0f} s, budget {c['order_rate_per_s']} req/s; Python {r['python']}, "
        f"{r['machine']} (load {r['loadavg_at_start'][0]:.1f} at start)"
    )
    print(
        f"market: calibrated capacity {cal['capacity_deltas_per_s']:,} deltas/s "
        f"({'saturated' if cal['saturated'] else 'not saturated'}"
        f"{', producer-bound' if cal['producer_bound'] else ''}), steady rate "
        f"{cal['steady_rate_per_s']:,}/s, applied {steady['deltas_per_s_mean']}/s mean; "
        f"overload pauses {steady['overload_pauses']} "
        f"({steady['overload_paused_s']} s); machine CPU busy "
        f"{steady['machine_cpu_busy']:.0%}"
    )
    print(f"CPU (cores) by process in steady state: {steady['cpu_cores_by_process']}")
    s = r["setup"]
    print(
        f"setup: hosted in {s['host_s']} s; {s['pools_quoting_after_enable']}/{c['pools']} "
        f"quoting {s['enable_to_all_quoting_s']} s after the enables"
    )


def _figure_rows(r: dict[str, Any]) -> list[tuple[str, Any]]:
    rss, lag, kf = r["rss"], r["event_lag"], r["kill_figures"]
    kafka, buckets, wait = (
        rss["kafka_jvm"],
        lag["steady_prometheus_buckets"],
        lag["broker_leg_prometheus_buckets"],
    )
    return [
        ("RSS at start of steady state (MB)", rss["start_mb"]),
        ("RSS at end (MB)", rss["end_mb"]),
        ("RSS growth (MB)", rss["growth_mb"]),
        ("RSS slope over the second half (MB/min)", rss["slope_mb_per_min_second_half"]),
        (
            "Kafka JVM RSS start / end / max (MB)",
            f"{kafka['start_mb']} / {kafka['end_mb']} / {kafka['max_mb']}",
        ),
        (
            "event lag p50 / p99 / max, steady (ms)",
            trio(lag["steady_tap"], "p50_ms", "p99_ms", "max_ms"),
        ),
        (
            "  outside kill cycles p50 / p99 (ms)",
            trio(lag["outside_kill_cycles_tap"], "p50_ms", "p99_ms"),
        ),
        (
            "  during kill cycles p50 / p99 (ms)",
            trio(lag["during_kill_cycles_tap"], "p50_ms", "p99_ms"),
        ),
        (
            "  from the histogram's buckets: p50 / p99 <= (s)",
            f"{buckets['p50_le_s']} / {buckets['p99_le_s']}",
        ),
        (
            "  producer -> broker append p50 / p99 / max (ms)",
            trio(lag["producer_to_broker_append_tap"], "p50_ms", "p99_ms", "max_ms"),
        ),
        (
            "  broker append -> consumer call p50 / p99 / max (ms)",
            trio(lag["broker_append_to_consumer_tap"], "p50_ms", "p99_ms", "max_ms"),
        ),
        (
            "  append -> consumer thread, per batch: p50 / p99 <= (s)",
            f"{wait['p50_le_s']} / {wait['p99_le_s']}",
        ),
        *(
            (f"GC pauses, generation {gen}: n / p99 / max (s)", trio(g, "n", "p99_s", "max_s"))
            for gen, g in r["gc_pauses"].items()
        ),
        *_kill_rows(r, kf),
    ]


def _kill_rows(r: dict[str, Any], kf: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("kills", len(r["kills"])),
        ("emergency_kill() call p50 / p99 (s)", trio(kf["emergency_kill_call"], "p50_s", "p99_s")),
        (
            "kill -> all gates closed p50 / p99 / max (s)",
            trio(kf["kill_to_all_gates_closed"], "p50_s", "p99_s", "max_s"),
        ),
        (
            "kill -> a pool's gate closed, per pool p50 / p99 (s)",
            trio(kf["kill_to_gate_closed_per_pool"], "p50_s", "p99_s"),
        ),
        (
            "kill -> venue empty p50 / p99 / max (s)",
            trio(kf["kill_to_venue_empty"], "p50_s", "p99_s", "max_s"),
        ),
        (
            "kill -> last cancel-all at venue p50 / p99 (s)",
            trio(kf["kill_to_last_cancel_all_arrival"], "p50_s", "p99_s"),
        ),
        (
            "resume -> all pools quoting p50 / max (s)",
            trio(kf["resume_to_all_quoting"], "p50_s", "max_s"),
        ),
        (
            "resumes not all quoting before next kill",
            kf["resumes_not_all_quoting_before_next_kill"],
        ),
        (
            "staleness guard lateness (s)",
            ", ".join(str(x.get("lateness_s")) for x in r["canaries"]) or "-",
        ),
    ]


STRUCTURE_ROWS = (
    "tasks",
    "queue_max",
    "queue_sum",
    "sends_max",
    "offsets_started_max",
    "offsets_done_max",
    "engine_owner_max",
    "engine_order_bound",
    "engine_owner_over_bound",
    "engine_cancelling_sum",
    "engine_unknown_sum",
    "vol_increments_sum",
    "sink_settled",
    "status_changes",
    "budget_waiters",
    "quoting",
    "loop_delay_ms",
)


def _structures(st: dict[str, Any]) -> None:
    print()
    print(f"{'structure':<28}{'start':>12}{'end':>12}{'max':>12}")
    for key in STRUCTURE_ROWS:
        print(
            f"{key:<28}{st['start'].get(key, '-')!s:>12}{st['end'].get(key, '-')!s:>12}"
            f"{st['max'].get(key, '-')!s:>12}"
        )
