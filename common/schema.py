"""drf-spectacular: the OpenAPI document as a precise contract (issue 19, item 9).

`ContractAutoSchema` publishes what the API enforces (common/api.py): request
bodies closed (`additionalProperties: false`, `minProperties`), the patterns of
strings and decimals, and every error status an operation can answer, so a
view cannot forget one: 401, 403 and 503 where a token is needed, 404 where the
path names an object, 400 where there is a body or a query parameter, 415 where
there is a body, 422 on a paginated list (a page past the last one), and
everywhere 406 (content negotiation), 414 and 431 (the server's size limits).
Views add 409 and 422 themselves (`error_responses`), where their services or
data can refuse.

`AuthServiceAuthenticationScheme` describes the bearer-JWT scheme.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from rest_framework import serializers

from common.api import (
    ERROR_DESCRIPTIONS,
    ErrorSerializer,
    InputSerializer,
    char_pattern,
    decimal_pattern,
)


class AuthServiceAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "common.auth.AuthServiceAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT issued by the Auth Service; roles ops, finance, lp, viewer.",
        }


class ContractAutoSchema(AutoSchema):
    def _map_serializer(
        self, serializer: Any, direction: Any, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction != "request":
            return schema
        serializer = force_instance(serializer)
        properties = schema.get("properties", {})
        for name, field in serializer.fields.items():
            prop = properties.get(name)
            if not isinstance(prop, dict) or "$ref" in prop or "oneOf" in prop:
                continue
            if isinstance(field, serializers.DecimalField):
                prop["pattern"] = decimal_pattern(field)
            elif isinstance(field, serializers.CharField) and "pattern" not in prop:
                prop["pattern"] = char_pattern(field)
        if isinstance(serializer, InputSerializer):
            schema["additionalProperties"] = False
            if serializer.min_fields:
                schema["minProperties"] = serializer.min_fields
        return schema

    def _get_request_body(self, direction: Any = "request") -> dict[str, Any] | None:
        body: dict[str, Any] | None = super()._get_request_body(direction)
        if body is None:
            return None
        serializer = force_instance(self.get_request_serializer())
        if isinstance(serializer, InputSerializer) and serializer.min_fields:
            body["required"] = True  # an absent body has fewer keys than minProperties
        return body

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
    ) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(
            path, path_regex, path_prefix, method, registry
        )
        if operation is None:
            return None
        parameters = operation.get("parameters", [])
        statuses = {406, 414, 431}  # content negotiation; gunicorn's size limits
        if operation.get("security"):
            statuses |= {401, 403, 503}
        if any(p.get("in") == "path" for p in parameters):
            statuses.add(404)
        if "requestBody" in operation:
            statuses |= {400, 415}
        if any(p.get("in") == "query" for p in parameters):
            statuses.add(400)
        if self._is_list_view() and self._get_paginator() is not None:
            statuses.add(422)  # a page past the last one
        responses: dict[str, Any] = operation["responses"]
        missing = sorted(statuses - {int(code) for code in responses})
        if missing:
            ref = self.resolve_serializer(ErrorSerializer, "response").ref
            for code in missing:
                responses[str(code)] = {
                    "content": {"application/json": {"schema": ref}},
                    "description": ERROR_DESCRIPTIONS[code],
                }
            operation["responses"] = dict(sorted(responses.items()))
        return operation
