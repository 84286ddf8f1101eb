"""Small pieces every app's API uses: the error response schema, the strict
request and query serializers, and the patterns they publish.

The contract (issue 19, item 9): what the OpenAPI document says a request may
be is exactly what is accepted. A JSON body's values must have the JSON type
the schema names (DRF alone would take 0 for a string and "5" for an integer),
strings must match the pattern the schema publishes, bodies may not carry keys
the schema does not declare. `common/schema.py` publishes the same patterns
from the same functions, so the two cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import generics, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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

ERROR_DESCRIPTIONS = {
    400: "the request breaks the contract (a type, pattern, bound, enum or unknown field); "
    "`errors` names each field at fault",
    401: "no bearer token, or an invalid or expired one",
    403: "the token's roles do not allow this",
    404: "no such object (or no such route)",
    406: "the Accept header names no media type this route answers",
    409: "illegal in the current state; `current_state` says which",
    414: "the request line (path and query) is longer than the server takes",
    415: "the body is not application/json",
    422: "well formed, but refused for what it means given the data (an unknown symbol or "
    "participant, from not before to, a name that is not the caller's); `errors` names "
    "each field at fault",
    431: "the headers are larger than the server takes",
    503: "a dependency (the Auth Service) is unavailable",
}


def error_responses(*statuses: int) -> dict[int, Any]:
    return {
        s: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[s]) for s in statuses
    }


# --- the syntax a string must have --------------------------------------------------


def _ranges(codes: list[int]) -> str:
    """A regex character class body for `codes`, as \\uXXXX ranges."""
    parts, start = [], None
    for i, code in enumerate(codes):
        start = code if start is None else start
        if i + 1 == len(codes) or codes[i + 1] != code + 1:
            parts.append(f"\\u{start:04x}" + (f"-\\u{code:04x}" if code != start else ""))
            start = None
    return "".join(parts)


# What str.strip() takes away, spelled out: a schema's `\s` means one thing to
# Python's re and another to an ECMA engine (U+001C-U+001F, U+0085, U+FEFF).
WHITESPACE = _ranges([c for c in range(0x3001) if chr(c).isspace()])  # U+3000 is the last
# No NUL (PostgreSQL cannot store it); not blank: at least one character that is
# neither whitespace nor NUL (DRF strips a string before it checks for blank).
NO_NUL = r"^[^\u0000]*$"
NOT_BLANK = rf"^[^\u0000]*[^\u0000{WHITESPACE}][^\u0000]*$"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_INTEGER = re.compile(r"-?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339, as `format: date-time` says, in the spelling Django parses: T and Z upper case.
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def pattern_matches(pattern: str, value: str) -> bool:
    """Whether `value` matches a published pattern as a JSON Schema validator reads
    it (ECMA-262): `$` is the end of the string, not also the place before a final
    newline, as Python's re has it ("BTCUSDT-PERP\\n" does not match ^...$)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.search(pattern, value) is not None


def format_parameter(
    request: Any, format_kwarg: str | None, *, formats: tuple[str, ...]
) -> str | None:
    """A view's `?format=`, one of `formats` (an empty one is a 400 too, not "no
    format"). URL_FORMAT_OVERRIDE is off, so that only the views that document the
    parameter (the statement, the schema) honour it."""
    value = request.query_params.get("format")
    if value is None:
        return format_kwarg
    if value not in formats:
        raise serializers.ValidationError({"format": [f"must be one of {', '.join(formats)}"]})
    return str(value)


def char_pattern(field: serializers.CharField) -> str:
    """The pattern a string field publishes: its own RegexValidator's, else no NUL
    and, unless it may be blank, one visible character."""
    for validator in field.validators:
        if isinstance(validator, RegexValidator) and not validator.inverse_match:
            regex = validator.regex
            return regex if isinstance(regex, str) else regex.pattern
    return NO_NUL if field.allow_blank else NOT_BLANK


def _power_of_ten(value: Decimal) -> int | None:
    exponent = value.log10() if value > 0 else None
    if exponent is None or exponent != exponent.to_integral_value():
        return None
    return int(exponent)


def decimal_pattern(field: serializers.DecimalField) -> str:
    """The decimal strings `field` takes: plain notation, no '+', no leading zeros,
    at most its whole digits and decimal places, with its bounds where a pattern
    can say them. Supported bounds: no lower bound, 0 (no sign) or a positive one
    no larger than the field's step (at least one non-zero digit); no upper bound
    or a power of ten. Others raise ImproperlyConfigured: a bound the schema
    cannot publish would be a refusal it does not announce."""
    places = field.decimal_places or 0
    whole = _whole_digits(field)
    low, high = field.min_value, field.max_value
    fraction = rf"(?:\.[0-9]{{1,{places}}})?" if places else ""
    alternatives = []
    if high is not None:
        power = _power_of_ten(Decimal(high))
        if power is None:
            raise ImproperlyConfigured(f"{field!r}: the upper bound must be a power of ten")
        if power < whole:
            whole = power
            alternatives.append("1" + "0" * power + (rf"(?:\.0{{1,{places}}})?" if places else ""))
    if low is None or Decimal(low) < 0:
        if low is not None:
            raise ImproperlyConfigured(f"{field!r}: a negative lower bound has no pattern")
        sign = "-?"
    else:
        sign = ""
    leading = rf"[1-9][0-9]{{0,{whole - 1}}}" if whole > 0 else None
    if low is not None and Decimal(low) > 0:
        if Decimal(low) > Decimal(1).scaleb(-places):
            raise ImproperlyConfigured(f"{field!r}: a lower bound above the step has no pattern")
        small = [
            "0" * zeros
            + "[1-9]"
            + (rf"[0-9]{{0,{places - 1 - zeros}}}" if zeros < places - 1 else "")
            for zeros in range(places)
        ]
        if leading is not None:
            alternatives.insert(0, leading + fraction)
        if small:
            alternatives.insert(1 if leading else 0, r"0\.(?:" + "|".join(small) + ")")
    else:
        integer = f"(?:0|{leading})" if leading else "0"
        alternatives.insert(0, integer + fraction)
    return "^" + sign + "(?:" + "|".join(alternatives) + ")$"


def _whole_digits(field: serializers.DecimalField) -> int:
    return (field.max_digits - (field.decimal_places or 0)) if field.max_digits else 30


def _decimal_description(field: serializers.DecimalField) -> str:
    text = (
        f"a decimal string in plain notation (e.g. 12.5): at most {_whole_digits(field)} "
        f"digits before the point and {field.decimal_places or 0} after"
    )
    if field.min_value is not None:
        text += ", more than 0" if Decimal(field.min_value) > 0 else ", not negative"
    if field.max_value is not None:
        text += f", at most {field.max_value}"
    return text


def contract_error(
    field: serializers.Field[Any, Any, Any, Any], value: Any, *, body: bool
) -> str | None:
    """Why the raw `value` breaks what the schema publishes for `field`, or None.
    `body`: a JSON body's value (typed); otherwise a query string's (a str)."""
    if value is None:
        return None  # the field's allow_null decides, and the schema says nullable
    if isinstance(field, serializers.BooleanField):
        ok = isinstance(value, bool) if body else value in ("true", "false")
        return None if ok else "must be true or false"
    if isinstance(field, serializers.IntegerField):
        if body:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = bool(_INTEGER.fullmatch(value))
        return None if ok else "must be an integer"
    if not isinstance(value, str):
        return "must be a string" if _takes_string(field) else None
    if value == "" and not (isinstance(field, serializers.CharField) and field.allow_blank):
        return "may not be empty"  # DRF would take an empty query value as no value
    if isinstance(field, serializers.DecimalField):
        if not pattern_matches(decimal_pattern(field), value):
            return f"must be {_decimal_description(field)}, got {value!r}"
    elif isinstance(field, serializers.CharField):
        pattern = char_pattern(field)
        if not pattern_matches(pattern, value):
            if pattern == NOT_BLANK:
                return "may not be blank or contain NUL characters"
            if pattern == NO_NUL:
                return "may not contain NUL characters"
            return f"must match {pattern}, got {value!r}"
        if field.max_length is not None and len(value) > field.max_length:
            return f"must have at most {field.max_length} characters"
    elif isinstance(field, serializers.UUIDField):
        return None if _UUID.fullmatch(value) else "must be a UUID (8-4-4-4-12 hex digits)"
    elif isinstance(field, serializers.DateField) and not _DATE.fullmatch(value):
        return "must be a date, YYYY-MM-DD"
    elif isinstance(field, serializers.DateTimeField) and not _DATETIME.fullmatch(value):
        return "must be an RFC 3339 date-time with its offset, e.g. 2026-01-31T08:00:00Z"
    return None


def _takes_string(field: serializers.Field[Any, Any, Any, Any]) -> bool:
    return isinstance(
        field,
        serializers.CharField
        | serializers.ChoiceField
        | serializers.DecimalField
        | serializers.UUIDField
        | serializers.DateField
        | serializers.DateTimeField,
    )


class InputSerializer(serializers.Serializer[Any]):
    """A JSON request body: each value of the JSON type and pattern given here, and no
    key that is not a property here."""

    # Held to its schema (common/schema.py publishes it as additionalProperties:
    # false, patterns, minProperties): a typo must not look like success, and 0 is
    # not a string. `min_fields`: how many keys it needs at least.
    min_fields: ClassVar[int] = 0

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return super().to_internal_value(data)  # DRF: "expected a dictionary"
        errors: dict[str, Any] = {
            name: ["is not a field of this request (or cannot be changed)"]
            for name in sorted(set(data) - set(self.fields))
        }
        for name, field in self.fields.items():
            if name in data and not field.read_only:
                problem = contract_error(field, data[name], body=True)
                if problem:
                    errors[name] = [problem]
        if len(data) < self.min_fields:
            errors["non_field_errors"] = [
                f"give at least {self.min_fields} of: {', '.join(self.fields)}"
            ]
        if not errors:
            return super().to_internal_value(data)
        # Name every field at fault at once: DRF's own checks (required, bounds) of the rest.
        rest = {name: value for name, value in data.items() if name in self.fields}
        for name in errors:
            rest.pop(name, None)
        try:
            super().to_internal_value(rest)
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict):
                errors = {**exc.detail, **errors}
        raise serializers.ValidationError(errors)


class QuerySerializer(serializers.Serializer[Any]):
    """Query parameters held to their schema: integers, booleans, dates and
    strings as the schema publishes them (DRF alone would take "5.0", "yes",
    "20260101" and a symbol with spaces around it)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors = {
                name: [problem]
                for name, field in self.fields.items()
                if name in data
                and (problem := contract_error(field, data[name], body=False)) is not None
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


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


class ListApi(generics.ListAPIView):
    """A list route held to its contract: the syntax of its page, page size and
    ordering is checked before anything reads data, so a malformed request is a
    400 even when it also names something unknown (which alone is a 422)."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        check = getattr(self.paginator, "check_parameters", None)
        if check is not None:
            check(request)
        for backend in self.filter_backends:
            check = getattr(backend(), "check_parameters", None)
            if check is not None:
                check(request, self)


class JsonErrorsMixin(APIView):
    """For a view that answers other media types (CSV, HTML, YAML): its errors are
    still the one JSON body, whatever format was asked for."""

    def handle_exception(self, exc: Exception) -> Response:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)
