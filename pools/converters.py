"""URL path converters."""

from __future__ import annotations

from pools.models import SYMBOL_PATTERN


class SymbolConverter:
    """A trading symbol in a path; anything else (lower case, spaces, NUL bytes)
    is no route at all, so it answers 404 before any query runs."""

    regex = SYMBOL_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
