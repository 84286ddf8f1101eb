"""UNWINDING (SPEC Part B.20): only reducing orders, never more than the
position, inside the band; the guards that still halt; how it ends."""

from __future__ import annotations

from decimal import Decimal

import hypothesis.strategies as st
from hypothesis import given, settings

from quoting_worker.core.types import (
    CancelAll,
    CancelOrder,
    InstrumentStatus,
    MarkPrice,
    OrderAccepted,
    OrderCancelled,
    PlaceOrder,
    PoolMode,
    PoolParams,
    RiskTriggered,
    Side,
    UnwindFinished,
)
from tests.core.engine_world import BTC, MEMBERS, MID, PARAMS, World, fill_of, places, with_params

A, B, C = (m.participant_id for m in MEMBERS)


def long_and_short(params: PoolParams = PARAMS) -> World:
    """A pool whose first member holds the best bid's fill (long) and whose last
    holds the best ask's (short), then killed: HALTED with both positions."""
    world = World(params=params)
    placed = places(world.active())
    for pid, side in ((A, Side.BUY), (C, Side.SELL)):
        order = next(o for o in placed if o.participant_id == pid and o.side is side)
        world.send(fill_of(order, f"f-{pid[:4]}", ts=world.now()))
    world.command("kill", reason="desk")
    assert world.engine.mode is PoolMode.HALTED
    for member in world.engine.members.values():  # the venue confirms the cancels
        for coid in list(member.runtime.open_orders):
            world.send(OrderCancelled(coid, world.now()))
    world.actions.clear()
    return world


def positions(world: World) -> dict[str, int]:
    return {pid: m.runtime.position_lots for pid, m in world.engine.members.items()}


def test_only_the_side_back_to_flat_is_quoted_and_never_more_than_the_position() -> None:
    world = long_and_short()
    held = positions(world)
    assert held[A] > 0 > held[C]
    assert held[B] == 0
    out = world.command("unwind", reason="desk") + world.tick()
    orders = places(out)
    assert orders
    assert {(o.participant_id, o.side) for o in orders} == {(A, Side.SELL), (C, Side.BUY)}
    assert sum(o.size_lots for o in orders if o.participant_id == A) <= held[A]
    assert sum(o.size_lots for o in orders if o.participant_id == C) <= -held[C]
    status = world.engine.status()
    assert status.mode is PoolMode.UNWINDING
    assert status.gate_reason == ""


def test_the_orders_stay_inside_the_band_of_mid() -> None:
    wide = long_and_short()
    orders = places(wide.command("unwind") + wide.tick())
    # Without a narrow band: A's sell some 33 bps above mid, C's buy some 17 below.
    assert {(o.participant_id, o.side) for o in orders} == {(A, Side.SELL), (C, Side.BUY)}
    world = long_and_short(with_params(unwind_band_bps=20.0))
    orders = places(world.command("unwind") + world.tick())
    band = 20.0 / 10_000 * MID
    assert orders
    assert all(abs(o.price_ticks - MID) <= band for o in orders)
    assert {(o.participant_id, o.side) for o in orders} == {(C, Side.BUY)}


def test_a_replaced_order_waits_for_its_cancel_before_its_successor_goes() -> None:
    world = long_and_short()
    held = positions(world)[A]
    first = [o for o in places(world.command("unwind") + world.tick()) if o.participant_id == A]
    for o in first:
        world.send(OrderAccepted(o.client_order_id, f"v-{o.client_order_id}", world.now()))
    world.snapshot(MID - 300)  # the market moves: A's sells are re-priced
    out = world.tick()
    cancelled = {c.client_order_id for c in out if isinstance(c, CancelOrder)}
    assert cancelled & {o.client_order_id for o in first}
    # Nothing new for A while its cancelled sells may still fill (they cover
    # its whole position).
    assert sum(o.size_lots for o in first) == held
    assert [o for o in places(out) if o.participant_id == A] == []
    for coid in cancelled:
        world.send(OrderCancelled(coid, world.now()))
    replaced = [o for o in places(world.tick()) if o.participant_id == A]
    assert replaced
    assert sum(o.size_lots for o in replaced) <= held


def test_every_member_flat_ends_it_paused_with_nothing_resting() -> None:
    world = long_and_short()
    orders = places(world.command("unwind") + world.tick())
    out = []
    for i, order in enumerate(orders):
        out += world.send(fill_of(order, f"u-{i}", ts=world.now()))
    # Each member's orders were sized to its position: filled, flat.
    assert positions(world) == {A: 0, B: 0, C: 0}
    assert UnwindFinished("every member flat") in out
    assert any(isinstance(a, CancelAll) for a in out)
    assert world.engine.mode is PoolMode.PAUSED
    assert places(world.tick()) == []


def test_the_time_limit_ends_it_paused() -> None:
    world = long_and_short(with_params(unwind_time_limit_s=5))
    world.command("unwind")
    out = []
    for _ in range(30):
        out += world.tick(200)
    assert UnwindFinished("time limit (5 s) reached") in out
    assert world.engine.mode is PoolMode.PAUSED


def test_stale_data_and_an_exchange_halt_still_halt_it() -> None:
    world = long_and_short()
    world.command("unwind")
    out = []
    for _ in range(30):
        out += world.tick(200, heartbeat=False)
    assert [a.trigger for a in out if isinstance(a, RiskTriggered)] == ["STALE_DATA"]

    world = long_and_short()
    world.command("unwind")
    out = world.send(InstrumentStatus(halted=True, ts_ns=world.now()))
    assert [a.trigger for a in out if isinstance(a, RiskTriggered)] == ["EXCHANGE_HALT"]
    assert world.engine.mode is PoolMode.HALTED


def test_the_loss_that_halted_it_does_not_halt_it_again_a_further_loss_does() -> None:
    params = with_params(max_pool_loss_usdt=Decimal("10"), unwind_max_loss_usdt=Decimal("50"))
    world = World(params=params)
    placed = places(world.active())
    for i, buy in enumerate(o for o in placed if o.side is Side.BUY and o.level == 0):
        world.send(fill_of(buy, f"f-{i}", ts=world.now()))
    lower = BTC.price(MID) * Decimal("0.99")  # ~60 USDT lost on ~0.1 BTC
    out = world.send(MarkPrice(lower, world.now()))
    assert [a.trigger for a in out if isinstance(a, RiskTriggered)] == ["LOSS"]
    world.command("unwind", reason="desk")
    world.snapshot(MID * 99 // 100)
    out = world.tick(1200) + world.tick(1200)
    assert world.engine.mode is PoolMode.UNWINDING  # the day's loss is known
    out = world.send(MarkPrice(lower * Decimal("0.995"), world.now()))  # ~30 USDT more
    assert not [a for a in out if isinstance(a, RiskTriggered)]
    out = world.send(MarkPrice(lower * Decimal("0.99"), world.now()))  # ~60 more: past 50
    assert [a.trigger for a in out if isinstance(a, RiskTriggered)] == ["LOSS"]
    assert world.engine.mode is PoolMode.HALTED


def test_the_target_inventory_moves_the_skew() -> None:
    """r = microprice − (q − q₀)·γ·σ²·τ: with q₀ = q there is no skew."""
    world = long_and_short()
    q = float(BTC.size(sum(positions(world).values())))
    assert q != 0
    skewed = World(params=world.engine.params)
    for flat, params in ((False, PARAMS), (True, with_params(target_inventory=q))):
        skewed = long_and_short(params)
        skewed.command("unwind")
        skewed.tick()
        status = skewed.engine.status()
        assert status.reservation_price is not None
        assert status.microprice is not None
        assert (abs(status.reservation_price - status.microprice) < 1e-6) is flat


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["fill", "partial", "cancel", "move", "tick"]), st.integers(0, 50)
        ),
        min_size=1,
        max_size=60,
    )
)
def test_no_sequence_of_fills_cancels_and_moves_makes_a_position_grow(
    steps: list[tuple[str, int]],
) -> None:
    world = long_and_short()
    world.command("unwind")
    world.tick()
    live: dict[str, PlaceOrder] = {}
    remaining: dict[str, int] = {}
    before = {pid: abs(n) for pid, n in positions(world).items()}
    fills = 0
    for kind, pick in steps:
        for action in world.actions:
            if isinstance(action, PlaceOrder):
                assert action.side is (
                    Side.SELL
                    if world.engine.members[action.participant_id].runtime.position_lots > 0
                    else Side.BUY
                )
                live[action.client_order_id] = action
                remaining[action.client_order_id] = action.size_lots
        world.actions.clear()
        orders = sorted(live)
        if kind in ("fill", "partial") and orders:
            coid = orders[pick % len(orders)]
            lots = remaining[coid] if kind == "fill" else max(1, remaining[coid] // 2)
            fills += 1
            world.send(fill_of(live[coid], f"p-{fills}", lots=lots, ts=world.now()))
            remaining[coid] -= lots
            if remaining[coid] == 0:
                del live[coid]
        elif kind == "cancel" and orders:
            # The venue confirms a cancel (or an order it dropped): gone.
            coid = orders[pick % len(orders)]
            del live[coid]
            world.send(OrderCancelled(coid, world.now()))
        elif kind == "move":
            world.snapshot(MID + (pick - 25) * 20)
        world.tick()
        now = {pid: abs(n) for pid, n in positions(world).items()}
        assert all(now[pid] <= before[pid] for pid in now), (before, now)
        before = now
        if world.engine.mode is not PoolMode.UNWINDING:
            break


def test_by_default_a_further_loss_of_the_pools_day_limit_halts_it() -> None:
    """unwind_max_loss_usdt None (the default): the pool's max_pool_loss_usdt again.
    (A default of 0 halted an unwind on make run at its first spread paid: 0.02 USDT.)"""
    params = with_params(max_pool_loss_usdt=Decimal("10"))
    assert params.unwind_max_loss_usdt is None
    world = World(params=params)
    placed = places(world.active())
    for i, buy in enumerate(o for o in placed if o.side is Side.BUY and o.level == 0):
        world.send(fill_of(buy, f"f-{i}", ts=world.now()))
    lower = BTC.price(MID) * Decimal("0.99")
    world.send(MarkPrice(lower, world.now()))  # LOSS halt
    world.command("unwind", reason="desk")
    world.snapshot(MID * 99 // 100)
    world.tick(1200)
    world.tick(1200)
    out = world.send(MarkPrice(lower - Decimal("50"), world.now()))  # ~5 USDT more: within 10
    assert not [a for a in out if isinstance(a, RiskTriggered)]
    assert world.engine.mode is PoolMode.UNWINDING
    out = world.send(MarkPrice(lower - Decimal("150"), world.now()))  # ~15 USDT more: past 10
    assert [a.trigger for a in out if isinstance(a, RiskTriggered)] == ["LOSS"]
