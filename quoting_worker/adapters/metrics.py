"""The runquoter's Prometheus metrics, served on METRICS_PORT (SPEC Observability).

Each `QuoterMetrics` owns its registry (two workers in one test process never
mix their figures). Three kinds of figure, each measured where it is cheap:

- on the event loop, as things happen: quote and allocation latency (timed by
  the engine), event lag, kill switches, orders sent, venue answers, fills,
  Order Service requests by operation and outcome;
- in the Kafka consumer thread: messages and consumer lag as time (now − the
  message's timestamp; SPEC Part B.8: the broker's end offsets cannot be
  trusted);
- at scrape time, from the last `PoolSample` the loop published (every
  second, with the live status): positions, PnL, open orders, state, queue
  depth. Book staleness is computed at scrape from the last book message's
  time, so a stuck loop shows as a growing figure, not a frozen one.

Labels stay bounded: symbol, participant, topic/partition, trigger, a fixed
set of operations and outcomes; never an order id.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quoting_worker.core.status import EngineStatus
from quoting_worker.core.types import PoolMode

# The quoting core decides in microseconds (bench/quote_path.py: ~5 µs for a
# delta, ~0.2-1 ms for a full re-quote on this machine).
COMPUTE_BUCKETS = (
    5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 0.1,
)  # fmt: skip
# I/O is milliseconds: Kafka ~10 ms, the Order Service ~5 ms, a slow venue seconds.
IO_BUCKETS = (
    1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
ORDER_ACTIONS = ("place", "cancel", "cancel_all", "query", "snapshot")
ORDER_EVENTS = ("accepted", "rejected", "cancelled", "unknown", "abandoned")


@dataclass(frozen=True, slots=True)
class PoolSample:
    """What the loop knew about one pool at `taken_ns` (read by the scrape thread)."""

    status: EngineStatus
    queue_depth: int
    book_received_ns: int
    mark: Decimal | None


class _Pools(Collector):
    """Pool and member gauges from the latest samples."""

    def __init__(self, metrics: QuoterMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        by_name = {f.name: f for f in families}
        now = time.time_ns()
        for symbol, sample in sorted(self._metrics.samples.items()):
            status = sample.status
            by_name["mm_pool_member_count"].add_metric([symbol], len(status.members))
            for state in PoolMode:
                by_name["mm_pool_state"].add_metric(
                    [symbol, state.value], 1.0 if status.mode is state else 0.0
                )
            by_name["mm_pool_quoting"].add_metric([symbol], 1.0 if status.quoting else 0.0)
            by_name["mm_pool_day_pnl"].add_metric([symbol], float(status.day_pnl_usdt))
            by_name["mm_pool_inventory"].add_metric([symbol], float(status.q))
            model = (
                ("mm_pool_sigma", status.sigma),
                ("mm_pool_reservation_price", status.reservation_price),
                ("mm_pool_half_spread", status.half_spread),
                ("mm_pool_quoted_spread", status.quoted_spread),
            )
            for name, value in model:
                if value is not None:
                    by_name[name].add_metric([symbol], float(value))
            by_name["mm_pool_event_queue_depth"].add_metric([symbol], sample.queue_depth)
            if sample.book_received_ns:
                staleness = max(0.0, (now - sample.book_received_ns) / 1e9)
                by_name["mm_pool_book_staleness_seconds"].add_metric([symbol], staleness)
            mark = sample.mark
            for member in status.members:
                labels = [symbol, member.participant_id]
                if mark is not None:
                    by_name["mm_pool_net_position"].add_metric(
                        labels,
                        float(member.position * mark),
                    )
                by_name["mm_pool_member_pnl"].add_metric(labels, float(member.realised_pnl_usdt))
                by_name["mm_pool_member_unrealised_pnl"].add_metric(
                    labels, float(member.unrealised_pnl_usdt)
                )
                by_name["mm_pool_member_inventory"].add_metric(labels, float(member.position))
                by_name["mm_pool_member_open_orders"].add_metric(labels, member.open_orders)
                by_name["mm_pool_member_position_mismatch"].add_metric(
                    labels, float(member.position_mismatch)
                )
        by_name["mm_quoter_hosted_pools"].add_metric([], len(self._metrics.samples))
        return iter(families)

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        pool, member = ["symbol"], ["symbol", "participant_id"]
        return [
            GaugeMetricFamily(
                "mm_pool_member_position_mismatch",
                "The venue's position of the member's account minus MMS's, base units,"
                " once two checks in a row agree on it (0 while they match).",
                labels=member,
            ),
            GaugeMetricFamily("mm_quoter_hosted_pools", "Pools this worker hosts.", labels=[]),
            GaugeMetricFamily("mm_pool_member_count", "Members of the pool.", labels=pool),
            GaugeMetricFamily(
                "mm_pool_state",
                "1 for the pool's state in effect in the worker, 0 for the others.",
                labels=["symbol", "state"],
            ),
            GaugeMetricFamily(
                "mm_pool_quoting", "1 while orders rest and the gate is open.", labels=pool
            ),
            GaugeMetricFamily("mm_pool_day_pnl", "The pool's UTC-day PnL, USDT.", labels=pool),
            GaugeMetricFamily(
                "mm_pool_inventory", "The pool's net position, base units.", labels=pool
            ),
            GaugeMetricFamily(
                "mm_pool_sigma",
                "The volatility σ the pool quotes with, price units per √hour.",
                labels=pool,
            ),
            GaugeMetricFamily(
                "mm_pool_reservation_price",
                "The last quote's reservation price r = s − q·γ·σ²·τ, price units.",
                labels=pool,
            ),
            GaugeMetricFamily(
                "mm_pool_half_spread",
                "The last quote's A-S half-spread δ before the bps clamp, price units.",
                labels=pool,
            ),
            GaugeMetricFamily(
                "mm_pool_quoted_spread",
                "Best ask quoted − best bid quoted, price units.",
                labels=pool,
            ),
            GaugeMetricFamily(
                "mm_pool_event_queue_depth", "Events waiting for the engine.", labels=pool
            ),
            GaugeMetricFamily(
                "mm_pool_book_staleness_seconds",
                "Seconds since the last book message reached the engine.",
                labels=pool,
            ),
            GaugeMetricFamily(
                "mm_pool_net_position",
                "A member's net position at mark, USDT (signed).",
                labels=member,
            ),
            GaugeMetricFamily(
                "mm_pool_member_pnl", "A member's realised PnL, USDT.", labels=member
            ),
            GaugeMetricFamily(
                "mm_pool_member_unrealised_pnl",
                "A member's unrealised PnL at mark, USDT.",
                labels=member,
            ),
            GaugeMetricFamily(
                "mm_pool_member_inventory",
                "A member's net position, base units (signed).",
                labels=member,
            ),
            GaugeMetricFamily(
                "mm_pool_member_open_orders",
                "A member's orders resting or in flight.",
                labels=member,
            ),
        ]


class QuoterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.samples: dict[str, PoolSample] = {}
        r = self.registry
        ProcessCollector(registry=r)
        self.info = Gauge(
            "mm_quoter_info", "This worker (always 1).", ["worker_id", "build"], registry=r
        )
        self._pool_families(r)
        self._kafka_families(r)
        self._health_families(r)
        r.register(_Pools(self))
        # Pre-bound children per symbol: a label lookup is a dict access and a lock.
        self._per_symbol: dict[str, tuple[Histogram, Histogram]] = {}

    def _pool_families(self, r: CollectorRegistry) -> None:
        """What each pool's engine does: quoting time, event lag, orders, fills, trips."""
        self.quote_compute = Histogram(
            "mm_pool_quote_compute_latency_seconds",
            "One quote decision: A-S ladder, allocation and the diff against resting orders.",
            ["symbol"],
            buckets=COMPUTE_BUCKETS,
            registry=r,
        )
        self.allocation = Histogram(
            "mm_pool_allocation_latency_seconds",
            "Splitting a ladder across the members (pro rata, under their limits).",
            ["symbol"],
            buckets=COMPUTE_BUCKETS,
            registry=r,
        )
        self.event_lag = Histogram(
            "mm_pool_event_lag_seconds",
            "Age of the oldest event of each batch the engine applies (now − its timestamp).",
            ["symbol"],
            buckets=IO_BUCKETS,
            registry=r,
        )
        self.kill_switches = Counter(
            "mm_pool_kill_switch", "Kill-switch activations.", ["symbol", "trigger"], registry=r
        )
        self.orders_sent = Counter(
            "mm_pool_orders_sent",
            "Order actions handed to the Order Service sink (withdrawn and spared"
            " ones included: the requests made are mm_order_service_request_duration_seconds).",
            ["symbol", "action"],
            registry=r,
        )
        self.order_events = Counter(
            "mm_pool_order_events",
            "The venue's answers about MMS orders (and orders given up).",
            ["symbol", "event"],
            registry=r,
        )
        self.order_rejects = Counter(
            "mm_pool_order_rejects",
            "Orders the venue rejected, by its reason code (OTHER for free text).",
            ["symbol", "reason"],
            registry=r,
        )
        self.fills = Counter("mm_pool_fills", "Fills of MMS orders.", ["symbol"], registry=r)

    def _kafka_families(self, r: CollectorRegistry) -> None:
        """The consumer: messages, skips, registry waits, lag as time and in messages."""
        self.kafka_messages = Counter(
            "mm_kafka_messages", "Kafka messages consumed and decoded.", ["topic"], registry=r
        )
        self.kafka_skipped = Counter(
            "mm_kafka_messages_skipped",
            "Kafka messages skipped (no key, undecodable, untranslatable).",
            ["reason"],
            registry=r,
        )
        self.registry_retries = Counter(
            "mm_kafka_registry_retries",
            "Decodes that waited for an unreachable schema registry (the message is kept).",
            registry=r,
        )
        self.kafka_lag = Gauge(
            "mm_kafka_consumer_lag_seconds",
            "Now − the timestamp of the newest message consumed from the partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.kafka_backlog = Gauge(
            "mm_kafka_consumer_lag_messages",
            "The partition's end offset − the next offset this worker will consume.",
            ["topic", "partition"],
            registry=r,
        )
        self.kafka_wait = Histogram(
            "mm_kafka_consume_wait_seconds",
            "Per partition and batch, now − the oldest consumed message's timestamp.",
            ["topic"],
            buckets=IO_BUCKETS,
            registry=r,
        )

    def _health_families(self, r: CollectorRegistry) -> None:
        """The outside services and the process: requests, outages, retries, restarts."""
        self.order_requests = Histogram(
            "mm_order_service_request_duration_seconds",
            "Order Service HTTP requests by operation and outcome.",
            ["operation", "outcome"],
            buckets=IO_BUCKETS,
            registry=r,
        )
        self.database_retries = Counter(
            "mm_quoter_database_retries",
            "Failed attempts at a durable write (fill, funding, kill-switch halt), each"
            " tried again until it is on record.",
            ["symbol", "record"],
            registry=r,
        )
        self.unknown_resolved = Histogram(
            "mm_order_unknown_outcome_resolve_seconds",
            "A placement whose outcome was unknown (timeout, 5xx, reset) until the first"
            " answer to a query of it by client order id.",
            buckets=IO_BUCKETS,
            registry=r,
        )
        self.renewals_skipped = Counter(
            "mm_quoter_dead_mans_switch_renewals_skipped",
            "Dead-man's-switch renewals not sent because the last one for that account and"
            " symbol was still under way (the request budget is not keeping up).",
            registry=r,
        )
        self.database_outages = Counter(
            "mm_quoter_database_outages",
            "Times a durable write failed and every hosted pool was suspended until the"
            " database answered again.",
            registry=r,
        )
        self.task_restarts = Counter(
            "mm_quoter_task_restarts",
            "A side task (status, listener, re-read, timers, reconciliation, renewals,"
            " status batches) failed and was started again.",
            ["task"],
            registry=r,
        )

    @classmethod
    def family_names(cls) -> frozenset[str]:
        """Every family this exporter serves (counters without `_total`)."""
        metrics = cls()
        return frozenset(family.name for family in metrics.registry.collect())

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:  # noqa: S104 - scraped from outside
        """Serves /metrics from a daemon thread; returns the server (`.shutdown()`)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server

    # -------------------------------------------------------------- the loop's figures

    def quote_timed(self, symbol: str, compute_ns: int, allocation_ns: int) -> None:
        children = self._per_symbol.get(symbol)
        if children is None:
            children = (self.quote_compute.labels(symbol), self.allocation.labels(symbol))
            self._per_symbol[symbol] = children
        children[0].observe(compute_ns / 1e9)
        children[1].observe(allocation_ns / 1e9)

    def sample(self, symbol: str, sample: PoolSample) -> None:
        samples = dict(self.samples)
        samples[symbol] = sample
        self.samples = samples  # replaced whole: the scrape thread never sees a half-update

    def forget(self, symbol: str) -> None:
        samples = dict(self.samples)
        samples.pop(symbol, None)
        self.samples = samples

    def partition_revoked(self, topic: str, partition: int) -> None:
        """A partition no longer consumed here has no lag to report."""
        for gauge in (self.kafka_lag, self.kafka_backlog):
            with contextlib.suppress(KeyError):
                gauge.remove(topic, str(partition))

    def order_request(self, operation: str, outcome: str, seconds: float) -> None:
        self.order_requests.labels(operation, outcome).observe(seconds)
