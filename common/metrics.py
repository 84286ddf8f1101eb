"""Metrics owned by the scheduled jobs, exported from one place.

Celery runs the jobs in several processes (and restarts them), so their counters
live in Redis, not in a process: `count_job` adds to a hash per metric, and
`JobMetricsCollector` — registered once in the web process, whose /metrics the
README names — reads them at scrape time, with the gauges that are the
database's own state (settlements by status, the latest Q-score per member).
Labels stay bounded: symbols, participants, statuses; never order ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.redis import redis_client

logger = logging.getLogger("mms.metrics")

KEY = "mms:metrics:{name}"
JOB_COUNTERS = {
    "mm_performance_snapshot_total": "Performance snapshot rows written, by symbol.",
    "mm_performance_rollup_total": "Daily performance rollups of a symbol.",
}


def count_job(name: str, by_symbol: Mapping[str, int]) -> None:
    """Adds to a job counter; a metrics outage never fails the job."""
    if name not in JOB_COUNTERS:
        raise ValueError(f"no job counter {name!r}")
    increments = {symbol: n for symbol, n in by_symbol.items() if n}
    if not increments:
        return
    try:
        pipe = redis_client().pipeline()
        for symbol, n in increments.items():
            pipe.hincrby(KEY.format(name=name), symbol, n)
        pipe.execute()
    except Exception:
        logger.exception("could not count %s", name)


class JobMetricsCollector(Collector):
    """The job counters from Redis; settlements by status and the latest Q-scores
    from the database."""

    def describe(self) -> Iterator[Metric]:
        """The families without values: registering must not touch Redis or the DB."""
        for name, documentation in JOB_COUNTERS.items():
            yield CounterMetricFamily(name.removesuffix("_total"), documentation, labels=["symbol"])
        yield GaugeMetricFamily("mm_settlement_count", "", labels=["status"])
        yield GaugeMetricFamily("mm_pool_q_score", "", labels=["symbol", "participant_id"])

    def collect(self) -> Iterator[Metric]:
        client = redis_client()
        for name, documentation in JOB_COUNTERS.items():
            family = CounterMetricFamily(
                name.removesuffix("_total"), documentation, labels=["symbol"]
            )
            for symbol, value in sorted(client.hgetall(KEY.format(name=name)).items()):
                family.add_metric([_text(symbol)], float(value))
            yield family
        yield from self._database()

    @staticmethod
    def _database() -> Iterator[Metric]:
        from django.db.models import Count, Max, Q

        from performance.models import PerformanceDaily
        from settlements.enums import SettlementState
        from settlements.models import Settlement

        counts = dict(
            Settlement.objects.values_list("state")
            .annotate(n=Count("id"))
            .values_list("state", "n")
        )
        settlements = GaugeMetricFamily(
            "mm_settlement_count", "Settlements by status (the table).", labels=["status"]
        )
        for state in SettlementState.values:
            settlements.add_metric([state], counts.get(state, 0))
        yield settlements

        scores = GaugeMetricFamily(
            "mm_pool_q_score",
            "The latest day's Q-score (share of its symbol's pool, 0-1) per member.",
            labels=["symbol", "participant_id"],
        )
        latest = Q()
        for row in PerformanceDaily.objects.values("symbol").annotate(day=Max("day")):
            latest |= Q(symbol=row["symbol"], day=row["day"])
        if latest:
            rows = PerformanceDaily.objects.filter(latest).values_list(
                "symbol", "participant_id", "q_score"
            )
            for symbol, pid, q in rows:
                scores.add_metric([symbol, str(pid)], float(q))
        yield scores


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
