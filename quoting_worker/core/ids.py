"""Client order ids: `mm-{short_id}-{symbol}-{level}-{side}-{nanoseconds}`.

SPEC Part A "Order identity" and Part B.6. `short_id` is the first 8
characters of the participant id (unique across participants, checked at
enrolment); `level` is the ladder level (0 = best); `side` is BUY or SELL;
`nanoseconds` comes from the engine's clock port, made strictly increasing
within the process, so two orders never share an id even when the clock
repeats a value or steps back (a fake clock, an NTP correction).

The symbol may itself contain '-' (BTCUSDT-PERP), so `parse` reads the short
id from the front and level, side and nanoseconds from the back. The short id
may not contain '-', or the id could not be read back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

from quoting_worker.core.types import Side

PREFIX = "mm"
MAX_HEADS = 100_000  # (member, symbol, level, side) heads remembered per process


class ParsedOrderId(NamedTuple):
    short_id: str
    symbol: str
    level: int
    side: Side
    ns: int


class ClientOrderIds:
    """Makes client order ids; one per process, shared by every engine in it."""

    __slots__ = ("_clock_ns", "_heads", "_last_ns", "_lock")

    def __init__(self, clock_ns: Callable[[], int], *, after_ns: int = -1) -> None:
        """`after_ns`: every id's nanoseconds exceed it (e.g. the last id issued before)."""
        self._clock_ns = clock_ns
        self._last_ns = after_ns
        self._lock = threading.Lock()
        # Each (short id, symbol, level, side)'s id up to the nanoseconds, checked
        # and formatted once: the quote path only appends the nanoseconds.
        self._heads: dict[tuple[str, str, int, Side], str] = {}

    @property
    def last_ns(self) -> int:
        """The nanoseconds of the last id made (or `after_ns` before the first)."""
        return self._last_ns

    def next_ns(self) -> int:
        """max(clock, last + 1): strictly increasing, and never below 0."""
        with self._lock:
            ns = max(self._clock_ns(), self._last_ns + 1, 0)
            self._last_ns = ns
            return ns

    def new(self, *, short_id: str, symbol: str, level: int, side: Side) -> str:
        """A fresh client order id for this member, symbol, level and side."""
        key = (short_id, symbol, level, side)
        head = self._heads.get(key)
        if head is None:
            head = order_id_head(short_id=short_id, symbol=symbol, level=level, side=side)
            if len(self._heads) >= MAX_HEADS:
                self._heads.clear()
            self._heads[key] = head
        return head + str(self.next_ns())


def format_order_id(*, short_id: str, symbol: str, level: int, side: Side, ns: int) -> str:
    """The id for these fields; refuses fields that `parse` could not read back."""
    if ns < 0:
        raise ValueError(f"nanoseconds must be ≥ 0, got {ns}")
    return order_id_head(short_id=short_id, symbol=symbol, level=level, side=side) + str(ns)


def order_id_head(*, short_id: str, symbol: str, level: int, side: Side) -> str:
    """The id up to its nanoseconds (`mm-{short_id}-{symbol}-{level}-{side}-`)."""
    if not short_id or "-" in short_id:
        raise ValueError(f"short id must be non-empty and without '-', got {short_id!r}")
    if not symbol:
        raise ValueError("symbol must be non-empty")
    if level < 0:
        raise ValueError(f"level must be ≥ 0, got {level}")
    return f"{PREFIX}-{short_id}-{symbol}-{level}-{Side(side).value}-"


def parse(client_order_id: str) -> ParsedOrderId:
    """The fields of an id made by `format_order_id`; ValueError for anything else."""
    head = client_order_id.split("-", 2)
    tail = client_order_id.rsplit("-", 3)
    if len(head) != 3 or len(tail) != 4 or head[0] != PREFIX:
        raise ValueError(f"not an MMS client order id: {client_order_id!r}")
    short_id = head[1]
    level_text, side_text, ns_text = tail[1], tail[2], tail[3]
    # The symbol lies between the short id and the level.
    start = len(PREFIX) + 1 + len(short_id) + 1
    end = len(tail[0])
    symbol = client_order_id[start:end]
    if (
        not short_id
        or start > end
        or not symbol
        or side_text not in Side.__members__
        or not _is_canonical_int(level_text)
        or not _is_canonical_int(ns_text)
    ):
        raise ValueError(f"not an MMS client order id: {client_order_id!r}")
    return ParsedOrderId(short_id, symbol, int(level_text), Side(side_text), int(ns_text))


def _is_canonical_int(text: str) -> bool:
    """ASCII digits, no sign, no leading zero: exactly what str(int) writes for n ≥ 0."""
    return text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")


class RecentIds:
    """The last `capacity` ids added, for telling a redelivery from a new one in
    bounded memory (a set that forgets its oldest id). Redeliveries come from the
    offsets not yet committed, seconds of traffic, so a window of many thousands
    holds every one; the database's unique key stays the final word."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, not {capacity}")
        self.capacity = capacity
        self._ids: dict[str, None] = {}  # insertion-ordered: the oldest first

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, key: str) -> None:
        if key in self._ids:
            return
        self._ids[key] = None
        if len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]
