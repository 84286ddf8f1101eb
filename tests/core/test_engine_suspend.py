"""The worker's suspend and unsuspend commands (the database is down / back).

A suspended pool keeps its mode, withdraws every resting order (each known order
plus a cancel-all per member account), keeps its gate closed and places nothing
until the worker unsuspends it; then it quotes again if the usual gate is open.
A pause or kill still works while suspended, and an unsuspend never undoes it.
"""

from __future__ import annotations

import pytest

from quoting_worker.core.types import (
    Action,
    BookDelta,
    CancelAll,
    InstrumentStatus,
    MarkPrice,
    OrderCancelled,
    PlaceOrder,
    PoolMode,
    PublicTrade,
    RiskTriggered,
    Side,
)
from tests.core.engine_world import (
    BTC,
    MEMBERS,
    MID,
    MS,
    PARAMS,
    World,
    cancels,
    fill_of,
    places,
    with_params,
)

REASON = "database down"
ACCOUNTS = tuple(sorted(m.account_id for m in MEMBERS))
FULL_LADDER = len(MEMBERS) * 2 * PARAMS.num_levels  # members × sides × levels


def cancel_alls(actions: list[Action]) -> list[CancelAll]:
    return [a for a in actions if isinstance(a, CancelAll)]


def quoting_then_suspended() -> tuple[World, list[PlaceOrder], list[Action]]:
    """An ACTIVE pool with its full ladder out, then suspended.

    Returns the world, the orders placed and the actions of the suspend."""
    world = World()
    orders = places(world.active())
    assert len(orders) == FULL_LADDER
    return world, orders, world.command("suspend", reason=REASON)


def confirm_cancels(world: World) -> list[Action]:
    """The venue confirms every cancel the engine has asked for."""
    out: list[Action] = []
    for coid in sorted(world.engine.orders.cancelling):
        out += world.send(OrderCancelled(coid, world.now()))
    return out


def test_suspend_withdraws_every_order_and_keeps_the_mode() -> None:
    world, orders, out = quoting_then_suspended()
    assert sorted(c.client_order_id for c in cancels(out)) == sorted(
        o.client_order_id for o in orders
    )
    # Each known order first, then the venue cancel-all for what MMS lost track of.
    assert out[-1] == CancelAll(ACCOUNTS, f"suspend: {REASON}")
    assert len(cancel_alls(out)) == 1
    assert places(out) == []
    assert not any(isinstance(a, RiskTriggered) for a in out)
    engine = world.engine
    assert engine.mode is PoolMode.ACTIVE
    assert engine.suspended == REASON
    assert engine.gate() == f"suspended: {REASON}"
    status = engine.status()
    assert status.mode is PoolMode.ACTIVE
    assert status.quoting is False
    assert status.gate_reason == f"suspended: {REASON}"
    assert status.halt == ""


def test_nothing_is_placed_while_suspended_whatever_happens() -> None:
    world, orders, _ = quoting_then_suspended()
    world.actions.clear()
    for _ in range(5):
        world.tick()  # time and the feed go on: every one would re-quote otherwise
    confirm_cancels(world)  # each slot emptied: a refill otherwise
    world.clock.advance(200 * MS)
    world.snapshot(MID + 200)  # the market moves 20 USDT
    world.send(MarkPrice(BTC.price(MID + 200), world.now()))
    world.send(PublicTrade(MID + 200, 1, world.now()))
    world.send(fill_of(orders[0], "f-1", lots=2, ts=world.now()))  # a late fill: news
    world.command("config", params=with_params(price_threshold_bps=0.0))
    world.command("resume")  # an operator's resume does not lift a suspension
    world.engine.hold()
    world.tick()
    world.actions += world.engine.release()
    assert places(world.actions) == []
    assert world.engine.mode is PoolMode.ACTIVE
    assert world.engine.gate() == f"suspended: {REASON}"
    assert world.engine.status().quoting is False


def test_a_fill_while_suspended_is_booked_but_not_requoted() -> None:
    world, orders, _ = quoting_then_suspended()
    world.clock.advance(200 * MS)
    order = orders[0]
    out = world.send(fill_of(order, "f-1", lots=3, ts=world.now()))
    assert places(out) == []
    position = world.engine.members[order.participant_id].runtime.position_lots
    assert position == (3 if order.side is Side.BUY else -3)


def test_a_second_suspend_does_nothing_and_keeps_the_first_reason() -> None:
    world, _, _ = quoting_then_suspended()
    assert world.command("suspend", reason="halt not recorded") == []
    assert world.engine.suspended == REASON
    assert world.engine.gate() == f"suspended: {REASON}"


def test_a_suspend_without_a_reason_still_says_why() -> None:
    world = World()
    world.active()
    out = world.command("suspend")
    assert cancel_alls(out) == [CancelAll(ACCOUNTS, "suspend: suspended")]
    assert world.engine.gate() == "suspended: suspended"


def test_unsuspend_quotes_the_full_ladder_again() -> None:
    world, orders, _ = quoting_then_suspended()
    confirm_cancels(world)
    world.clock.advance(200 * MS)
    out = world.command("unsuspend")
    placed = places(out)
    assert len(placed) == FULL_LADDER
    assert cancels(out) == []  # nothing rests any more: nothing to replace
    assert {o.client_order_id for o in placed}.isdisjoint(o.client_order_id for o in orders)
    assert {(o.participant_id, o.side, o.level) for o in placed} == {
        (o.participant_id, o.side, o.level) for o in orders
    }
    engine = world.engine
    assert engine.suspended == ""
    assert engine.mode is PoolMode.ACTIVE
    assert engine.gate() == ""
    status = engine.status()
    assert status.quoting is True
    assert status.gate_reason == ""


def test_unsuspend_inside_the_quote_interval_quotes_once_it_has_passed() -> None:
    world = World(params=with_params(quote_interval_ms=1000))
    assert len(places(world.active())) == FULL_LADDER  # quoted 200 ms ago
    world.command("suspend", reason=REASON)
    confirm_cancels(world)
    # Suspended and back within quote_interval_ms of the last quote: the throttle holds.
    assert places(world.command("unsuspend")) == []
    assert world.engine.gate() == ""
    assert places(world.tick(200)) == []
    assert len(places(world.tick(700))) == FULL_LADDER


def test_unsuspend_still_waits_for_a_synced_book() -> None:
    world, _, _ = quoting_then_suspended()
    confirm_cancels(world)
    world.seq += 2  # a delta lost while suspended
    world.send(BookDelta(world.seq, ((MID - 5, 100),), (), world.now()))
    world.clock.advance(200 * MS)
    assert places(world.command("unsuspend")) == []
    assert world.engine.gate() == "book not synced"
    assert world.engine.status().quoting is False
    assert places(world.tick()) == []
    assert len(places(world.snapshot())) == FULL_LADDER


def test_unsuspend_still_waits_for_the_instrument_status_and_the_mark() -> None:
    world = World()
    world.snapshot()
    for i in range(12):  # σ warms up; no instrument status and no mark yet
        world.clock.advance(1000 * MS)
        world.send(PublicTrade(MID + (10 if i % 2 else -10), 1, world.now()))
    world.snapshot()
    world.command("suspend", reason=REASON)
    world.command("enable")
    assert world.engine.gate() == f"suspended: {REASON}"
    assert places(world.command("unsuspend")) == []
    assert world.engine.gate() == "instrument status unknown"
    assert places(world.send(InstrumentStatus(halted=False, ts_ns=world.now()))) == []
    assert world.engine.gate() == "no mark price"
    assert len(places(world.send(MarkPrice(BTC.price(MID), world.now())))) == FULL_LADDER


def test_a_paused_pool_suspended_then_enabled_waits_for_unsuspend() -> None:
    world = World()
    world.warm()
    out = world.command("suspend", reason=REASON)
    assert cancels(out) == []  # nothing rests
    assert cancel_alls(out) == [CancelAll(ACCOUNTS, f"suspend: {REASON}")]
    assert world.engine.mode is PoolMode.PAUSED
    assert world.engine.gate() == "pool PAUSED"  # the mode is the first reason
    assert places(world.command("enable") + world.tick()) == []
    assert world.engine.mode is PoolMode.ACTIVE
    assert world.engine.gate() == f"suspended: {REASON}"
    world.clock.advance(200 * MS)
    assert len(places(world.command("unsuspend"))) == FULL_LADDER


def test_a_pause_while_suspended_cancels_and_unsuspend_then_places_nothing() -> None:
    world, _, _ = quoting_then_suspended()
    out = world.command("pause", reason="ops")
    # Every order is being cancelled already: no second cancel, but the cancel-all again.
    assert cancels(out) == []
    assert cancel_alls(out) == [CancelAll(ACCOUNTS, "pause: ops")]
    assert world.engine.mode is PoolMode.PAUSED
    confirm_cancels(world)
    world.clock.advance(200 * MS)
    world.actions.clear()
    assert world.command("unsuspend") == []
    for _ in range(5):
        world.tick()
    assert places(world.actions) == []
    assert world.engine.suspended == ""
    assert world.engine.mode is PoolMode.PAUSED
    assert world.engine.gate() == "pool PAUSED"
    assert world.engine.status().quoting is False
    # The suspension is gone: only the pause held the gate.
    assert len(places(world.command("enable"))) == FULL_LADDER


def test_a_kill_while_suspended_halts_and_unsuspend_does_not_resume() -> None:
    world, _, _ = quoting_then_suspended()
    out = world.command("kill", reason="operator")
    assert cancel_alls(out) == [CancelAll(ACCOUNTS, "KILL: operator")]
    assert world.engine.mode is PoolMode.HALTED
    confirm_cancels(world)
    world.clock.advance(200 * MS)
    world.actions.clear()
    world.command("unsuspend")
    for _ in range(5):
        world.tick()
    assert places(world.actions) == []
    assert world.engine.mode is PoolMode.HALTED
    assert world.engine.gate() == "pool HALTED"
    assert len(places(world.command("resume"))) == FULL_LADDER


@pytest.mark.parametrize(
    ("stop", "start", "mode"),
    [
        ("pause", "enable", PoolMode.PAUSED),
        ("kill", "resume", PoolMode.HALTED),
        ("flatten", "resume", PoolMode.HALTED),
    ],
)
def test_a_stop_and_start_while_suspended_still_wait_for_unsuspend(
    stop: str, start: str, mode: PoolMode
) -> None:
    world, _, _ = quoting_then_suspended()
    world.command(stop, reason="operator")
    assert world.engine.mode is mode
    confirm_cancels(world)
    world.clock.advance(200 * MS)
    assert places(world.command(start) + world.tick()) == []
    assert world.engine.mode is PoolMode.ACTIVE
    assert world.engine.gate() == f"suspended: {REASON}"
    assert world.engine.status().quoting is False
    assert len(places(world.command("unsuspend"))) == FULL_LADDER


def test_a_suspend_during_a_hold_cancels_at_once_and_the_release_places_nothing() -> None:
    world = World()
    orders = places(world.active())
    world.clock.advance(200 * MS)
    world.engine.hold()
    world.snapshot(MID + 200)  # a backlog that asks for a re-quote
    out = world.command("suspend", reason=REASON)
    assert {c.client_order_id for c in cancels(out)} == {o.client_order_id for o in orders}
    assert cancel_alls(out) == [CancelAll(ACCOUNTS, f"suspend: {REASON}")]
    assert world.engine.release() == []
