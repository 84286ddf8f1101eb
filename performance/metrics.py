"""The latest day's Q-score per member, read from the daily rollups at scrape
time (the web process's /metrics; mms/urls_admin.py registers it)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Max, Q
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from performance.models import PerformanceDaily

DOCUMENTATION = "The latest day's Q-score (share of its symbol's pool, 0-1) per member."
LABELS = ["symbol", "participant_id"]


class QScoreMetricsCollector(Collector):
    def describe(self) -> Iterator[Metric]:
        """The family without values: registering must not touch the database."""
        yield GaugeMetricFamily("mm_pool_q_score", DOCUMENTATION, labels=LABELS)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("mm_pool_q_score", DOCUMENTATION, labels=LABELS)
        latest = Q()
        for row in PerformanceDaily.objects.values("symbol").annotate(day=Max("day")):
            latest |= Q(symbol=row["symbol"], day=row["day"])
        if latest:
            rows = PerformanceDaily.objects.filter(latest).values_list(
                "symbol", "participant_id", "q_score"
            )
            for symbol, pid, q in rows:
                family.add_metric([symbol, str(pid)], float(q))
        yield family
