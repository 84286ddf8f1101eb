"""bench/e2e.py's correlation and table.

Correlation (2): "published" = the simulator's feed handing the BookDelta to its
Kafka producer (bench/harness/tradex_probe.py's stamp, keyed by (symbol, seq)).
Not the record's ts_ns: a market step's deltas carry the step's grid time, up
to one step (100 ms) before the flush that publishes them. "Accepted" = the
simulator's exchange has accepted the placement (the launcher's stamp, by
client order id; the 201 is written right after the feed flush). The link
between the two is made in the worker (harness/latency.py's StackProbe): per
BookDelta (symbol, seq), the client order ids of the PlaceOrders that delta's
re-quote decided. So one delta's latency = the accept time of the first of its
placements the venue accepted − its publish time; "every placement" uses the
last. All stamps are time.time_ns() on one machine (CLOCK_REALTIME, shared by
the processes; the broker's JVM stamps from the same clock). Deltas whose
re-quote placed nothing (targets unchanged), and placements never sent
(withdrawn by the worker's sender when a later re-quote cancelled them before
they left), or refused, are counted, not timed. The legs (LEGS) add up exactly
to the total; the Kafka leg is split at the broker's append stamp (ms
resolution, taken mid-millisecond: each share within ±0.5 ms).

Cross-check: the simulator's own /admin/requests?route=place log (arrival time
`t`, no order id) is paired with the launcher's log in order (both are appended
in one synchronous stretch per request), giving the leg "endpoint arrival →
Venue.place" and checking the count.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from harness.report import stats_ms

from simulator.order_service import REQUEST_LOG_LIMIT

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
EXTRA = (
    "first",
    "all",
    "response",
    "journal",
    "to_append",
    "from_append",
    "to_endpoint",
    "endpoint_to_venue",
)


def _timed_legs(
    series: dict[str, list[int]], rec: dict[str, Any], stamps: dict[str, Any], t_pub: int
) -> None:
    """One timed delta's legs (`stamps`: its first accepted placement's)."""
    request, t_in, t_acc = stamps["request"], stamps["t_in"], stamps["t_acc"]
    series["broker"].append(rec["t0"] - t_pub)
    series["hand_over"].append(rec["t1"] - rec["t0"])
    series["core"].append(rec["t2"] - rec["t1"])
    series["to_sender"].append(stamps["t_batch"] - rec["t2"])
    series["sender"].append(stamps["t_call"] - stamps["t_batch"])
    series["budget"].append(request[0] - stamps["t_call"])
    series["http_in"].append(t_in - request[0])
    series["match"].append(t_acc - t_in)
    series["response"].append(request[1] - t_acc)
    arrival = stamps["arrival"]
    if arrival is not None:
        series["to_endpoint"].append(arrival - request[0])
        series["endpoint_to_venue"].append(t_in - arrival)
    if stamps["journal"] is not None:
        start, end = stamps["journal"]
        series["journal"].append(end - start)


def _untimed(rec: dict[str, Any], accepted: dict[str, Any], probe: Any) -> str:
    """Why none of a delta's placements was accepted."""
    sent = [c for c in rec["places"] if ("POST", c) in probe.requests]
    refused = [c for c in rec["places"] if c in accepted]
    if refused:
        return "placements_refused"
    if sent:
        return "placements_sent_no_venue_record"
    return "placements_withdrawn_before_sending"


class _Correlation:
    def __init__(self, sim: dict[str, Any], probe: Any, arrivals: dict[str, int]) -> None:
        self.probe = probe
        self.arrivals = arrivals
        self.accepted = {coid: (t_in, t_acc, code) for coid, t_in, t_acc, code in sim["places"]}
        self.series: dict[str, list[int]] = {k: [] for k in (*EXTRA, *(leg for leg, _ in LEGS))}
        self.by_source: dict[str, list[int]] = {}
        self.counts: Counter[str] = Counter()
        self.places_per_delta: list[int] = []

    def delta(self, key: tuple[str, int], t_pub: int, src: str) -> None:
        counts, accepted, probe = self.counts, self.accepted, self.probe
        counts["published"] += 1
        rec = probe.deltas.get(key)
        if rec is None:
            counts["not_applied_by_the_worker"] += 1
            return
        if not rec["places"]:
            counts["no_placement_decided"] += 1
            return
        counts["placed"] += 1
        self.places_per_delta.append(len(rec["places"]))
        ok = [c for c in rec["places"] if c in accepted and accepted[c][2] == ""]
        if not ok:
            counts[_untimed(rec, accepted, probe)] += 1
            return
        first = min(ok, key=lambda c: accepted[c][1])
        t_in, t_acc, _ = accepted[first]
        request = probe.requests.get(("POST", first))
        t_batch, t_call = probe.batches.get(first), probe.calls.get(first)
        if request is None or t_batch is None or t_call is None:
            counts["incomplete_worker_stamps"] += 1
            return
        counts["timed"] += 1
        total = t_acc - t_pub
        self.series["first"].append(total)
        self.by_source.setdefault(src, []).append(total)
        self.series["all"].append(max(accepted[c][1] for c in ok) - t_pub)
        if len(ok) < len(rec["places"]):
            counts["timed_with_some_placements_not_accepted"] += 1
        self._broker_split(rec, t_pub)
        stamps = {"request": request, "t_in": t_in, "t_acc": t_acc, "t_batch": t_batch}
        stamps.update(t_call=t_call, arrival=self.arrivals.get(first))
        stamps["journal"] = probe.journal.get(first)
        _timed_legs(self.series, rec, stamps, t_pub)

    def _broker_split(self, rec: dict[str, Any], t_pub: int) -> None:
        if rec["appended"] is not None:
            self.series["to_append"].append(rec["appended"] - t_pub)
            self.series["from_append"].append(rec["t0"] - rec["appended"])
        else:
            self.counts["timed_without_broker_append_time"] += 1

    def figures(self) -> dict[str, Any]:
        series = self.series
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
            "by_source": {src: stats_ms(v) for src, v in sorted(self.by_source.items())},
            "counts": dict(self.counts),
            "placements_per_delta": statistics.fmean(self.places_per_delta)
            if self.places_per_delta
            else 0,
        }


def correlate(
    sim: dict[str, Any],
    probe: Any,
    t_from: int,
    t_to: int,
    sources: set[str],
    arrivals: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Delta published → first (and last) placement accepted, for the deltas the
    simulator published in [t_from, t_to) from `sources`, with the legs; `arrivals`
    (client order id → the endpoint's arrival time) splits the HTTP leg."""
    correlation = _Correlation(sim, probe, arrivals or {})
    published = {(s, seq): (t, src) for s, seq, t, src in sim["deltas"]}
    for key, (t_pub, src) in published.items():
        if t_from <= t_pub < t_to and src in sources:
            correlation.delta(key, t_pub, src)
    return correlation.figures()


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


# ---------------------------------------------------------------- the table


def print_table(r: dict[str, Any]) -> None:
    _simulator_alone(r)
    _latency(r["latency"])
    _core_vs_stack(r)
    _orders_per_second(r)


def _simulator_alone(r: dict[str, Any]) -> None:
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


def _cells(s: dict[str, Any]) -> str:
    if not s.get("n"):
        return f"{'-':>14}{'':>24}"
    return f"{s['p50_ms']:>14.3f}{s['p99_ms']:>9.3f}{s['max_ms']:>9.3f}{s['n']:>6}"


def _latency_rows(wins: dict[str, Any]) -> None:
    def row(name: str, pick: Any) -> None:
        print(f"{name:<48}{''.join(_cells(pick(w)) for w in wins.values())}")

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


def _latency(lat: dict[str, Any]) -> None:
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
    _latency_rows(wins)
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


def _core_vs_stack(r: dict[str, Any]) -> None:
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
    for w in r["latency"]["windows"].values():
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


def _window_row(w: dict[str, Any]) -> str:
    rt = w["request_round_trip"]["place"]
    lu = w["latency_under_load"]["delta_to_first_accepted"]
    cpu = w["cpu_busy"]
    rtt = f"{rt['p50_ms']:.0f}/{rt['p99_ms']:.0f} ms" if rt.get("n") else "-"
    lat50 = f"{lu['p50_ms']:.0f} ms" if lu.get("n") else "-"
    return (
        f"{w['drive_ms']:>5g}ms{w['budget_per_s']:>8}{w['placed_per_s']:>9,.0f}"
        f"{w['cancelled_per_s']:>9,.0f}{w['orders_per_s']:>9,.0f}"
        f"{w['placements_decided_per_s']:>10,.0f}{rtt:>20}{lat50:>10}"
        f"{cpu['tradex']:>7.0%}{cpu['bench_process_worker']:>7.0%}{cpu['kafka']:>6.0%}"
        f"{cpu['machine_of_2_cores']:>8.0%}  {w['pool_mode_after']}"
        + (f" {w['halted_after_s']} s after the drive began" if w["halted_after_s"] else "")
    )


def _orders_per_second(r: dict[str, Any]) -> None:
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
        print(_window_row(w))
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
