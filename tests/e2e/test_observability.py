"""Observability end to end: the runquoter's /metrics, its traces and its log
lines, against the TradeX simulator and a real broker.

- every SPEC metric is scraped over HTTP with its labels, and moves when it
  should: fills move a member's inventory and realised PnL, a starved feed
  trips STALE_DATA and the kill-switch counter and the HALTED state show it;
- with tracing on, an order caused by a market event is sent in the trace of
  that event's consume span, and the log line that sends it carries the same
  trace id; a person's pause is traced from the command to the cancels it
  caused.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from messaging.topics import CONSUMED as CONSUMED_TOPICS
from pools import services
from pools.models import PoolConfig
from telemetry import logs, tracing
from tests.adapters.worker_harness import RunningWorker, wait_for
from tests.conftest import free_port
from tests.e2e.conftest import TradeXAdmin, running_tradex
from tests.e2e.test_safety import hosted_by, start_runquoter, stop_within, worker_id_of
from tests.e2e.test_stack import ETH, OPS, WEIGHTS, eth_pool, hosted, resting_ladders
from tests.e2e.test_stack import quoter as quoter  # the shared fixture
from tests.kafka import Bus, unique_group
from tests.otlp_receiver import otlp_collector
from trading.models import MMFill

pytestmark = pytest.mark.django_db(transaction=True)

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@pytest.fixture
def tradex(broker: Bus, schema_registry_url: str, tmp_path: Path) -> Iterator[TradeXAdmin]:
    with running_tradex(
        broker, schema_registry_url, tmp_path, *("--symbol", ETH, "--seed", "11")
    ) as admin:
        yield admin


def scrape(url: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def member_values(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["participant_id"]: v for labels, v in samples.get(name, {}).items()}


def test_every_spec_metric_is_scraped_with_its_labels_and_moves(
    tradex: TradeXAdmin, quoter: Callable[..., Any]
) -> None:
    pool, members = eth_pool()
    pids = {str(p.pk) for p in members.values()}
    with quoter() as running:
        running = cast(RunningWorker, running)
        port = free_port()
        server = running.worker.metrics.serve(port, addr="127.0.0.1")
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            wait_for("the worker to host ETH", lambda: hosted(running.worker))
            wait_for("the pool in the metrics", lambda: scrape(url).get("mm_pool_member_count"))
            before = scrape(url)
            assert member_values(before, "mm_pool_member_inventory") == dict.fromkeys(pids, 0.0)
            assert before["mm_pool_state"][(("state", "PAUSED"), ("symbol", ETH))] == 1

            services.pool_resume(pool=PoolConfig.objects.get(pk=pool.pk), actor=OPS, note="e2e")
            wait_for("both members' ladders on the book", lambda: resting_ladders(tradex))

            def filled_and_closed() -> Samples | None:
                """A scrape once a member has realised PnL (a fill closed a position)."""
                samples = scrape(url)
                pnl = member_values(samples, "mm_pool_member_pnl")
                return samples if any(v != 0 for v in pnl.values()) else None

            after = wait_for("realised PnL in the metrics", filled_and_closed, timeout=120)
            eth = (("symbol", ETH),)
            for name in (
                "mm_pool_net_position",
                "mm_pool_member_pnl",
                "mm_pool_member_inventory",
                "mm_pool_member_open_orders",
            ):
                assert set(member_values(after, name)) == pids, name
            assert after["mm_pool_member_count"] == {eth: 2}
            assert after["mm_pool_state"][(("state", "ACTIVE"), *eth)] == 1
            assert after["mm_pool_quote_compute_latency_seconds_count"][eth] > 0
            assert after["mm_pool_allocation_latency_seconds_count"][eth] > 0
            assert (
                after["mm_pool_fills_total"][eth] >= MMFill.objects.filter(symbol=ETH).count() > 0
            )
            placed = after["mm_order_service_request_duration_seconds_count"]
            assert placed[(("operation", "place"), ("outcome", "ok"))] > 0
            assert after["mm_pool_orders_sent_total"][(("action", "place"), *eth)] > 0
            assert after["mm_pool_order_events_total"][(("event", "accepted"), *eth)] > 0
            lags = after["mm_kafka_consumer_lag_seconds"]
            assert lags
            assert {dict(k)["topic"] for k in lags} <= set(CONSUMED_TOPICS)
            assert all(0 <= v < 30 for v in lags.values()), lags
            # The lag in messages: the broker's end offset − the next one to consume.
            backlog = after["mm_kafka_consumer_lag_messages"]
            assert {dict(k)["topic"] for k in backlog} <= set(CONSUMED_TOPICS)
            assert backlog
            assert all(0 <= v < 1000 for v in backlog.values()), backlog
            assert after["mm_pool_event_lag_seconds_count"][eth] > 0
            # Inventory at mark: the member's USDT position is its units × the mark.
            inventory = member_values(after, "mm_pool_member_inventory")
            assert any(v != 0 for v in inventory.values())

            # The feed stops: STALE_DATA trips, counted once, and the state shows it.
            tradex.feed("pause", ETH)

            def halted() -> Samples | None:
                samples = scrape(url)
                state = samples["mm_pool_state"][(("state", "HALTED"), *eth)]
                return samples if state == 1 else None

            tripped = wait_for("the pool HALTED in the metrics", halted, timeout=30)
            kills = tripped["mm_pool_kill_switch_total"]
            assert kills == {(*eth, ("trigger", "STALE_DATA")): 1.0}
            assert tripped["mm_pool_book_staleness_seconds"][eth] >= 3.0
            assert (
                tripped["mm_pool_orders_sent_total"].get((("action", "cancel_all"), *eth), 0) >= 1
            )
            tradex.feed("resume", ETH)
        finally:
            server.shutdown()


@pytest.fixture
def traced() -> Iterator[tuple[InMemorySpanExporter, io.StringIO]]:
    """Tracing on in this process (the worker runs in a thread of it) and the
    quoter's log lines, DEBUG included, rendered as the JSON the processes write."""
    exporter = InMemorySpanExporter()
    tracing.configure("mms-quoter-test", None, processor=SimpleSpanProcessor(exporter))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    quoter_logger = logging.getLogger("mms.quoter")
    level = quoter_logger.level
    quoter_logger.addHandler(handler)
    quoter_logger.setLevel(logging.DEBUG)
    try:
        yield exporter, stream
    finally:
        quoter_logger.removeHandler(handler)
        quoter_logger.setLevel(level)
        tracing.shutdown()


def trace_of(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


def test_an_order_is_traced_to_the_market_event_that_caused_it_and_its_log_line_shares_the_trace(
    tradex: TradeXAdmin,
    quoter: Callable[..., Any],
    traced: tuple[InMemorySpanExporter, io.StringIO],
) -> None:
    exporter, stream = traced
    pool, _ = eth_pool()
    with quoter() as running:
        running = cast(RunningWorker, running)
        wait_for("the worker to host ETH", lambda: hosted(running.worker))
        services.pool_resume(pool=PoolConfig.objects.get(pk=pool.pk), actor=OPS, note="e2e")
        wait_for("both members' ladders on the book", lambda: resting_ladders(tradex))

        def market_caused_sends() -> list[ReadableSpan] | None:
            spans = exporter.get_finished_spans()
            consumes = {s.context.span_id for s in spans if s.name.startswith("kafka.consume")}
            sends = [
                s
                for s in spans
                if s.name == "orders.send" and s.parent is not None and s.parent.span_id in consumes
            ]
            return sends or None

        sends = wait_for("an order batch sent under a market event's trace", market_caused_sends)
        spans = exporter.get_finished_spans()
        send_ids = {s.context.span_id for s in sends}
        places = [
            s
            for s in spans
            if s.name == "order_service place"
            and s.parent is not None
            and s.parent.span_id in send_ids
        ]
        assert places, "no placement span under a market-caused send"
        assert all(s.attributes and s.attributes["mms.symbol"] == ETH for s in sends)

        # The log line that sent them carries the trace id of that send (and its symbol).
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        sending = [e for e in lines if str(e["event"]).startswith(f"{ETH}: sending")]
        traces = {trace_of(s) for s in sends}
        matching = [e for e in sending if e["trace_id"] in traces]
        assert matching, (traces, sending[:3])
        assert all(e["symbol"] == ETH for e in matching)
        assert any(
            coid and coid.startswith("mm-") for e in matching for coid in e["client_order_ids"]
        )

        # A person's pause: the command's trace reaches the cancels it caused (one
        # cancel-all per member account; per-order cancels only for what it missed).
        with tracing.span("POST /v1/pools/ETHUSDT-PERP/pause") as command:
            assert command is not None
            services.pool_pause(pool=PoolConfig.objects.get(pk=pool.pk), actor=OPS, reason="e2e")
        command_trace = format(command.get_span_context().trace_id, "032x")

        def cancels_in_the_commands_trace() -> list[ReadableSpan] | None:
            found = [
                s
                for s in exporter.get_finished_spans()
                if s.name in ("order_service cancel", "order_service cancel_all")
                and trace_of(s) == command_trace
            ]
            return found or None

        wait_for("the pause's cancels in its trace", cancels_in_the_commands_trace)
        wait_for(
            "every order cancelled on the simulator book",
            lambda: all(not tradex.open_orders(a, ETH) for a in WEIGHTS),
        )


def test_a_runquoter_process_serves_its_metrics_and_exports_its_traces_over_otlp(
    tradex: TradeXAdmin,
    broker: Bus,
    schema_registry_url: str,
    metadata_target: str,
    tmp_path: Path,
) -> None:
    """`manage.py runquoter` as deployed: METRICS_PORT scraped over HTTP, spans sent
    to OPENOBSERVE_OTLP_ENDPOINT, JSON log lines on its output."""
    pool, members = eth_pool()
    port = free_port()
    log = tmp_path / "runquoter.log"
    with otlp_collector() as collector:
        proc = start_runquoter(
            log,
            broker=broker,
            registry=schema_registry_url,
            order_service=tradex.url,
            metadata=metadata_target,
            group=unique_group("e2e-otel"),
            extra_env={
                "METRICS_PORT": str(port),
                "OPENOBSERVE_OTLP_ENDPOINT": collector.url,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "INFO",
            },
        )
        try:
            wait_for("the runquoter to host ETH", hosted_by(proc, log))
            services.pool_resume(pool=PoolConfig.objects.get(pk=pool.pk), actor=OPS, note="e2e")
            wait_for("both members' ladders on the book", lambda: resting_ladders(tradex))
            samples = scrape(f"http://127.0.0.1:{port}/metrics")
            assert dict(next(iter(samples["mm_quoter_info"])))["worker_id"] == worker_id_of(proc)
            assert set(member_values(samples, "mm_pool_member_open_orders")) == {
                str(p.pk) for p in members.values()
            }
            assert samples["mm_pool_quote_compute_latency_seconds_count"][(("symbol", ETH),)] > 0

            def market_caused_placements() -> list[Any] | None:
                """Placement spans under a send under a consume span, as exported."""
                by_id = {s.span_id: s for s in collector.spans}
                found = []
                for span in collector.named("order_service place"):
                    send = by_id.get(span.parent_span_id)
                    consume = by_id.get(send.parent_span_id) if send else None
                    if send and consume and consume.name.startswith("kafka.consume"):
                        found.append((consume, send, span))
                return found or None

            chains = wait_for("a traced market event → order chain", market_caused_placements)
            consume, send, place = chains[0]
            assert consume.trace_id == send.trace_id == place.trace_id
            assert {consume.service, send.service, place.service} == {"mms-quoter"}
            assert send.attributes["mms.symbol"] == ETH
        finally:
            stop_within(proc, log, 40)  # SHUTDOWN_TIMEOUT (30 s) and start-up
    assert proc.returncode == 0, log.read_text()[-4000:]
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    hosted_lines = [e for e in entries if "hosted with token" in str(e["event"])]
    assert hosted_lines
    assert all(e["symbol"] == ETH for e in hosted_lines)
    assert any(str(e["event"]).startswith("runquoter ") for e in entries)
    assert all({"timestamp", "level", "logger", "trace_id"} <= set(e) for e in entries)
