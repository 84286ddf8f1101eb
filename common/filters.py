"""List filters held to their published contract (issue 19, item 9).

`StrictOrderingFilter`: `?ordering=` is one of the view's `ordering_fields`, `-`
for descending, published as an enum; anything else is a 400 naming the
parameter (DRF's OrderingFilter silently ignores what it does not know, so a
typo looks like the default order). A view without `ordering_fields` offers no
ordering and ignores the parameter, as any unknown one.

`StrictFilterSet` (and `StrictDjangoFilterBackend`, which builds the
`filterset_fields` of a view on it): django-filter takes an empty value, or a
boolean it cannot read, as no filter at all; here each is a 400 naming the
parameter, as the published schema (a boolean, an enum value) says.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from rest_framework import serializers
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request


def _choices(view: Any) -> list[str]:
    fields = getattr(view, "ordering_fields", None) or []
    return [choice for name in fields for choice in (name, f"-{name}")]


class StrictOrderingFilter(OrderingFilter):
    def check_parameters(self, request: Request, view: Any) -> None:
        """400 for an ordering the view does not publish."""
        choices = _choices(view)
        raw = request.query_params.get(self.ordering_param)
        if raw is not None and choices and raw not in choices:
            raise serializers.ValidationError(
                {self.ordering_param: [f"must be one of {', '.join(choices)}, got {raw!r}"]}
            )

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> Any:
        self.check_parameters(request, view)
        raw = request.query_params.get(self.ordering_param)
        if raw is None or not _choices(view):
            return self.get_default_ordering(view)
        return [raw]

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        choices = _choices(view)
        if not choices:
            return []
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "sort field, '-' for descending",
                "schema": {"type": "string", "enum": choices},
            }
        ]


class StrictFilterSet(filters.FilterSet):
    def is_valid(self) -> bool:
        valid: bool = self.form.is_valid()
        if not self.is_bound:
            return valid
        for name, filter_ in self.filters.items():
            if name not in self.data:
                continue
            raw = self.data.get(name)
            problem = None
            if raw == "":
                problem = "may not be empty"
            elif isinstance(filter_, filters.BooleanFilter) and raw not in ("true", "false"):
                problem = "must be true or false"
            if problem is not None:
                self.form.add_error(name, ValidationError(problem, code="invalid"))
                valid = False
        return valid


class StrictDjangoFilterBackend(filters.DjangoFilterBackend):
    filterset_base = StrictFilterSet
