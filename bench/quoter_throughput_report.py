"""bench/quoter_throughput.py's figures and table: the latency phase's stamps as
series of each leg, and the printed table of the result."""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.report import stats_ms

SERIES = (
    "in_process",
    "to_place",
    "hop",
    "handle",
    "journal",
    "after_handle",
    "broker_leg",
    "producer_to_append",
    "append_to_receipt",
    "end_to_end",
    "decode_hop",
)


def _series(
    records: list[dict[str, Any] | None],
) -> tuple[dict[str, list[int]], Counter[str], Counter[str]]:
    """Each leg's samples (ns) over the deltas whose first request went out; the
    actions of those that sent none, and of those that did."""
    series: dict[str, list[int]] = {k: [] for k in SERIES}
    no_request_actions: Counter[str] = Counter()
    actions_seen: Counter[str] = Counter()
    for rec in records:
        if rec is None or "t_req" not in rec:
            if rec is not None:
                no_request_actions.update(rec.get("actions", {"never released": 1}))
            continue
        actions_seen.update(rec.get("actions", {}))
        series["in_process"].append(rec["t_req"] - rec["t0"])
        if "t_place" in rec:
            series["to_place"].append(rec["t_place"] - rec["t0"])
        series["hop"].append(rec["t1"] - rec["t0"])
        series["decode_hop"].append(rec["decoded"] - rec["t0"])
        series["handle"].append(rec["t2"] - rec["t1"])
        if "j_end" in rec:
            series["journal"].append(rec["j_end"] - rec["j_start"])
        series["after_handle"].append(rec["t_req"] - rec["t2"])
        series["broker_leg"].append(rec["t0"] - rec["produced"])
        if rec["appended"] is not None:
            series["producer_to_append"].append(rec["appended"] - rec["produced"])
            series["append_to_receipt"].append(rec["t0"] - rec["appended"])
        series["end_to_end"].append(rec["t_req"] - rec["produced"])
    return series, no_request_actions, actions_seen


def latency_figures(latency: dict[str, Any], samples: int, gap_ms: float) -> dict[str, Any]:
    """(3)'s result: `latency` holds the transport samples, the probe's records of
    the counted deltas, the waits that timed out and the client's outcomes."""
    transport, records = latency["transport"], latency["records"]
    series, no_request_actions, actions_seen = _series(records)
    no_request = sum(1 for rec in records if rec is None or "t_req" not in rec)
    return {
        "samples": samples,
        "gap_ms": gap_ms,
        "pool_config": {"quote_interval_ms": 1, "price_threshold_bps": 0},
        "rate_budget": "unlimited during this phase (default 100 requests/s)",
        "broker_transport_alone": stats_ms(transport["total"]),
        "broker_transport_alone_split": {
            "producer_to_broker_append": stats_ms(transport["to_append"]),
            "broker_append_to_poll": stats_ms(transport["from_append"]),
            "records_without_append_time": transport["unstamped"],
        },
        "mms_in_process_to_first_request": stats_ms(series["in_process"]),
        "mms_in_process_to_first_place": stats_ms(series["to_place"]),
        "breakdown": {
            "poll_to_decoded": stats_ms(series["decode_hop"]),
            "poll_to_engine_handle": stats_ms(series["hop"]),
            "engine_handle": stats_ms(series["handle"]),
            "handle_end_to_first_request": stats_ms(series["after_handle"]),
            "write_ahead_journal": stats_ms(series["journal"]),
        },
        "broker_leg_in_mms_run": stats_ms(series["broker_leg"]),
        "broker_leg_in_mms_run_split": {
            "producer_to_broker_append": stats_ms(series["producer_to_append"]),
            "broker_append_to_receipt": stats_ms(series["append_to_receipt"]),
        },
        "end_to_end_produce_to_first_request": stats_ms(series["end_to_end"]),
        "target_in_process_p99_ms": 1.0,
        "deltas_without_request": no_request,
        "their_actions": dict(no_request_actions),
        "waits_timed_out": latency["missing"],
        "actions_per_delta": {
            k: v / max(1, len(records) - no_request) for k, v in actions_seen.items()
        },
        "order_service_outcomes_during": latency["outcomes"],
    }


# ---------------------------------------------------------------- the table


def print_table(r: dict[str, Any]) -> None:
    _throughput(r)
    _latency(r["latency"])
    _shares(r["latency"])
    tp, lat = r["throughput"], r["latency"]
    dms = r["order_service_stand_in"]["dead_man_switch"] or {}
    print(
        f"venue dead-man's switches fired during the run: {dms.get('fired')} "
        f"({dms.get('orders_cancelled')} MMS orders cancelled by the venue); "
        f"order traffic during (2): {tp['order_service_outcomes_during']}"
    )
    print(
        f"actions per delta: {lat['actions_per_delta']}; "
        f"without request: {lat['deltas_without_request']}; rebalances: {r['rebalances']}"
    )


def _throughput(r: dict[str, Any]) -> None:
    tp = r["throughput"]
    print()
    print(
        f"runquoter through Apache Kafka (one node): {r['symbols']} symbols x "
        f"{r['members_per_pool']} member, {r['partitions']} partitions, {r['deltas']:,} "
        f"deltas; Python {r['python']}, {r['machine']}"
    )
    print(f"{'throughput':<58}{'events/s':>12}")
    print(
        f"{'(1) raw: confluent-kafka consume(500) + AvroCodec.decode':<58}"
        f"{tp['raw_msgs_per_s']:>12,.0f}"
    )
    print(f"{'    (same, one poll() per message)':<58}{tp['raw_poll_msgs_per_s']:>12,.0f}")
    print(
        f"{'(2) runquoter: decoded, applied, re-quote decided':<58}{tp['mms_events_per_s']:>12,.0f}"
    )
    print(f"{'ratio (2)/(1)':<58}{tp['ratio']:>12.2f}  target >= 0.5")
    taken = tp["mms_consumer_thread_took_all_s"]
    m = tp["mms_time_to_applied_fraction"]
    print(
        f"runquoter applied 50% / 90% / 99% / 100% of the deltas after {m['t50_s']:.1f} / "
        f"{m['t90_s']:.1f} / {m['t99_s']:.1f} / {tp['mms_s']:.1f} s "
        f"(first 90%: {tp['mms_events_per_s_first_90pct']:,.0f}/s, "
        f"ratio {tp['mms_events_per_s_first_90pct'] / tp['raw_msgs_per_s']:.2f})"
    )
    print(
        f"CPU per message: raw {tp['raw_cpu_us_per_msg']:.1f} µs, runquoter "
        f"{tp['mms_cpu_us_per_delta']:.1f} µs (all its threads); consumer thread took all "
        f"{r['deltas']:,} in {taken if taken is None else round(taken, 2)} s; "
        f"{tp['mms_offset_commits']:,} offset commits; up to {tp['mms_max_in_flight_offsets']:,} "
        f"offsets in flight; machine CPU busy {tp['machine_cpu_busy_during_mms']:.0%} "
        f"(load at start {r['loadavg_at_start'][0]:.1f})"
    )


def _latency_rows(lat: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    alone_split, leg_split = lat["broker_transport_alone_split"], lat["broker_leg_in_mms_run_split"]
    breakdown = lat["breakdown"]
    return [
        ("(a) broker transport alone (produce -> poll())", lat["broker_transport_alone"], ""),
        ("    producer -> broker append", alone_split["producer_to_broker_append"], ""),
        ("    broker append -> poll() returns it", alone_split["broker_append_to_poll"], ""),
        (
            "(b) MMS in-process: receipt -> first order request out",
            lat["mms_in_process_to_first_request"],
            "target p99 <= 1 ms",
        ),
        ("    receipt -> decoded", breakdown["poll_to_decoded"], ""),
        ("    receipt -> engine.handle starts", breakdown["poll_to_engine_handle"], ""),
        ("    engine.handle -> release (full re-quote)", breakdown["engine_handle"], ""),
        ("    handle end -> first request out", breakdown["handle_end_to_first_request"], ""),
        ("    write-ahead journal (PENDING, 1 statement)", breakdown["write_ahead_journal"], ""),
        (
            "    receipt -> first placement out (after journal)",
            lat["mms_in_process_to_first_place"],
            "",
        ),
        ("broker leg inside the MMS run", lat["broker_leg_in_mms_run"], ""),
        ("    producer -> broker append", leg_split["producer_to_broker_append"], ""),
        (
            "    broker append -> worker's consumer call returns",
            leg_split["broker_append_to_receipt"],
            "",
        ),
        (
            "end to end: produce -> first request out",
            lat["end_to_end_produce_to_first_request"],
            "",
        ),
    ]


def _latency(lat: dict[str, Any]) -> None:
    print()
    print(
        f"latency, re-quote on every delta, n={lat['samples']}"
        f"{'p50 ms':>{60 - 38 - len(str(lat['samples']))}}{'p99 ms':>9}{'max ms':>9}"
    )
    for name, s, target in _latency_rows(lat):
        if not s.get("n"):
            print(f"{name:<52}{'-':>8}")
            continue
        print(f"{name:<52}{s['p50_ms']:>8.3f}{s['p99_ms']:>9.3f}{s['max_ms']:>9.3f}  {target}")


def _shares(lat: dict[str, Any]) -> None:
    alone, leg = lat["broker_transport_alone"], lat["broker_leg_in_mms_run"]
    if alone.get("n") and leg.get("n"):
        print(
            "the broker leg inside the MMS run exceeds the broker alone by "
            f"{leg['p50_ms'] - alone['p50_ms']:.2f} ms at p50, "
            f"{leg['p99_ms'] - alone['p99_ms']:.2f} ms at p99 (the worker's consumer thread "
            "shares this process's GIL with its event loop)"
        )
    split = lat["broker_leg_in_mms_run_split"]
    e2e = lat["end_to_end_produce_to_first_request"]
    if e2e.get("n") and split["broker_append_to_receipt"].get("n"):
        to_append = split["producer_to_broker_append"]["p50_ms"]
        from_append = split["broker_append_to_receipt"]["p50_ms"]
        print(
            f"of end to end p50 {e2e['p50_ms']:.3f} ms: producer -> append {to_append:.3f}, "
            f"append -> receipt {from_append:.3f} (the broker's share "
            f"{(to_append + from_append) / e2e['p50_ms']:.0%}, medians of each leg; "
            "the broker's stamp is ms-resolution, ±0.5 ms per share)"
        )
