"""Page-number pagination held to its published contract: `page` ≥ 1 and
`page_size` 1–500 are in the OpenAPI document and anything else is a 400 naming
the parameter (never clamped); a page past the last one is a 422, since only
the data says where the last page is."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from common.exceptions import SEMANTIC

MAX_PAGE_SIZE = 500
_DIGITS = re.compile(r"[0-9]+")  # ASCII: str.isdigit() takes "²", which int() refuses


class StrictPageNumberPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    invalid_page_message = "there is no page {page_number}: {message}"

    def check_parameters(self, request: Request) -> None:
        """400 for a page or page size outside the published bounds."""
        for name, upper in (
            (self.page_size_query_param, MAX_PAGE_SIZE),
            (self.page_query_param, None),
        ):
            raw = request.query_params.get(name)
            if raw is None:
                continue
            if (
                not _DIGITS.fullmatch(raw)
                or int(raw) < 1
                or (upper is not None and int(raw) > upper)
            ):
                bound = f"an integer from 1 to {upper}" if upper else "an integer from 1"
                raise serializers.ValidationError({name: [f"must be {bound}, got {raw!r}"]})

    def paginate_queryset(
        self, queryset: Any, request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        self.check_parameters(request)
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise serializers.ValidationError({"page": [str(exc.detail)]}, code=SEMANTIC) from exc

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "page number, from 1; past the last page: 422",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"results per page, 1 to {MAX_PAGE_SIZE} (default {self.page_size})",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PAGE_SIZE,
                    "default": self.page_size,
                },
            },
        ]
