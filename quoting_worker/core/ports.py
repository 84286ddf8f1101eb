"""What the core needs from outside, as small protocols (adapters implement them)."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the epoch; never goes backwards within a run."""
        ...


class FakeClock:
    """A clock that moves only when told: deterministic, replayable runs and tests."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance(self, ns: int) -> int:
        if ns < 0:
            raise ValueError("a clock never goes backwards")
        self._now += ns
        return self._now

    def set(self, now_ns: int) -> None:
        self._now = max(self._now, now_ns)
