"""Retention of mm_orders (SPEC Part B.18): terminal orders are deleted once
closed longer than ORDER_RETENTION_DAYS (default 30).

What is never deleted:
- an order that is not terminal (PENDING, OPEN, PARTIALLY_FILLED): the
  runquoter's restart rebuild reads them, and an order of unknown outcome
  stays PENDING until the venue says what became of it;
- an order with a fill: mm_fills keeps its order (`on_delete=PROTECT`) and
  fills are kept for settlement, so a filled order stays with them.
So what goes is cancelled and rejected orders never filled: at full re-quote
rates nearly every row. The kept ones grow with the fills, which are kept by
design.

Deletion runs in batches of `batch` rows, each its own short statement (no
long lock; the quoting worker's writes go on between batches), oldest
`closed_at` first, by the `closed_at` index.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import connection
from django.utils import timezone

from trading.enums import OrderStatus

logger = logging.getLogger(__name__)

PRUNE_BATCH = 5_000
PRUNABLE = (OrderStatus.CANCELLED.value, OrderStatus.REJECTED.value, OrderStatus.FILLED.value)


def orders_prune(
    *, now: dt.datetime | None = None, keep: dt.timedelta | None = None, batch: int = PRUNE_BATCH
) -> int:
    """Deletes terminal, never-filled orders closed more than `keep`
    (ORDER_RETENTION) before `now`; returns how many went."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    cutoff = (now or timezone.now()) - (keep or settings.ORDER_RETENTION)
    removed = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM mm_orders WHERE id IN ("
                " SELECT o.id FROM mm_orders o"
                " WHERE o.closed_at < %s AND o.status = ANY(%s)"
                " AND NOT EXISTS (SELECT 1 FROM mm_fills f WHERE f.order_id = o.id)"
                " ORDER BY o.closed_at LIMIT %s)",
                [cutoff, list(PRUNABLE), batch],
            )
            removed += cursor.rowcount
            if cursor.rowcount < batch:
                break
    logger.info("orders pruned", extra={"removed": removed, "cutoff": cutoff.isoformat()})
    return removed
