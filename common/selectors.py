"""Query helpers every app's selectors share."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


def filter_given(queryset: QuerySet[M], **lookups: Any) -> QuerySet[M]:
    """Applies each lookup whose value was given (is not None): optional filters
    of a list route in one line instead of one `if` each."""
    given = {name: value for name, value in lookups.items() if value is not None}
    return queryset.filter(**given) if given else queryset
