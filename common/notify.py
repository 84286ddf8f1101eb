"""Wake-up calls from the web process to the quoting workers, over Redis.

The database row is the authority for a pool's state and configuration
(SPEC Part B.9); a notification only says "symbol X changed, read it again",
so a lost message delays a change until the worker's periodic re-read, and a
duplicate one changes nothing. A state change also names the new state, so a
worker can close the gate on a pause or halt before it re-reads the row (it
never opens one on a notice's word). Sent after the transaction commits, never
for a change that rolled back.
"""

from __future__ import annotations

import json
import logging

from django.db import transaction

from common.redis import redis_client
from telemetry import tracing

logger = logging.getLogger("mms.notify")

POOL_CHANGED_CHANNEL = "mms:pool-changed"
FLATTEN_CHANNEL = "mms:flatten"


def _publish(channel: str, payload: dict[str, object]) -> None:
    try:
        redis_client().publish(channel, json.dumps(payload))
    except Exception:
        logger.warning("could not notify %s of %s", channel, payload, exc_info=True)


def notify_pool_changed(*, symbol: str, reason: str, state: str | None = None) -> None:
    notice: dict[str, object] = {"symbol": symbol, "reason": reason}
    if state is not None:
        notice["state"] = state
    trace = tracing.carrier()
    if trace:  # the worker applies the change under the caller's trace
        notice["trace"] = trace
    transaction.on_commit(lambda: _publish(POOL_CHANGED_CHANNEL, notice))


def notify_flatten(*, request_id: int) -> None:
    transaction.on_commit(lambda: _publish(FLATTEN_CHANNEL, {"flatten_request_id": request_id}))
