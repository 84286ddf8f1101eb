from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.views import APIView

MAX_PAGE_SIZE = 500


class StrictPageNumberPagination(PageNumberPagination):
    """Page-number pagination that answers 400 naming the parameter for a bad
    page or page size, instead of silently clamping or answering 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def paginate_queryset(
        self, queryset: Any, request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        for name, upper in (("page_size", MAX_PAGE_SIZE), ("page", None)):
            raw = request.query_params.get(name)
            if raw is None:
                continue
            if not raw.isdigit() or int(raw) < 1 or (upper is not None and int(raw) > upper):
                bound = f"between 1 and {upper}" if upper else "a positive integer"
                raise serializers.ValidationError({name: [f"must be {bound}, got {raw!r}"]})
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise serializers.ValidationError({"page": [str(exc.detail)]}) from exc
