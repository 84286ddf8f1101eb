"""Faults the Order Service stand-in injects (POST /admin/faults): latency,
5xx before or after acting, a hang after accepting, a connection reset, venue
rejects and a rate limit, on chosen routes and accounts. Every faulted request
draws the same five numbers from one `random.Random(seed)` in a fixed order,
so a seed and a request sequence replay the same faults.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from simulator.venue import BadRequest

# The routes of the production contract, by the names used in faults, stats and the log.
VENUE_ROUTES = frozenset(
    {"place", "cancel", "cancel_all", "open_orders", "query", "snapshot", "dead_man_switch"}
)


@dataclass(slots=True)
class RateLimit:
    requests: int
    per_seconds: float
    routes: frozenset[str]
    sent: deque[float] = field(default_factory=deque)

    def retry_after(self, now: float) -> int | None:
        """Seconds to wait when over the limit (the request is refused), else None."""
        while self.sent and self.sent[0] <= now - self.per_seconds:
            self.sent.popleft()
        if len(self.sent) >= self.requests:
            return max(1, math.ceil(self.sent[0] + self.per_seconds - now))
        self.sent.append(now)
        return None


@dataclass(slots=True)
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0  # 503 before anything is done
    error_after_accept_rate: float = 0.0  # done, then 500
    timeout_after_accept_rate: float = 0.0  # done, then no answer for hang_ms
    hang_ms: float = 10_000.0
    reset_rate: float = 0.0  # done, then the connection is closed mid-response
    reject_rate: float = 0.0  # placements refused with VENUE_REJECT
    routes: frozenset[str] = VENUE_ROUTES  # where the probabilistic faults apply
    # Only requests for these accounts suffer them (None: every account's).
    accounts: frozenset[str] | None = None
    rate_limit: RateLimit | None = None
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    RATES = (
        "error_rate",
        "error_after_accept_rate",
        "timeout_after_accept_rate",
        "reset_rate",
        "reject_rate",
    )

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Faults:
        known = {*cls.RATES, "latency_ms", "hang_ms", "routes", "accounts", "rate_limit", "seed"}
        unknown = set(body) - known
        if unknown:
            raise BadRequest(f"unknown fault keys: {sorted(unknown)}")
        faults = cls()
        for name in cls.RATES:
            value = body.get(name, 0.0)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise BadRequest(f"{name} must be a number in [0, 1]")
            setattr(faults, name, float(value))
        for name in ("latency_ms", "hang_ms"):
            value = body.get(name, getattr(faults, name))
            if not isinstance(value, int | float) or value < 0:
                raise BadRequest(f"{name} must be a number ≥ 0")
            setattr(faults, name, float(value))
        faults.routes = _routes(body.get("routes"), VENUE_ROUTES)
        accounts = body.get("accounts")
        if accounts is not None:
            if not isinstance(accounts, list) or not all(
                isinstance(a, str) and a for a in accounts
            ):
                raise BadRequest("accounts must be a list of account ids")
            faults.accounts = frozenset(accounts)
        limit = body.get("rate_limit")
        if limit is not None:
            if not isinstance(limit, dict):
                raise BadRequest("rate_limit must be an object")
            requests, per = limit.get("requests"), limit.get("per_seconds")
            if not isinstance(requests, int) or requests < 1:
                raise BadRequest("rate_limit.requests must be an integer ≥ 1")
            if not isinstance(per, int | float) or per <= 0:
                raise BadRequest("rate_limit.per_seconds must be > 0")
            # Like venues' order-count limits, only placements count unless told otherwise.
            routes = _routes(limit.get("routes"), frozenset({"place"}))
            faults.rate_limit = RateLimit(requests, float(per), routes)
        seed = body.get("seed")
        if seed is not None and not isinstance(seed, int):
            raise BadRequest("seed must be an integer")
        faults.seed = seed
        faults.rng = random.Random(seed)  # noqa: S311 - repeatable faults, not secrets
        return faults

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {name: getattr(self, name) for name in self.RATES}
        body.update(
            latency_ms=self.latency_ms,
            hang_ms=self.hang_ms,
            routes=sorted(self.routes),
            accounts=None if self.accounts is None else sorted(self.accounts),
            seed=self.seed,
            rate_limit=None,
        )
        if self.rate_limit is not None:
            body["rate_limit"] = {
                "requests": self.rate_limit.requests,
                "per_seconds": self.rate_limit.per_seconds,
                "routes": sorted(self.rate_limit.routes),
            }
        return body


def _routes(value: object, default: frozenset[str]) -> frozenset[str]:
    if value is None:
        return default
    if not isinstance(value, list) or not set(value) <= VENUE_ROUTES:
        raise BadRequest(f"routes must be a list drawn from {sorted(VENUE_ROUTES)}")
    return frozenset(value)
