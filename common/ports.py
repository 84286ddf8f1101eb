from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class PortRoutingMiddleware:
    """One process serves the API on HTTP_PORT and the admin panel on ADMIN_PORT.

    The port the connection arrived on (SERVER_PORT, set by the WSGI server
    from its own socket, not by the client) picks the URLconf, so the admin is
    reachable only on its own port.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.admin_port = str(settings.ADMIN_PORT)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("SERVER_PORT") == self.admin_port:
            request.urlconf = settings.ADMIN_URLCONF
        return self.get_response(request)
