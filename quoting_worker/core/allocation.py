"""Splitting one level's pool size across the pool's members (SPEC Part B.3).

`order_size_usdt` is the pool's total size per level per side. It becomes a
whole number of lots at the level's price (`level_lots`), and `allocate`
splits those lots across members by capital weight, each member capped by what
its own position limit still allows on that side (`capacity_lots`).

Units: sizes and capacities are integer lots, prices integer ticks (or a
Decimal mark price in USDT per base unit), limits and order sizes Decimal
USDT. Capital weights enter the split as integers (`weight_units`: the Decimal
weight scaled by 10**8 and truncated), so the split is exact integer
arithmetic: no rounding drift, and the same inputs always give the same lots.

`allocate` is on the hot path (twice per level per re-quote, ~10 members) and
is written for that: one pass of `divmod`, a sort only when lots are left over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from quoting_worker.core.types import Instrument, Side

WEIGHT_SCALE = 10**8
"""Integer weight units per 1 of a Decimal capital weight (8 places, as stored)."""


def weight_units(weight: Decimal) -> int:
    """`weight` × 10**8 truncated to an integer (exact, whatever its digits).

    Digits below 10**-8 are dropped: weights are stored with 8 places, so
    nothing real is lost, and a weight too small to register counts as 0.
    """
    if not weight.is_finite() or weight < 0:
        raise ValueError(f"a capital weight must be a finite number ≥ 0, got {weight}")
    numerator, denominator = weight.as_integer_ratio()
    return numerator * WEIGHT_SCALE // denominator


def allocate(
    total_lots: int,
    weights: Sequence[int],
    caps: Sequence[int],
    min_lots: int,
    lot_notional_ok: Callable[[int], bool] | None = None,
) -> list[int]:
    """Lots for each member, in the order of `weights` / `caps`.

    1. A member with weight ≤ 0 or cap ≤ 0 (not ACTIVE, or this side would push
       it past its own position limit) gets nothing and takes no part.
    2. Every other member gets floor(total · w / W), W the sum of those
       members' weights, cut down to its cap.
    3. The lots left over — rounding remainders, and whatever the caps cut
       off — go one at a time to the members still below their cap, largest
       remainder first (ties to the lower index), round after round until
       none are left or every member is at its cap. Excess freed by a cap is
       thus spread evenly over the others, not in proportion to weight.
    4. A member whose lots are below `min_lots`, or fail `lot_notional_ok`
       (the venue's minimum notional at this level's price), gets 0: an order
       the venue would reject is worse than none. Those lots are dropped, not
       handed to anyone else, so the pool quotes slightly less at that level.

    The result never sums to more than `total_lots`, and no member gets more
    than its cap.
    """
    count = len(weights)
    if len(caps) != count:
        raise ValueError(f"{count} weights but {len(caps)} caps")
    result = [0] * count
    if total_lots <= 0:
        return result

    eligible = [index for index in range(count) if weights[index] > 0 and caps[index] > 0]
    eligible_weight = sum([weights[index] for index in eligible])
    if eligible_weight == 0:
        return result

    remainders: list[tuple[int, int]] = []  # (−remainder, index) of members below their cap
    leftover = total_lots
    for index in eligible:
        share, remainder = divmod(total_lots * weights[index], eligible_weight)
        cap = caps[index]
        if share >= cap:
            share = cap
        else:
            remainders.append((-remainder, index))
        result[index] = share
        leftover -= share

    if leftover > 0 and remainders:
        remainders.sort()
        if leftover < len(remainders):
            # The usual case (no cap bound): every member here has room for one more.
            for _, index in remainders[:leftover]:
                result[index] += 1
        else:
            _hand_out(result, caps, [index for _, index in remainders], leftover)

    if min_lots > 1 or lot_notional_ok is not None:
        for index in eligible:
            lots = result[index]
            if lots and (
                lots < min_lots or (lot_notional_ok is not None and not lot_notional_ok(lots))
            ):
                result[index] = 0
    return result


def _hand_out(result: list[int], caps: Sequence[int], order: list[int], leftover: int) -> None:
    """One lot each in `order`, round after round, to members below their cap.

    Whole rounds are added in one step, so this is O(members²) however many lots
    are left over.
    """
    while leftover > 0 and order:
        headroom = min(caps[index] - result[index] for index in order)
        rounds = min(leftover // len(order), headroom)
        if rounds == 0:
            # Fewer lots than members, and every member has room for one more.
            for index in order[:leftover]:
                result[index] += 1
            return
        for index in order:
            result[index] += rounds
        leftover -= rounds * len(order)
        order = [index for index in order if result[index] < caps[index]]


def capacity_lots(
    side: Side,
    position_lots: int,
    resting_lots_same_side: int,
    max_position_usdt: Decimal,
    mark_price: Decimal,
    instrument: Instrument,
) -> int:
    """Lots a member may still add on `side` without breaching its position limit.

    The limit is |exposure| in USDT at mark ≤ `max_position_usdt`, where exposure
    counts the position and the resting orders on `side` (they would add to it
    if filled). In lots: |position ± resting ± new| ≤ floor(limit / (mark ·
    lot_size)). A short member's buys first bring it back to flat, so its buy
    capacity is the lots back to flat plus the limit; the same for a long
    member's sells.

    A mark ≤ 0 (no valid mark yet) or a limit ≤ 0 gives 0: no quoting blind.
    """
    return capacity_within(
        side,
        position_lots,
        resting_lots_same_side,
        limit_lots(max_position_usdt, mark_price, instrument),
    )


def limit_lots(max_position_usdt: Decimal, mark_price: Decimal, instrument: Instrument) -> int:
    """A position limit in USDT at mark as whole lots: floor(limit / (mark · lot_size)).
    0 when there is no valid mark or no limit: no quoting blind."""
    if mark_price <= 0 or max_position_usdt <= 0:
        return 0
    return _floor_div(max_position_usdt, mark_price, instrument.lot_size)


def capacity_within(side: Side, position_lots: int, resting_lots_same_side: int, limit: int) -> int:
    """`capacity_lots` for a limit already in lots (the hot path computes it once per mark)."""
    if side is Side.BUY:
        exposure = position_lots + resting_lots_same_side
    else:
        exposure = -position_lots + resting_lots_same_side
    return max(0, limit - exposure)


def level_lots(order_size_usdt: Decimal, price_ticks: int, instrument: Instrument) -> int:
    """Whole lots worth `order_size_usdt` at `price_ticks`, rounded down (0 if price ≤ 0)."""
    if price_ticks <= 0 or order_size_usdt <= 0:
        return 0
    return _floor_div(order_size_usdt, price_ticks, instrument.tick_size, instrument.lot_size)


def min_notional_check(instrument: Instrument, price_ticks: int) -> Callable[[int], bool]:
    """`lot_notional_ok` for `allocate`: lots at `price_ticks` meet the venue's minimum notional."""
    min_notional = instrument.min_notional
    if min_notional <= 0:
        return _always_ok
    if price_ticks <= 0:
        return _never_ok
    # The smallest lot count whose notional reaches the minimum, found once per level,
    # so the check itself is one integer comparison.
    smallest = -_floor_div(-min_notional, price_ticks, instrument.tick_size, instrument.lot_size)
    return lambda lots: lots >= smallest


def _always_ok(_lots: int) -> bool:
    return True


def _never_ok(_lots: int) -> bool:
    return False


def _floor_div(numerator: Decimal, *divisors: Decimal | int) -> int:
    """floor(numerator / Π divisors) for positive divisors, exact: as fractions, never rounded."""
    top, bottom = numerator.as_integer_ratio()
    for divisor in divisors:
        divisor_top, divisor_bottom = divisor.as_integer_ratio()
        top *= divisor_bottom
        bottom *= divisor_top
    return top // bottom
