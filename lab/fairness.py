"""The fairness study of SPEC Part B.19 on the simulator: a demo pool run in
process (lab/venue.py) until it has at least `min_fills` maker fills, then each
member's share of the pool's maker volume against its share of the pool's
resting size, read from the exchange (lab/venue.py `VenueShares`).

The tolerance is issue 19's: |volume share − size share| ≤ max(2 × largest
fill ÷ pool volume, 0.02), absolute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from lab.demo import demo_pool
from lab.venue import SimulatedVenue

T = TypeVar("T")

NS_PER_S = 1_000_000_000
# 2026-12-07 01:00 UTC: one hour into a UTC day, so a study of a few simulated
# hours stays within the day the deficits are kept over.
START_NS = 1_796_605_200 * NS_PER_S
STEP_S = 60


@dataclass(frozen=True)
class Study:
    symbol: str
    seed: int
    simulated_s: int
    fills: int
    rows: list[dict[str, Any]]
    halts: list[str]

    @property
    def fair(self) -> bool:
        return all(abs(r["difference"]) <= r["tolerance"] for r in self.rows)


def study(
    symbol: str,
    seed: int,
    *,
    min_fills: int = 1000,
    max_s: int = 6 * 3600,
    fair_queue: bool = True,
) -> Study:
    """Runs the demo pool `symbol` for whole minutes until `min_fills` maker fills
    (or `max_s` simulated seconds); `fair_queue` False: the baseline."""
    params, members = demo_pool(symbol)
    venue = SimulatedVenue(
        symbol=symbol, params=params, members=members, seed=seed, start_ns=START_NS
    )
    if not fair_queue:
        venue.engine.quoter.shares.in_turn = False  # the baseline: enrolment order
    venue.start()
    elapsed = 0
    while venue.pool_fills() < min_fills and elapsed < max_s:
        elapsed += STEP_S
        venue.run_until(START_NS + elapsed * NS_PER_S)
    return Study(
        symbol,
        seed,
        elapsed,
        venue.pool_fills(),
        venue.shares.table(),
        [f"{h.trigger}: {h.detail}" for h in venue.halts],
    )
