"""The Order Service request budget (RELIABILITY.md "Rate limits").

A token bucket (`RateBudget`, defaults 20 tokens, refilled at 20/s, 5 held in
reserve). Placements, queries, open orders and snapshot requests take a token
only while more than `reserve` remain; cancels, cancel-alls and
dead-man's-switch renewals may take the last one. So a burst of placements
always leaves 5 requests for cancels at once. After a 429 the Retry-After
(seconds or an HTTP date; 1 s when absent, 60 s at most) closes the window
for that request class and every class of lower priority (place < query <
control < cancel): no such request leaves the client until it ends.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import IntEnum

DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 60.0
TOKEN_EPSILON = 1e-9


class RequestClass(IntEnum):
    """Priority of a request for the rate budget; higher may use the reserve."""

    PLACE = 0
    QUERY = 1  # queries, open orders, snapshot requests
    CONTROL = 2  # dead-man's-switch renewals
    CANCEL = 3  # cancels and cancel-alls

    @property
    def uses_reserve(self) -> bool:
        return self >= RequestClass.CONTROL


class RateBudget:
    """A token bucket with a reserve only cancels and renewals may spend, and
    per-class windows closed by a venue's 429 Retry-After."""

    def __init__(
        self,
        *,
        rate_per_s: float = 20.0,
        burst: int = 20,
        reserve: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or not 0 <= reserve < burst:
            raise ValueError("need rate_per_s > 0, burst ≥ 1 and 0 ≤ reserve < burst")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.reserve = reserve
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._refilled = clock()
        self._closed_until = dict.fromkeys(RequestClass, 0.0)
        # Requests of a class that found no token wait here, first come first
        # served, and one watcher task per class watches the bucket for them. It
        # hands out every token the bucket holds when it wakes: one at a time, a
        # backlog was served at one request per turn of a busy event loop (about
        # 30 a second at 200 pools, against a budget of 1,000: bench/load.py).
        # Only the watcher watches: every waiter polling the bucket woke
        # thousands of tasks per refill and starved the loop.
        self._waiting: dict[RequestClass, deque[asyncio.Future[None]]] = {
            kind: deque() for kind in RequestClass
        }
        self._watchers: dict[RequestClass, asyncio.Task[None]] = {}

    def closed_for(self, kind: RequestClass) -> float:
        """Seconds until a Retry-After window lets `kind` out again (0 when open)."""
        return max(0.0, self._closed_until[kind] - self._clock())

    def close(self, kind: RequestClass, seconds: float) -> None:
        """A 429 on `kind`: no request of it, or of any lower class, for `seconds`."""
        until = self._clock() + seconds
        for other in RequestClass:
            if other <= kind:
                self._closed_until[other] = max(self._closed_until[other], until)

    @property
    def waiting(self) -> int:
        """Requests waiting for a token, of every class."""
        return sum(len(queue) for queue in self._waiting.values())

    async def acquire(self, kind: RequestClass) -> None:
        """A token for one request of `kind`, in the order requests asked for one."""
        queue = self._waiting[kind]
        if not queue and self._take(kind):
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        watcher = self._watchers.get(kind)
        if watcher is None or watcher.done():
            self._watchers[kind] = asyncio.create_task(self._watch(kind))
        await turn  # cancelled: the watcher passes over it

    def _take(self, kind: RequestClass) -> bool:
        """One token for `kind` if its window is open and the bucket has one above
        the class's floor (the reserve is for cancels and renewals)."""
        if self.closed_for(kind) > 0:
            return False
        self._refill()
        # (A refill computed to the token can land a rounding error short.)
        if self._tokens >= self._floor(kind) + 1 - TOKEN_EPSILON:
            self._tokens = max(0.0, self._tokens - 1)
            return True
        return False

    def _floor(self, kind: RequestClass) -> int:
        return 0 if kind.uses_reserve else self.reserve

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(
            float(self.burst), self._tokens + (now - self._refilled) * self.rate_per_s
        )
        self._refilled = now

    async def _watch(self, kind: RequestClass) -> None:
        queue = self._waiting[kind]
        while queue:
            wait = self.closed_for(kind)
            if wait > 0:
                await self._sleep(wait)
                continue
            while queue and (queue[0].done() or self._take(kind)):
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
            if queue:
                await self._sleep((self._floor(kind) + 1 - self._tokens) / self.rate_per_s)


def retry_after_seconds(value: str | None) -> float:
    """Retry-After as seconds (delta-seconds or an HTTP date), within [0, 60]."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_S
        seconds = when.timestamp() - time.time()
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))
