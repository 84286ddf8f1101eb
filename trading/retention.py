"""Retention of mm_orders (SPEC Part B.18): terminal orders are deleted once
closed longer than ORDER_RETENTION_DAYS (default 30).

What is never deleted: an order that is not terminal (PENDING, OPEN,
PARTIALLY_FILLED): the runquoter's restart rebuild reads them, and an order of
unknown outcome stays PENDING until the venue says what became of it.

Filled orders go too. Their fills stay (settlements and statements read
fills, never orders) with the order's client order id; only the link to the
deleted row is cleared (`MMFill.order`, SET_NULL), in the same statement.
Keeping filled orders was measured and refused (bench/retention.py): at a 1 %
fill rate the kept rows leave every page of the five indexes of mm_orders
1 % full, B-tree pages are recycled only when empty, and the indexes grew by
55 MB a day at 200,000 orders a day while the heap stayed flat.

Deletion runs in batches of `batch` rows, each one short statement (no long
lock; the quoting worker's writes go on between batches), oldest `closed_at`
first, by the `closed_at` index.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from common.batches import delete_in_batches
from trading.enums import TERMINAL_ORDER_STATUSES

logger = logging.getLogger(__name__)

PRUNE_BATCH = 5_000
PRUNABLE = sorted(status.value for status in TERMINAL_ORDER_STATUSES)


def orders_prune(
    *, now: dt.datetime | None = None, keep: dt.timedelta | None = None, batch: int = PRUNE_BATCH
) -> int:
    """Deletes terminal orders closed more than `keep` (ORDER_RETENTION) before
    `now` (their fills kept, unlinked); returns how many went."""
    cutoff = (now or timezone.now()) - (keep or settings.ORDER_RETENTION)
    removed = delete_in_batches(
        "WITH doomed AS ("
        " SELECT id FROM mm_orders WHERE closed_at < %s AND status = ANY(%s)"
        " ORDER BY closed_at LIMIT %s FOR UPDATE SKIP LOCKED),"
        " unlinked AS ("
        " UPDATE mm_fills SET order_id = NULL WHERE order_id IN (SELECT id FROM doomed))"
        " DELETE FROM mm_orders WHERE id IN (SELECT id FROM doomed)",
        [cutoff, PRUNABLE],
        batch,
    )
    logger.info("orders pruned", extra={"removed": removed, "cutoff": cutoff.isoformat()})
    return removed
