"""The runquoter's metrics (quoting_worker/adapters/metrics.py): names, labels and
values as Prometheus scrapes them over HTTP."""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from quoting_worker.adapters.metrics import PoolSample, QuoterMetrics
from quoting_worker.core.status import EngineStatus, MemberView
from quoting_worker.core.types import PoolMode
from tests.conftest import free_port

SPEC_QUOTER = {
    "mm_pool_member_count": {"symbol"},
    "mm_pool_net_position": {"symbol", "participant_id"},
    "mm_pool_member_pnl": {"symbol", "participant_id"},
    "mm_pool_member_inventory": {"symbol", "participant_id"},
    "mm_pool_member_open_orders": {"symbol", "participant_id"},
    "mm_pool_quote_compute_latency_seconds": {"symbol"},
    "mm_pool_allocation_latency_seconds": {"symbol"},
}


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """Nothing here touches Redis."""


def member(pid: str, position: str, realised: str, orders: int) -> MemberView:
    zero = Decimal(0)
    return MemberView(
        participant_id=pid,
        position_lots=0,
        position=Decimal(position),
        avg_entry_price=zero,
        realised_pnl_usdt=Decimal(realised),
        unrealised_pnl_usdt=Decimal("-1.5"),
        fees_usdt=zero,
        funding_usdt=zero,
        volume_usdt=zero,
        trade_count=0,
        open_orders=orders,
        bid_depth_usdt=zero,
        ask_depth_usdt=zero,
        quoting_both_sides=False,
    )


def status(mode: PoolMode, *members: MemberView) -> EngineStatus:
    return EngineStatus(
        symbol="ETHUSDT-PERP",
        mode=mode,
        quoting=mode is PoolMode.ACTIVE,
        gate_reason="",
        q=sum((m.position for m in members), Decimal(0)),
        sigma=None,
        reservation_price=None,
        half_spread=None,
        best_bid_quoted=None,
        best_ask_quoted=None,
        day_pnl_usdt=Decimal("12.5"),
        members=members,
        mid=Decimal(3000),
        refused={},
        halt="",
    )


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}} of one scrape."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(httpx.get(url).text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def served_scrape(metrics: QuoterMetrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """One scrape of `metrics` served over HTTP, as Prometheus reads it."""
    port = free_port()
    server = metrics.serve(port, addr="127.0.0.1")
    try:
        return scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        server.shutdown()


def test_the_spec_metrics_are_served_with_their_labels_over_http() -> None:
    metrics = QuoterMetrics()
    metrics.info.labels("w-1", "abc").set(1)
    two_seconds_ago = time.time_ns() - 2_000_000_000
    metrics.sample(
        "ETHUSDT-PERP",
        PoolSample(
            status(PoolMode.HALTED, member("p-a", "0.3", "4.25", 6), member("p-b", "-0.1", "0", 0)),
            queue_depth=7,
            book_received_ns=two_seconds_ago,
            mark=Decimal(3000),
        ),
    )
    metrics.quote_timed("ETHUSDT-PERP", 250_000, 40_000)
    metrics.order_request("place", "ok", 0.004)
    metrics.kill_switches.labels("ETHUSDT-PERP", "STALE_DATA").inc()
    got = served_scrape(metrics)
    eth = (("symbol", "ETHUSDT-PERP"),)

    def of(pid: str) -> tuple[tuple[str, str], ...]:
        return (("participant_id", pid), ("symbol", "ETHUSDT-PERP"))

    assert got["mm_pool_member_count"] == {eth: 2}
    assert got["mm_pool_net_position"] == {of("p-a"): 900.0, of("p-b"): -300.0}
    assert got["mm_pool_member_pnl"] == {of("p-a"): 4.25, of("p-b"): 0.0}
    assert got["mm_pool_member_inventory"] == {of("p-a"): 0.3, of("p-b"): -0.1}
    assert got["mm_pool_member_open_orders"] == {of("p-a"): 6, of("p-b"): 0}
    assert got["mm_pool_member_unrealised_pnl"][of("p-a")] == -1.5
    assert got["mm_pool_state"] == {
        (("state", "ACTIVE"), *eth): 0.0,
        (("state", "HALTED"), *eth): 1.0,
        (("state", "PAUSED"), *eth): 0.0,
        (("state", "UNWINDING"), *eth): 0.0,
    }
    assert got["mm_pool_event_queue_depth"] == {eth: 7}
    assert got["mm_pool_day_pnl"] == {eth: 12.5}
    assert 2.0 <= got["mm_pool_book_staleness_seconds"][eth] < 10
    assert got["mm_pool_kill_switch_total"] == {(*eth, ("trigger", "STALE_DATA")): 1.0}
    assert got["mm_pool_quote_compute_latency_seconds_count"] == {eth: 1}
    # 250 µs lands in the microsecond buckets: ≤ 250 µs yes, ≤ 100 µs no.
    buckets = got["mm_pool_quote_compute_latency_seconds_bucket"]
    assert buckets[(("le", "0.00025"), *eth)] == 1
    assert buckets[(("le", "0.0001"), *eth)] == 0
    assert got["mm_pool_allocation_latency_seconds_sum"] == {eth: pytest.approx(40e-6)}
    assert got["mm_order_service_request_duration_seconds_count"] == {
        (("operation", "place"), ("outcome", "ok")): 1
    }
    assert got["mm_quoter_info"] == {(("build", "abc"), ("worker_id", "w-1")): 1}
    assert got["mm_quoter_hosted_pools"] == {(): 1}
    assert "process_resident_memory_bytes" in got


def test_a_released_pool_leaves_the_gauges_and_every_spec_family_is_declared() -> None:
    metrics = QuoterMetrics()
    metrics.sample("BTCUSDT-PERP", PoolSample(status(PoolMode.ACTIVE), 0, 0, None))
    metrics.forget("BTCUSDT-PERP")
    families = {f.name: f for f in metrics.registry.collect()}
    assert families["mm_pool_member_count"].samples == []
    assert set(SPEC_QUOTER) <= QuoterMetrics.family_names()
    # Two workers in one process keep their own figures.
    other = QuoterMetrics()
    metrics.fills.labels("BTCUSDT-PERP").inc()
    assert (
        other.registry.get_sample_value("mm_pool_fills_total", {"symbol": "BTCUSDT-PERP"}) is None
    )


def test_a_revoked_partition_drops_its_lag() -> None:
    metrics = QuoterMetrics()
    metrics.kafka_lag.labels("mm.book.delta.v1", "3").set(0.25)
    metrics.partition_revoked("mm.book.delta.v1", 3)
    metrics.partition_revoked("mm.book.delta.v1", 4)  # never consumed: nothing to drop
    families = {f.name: f for f in metrics.registry.collect()}
    assert families["mm_kafka_consumer_lag_seconds"].samples == []


def test_a_reject_reason_is_its_code_or_other() -> None:
    from quoting_worker.runner.actor import reject_reason_label

    assert reject_reason_label("POST_ONLY_WOULD_CROSS") == "POST_ONLY_WOULD_CROSS"
    assert reject_reason_label("RATE_LIMITED") == "RATE_LIMITED"
    assert reject_reason_label("price 123.4 is off the tick grid") == "OTHER"
    assert reject_reason_label("A" * 49) == "OTHER"
    assert reject_reason_label("") == "OTHER"


def test_the_model_as_the_pool_quotes_it_is_exported_and_absent_before_a_quote() -> None:
    metrics = QuoterMetrics()
    quoted = replace(
        status(PoolMode.ACTIVE),
        sigma=120.0,
        reservation_price=2989.92,
        half_spread=720.645,
        microprice=3000.0,
        quoted_spread=Decimal("3.1"),
    )
    metrics.sample("ETHUSDT-PERP", PoolSample(quoted, queue_depth=0, book_received_ns=0, mark=None))
    metrics.sample(
        "BTCUSDT-PERP",
        PoolSample(
            replace(status(PoolMode.PAUSED), symbol="BTCUSDT-PERP"),
            queue_depth=0,
            book_received_ns=0,
            mark=None,
        ),
    )
    got = served_scrape(metrics)
    eth = (("symbol", "ETHUSDT-PERP"),)
    assert got["mm_pool_sigma"] == {eth: 120.0}
    assert got["mm_pool_reservation_price"] == {eth: 2989.92}
    assert got["mm_pool_half_spread"] == {eth: 720.645}
    assert got["mm_pool_quoted_spread"] == {eth: 3.1}
