"""One error body for every API failure:

    {"status": 409, "code": "illegal_transition", "message": "...",
     "errors": {"field": ["..."]}, ...extra}

`errors` names the fields at fault (`non_field_errors` for the body as a whole).

Statuses: 400 when the request breaks the published contract (OpenAPI: a type,
a pattern, a bound, an enum, an unknown field); 422 when it fits the contract
but its meaning is refused (every error carries the code SEMANTIC: an unknown
symbol, from ≥ to); 409 for an object's state. The same body answers failures
raised outside the API's views under /v1: no route (404), a method the route
does not take (405), a CSRF refusal (403), a request Django itself refuses
(400) and a server error (500); `ApiErrorBodyMiddleware` is the net under them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import wraps
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views import csrf
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from common.exceptions import SEMANTIC, DomainError

logger = logging.getLogger("mms.api")


def error_body(
    status_code: int,
    code: str,
    message: str,
    errors: dict[str, list[str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "status": status_code,
        "code": code,
        "message": message,
        "errors": errors or {},
        **extra,
    }


def _field_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for name, value in detail.items():
            key = "non_field_errors" if name == "__all__" else str(name)
            if isinstance(value, dict):
                for sub, msgs in _field_errors(value).items():
                    out[f"{key}.{sub}"] = msgs
            elif isinstance(value, list):
                out[key] = [str(v) for v in value]
            else:
                out[key] = [str(value)]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [str(v) for v in detail]}
    return {"non_field_errors": [str(detail)]}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        errors = {exc.field: [exc.message]} if exc.field else {}
        body = error_body(exc.status, exc.code, exc.message, errors, **exc.extra)
        return Response(body, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        errors = _field_errors(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
        return Response(
            error_body(400, "validation_error", "the request is invalid", errors), status=400
        )
    if isinstance(exc, IntegrityError):
        # Serializers and services check first; this is the race they lost.
        cause = getattr(exc, "__cause__", None)
        constraint = getattr(getattr(cause, "diag", None), "constraint_name", None) or "unknown"
        logger.warning("integrity error on constraint %s", constraint)
        unique = getattr(cause, "sqlstate", None) == "23505"
        status_code = 409 if unique else 400
        return Response(
            error_body(
                status_code,
                "duplicate" if unique else "constraint_violation",
                f"the change conflicts with existing data (constraint {constraint})",
                constraint=constraint,
            ),
            status=status_code,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        if _only_semantic(exc.get_codes()):
            response.status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
            code, message = "unprocessable", "the request is well formed but cannot be processed"
        else:
            code, message = "validation_error", "the request is invalid"
        body = error_body(response.status_code, code, message, _field_errors(exc.detail))
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        message = str(detail) if not isinstance(detail, dict | list) else "request failed"
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else str(exc.default_code)
        if isinstance(exc, exceptions.ParseError):
            code = "malformed_request"
        body = error_body(response.status_code, code, message)
    else:  # pragma: no cover - DRF only hands APIException and Http404 here
        return response
    response.data = body
    return response


def _codes(codes: Any) -> Iterator[str]:
    if isinstance(codes, dict):
        for value in codes.values():
            yield from _codes(value)
    elif isinstance(codes, list):
        for value in codes:
            yield from _codes(value)
    else:
        yield str(codes)


def _only_semantic(codes: Any) -> bool:
    """Every error of the request is one the schema cannot express (422, not 400)."""
    found = list(_codes(codes))
    return bool(found) and all(code == SEMANTIC for code in found)


# --- failures outside the API's views ---------------------------------------------


@csrf_exempt  # a bearer-token API: no route means 404 for every method, never a CSRF 403
def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        error_body(404, "not_found", f"no route {request.path}"), status=status.HTTP_404_NOT_FOUND
    )


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body(400, "bad_request", "the request is malformed"), status=400)


def json_permission_denied(
    request: HttpRequest, exception: Exception | None = None
) -> JsonResponse:
    return JsonResponse(error_body(403, "permission_denied", "not allowed"), status=403)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        error_body(500, "server_error", "internal error; the incident was logged"), status=500
    )


def _is_api(request: HttpRequest) -> bool:
    urlconf = getattr(request, "urlconf", None)
    return request.path.startswith("/v1/") and urlconf in (None, settings.ROOT_URLCONF)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the JSON body under /v1 (the API takes bearer tokens, and
    its views are exempt; this is the net), Django's own page for the admin."""
    if not _is_api(request):
        return csrf.csrf_failure(request, reason)
    return JsonResponse(error_body(403, "csrf_failed", f"CSRF check failed: {reason}"), status=403)


def json_methods(
    *methods: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A plain Django view that takes only `methods`: any other is a 405 in the one
    error body, with Allow (Django's require_http_methods answers an empty page)."""
    allowed = {m.upper() for m in methods}

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                response = JsonResponse(
                    error_body(405, "method_not_allowed", f'method "{request.method}" not allowed'),
                    status=405,
                )
                response["Allow"] = ", ".join(sorted(allowed))
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


class ApiErrorBodyMiddleware:
    """Under /v1 every error is the one JSON body. The handlers above cover what
    Django raises outside the views; this rewrites whatever else answers a 4xx or
    5xx that is not JSON (status and headers such as Allow kept), so no path
    through the middleware stack can answer an HTML error page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not _is_api(request)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        try:
            known = HTTPStatus(response.status_code)
            code, message = known.name.lower(), known.phrase.lower()
        except ValueError:
            code, message = "error", "request failed"
        replacement = JsonResponse(
            error_body(response.status_code, code, message), status=response.status_code
        )
        for header in ("Allow", "WWW-Authenticate", "Retry-After"):
            if header in response:
                replacement[header] = response[header]
        return replacement
