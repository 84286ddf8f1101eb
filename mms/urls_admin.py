"""The ops/finance panel, served on ADMIN_PORT only."""

from django.contrib import admin
from django.urls import path

from common.health import healthz

admin.site.site_header = "Market Maker Service"
admin.site.site_title = "MMS admin"
admin.site.index_title = "Pools, participants and settlements"

urlpatterns = [
    path("healthz", healthz),
    path("", admin.site.urls),
]
