"""The ops/finance panel, served on ADMIN_PORT only."""

import contextlib

from django.contrib import admin
from django.urls import include, path
from prometheus_client import REGISTRY

from common.health import healthz
from common.metrics import JobMetricsCollector
from performance.metrics import QScoreMetricsCollector
from settlements.metrics import SettlementMetricsCollector

admin.site.site_header = "Market Maker Service"
admin.site.site_title = "MMS admin"
admin.site.index_title = "Pools, participants and settlements"

# The scheduled jobs' counters and the outbox backlog (common/metrics.py), the
# settlement and Q-score gauges (the apps' own), exported by this process's
# /metrics. Registered once per process.
for collector in (JobMetricsCollector(), SettlementMetricsCollector(), QScoreMetricsCollector()):
    with contextlib.suppress(ValueError):  # already registered (URLconf reloaded in a test)
        REGISTRY.register(collector)

urlpatterns = [
    path("healthz", healthz),
    # Prometheus scrapes the web process here, on the internal ops port, not the public API.
    path("", include("django_prometheus.urls")),
    path("", admin.site.urls),
]
