from __future__ import annotations

import pytest

from common.models import AuditLog, OutboxEvent
from pools.models import PoolConfig

pytestmark = pytest.mark.django_db

BTC = {
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


def test_create_pool_starts_paused_and_is_audited(ops):
    response = ops.post("/v1/pools", BTC, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["state"] == "PAUSED"
    assert response.json()["gamma"] == "0.1000000000"
    audit = AuditLog.objects.get(entity_type="pool", entity_id="BTCUSDT-PERP", action="create")
    assert audit.actor == "olga-ops"
    assert audit.changes["gamma"] == [None, "0.1000000000"]


def test_enable_pause_resume_cycle_writes_outbox(ops):
    ops.post("/v1/pools", BTC, format="json")
    assert ops.post("/v1/pools/BTCUSDT-PERP/enable", {}, format="json").json()["state"] == "ACTIVE"
    assert ops.post("/v1/pools/BTCUSDT-PERP/pause", {}, format="json").json()["state"] == "PAUSED"
    events = list(OutboxEvent.objects.filter(topic="mm.state.changed.v1").order_by("id"))
    assert [(e.payload["from_state"], e.payload["to_state"]) for e in events] == [
        ("PAUSED", "ACTIVE"),
        ("ACTIVE", "PAUSED"),
    ]
    assert PoolConfig.objects.get(symbol="BTCUSDT-PERP").enabled is True


def test_min_spread_above_max_names_the_field(ops):
    response = ops.post("/v1/pools", {**BTC, "min_spread_bps": "60"}, format="json")
    assert response.status_code == 400
    assert "min_spread_bps" in response.json()["errors"]
    assert not PoolConfig.objects.exists()
