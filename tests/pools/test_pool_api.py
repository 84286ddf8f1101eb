from __future__ import annotations

from decimal import Decimal

import pytest

from common.models import AuditLog, OutboxEvent
from pools.models import PoolConfig
from tests.factories import PoolFactory

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
    assert response.status_code == 422  # each bound fits the schema; the pair does not
    assert "min_spread_bps" in response.json()["errors"]
    assert not PoolConfig.objects.exists()


@pytest.mark.parametrize(
    ("body", "unknown"),
    [
        ({"gama": "0.2"}, ["gama"]),
        ({"gamma": "0.2", "symbol": "ETHUSDT-PERP"}, ["symbol"]),
        ({"state": "ACTIVE", "archived_at": None}, ["archived_at", "state"]),
    ],
)
def test_update_with_an_unknown_key_is_400_naming_it(ops, body, unknown):
    PoolFactory(symbol="BTCUSDT-PERP")
    response = ops.put("/v1/pools/BTCUSDT-PERP", body, format="json")
    assert response.status_code == 400, response.json()
    assert sorted(response.json()["errors"]) == unknown
    pool = PoolConfig.objects.get(symbol="BTCUSDT-PERP")
    assert (pool.gamma, pool.state, pool.archived_at) == (Decimal("0.1"), "PAUSED", None)
    assert not AuditLog.objects.filter(action="update").exists()


def test_create_with_an_unknown_key_is_400_naming_it(ops):
    response = ops.post("/v1/pools", {**BTC, "gamma_typo": "0.2"}, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == ["gamma_typo"]
    assert not PoolConfig.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/v1/pools/A%00B",
        "/v1/pools/%00",
        "/v1/pools/btcusdt-perp",
        "/v1/pools/BTC%20USDT-PERP",
        "/v1/pools/A%00B/status",
        "/v1/pools/A%00B/members",
    ],
)
def test_malformed_symbol_in_the_path_is_404_not_500(viewer, url):
    PoolFactory(symbol="BTCUSDT-PERP")
    response = viewer.get(url)
    assert response.status_code == 404


@pytest.mark.parametrize("action", ["enable", "pause", "resume"])
def test_action_on_a_malformed_symbol_is_404(ops, action):
    assert ops.post(f"/v1/pools/A%00B/{action}", {}, format="json").status_code == 404
