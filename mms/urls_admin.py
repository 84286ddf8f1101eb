"""The ops/finance panel, served on ADMIN_PORT only."""

from django.contrib import admin
from django.urls import include, path

from common.health import healthz

admin.site.site_header = "Market Maker Service"
admin.site.site_title = "MMS admin"
admin.site.index_title = "Pools, participants and settlements"

urlpatterns = [
    path("healthz", healthz),
    # Prometheus scrapes the web process here, on the internal ops port, not the public API.
    path("", include("django_prometheus.urls")),
    path("", admin.site.urls),
]
