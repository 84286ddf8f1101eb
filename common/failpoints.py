"""Failpoints: named steps of the quoting path where a test can make this process
die as a power cut would (SIGKILL: no cleanup, no goodbye), to prove what
survives a crash at exactly that step (issue 8, rows 5 and 7).

Off unless the environment names them when the process starts:

    MMS_FAILPOINTS="place.answered"        the first time the step is reached
    MMS_FAILPOINTS="fill.stored@3,x.y"     the third time; several, comma-separated

Unset, a failpoint costs one truth test of an empty frozenset. Names are
checked against `POINTS`, so a typo fails at start instead of testing nothing.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter

logger = logging.getLogger("mms.failpoints")

POINTS = {
    "place.recorded": "the order is on record (write-ahead), its request not sent",
    "place.answered": "the venue accepted the order, the answer not handled",
    "place.acked": "the accepted order's status is on record",
    "fill.stored": "a fill is on record, not yet applied nor its offset committed",
    "outbox.published": "the broker acknowledged an outbox batch, its rows not yet marked",
}


def _parse(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition("@")
        if name not in POINTS:
            known = ", ".join(sorted(POINTS))
            raise ValueError(f"MMS_FAILPOINTS: unknown failpoint {name!r} (known: {known})")
        if nth and (not nth.isdigit() or int(nth) < 1):
            raise ValueError(f"MMS_FAILPOINTS: {item!r}: the count after @ must be ≥ 1")
        armed[name] = int(nth or 1)
    return armed


_ARMED = _parse(os.environ.get("MMS_FAILPOINTS", ""))
_NAMES = frozenset(_ARMED)
_reached: Counter[str] = Counter()


def failpoint(name: str) -> None:
    """Dies here if the environment armed `name` and this is its turn."""
    if not _NAMES or name not in _NAMES:
        return
    _reached[name] += 1
    if _reached[name] == _ARMED[name]:
        logger.warning("failpoint %s reached: SIGKILL", name)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
