"""Deleting many rows without a long lock: one short statement at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection


def delete_in_batches(sql: str, params: Sequence[Any], batch: int) -> int:
    """Runs `sql`, a DELETE of at most `batch` rows whose last parameter is that
    LIMIT (`params` without it), until a run deletes fewer; each run commits on
    its own under autocommit. Returns how many rows went."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    removed = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, batch])
            removed += cursor.rowcount
            if cursor.rowcount < batch:
                return removed
