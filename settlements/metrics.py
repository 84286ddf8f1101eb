"""Settlements by status, read from the table at scrape time (the web process's
/metrics; mms/urls_admin.py registers it)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from settlements.enums import SettlementState
from settlements.models import Settlement

DOCUMENTATION = "Settlements by status (the table)."


class SettlementMetricsCollector(Collector):
    def describe(self) -> Iterator[Metric]:
        """The family without values: registering must not touch the database."""
        yield GaugeMetricFamily("mm_settlement_count", DOCUMENTATION, labels=["status"])

    def collect(self) -> Iterator[Metric]:
        counts = dict(
            Settlement.objects.values_list("state")
            .annotate(n=Count("id"))
            .values_list("state", "n")
        )
        family = GaugeMetricFamily("mm_settlement_count", DOCUMENTATION, labels=["status"])
        for state in SettlementState.values:
            family.add_metric([state], counts.get(state, 0))
        yield family
