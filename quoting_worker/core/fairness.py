"""Fair queue position (SPEC Part B.19): who stands first at a price.

The members of a pool quote the same prices, and a venue fills a price level
first come, first served. Sizes are split pro rata (core/allocation.py), but
if the members' orders always reach the venue in the same order, the first
one's order is filled first every time and its share of fills exceeds its
share of size. Rotating the order is not enough either: uniform rotation
tends to equal fills per member, not pro-rata ones.

The scheme: over the UTC day each member has a **fill deficit**

    Dᵢ = Eᵢ − Vᵢ

where Vᵢ is the maker volume (lots) the member was filled and Eᵢ the volume it
was entitled to: every fill of v lots on a side credits each member
sᵢ·v, sᵢ its share of the size the pool quoted on that side at the last quote
(its weight as capped by its position limit; a member quoting nothing on a side
is entitled to none of that side's fills). ΣDᵢ = 0 at all times. Whenever
orders are placed at a price, the members' orders go in descending Dᵢ (the one
furthest behind stands first), and the Order Service sink sends orders at one
price one after another, each once the previous one is answered, so the
venue's queue has that order. A member that is filled ahead of its share drops
behind the others at the next placement; one that was not climbs. Orders that
already rest are never cancelled only to be reordered: that would lose the
pool's place against the rest of the market.

The deficit is bounded rather than exact: between two placements the venue's
queue decides, so |Dᵢ| stays within about one level's clip, and over many
fills each member's share of volume tends to its share of size.

Restart: the day's fills come back from the store, credited by the members'
current weights (the shares at the time of each fill are not stored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from quoting_worker.core.types import Side

NS_PER_DAY = 86_400 * 1_000_000_000

T = TypeVar("T")


class FillShares:
    """The day's maker volume and entitlement per member, in lots."""

    __slots__ = ("_targets", "day", "entitled", "filled", "in_turn", "shares")

    def __init__(self) -> None:
        self.day = -1  # UTC days since the epoch of the fills counted
        self.filled: dict[str, int] = {}
        self.entitled: dict[str, float] = {}
        # Per side: participant → share of the size the pool quotes there.
        self.shares: dict[Side, dict[str, float]] = {Side.BUY: {}, Side.SELL: {}}
        self._targets: Mapping[tuple[str, Side, int], tuple[int, int]] | None = None
        # False: every price's orders go in enrolment order (the deficits are still
        # kept and shown); the baseline lab/fairness.py compares with.
        self.in_turn = True

    def weighted(self, weights: Mapping[str, int]) -> None:
        """Shares from capital weights, for a side the pool has not quoted yet
        (before the first quote, and while a restart books the day's fills)."""
        total = sum(w for w in weights.values() if w > 0)
        if total <= 0:
            return
        self._share_out()
        for side in (Side.BUY, Side.SELL):
            if not self.shares[side]:
                self.shares[side] = {p: w / total for p, w in weights.items() if w > 0}

    def quoted(self, targets: Mapping[tuple[str, Side, int], tuple[int, int]]) -> None:
        """The size each member quotes now: the quote's targets, (participant, side,
        level) → (price, lots). Read at the next fill, not here: a pool re-quotes
        far more often than it is filled, and the re-quote is the hot path."""
        self._targets = targets

    def _share_out(self) -> None:
        """The shares of the last targets; a side with no size keeps the shares it
        had (its resting orders may still be filled)."""
        targets, self._targets = self._targets, None
        if targets is None:
            return
        per_side: dict[Side, dict[str, int]] = {Side.BUY: {}, Side.SELL: {}}
        for (pid, side, _level), (_price, n) in targets.items():
            by_member = per_side[side]
            by_member[pid] = by_member.get(pid, 0) + n
        for side, by_member in per_side.items():
            total = sum(by_member.values())
            if total > 0:
                self.shares[side] = {pid: n / total for pid, n in by_member.items()}

    def fill(self, pid: str, side: Side, lots: int, ts_ns: int) -> None:
        """A maker fill of `lots` for member `pid` on `side` at venue time `ts_ns`.
        A fill of an earlier day than the one counted is not today's business."""
        day = ts_ns // NS_PER_DAY
        if day < self.day:
            return
        if day > self.day:
            self.day = day
            self.filled.clear()
            self.entitled.clear()
        self.filled[pid] = self.filled.get(pid, 0) + lots
        self._share_out()
        shares = self.shares[side] or {pid: 1.0}
        entitled = self.entitled
        for member, share in shares.items():
            entitled[member] = entitled.get(member, 0.0) + share * lots

    def deficit(self, pid: str, now_ns: int) -> float:
        """Dᵢ in lots (0 for a day with no fills yet)."""
        if now_ns // NS_PER_DAY != self.day:
            return 0.0
        return self.entitled.get(pid, 0.0) - self.filled.get(pid, 0)

    def volume(self, pid: str, now_ns: int) -> int:
        """Vᵢ in lots today."""
        return self.filled.get(pid, 0) if now_ns // NS_PER_DAY == self.day else 0

    def queue(self, pids: Sequence[str], items: Sequence[T], now_ns: int) -> list[T]:
        """`items` (one per participant in `pids`) in the order their orders go:
        descending deficit; equal deficits keep the given order."""
        if not self.in_turn or now_ns // NS_PER_DAY != self.day:
            return list(items)
        order = sorted(range(len(pids)), key=lambda i: -self.deficit(pids[i], now_ns))
        return [items[i] for i in order]
