"""The REST API, served on HTTP_PORT. The admin panel is not reachable here."""

from typing import Any

from django.urls import URLPattern, URLResolver, include, path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common.api import JsonErrorsMixin, format_parameter
from common.errors import json_not_found
from common.health import healthz, readyz
from pools.converters import SymbolConverter

register_converter(SymbolConverter, "symbol")


class SchemaApi(JsonErrorsMixin, SpectacularAPIView):
    """/v1/schema: YAML, or JSON with `?format=json` (or by the Accept header);
    errors in the one JSON body."""

    def perform_content_negotiation(self, request: Any, force: bool = False) -> Any:
        self.format_kwarg = format_parameter(request, self.format_kwarg, formats=("json", "yaml"))
        return super().perform_content_negotiation(request, force)


v1: list[URLPattern | URLResolver] = [
    path("", include("pools.api.urls")),
    path("", include("participants.api.urls")),
    path("", include("performance.api.urls")),
    path("", include("settlements.api.urls")),
    path("", include("trading.api.urls")),
    path("schema", SchemaApi.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", healthz),
    path("readyz", readyz),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("v1/", include(v1)),
    re_path(r"^v1/.*$", json_not_found),
]

handler400 = "common.errors.json_bad_request"
handler403 = "common.errors.json_permission_denied"
handler404 = "common.errors.json_not_found"
handler500 = "common.errors.json_server_error"
