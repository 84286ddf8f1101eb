"""Rolling volatility σ of one symbol from its public trades, for the A-S model.

Units. σ is in PRICE UNITS per √HOUR (SPEC B.1: τ is in hours, so σ²·τ is a
price variance). The tracker takes prices as floats in price units — the
caller converts ticks × tick_size — and timestamps as integer nanoseconds.

Estimator: realised variance per unit time over the window,

    σ² = Σ (Δp)² / Σ Δt

where Δp is the price change between consecutive trades and Δt the time
between them in hours. Trades arrive at irregular intervals, so a plain
standard deviation of per-trade returns would measure "variance per trade",
which changes with the trade rate rather than with the market; dividing the
summed squared moves by the time they took gives variance per hour whatever
the spacing (for a Brownian price, E[(Δp)²] = σ²·Δt for each gap). A long
quiet gap counts with its full duration, so a silent market reads calm.

Window. An increment (Δp, Δt) belongs to the window while the later of its
two trades is inside (now − lookback, now]. Increments are evicted in order
on every `add_trade` and `sigma` call; Σ Δt may exceed the lookback by the
first increment's span, which is what the ratio needs (that move took that
long).

Warm-up. Until `min_samples` increments are in the window (zero moves count:
a trade at an unchanged price is evidence of calm), `sigma` returns None, or
`floor` when one is configured. Warmed up, it returns the estimate, or
max(floor, estimate) with a floor. It also returns None (or the floor) when
Σ Δt is 0 (every trade in the window shares one timestamp).

Precision. Σ Δt is kept exactly, as integer nanoseconds. Σ (Δp)² is a float
running sum that subtracts what it evicts, so on its own it could drift (a
huge move leaving the window would leave its rounding error behind, larger
than the small moves that remain). It is kept as a Neumaier-compensated sum,
which carries the rounding error of each addition and subtraction separately,
and is rebuilt exactly with `math.fsum` from the deque once as many
increments have been evicted as the deque holds (so the rebuild is amortised
O(1) per trade); a window holding only zero moves reads exactly 0.

Trades stamped before the last accepted trade are out of order: ignored and
counted in `out_of_order`.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["NS_PER_HOUR", "VolatilityTracker"]

NS_PER_HOUR = 3_600_000_000_000

# Below this many evictions a rebuild is not worth its call overhead.
_MIN_REBUILD_EVICTIONS = 64
_CANCELLATION_RATIO = 1e6


class VolatilityTracker:
    """σ in price units per √hour over a rolling window of trades."""

    __slots__ = (
        "_evicted_since_rebuild",
        "_increments",
        "_last_price",
        "_last_ts",
        "_nonzero",
        "_sum_dp2",
        "_sum_dp2_comp",
        "_sum_dt_ns",
        "floor",
        "lookback_ns",
        "min_samples",
        "out_of_order",
    )

    def __init__(self, lookback_ns: int, min_samples: int, floor: float | None = None) -> None:
        if lookback_ns <= 0:
            raise ValueError("lookback_ns must be > 0")
        if min_samples < 1:
            raise ValueError("min_samples must be ≥ 1")
        if floor is not None and not (math.isfinite(floor) and floor >= 0):
            raise ValueError("floor must be a finite σ ≥ 0")
        self.lookback_ns = lookback_ns
        self.min_samples = min_samples
        self.floor = floor
        self.out_of_order = 0
        # (ts_ns of the later trade, Δp², Δt in ns), oldest first.
        self._increments: deque[tuple[int, float, int]] = deque()
        self._sum_dp2 = 0.0
        self._sum_dp2_comp = 0.0  # Neumaier compensation: the rounding error so far
        self._sum_dt_ns = 0
        self._nonzero = 0  # increments in the window with Δp² > 0
        self._evicted_since_rebuild = 0
        self._last_price: float | None = None
        self._last_ts = 0

    @property
    def samples(self) -> int:
        """Increments in the window, as of the last `add_trade` or `sigma` call."""
        return len(self._increments)

    def add_trade(self, price: float, ts_ns: int) -> None:
        """Record a public trade at `price` (price units) at `ts_ns`."""
        if not math.isfinite(price):
            raise ValueError(f"trade price must be finite, got {price!r}")
        last_price = self._last_price
        if last_price is None:
            self._last_price = price
            self._last_ts = ts_ns
            return
        if ts_ns < self._last_ts:
            self.out_of_order += 1
            return
        dp = price - last_price
        dp2 = dp * dp
        dt_ns = ts_ns - self._last_ts
        self._increments.append((ts_ns, dp2, dt_ns))
        self._add(dp2)
        self._sum_dt_ns += dt_ns
        if dp2 > 0.0:
            self._nonzero += 1
        self._last_price = price
        self._last_ts = ts_ns
        self._evict(ts_ns)

    def sigma(self, now_ns: int) -> float | None:
        """σ in price units per √hour as of `now_ns`; None while warming up (see module)."""
        self._evict(now_ns)
        floor = self.floor
        if len(self._increments) < self.min_samples or self._sum_dt_ns <= 0:
            return floor
        if self._nonzero == 0:
            estimate = 0.0
        else:
            # A compensated sum of non-negative terms is ≥ 0 up to rounding; clamp it.
            sum_dp2 = max(self._sum_dp2 + self._sum_dp2_comp, 0.0)
            estimate = math.sqrt(sum_dp2 * NS_PER_HOUR / self._sum_dt_ns)
        if floor is not None and floor > estimate:
            return floor
        return estimate

    # ------------------------------------------------------------ internals

    def _add(self, x: float) -> None:
        # Neumaier's variant of Kahan summation: the lost low-order part goes to
        # the compensation whichever of the two operands is larger.
        s = self._sum_dp2
        t = s + x
        if abs(s) >= abs(x):
            self._sum_dp2_comp += (s - t) + x
        else:
            self._sum_dp2_comp += (x - t) + s
        self._sum_dp2 = t

    def _evict(self, now_ns: int) -> None:
        increments = self._increments
        cutoff = now_ns - self.lookback_ns
        if not increments or increments[0][0] > cutoff:
            return
        largest = 0.0
        while increments and increments[0][0] <= cutoff:
            _, dp2, dt_ns = increments.popleft()
            largest = max(largest, dp2)
            self._add(-dp2)
            self._sum_dt_ns -= dt_ns
            if dp2 > 0.0:
                self._nonzero -= 1
            self._evicted_since_rebuild += 1
        if not increments:
            self._sum_dp2 = 0.0
            self._sum_dp2_comp = 0.0
            self._evicted_since_rebuild = 0
        elif self._evicted_since_rebuild >= max(
            len(increments), _MIN_REBUILD_EVICTIONS
        ) or largest > _CANCELLATION_RATIO * (self._sum_dp2 + self._sum_dp2_comp):
            # Also when a move far larger than what remains has left the window:
            # subtracting it cancelled most digits of the running sum.
            self._sum_dp2 = math.fsum(dp2 for _, dp2, _ in increments)
            self._sum_dp2_comp = 0.0
            self._evicted_since_rebuild = 0
