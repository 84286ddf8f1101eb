"""Pool lifecycle through the one service function, as the API, admin and worker use it."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection

from common.actors import SYSTEM, Actor, ActorKind
from common.exceptions import IllegalTransition, Unprocessable
from common.models import AuditLog, OutboxEvent
from pools import services
from pools.models import FlattenRequest, PoolConfig
from tests.factories import PoolFactory

OPS = Actor("olga-ops")


def _state(symbol: str) -> str:
    return str(PoolConfig.objects.get(symbol=symbol).state)


@pytest.mark.django_db
def test_halted_pool_resumes_only_by_a_person_with_a_note(ops):
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    services.pool_enable(pool=pool, actor=OPS)
    services.pool_halt(
        pool=pool, actor=Actor("quoter-1", ActorKind.QUOTER), trigger="LOSS", detail="pnl -6000"
    )
    response = ops.post("/v1/pools/BTCUSDT-PERP/resume", {}, format="json")
    assert response.status_code == 422  # well formed; the pool's state asks for a note
    assert "note" in response.json()["errors"]
    with pytest.raises(IllegalTransition):
        services.pool_resume(pool=pool, actor=SYSTEM, note="auto")
    assert _state("BTCUSDT-PERP") == "HALTED"
    response = ops.post("/v1/pools/BTCUSDT-PERP/resume", {"note": "loss reviewed"}, format="json")
    assert response.status_code == 200
    assert response.json()["state"] == "ACTIVE"
    audit = AuditLog.objects.filter(entity_id="BTCUSDT-PERP", action="resume").get()
    assert (audit.actor, audit.from_state, audit.reason) == ("olga-ops", "HALTED", "loss reviewed")


@pytest.mark.django_db
def test_halt_writes_state_and_risk_events_in_one_transaction():
    pool = PoolFactory(symbol="ETHUSDT-PERP")
    services.pool_enable(pool=pool, actor=OPS)
    services.pool_halt(
        pool=pool, actor=Actor("q", ActorKind.QUOTER), trigger="REJECT_STORM", detail="12 rejects"
    )
    topics = list(OutboxEvent.objects.order_by("id").values_list("topic", "key"))
    assert topics == [
        ("mm.state.changed.v1", "ETHUSDT-PERP"),
        ("mm.state.changed.v1", "ETHUSDT-PERP"),
        ("mm.risk.triggered.v1", "ETHUSDT-PERP"),
    ]
    assert OutboxEvent.objects.last().payload["trigger"] == "REJECT_STORM"


@pytest.mark.django_db
def test_illegal_pool_transitions_answer_409(ops):
    PoolFactory(symbol="BTCUSDT-PERP")
    response = ops.post("/v1/pools/BTCUSDT-PERP/pause", {}, format="json")
    assert response.status_code == 409
    assert response.json()["current_state"] == "PAUSED"
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db
def test_delete_archives_and_only_when_not_active(ops):
    PoolFactory(symbol="BTCUSDT-PERP")
    ops.post("/v1/pools/BTCUSDT-PERP/enable", {}, format="json")
    response = ops.delete("/v1/pools/BTCUSDT-PERP")
    assert (response.status_code, response.json()["current_state"]) == (409, "ACTIVE")
    ops.post("/v1/pools/BTCUSDT-PERP/pause", {}, format="json")
    response = ops.delete("/v1/pools/BTCUSDT-PERP")
    assert response.status_code == 200
    assert response.json()["archived_at"] is not None
    assert PoolConfig.objects.filter(symbol="BTCUSDT-PERP").exists()
    assert ops.get("/v1/pools").json()["count"] == 0
    assert ops.get("/v1/pools?include_archived=true").json()["count"] == 1
    response = ops.post("/v1/pools/BTCUSDT-PERP/enable", {}, format="json")
    assert (response.status_code, response.json()["current_state"]) == (409, "ARCHIVED")


@pytest.mark.django_db
def test_emergency_kill_halts_every_pool_not_halted(ops):
    for symbol in ("AUSDT-PERP", "BUSDT-PERP", "CUSDT-PERP"):
        PoolFactory(symbol=symbol)
    services.pool_enable(pool=PoolConfig.objects.get(symbol="AUSDT-PERP"), actor=OPS)
    services.pool_halt(
        pool=PoolConfig.objects.get(symbol="CUSDT-PERP"), actor=OPS, trigger="X", detail="y"
    )
    response = ops.post("/v1/mm/emergency/kill", {"reason": "venue incident"}, format="json")
    assert response.status_code == 200
    assert response.json()["halted"] == ["AUSDT-PERP", "BUSDT-PERP"]
    assert set(PoolConfig.objects.values_list("state", flat=True)) == {"HALTED"}
    risk = OutboxEvent.objects.filter(
        topic="mm.risk.triggered.v1", payload__trigger="EMERGENCY_KILL"
    )
    assert risk.count() == 2


@pytest.mark.django_db
def test_emergency_flatten_records_a_durable_request(ops):
    PoolFactory(symbol="AUSDT-PERP")
    response = ops.post("/v1/mm/emergency/flatten", {"reason": "lost orders"}, format="json")
    assert response.status_code == 202
    body = response.json()
    flatten = FlattenRequest.objects.get(pk=body["flatten_request_id"])
    assert (flatten.status, flatten.requested_by, flatten.completed_at) == (
        "REQUESTED",
        "olga-ops",
        None,
    )
    assert body["halted"] == ["AUSDT-PERP"]
    status = ops.get("/v1/mm/status").json()
    assert status["pending_flatten_requests"] == 1
    assert status["by_state"] == {"HALTED": 1}


def _live_and_archived() -> None:
    """AUSDT-PERP ACTIVE, BUSDT-PERP PAUSED, and ZUSDT-PERP archived (PAUSED)."""
    for symbol in ("AUSDT-PERP", "BUSDT-PERP", "ZUSDT-PERP"):
        PoolFactory(symbol=symbol)
    services.pool_enable(pool=PoolConfig.objects.get(symbol="AUSDT-PERP"), actor=OPS)
    services.pool_archive(pool=PoolConfig.objects.get(symbol="ZUSDT-PERP"), actor=OPS)


def _archived_untouched() -> None:
    archived = PoolConfig.objects.get(symbol="ZUSDT-PERP")
    assert (archived.state, archived.archived_at is not None) == ("PAUSED", True)
    assert not AuditLog.objects.filter(entity_id="ZUSDT-PERP", action="halt").exists()
    assert not OutboxEvent.objects.filter(key="ZUSDT-PERP", topic="mm.risk.triggered.v1").exists()


@pytest.mark.django_db
def test_emergency_kill_ignores_archived_pools(ops):
    _live_and_archived()
    response = ops.post("/v1/mm/emergency/kill", {"reason": "venue incident"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["halted"] == ["AUSDT-PERP", "BUSDT-PERP"]
    assert (_state("AUSDT-PERP"), _state("BUSDT-PERP")) == ("HALTED", "HALTED")
    _archived_untouched()
    assert ops.get("/v1/mm/status").json()["by_state"] == {"HALTED": 2}


@pytest.mark.django_db
def test_emergency_flatten_ignores_archived_pools(ops):
    _live_and_archived()
    response = ops.post("/v1/mm/emergency/flatten", {"reason": "lost orders"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["halted"] == ["AUSDT-PERP", "BUSDT-PERP"]
    assert FlattenRequest.objects.filter(pk=body["flatten_request_id"]).exists()
    assert (_state("AUSDT-PERP"), _state("BUSDT-PERP")) == ("HALTED", "HALTED")
    _archived_untouched()


@pytest.mark.django_db
def test_emergency_kill_with_only_archived_pools_halts_nothing(ops):
    PoolFactory(symbol="ZUSDT-PERP")
    services.pool_archive(pool=PoolConfig.objects.get(symbol="ZUSDT-PERP"), actor=OPS)
    response = ops.post("/v1/mm/emergency/kill", {"reason": "drill"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["halted"] == []
    _archived_untouched()


@pytest.mark.django_db
def test_reset_points_to_resume(ops):
    response = ops.post("/v1/mm/reset", {}, format="json")
    assert response.status_code == 409
    assert "/resume" in response.json()["message"]


@pytest.mark.django_db
def test_boot_pause_pauses_active_and_leaves_halted():
    active, halted = PoolFactory(symbol="AUSDT-PERP"), PoolFactory(symbol="BUSDT-PERP")
    services.pool_enable(pool=active, actor=OPS)
    services.pool_halt(pool=halted, actor=OPS, trigger="X", detail="y")
    assert services.pool_boot_pause(pool=active, actor=SYSTEM, reason="boot") is not None
    assert services.pool_boot_pause(pool=halted, actor=SYSTEM, reason="boot") is None
    assert (_state("AUSDT-PERP"), _state("BUSDT-PERP")) == ("PAUSED", "HALTED")
    assert AuditLog.objects.filter(action="pause", actor="system").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_transitions_cannot_both_win():
    """Two operators pause at the same instant: the row lock lets one win and
    the other sees PAUSED and is refused."""
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    services.pool_enable(pool=pool, actor=OPS)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def pause(name: str) -> None:
        barrier.wait()
        try:
            services.pool_pause(pool=pool, actor=Actor(name))
            outcomes.append("won")
        except IllegalTransition as exc:
            outcomes.append(f"refused:{exc.extra['current_state']}")
        finally:
            connection.close()

    threads = [threading.Thread(target=pause, args=(f"op{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused:PAUSED", "won"]
    assert AuditLog.objects.filter(action="pause").count() == 1
    assert OutboxEvent.objects.filter(payload__to_state="PAUSED").count() == 1


@pytest.mark.django_db
def test_config_update_is_audited_with_old_and_new(ops):
    PoolFactory(symbol="BTCUSDT-PERP")
    response = ops.put("/v1/pools/BTCUSDT-PERP", {"gamma": "0.25", "num_levels": 5}, format="json")
    assert response.status_code == 200, response.json()
    audit = AuditLog.objects.get(entity_id="BTCUSDT-PERP", action="update")
    assert audit.changes == {"gamma": ["0.1000000000", "0.2500000000"], "num_levels": [3, 5]}


@pytest.mark.django_db
def test_update_that_breaks_spread_order_is_refused(ops):
    PoolFactory(symbol="BTCUSDT-PERP", min_spread_bps=Decimal(2), max_spread_bps=Decimal(50))
    response = ops.put("/v1/pools/BTCUSDT-PERP", {"max_spread_bps": "1"}, format="json")
    assert response.status_code == 422  # each value fits the schema; together they do not
    assert "min_spread_bps" in response.json()["errors"]
    assert PoolConfig.objects.get(symbol="BTCUSDT-PERP").max_spread_bps == Decimal(50)


@pytest.mark.django_db
def test_service_refuses_bad_config_without_writing():
    with pytest.raises(Unprocessable):
        services.pool_create_or_update(
            symbol="BTCUSDT-PERP",
            config={
                "gamma": Decimal("0.1"),
                "kappa": Decimal("1"),
                "vol_lookback_seconds": 60,
                "tau": Decimal(1),
                "num_levels": 1,
                "level_spacing_bps": Decimal(1),
                "min_spread_bps": Decimal(10),
                "max_spread_bps": Decimal(5),
                "order_size_usdt": Decimal(100),
                "max_pool_position_usdt": Decimal(1),
                "max_pool_loss_usdt": Decimal(1),
            },
            actor=OPS,
        )
    assert not PoolConfig.objects.exists()
    assert not AuditLog.objects.exists()


@pytest.mark.django_db
def test_active_pool_cannot_be_disabled_by_update(ops):
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    services.pool_enable(pool=pool, actor=OPS)
    response = ops.put("/v1/pools/BTCUSDT-PERP", {"enabled": False}, format="json")
    assert response.status_code == 409, response.json()
    body = response.json()
    assert "enabled" in body["errors"]
    assert body["current_state"] == "ACTIVE"
    pool = PoolConfig.objects.get(symbol="BTCUSDT-PERP")
    assert (pool.enabled, pool.state) == (True, "ACTIVE")
    assert not AuditLog.objects.filter(entity_id="BTCUSDT-PERP", action="update").exists()


@pytest.mark.django_db
def test_paused_pool_can_be_disabled_by_update(ops):
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    services.pool_enable(pool=pool, actor=OPS)
    services.pool_pause(pool=pool, actor=OPS)
    response = ops.put("/v1/pools/BTCUSDT-PERP", {"enabled": False}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["enabled"], response.json()["state"]) == (False, "PAUSED")
    pool = PoolConfig.objects.get(symbol="BTCUSDT-PERP")
    assert (pool.enabled, pool.state) == (False, "PAUSED")
    audit = AuditLog.objects.get(entity_id="BTCUSDT-PERP", action="update")
    assert audit.changes == {"enabled": [True, False]}


@pytest.mark.django_db
def test_restore_is_audited_with_the_old_archived_at(ops):
    PoolFactory(symbol="BTCUSDT-PERP")
    services.pool_archive(pool=PoolConfig.objects.get(symbol="BTCUSDT-PERP"), actor=OPS)
    archived_at = PoolConfig.objects.get(symbol="BTCUSDT-PERP").archived_at
    assert archived_at is not None
    body = {
        "symbol": "BTCUSDT-PERP",
        "gamma": "0.1",
        "kappa": "1.5",
        "vol_lookback_seconds": 300,
        "tau": "1",
        "num_levels": 3,
        "level_spacing_bps": "2",
        "min_spread_bps": "2",
        "max_spread_bps": "50",
        "order_size_usdt": "1000",
        "max_pool_position_usdt": "100000",
        "max_pool_loss_usdt": "5000",
    }
    response = ops.post("/v1/pools", body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["archived_at"] is None
    audit = AuditLog.objects.get(entity_id="BTCUSDT-PERP", action="restore")
    assert audit.actor == "olga-ops"
    old, new = audit.changes["archived_at"]
    assert new is None
    assert old == archived_at.isoformat()
    assert dt.datetime.fromisoformat(old) == archived_at
    assert PoolConfig.objects.get(symbol="BTCUSDT-PERP").archived_at is None
