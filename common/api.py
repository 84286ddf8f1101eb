"""Small pieces every app's API uses: the error response schema and base views."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "status": serializers.IntegerField(),
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
        "current_state": serializers.CharField(required=False),
    },
)


def error_responses(*statuses: int) -> dict[int, Any]:
    descriptions = {
        400: "invalid input; `errors` names each field at fault",
        401: "no bearer token, or an invalid or expired one",
        403: "the token's roles do not allow this",
        404: "no such object",
        409: "illegal in the current state; `current_state` says which",
        503: "a dependency (the Auth Service) is unavailable",
    }
    return {s: OpenApiResponse(ErrorSerializer, description=descriptions[s]) for s in statuses}


class InputSerializer(serializers.Serializer[Any]):
    """A request body that refuses keys it does not declare, naming each one,
    instead of silently dropping them (a typo must not look like success)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        data = self.initial_data
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: ["is not a field of this request (or cannot be changed)"]
                        for name in unknown
                    }
                )
        return attrs


class ReasonSerializer(InputSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class NoteSerializer(InputSerializer):
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="review note; required to resume a HALTED pool",
    )
