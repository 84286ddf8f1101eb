"""The live status record's place and shape on the wire (SPEC Part B.10): the
worker that hosts a pool writes one JSON record per pool to Redis under
`status_key(symbol)`, at least every second, with an expiry of
LIVE_TTL_SECONDS; the API and the performance snapshots read it. A missing
record means no worker hosts the pool (the API says "down").

The record's fields are the engine's status (quoting_worker/core/status)
with the worker's id, a version and a timestamp; this module owns only what
the writer and the readers must agree on.
"""

from __future__ import annotations

import json
from typing import Any

LIVE_STATUS_KEY = "mms:live:pool:{symbol}"
LIVE_TTL_SECONDS = 3  # published every second: two missed beats and the pool reads "down"


def status_key(symbol: str) -> str:
    return LIVE_STATUS_KEY.format(symbol=symbol)


def status_payload(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def status_parse(raw: str | bytes | None) -> dict[str, Any] | None:
    """The record as published, or None when there is none (the worker is down)."""
    return None if raw is None else dict(json.loads(raw))
