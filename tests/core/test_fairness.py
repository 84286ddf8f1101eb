"""Fair queue position (core/fairness.py): the fill deficits, the queue order
they give, and the property that keeps every member's fills near its share of
size whatever the sequence of fills."""

from __future__ import annotations

from dataclasses import dataclass

import hypothesis.strategies as st
from hypothesis import given, settings

from quoting_worker.core.allocation import allocate
from quoting_worker.core.fairness import NS_PER_DAY, FillShares
from quoting_worker.core.types import PlaceOrder, Side
from tests.core.engine_world import BTC, MEMBERS, MID, World, fill_of, places

DAY = 20_000 * NS_PER_DAY  # a UTC midnight


def targets(*quoted: tuple[str, Side, int]) -> dict[tuple[str, Side, int], tuple[int, int]]:
    """A quote's targets: each (participant, side, lots) at a level of its own."""
    return {(pid, side, level): (100, lots) for level, (pid, side, lots) in enumerate(quoted)}


def test_a_fill_credits_every_member_its_share_of_the_quoted_size() -> None:
    shares = FillShares()
    shares.quoted(targets(("a", Side.BUY, 10), ("b", Side.BUY, 30), ("a", Side.SELL, 5)))
    shares.fill("a", Side.BUY, 8, DAY + 1)
    assert shares.deficit("a", DAY + 2) == 0.25 * 8 - 8
    assert shares.deficit("b", DAY + 2) == 0.75 * 8
    # Only "a" quotes asks: a sell fill is all its own, no deficit for anyone.
    shares.fill("a", Side.SELL, 4, DAY + 3)
    assert shares.deficit("a", DAY + 4) == -6
    assert shares.deficit("b", DAY + 4) == 6
    assert shares.volume("a", DAY + 4) == 12
    assert shares.volume("b", DAY + 4) == 0


def test_the_deficits_sum_to_zero_and_start_again_each_utc_day() -> None:
    shares = FillShares()
    shares.quoted(targets(("a", Side.BUY, 1), ("b", Side.BUY, 2), ("c", Side.BUY, 4)))
    for i, pid in enumerate("abcabca"):
        shares.fill(pid, Side.BUY, 3 + i, DAY + i)
    assert abs(sum(shares.deficit(p, DAY + 9) for p in "abc")) < 1e-9
    assert shares.deficit("c", DAY + NS_PER_DAY) == 0  # next day, nothing yet
    shares.fill("b", Side.BUY, 7, DAY + NS_PER_DAY + 1)
    assert shares.volume("b", DAY + NS_PER_DAY + 2) == 7
    assert shares.volume("a", DAY + NS_PER_DAY + 2) == 0
    # A late fill of the day before is not today's business.
    shares.fill("a", Side.BUY, 100, DAY + 5)
    assert shares.volume("a", DAY + NS_PER_DAY + 2) == 0


def test_shares_come_from_capital_weights_until_the_pool_quotes() -> None:
    shares = FillShares()
    shares.weighted({"a": 1, "b": 3, "gone": 0})
    shares.fill("a", Side.SELL, 4, DAY)
    assert shares.deficit("b", DAY) == 3
    shares.quoted(targets(("a", Side.SELL, 1)))
    shares.weighted({"a": 1, "b": 1})  # a side already quoted keeps its quoted shares
    assert shares.shares[Side.SELL] == {"a": 1.0}
    assert shares.shares[Side.BUY] == {"a": 0.25, "b": 0.75}


def test_the_member_furthest_behind_goes_first_and_ties_keep_their_order() -> None:
    shares = FillShares()
    assert shares.queue(["a", "b", "c"], [1, 2, 3], DAY) == [1, 2, 3]  # no fills yet
    shares.quoted(targets(("a", Side.BUY, 1), ("b", Side.BUY, 1), ("c", Side.BUY, 1)))
    shares.fill("a", Side.BUY, 9, DAY)  # a is 6 ahead, b and c 3 behind each
    assert shares.queue(["a", "b", "c"], ["A", "B", "C"], DAY) == ["B", "C", "A"]


# ------------------------------------------------------------------ the property


@dataclass
class Resting:
    pid: str
    lots: int


class Level:
    """One price level of the pool at a first-come-first-served venue, re-quoted
    the way the engine does: after a fill every order that no longer matches its
    target (filled, or partly filled) is replaced at the back of the queue, the
    replacements in the order `order` gives; a move of the market replaces all."""

    def __init__(self, weights: dict[str, int], total: int, fair: bool) -> None:
        self.weights = weights
        self.pids = list(weights)
        self.total = total
        self.fair = fair
        self.shares = FillShares()
        self.queue: list[Resting] = []
        self.now = DAY
        self.replace_all()

    def targets(self) -> dict[str, int]:
        lots = allocate(self.total, list(self.weights.values()), [self.total] * 3, 1)
        targets = dict(zip(self.pids, lots, strict=True))
        self.shares.quoted({(p, Side.BUY, 0): (0, n) for p, n in targets.items()})
        return targets

    def in_queue_order(self, pids: list[str]) -> list[str]:
        return self.shares.queue(pids, pids, self.now) if self.fair else pids

    def replace_all(self) -> None:
        targets = self.targets()
        self.queue = [Resting(p, targets[p]) for p in self.in_queue_order(self.pids) if targets[p]]

    def take(self, lots: int) -> None:
        """A taker of `lots` through the level, front first; then the re-quote."""
        self.now += 1
        for order in self.queue:
            if lots == 0:
                break
            filled = min(lots, order.lots)
            order.lots -= filled
            lots -= filled
            self.shares.fill(order.pid, Side.BUY, filled, self.now)
        targets = self.targets()
        kept = [o for o in self.queue if o.lots == targets[o.pid]]
        missing = [p for p in self.pids if targets[p] and p not in {o.pid for o in kept}]
        self.queue = kept + [Resting(p, targets[p]) for p in self.in_queue_order(missing)]

    def worst_deficit(self) -> float:
        return max(abs(self.shares.deficit(p, self.now)) for p in self.pids)


weights_st = st.lists(st.integers(1, 20), min_size=3, max_size=3)
steps_st = st.lists(st.tuples(st.floats(0.01, 1.0), st.booleans()), min_size=1, max_size=300)


@settings(max_examples=300, deadline=None)
@given(weights=weights_st, total=st.integers(3, 60), steps=steps_st)
def test_no_fill_sequence_puts_a_member_more_than_a_level_away_from_its_share(
    weights: list[int], total: int, steps: list[tuple[float, bool]]
) -> None:
    """Whatever the takers do (how much each takes, when the market moves and the
    whole level is placed again), no member's fills stray more than one level's
    size from what its share of the size entitles it to."""
    level = Level(dict(zip("abc", weights, strict=True)), total, fair=True)
    for fraction, moved in steps:
        resting = sum(o.lots for o in level.queue)
        level.take(max(1, round(fraction * resting)))
        if moved:
            level.replace_all()
        assert level.worst_deficit() <= total


def test_the_same_fills_in_enrolment_order_leave_the_last_member_ever_further_behind() -> None:
    """The property fails without the deficit order: a taker that takes the
    first order's size each time the market moves fills only the member first
    enrolled."""
    for fair, bounded in ((False, False), (True, True)):
        level = Level({"a": 1, "b": 1, "c": 1}, 30, fair=fair)
        for _ in range(200):
            level.take(10)
            level.replace_all()
        assert (level.worst_deficit() <= 30) is bounded


# ------------------------------------------------------------------ in the engine


def _first_at_each_price(orders: list[PlaceOrder]) -> set[str]:
    first: dict[tuple[Side, int], str] = {}
    for order in orders:
        first.setdefault((order.side, order.price_ticks), order.participant_id)
    return set(first.values())


def test_the_engine_places_the_member_furthest_behind_first_at_every_price() -> None:
    world = World()
    placed = places(world.active())
    a, b, c = (m.participant_id for m in MEMBERS)
    assert _first_at_each_price(placed) == {a}  # no fills yet: enrolment order
    # a's best bid is filled whole: a is ahead of its share, b and c behind.
    best_bid = max((o for o in placed if o.side is Side.BUY), key=lambda o: o.price_ticks)
    a_bid = next(
        o
        for o in placed
        if o.side is Side.BUY and o.participant_id == a and o.price_ticks == best_bid.price_ticks
    )
    world.send(fill_of(a_bid, "f1", ts=world.now()))
    status = {m.participant_id: m for m in world.engine.status().members}
    assert status[a].fill_deficit < 0 < status[c].fill_deficit
    assert status[a].day_maker_size == BTC.size(a_bid.size_lots)
    assert sum(m.fill_deficit for m in status.values()) <= BTC.lot_size  # rounding only
    # The market moves: every level is placed again, c (largest share, so the
    # furthest behind) first and a last at every price.
    world.snapshot(MID + 400)
    replaced = places(world.tick())
    assert replaced
    assert _first_at_each_price(replaced) == {c}
    for price in {(o.side, o.price_ticks) for o in replaced}:
        at_price = [o.participant_id for o in replaced if (o.side, o.price_ticks) == price]
        assert at_price == sorted(at_price, key=[c, b, a].index)


def test_a_restart_brings_back_the_days_deficits() -> None:
    world = World()
    placed = places(world.active())
    a = MEMBERS[0].participant_id
    fill = fill_of(next(o for o in placed if o.participant_id == a), "f1", ts=world.now())
    world.send(fill)
    before = {m.participant_id: m.fill_deficit for m in world.engine.status().members}

    again = World()
    again.clock.advance(world.now() - again.now())
    again.engine.restore(fills=[(a, fill)])
    after = {m.participant_id: m.fill_deficit for m in again.engine.status().members}
    # Credited by capital weight (1 : 2 : 3) as at the first quote.
    assert after == before
