"""Pool changes notify the workers after commit; the worker turns the database row
into engine commands; live status records are JSON with an expiry."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest

from common.actors import Actor
from common.notify import POOL_CHANGED_CHANNEL
from common.redis import redis_client
from pools import services
from quoting_worker.adapters import store
from quoting_worker.adapters.live import commands_for, status_record
from quoting_worker.core.types import PoolMode
from tests.core.engine_world import World
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory

pytestmark = pytest.mark.django_db


def test_a_pool_change_is_announced_only_after_commit(django_capture_on_commit_callbacks):
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(POOL_CHANGED_CHANNEL)
    try:
        with django_capture_on_commit_callbacks(execute=False) as pending:
            services.pool_enable(pool=pool, actor=Actor("olga"))
        assert pubsub.get_message(timeout=0.2) is None  # not before the commit
        for callback in pending:
            callback()
        message = pubsub.get_message(timeout=2)
        assert message is not None
        assert json.loads(message["data"]) == {
            "symbol": "BTCUSDT-PERP",
            "reason": "enable",
            "state": "ACTIVE",
        }
    finally:
        pubsub.close()


def test_commands_follow_the_database_row():
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    MemberFactory(pool=pool, participant=ParticipantFactory(state="ACTIVE"))
    setup = store.pool_setup(symbol="BTCUSDT-PERP")
    assert setup is not None
    world = World(params=setup.params, members=setup.members)
    assert commands_for(setup, world.engine, now_ns=1) == []
    active = replace(setup, mode=PoolMode.ACTIVE)
    assert [c.kind for c in commands_for(active, world.engine, now_ns=1)] == ["resume"]
    halted = replace(setup, mode=PoolMode.HALTED)
    assert [c.kind for c in commands_for(halted, world.engine, now_ns=1)] == ["kill"]
    wider = replace(setup, params=replace(setup.params, max_spread_bps=80.0))
    assert [c.kind for c in commands_for(wider, world.engine, now_ns=1)] == ["config"]
    member = replace(setup.members[0], weight=Decimal(5))
    reweighted = replace(setup, members=(member,))
    assert [c.kind for c in commands_for(reweighted, world.engine, now_ns=1)] == ["members"]


def test_status_record_is_plain_json():
    world = World()
    world.active()
    record = status_record(world.engine.status(), worker_id="w1", version=3, now_ns=42)
    text = json.dumps(record)
    back = json.loads(text)
    assert back["mode"] == "ACTIVE"
    assert back["version"] == 3
    assert back["worker_id"] == "w1"
    assert len(back["members"]) == 3
    assert all(m["quoting_both_sides"] for m in back["members"])
    assert Decimal(back["members"][0]["bid_depth_usdt"]) > 0


def test_the_live_record_writes_decimals_in_plain_notation():
    """A PEPE spread reads 0.000000004 (it read "4E-9"), a venue position 0.527
    (the venue answers 0.52700000)."""
    world = World()
    status = world.engine.status()
    member = replace(status.members[0], venue_position=Decimal("0.52700000"))
    status = replace(status, quoted_spread=Decimal("4E-9"), members=(member,))
    record = status_record(status, worker_id="w-1", version=1, now_ns=world.now())
    assert record["quoted_spread"] == "0.000000004"
    assert record["members"][0]["venue_position"] == "0.52700000"  # as the engine holds it
    shown = World()
    shown.engine.membership.venue_position("acct-a", Decimal("0.52700000"))
    views = status_record(shown.engine.status(), worker_id="w-1", version=1, now_ns=shown.now())
    assert views["members"][0]["venue_position"] == "0.527"
