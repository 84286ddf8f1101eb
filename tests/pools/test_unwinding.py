"""UNWINDING's lifecycle (SPEC Part B.20) through the service, the API and the
admin's service calls: entered only by a person with a note from PAUSED or
HALTED, left to PAUSED by the worker (flat, time limit) or a person; a kill
halts it; nothing that would drop a position while it places orders."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.actors import SYSTEM, Actor, ActorKind
from common.exceptions import Conflict, IllegalTransition, InvalidInput
from common.models import AuditLog, OutboxEvent
from pools import services
from pools.models import PoolConfig
from tests.factories import PoolFactory

OPS = Actor("olga-ops")
QUOTER = Actor("quoter-1", ActorKind.QUOTER)


def _state(symbol: str) -> str:
    return str(PoolConfig.objects.get(symbol=symbol).state)


@pytest.mark.django_db
def test_a_person_unwinds_a_halted_pool_with_a_note_and_it_is_audited(ops):
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    services.pool_enable(pool=pool, actor=OPS)
    services.pool_halt(pool=pool, actor=QUOTER, trigger="POSITION", detail="q 300k > 250k")
    response = ops.post("/v1/pools/BTCUSDT-PERP/unwind", {}, format="json")
    assert response.status_code == 400
    assert "note" in response.json()["errors"]
    with pytest.raises(InvalidInput):
        services.pool_unwind(pool=pool, actor=OPS, note="  ")
    with pytest.raises(IllegalTransition):
        services.pool_unwind(pool=pool, actor=SYSTEM, note="auto")
    assert _state("BTCUSDT-PERP") == "HALTED"
    response = ops.post(
        "/v1/pools/BTCUSDT-PERP/unwind", {"note": "bring Alpha back under its limit"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["state"] == "UNWINDING"
    audit = AuditLog.objects.filter(entity_id="BTCUSDT-PERP", action="unwind").get()
    assert (audit.actor, audit.from_state, audit.to_state, audit.reason) == (
        "olga-ops",
        "HALTED",
        "UNWINDING",
        "bring Alpha back under its limit",
    )
    changed = OutboxEvent.objects.filter(topic="mm.state.changed.v1").last()
    assert changed.payload["to_state"] == "UNWINDING"


@pytest.mark.django_db
def test_only_from_paused_or_halted(ops):
    pool = PoolFactory(symbol="ETHUSDT-PERP")
    services.pool_enable(pool=pool, actor=OPS)
    response = ops.post("/v1/pools/ETHUSDT-PERP/unwind", {"note": "x"}, format="json")
    assert response.status_code == 409
    assert response.json()["current_state"] == "ACTIVE"
    services.pool_pause(pool=pool, actor=OPS)
    services.pool_unwind(pool=pool, actor=OPS, note="flatten the book")
    with pytest.raises(IllegalTransition):
        services.pool_resume(pool=pool, actor=OPS, note="straight back")
    assert _state("ETHUSDT-PERP") == "UNWINDING"


@pytest.mark.django_db
def test_it_ends_paused_by_the_worker_or_a_person_and_a_kill_halts_it(ops):
    a, b, c = (PoolFactory(symbol=s) for s in ("AUSDT-PERP", "BUSDT-PERP", "CUSDT-PERP"))
    for pool in (a, b, c):
        services.pool_unwind(pool=pool, actor=OPS, note="unwind")
    done = services.pool_unwind_finished(pool=a, actor=QUOTER, reason="every member flat")
    assert done is not None
    assert _state("AUSDT-PERP") == "PAUSED"
    audit = AuditLog.objects.filter(entity_id="AUSDT-PERP", action="finish_unwind").get()
    assert (audit.actor, audit.reason) == ("quoter-1", "unwind over: every member flat")
    # Already over: nothing more is recorded.
    assert services.pool_unwind_finished(pool=a, actor=QUOTER, reason="again") is None
    assert ops.post("/v1/pools/BUSDT-PERP/pause", {}, format="json").json()["state"] == "PAUSED"
    killed = ops.post("/v1/mm/emergency/kill", {"reason": "desk"}, format="json")
    assert killed.status_code == 200
    assert _state("CUSDT-PERP") == "HALTED"
    # The worker's end after a person's pause or kill changes nothing.
    assert services.pool_unwind_finished(pool=c, actor=QUOTER, reason="time limit") is None
    assert _state("CUSDT-PERP") == "HALTED"


@pytest.mark.django_db
def test_while_unwinding_it_cannot_be_archived_or_disabled_and_boot_pauses_it(ops):
    pool = PoolFactory(symbol="BTCUSDT-PERP", enabled=True)
    services.pool_unwind(pool=pool, actor=OPS, note="unwind")
    assert ops.delete("/v1/pools/BTCUSDT-PERP").status_code == 409
    with pytest.raises(Conflict):
        services.pool_update(pool=pool, config={"enabled": False}, actor=OPS)
    assert services.pool_boot_pause(pool=pool, actor=SYSTEM, reason="boot") is not None
    assert _state("BTCUSDT-PERP") == "PAUSED"


@pytest.mark.django_db
def test_the_unwind_settings_and_target_inventory_are_config(ops):
    PoolFactory(symbol="BTCUSDT-PERP")
    response = ops.put(
        "/v1/pools/BTCUSDT-PERP",
        {
            "target_inventory": "-0.5",
            "unwind_band_bps": "25",
            "unwind_max_loss_usdt": "1000",
            "unwind_time_limit_s": 1800,
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    pool = PoolConfig.objects.get(symbol="BTCUSDT-PERP")
    assert (pool.target_inventory, pool.unwind_band_bps, pool.unwind_time_limit_s) == (
        Decimal("-0.5"),
        Decimal("25"),
        1800,
    )
    refused = ops.put("/v1/pools/BTCUSDT-PERP", {"unwind_band_bps": "0"}, format="json")
    assert refused.status_code == 400
    assert "unwind_band_bps" in refused.json()["errors"]
