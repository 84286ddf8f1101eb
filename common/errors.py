"""One error body for every API failure:

    {"status": 409, "code": "illegal_transition", "message": "...",
     "errors": {"field": ["..."]}, ...extra}

`errors` names the fields at fault (`non_field_errors` for the body as a whole).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from common.exceptions import DomainError

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
        body = error_body(
            response.status_code,
            "validation_error",
            "the request is invalid",
            _field_errors(exc.detail),
        )
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


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        error_body(404, "not_found", f"no route {request.path}"), status=status.HTTP_404_NOT_FOUND
    )


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        error_body(500, "server_error", "internal error; the incident was logged"), status=500
    )
