from __future__ import annotations

import json
from decimal import Decimal

import pytest

from common.models import AuditLog
from common.redis import redis_client
from pools.models import PoolMember
from tests.factories import FillFactory, MemberFactory, ParticipantFactory, PoolFactory

pytestmark = pytest.mark.django_db


def test_add_update_remove_member_with_audit(ops):
    PoolFactory(symbol="BTCUSDT-PERP")
    participant = ParticipantFactory()
    response = ops.post(
        "/v1/pools/BTCUSDT-PERP/members",
        {"participant_id": str(participant.pk), "weight": "2.5", "max_position_usdt": "50000"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    member_id = response.json()["id"]
    assert response.json()["participant_name"] == participant.name

    response = ops.put(
        f"/v1/pools/BTCUSDT-PERP/members/{member_id}", {"weight": "3"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["weight"] == "3.00000000"
    assert ops.get("/v1/pools/BTCUSDT-PERP/members").json()["count"] == 1

    assert ops.delete(f"/v1/pools/BTCUSDT-PERP/members/{member_id}").status_code == 204
    assert not PoolMember.objects.exists()
    actions = list(
        AuditLog.objects.filter(entity_type="member", entity_id=str(member_id))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["add", "update", "remove"]
    removed = AuditLog.objects.get(entity_type="member", action="remove")
    assert removed.changes["weight"] == ["3.00000000", None]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weight": "0", "max_position_usdt": "1"}, "weight"),
        ({"weight": "-1", "max_position_usdt": "1"}, "weight"),
        ({"weight": "1", "max_position_usdt": "-1"}, "max_position_usdt"),
        ({"weight": "abc", "max_position_usdt": "1"}, "weight"),
    ],
)
def test_bad_member_values_name_the_field(ops, body, field):
    PoolFactory(symbol="BTCUSDT-PERP")
    participant = ParticipantFactory()
    response = ops.post(
        "/v1/pools/BTCUSDT-PERP/members",
        {"participant_id": str(participant.pk), **body},
        format="json",
    )
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not PoolMember.objects.exists()


def test_member_twice_or_unknown_participant_is_refused(ops):
    member = MemberFactory(pool=PoolFactory(symbol="BTCUSDT-PERP"))
    body = {"participant_id": str(member.participant_id), "weight": "1", "max_position_usdt": "1"}
    response = ops.post("/v1/pools/BTCUSDT-PERP/members", body, format="json")
    assert response.status_code == 409
    unknown = {**body, "participant_id": "00000000-0000-0000-0000-000000000001"}
    response = ops.post("/v1/pools/BTCUSDT-PERP/members", unknown, format="json")
    assert response.status_code == 422  # a well-formed id that names no participant
    assert "participant_id" in response.json()["errors"]
    assert PoolMember.objects.count() == 1


def test_member_with_a_position_stays_while_the_pool_is_active(ops):
    member = MemberFactory(pool=PoolFactory(symbol="BTCUSDT-PERP"))
    FillFactory(
        participant=member.participant, symbol="BTCUSDT-PERP", side="BUY", size=Decimal("0.500")
    )
    FillFactory(
        participant=member.participant, symbol="BTCUSDT-PERP", side="SELL", size=Decimal("0.200")
    )
    ops.post("/v1/pools/BTCUSDT-PERP/enable", {}, format="json")
    response = ops.delete(f"/v1/pools/BTCUSDT-PERP/members/{member.pk}")
    assert response.status_code == 409
    assert response.json()["position"] == "0.300"  # at BTC's lot (0.001), as stored
    ops.post("/v1/pools/BTCUSDT-PERP/pause", {}, format="json")
    assert ops.delete(f"/v1/pools/BTCUSDT-PERP/members/{member.pk}").status_code == 204


def test_status_says_worker_down_without_a_live_record(viewer):
    PoolFactory(symbol="BTCUSDT-PERP")
    body = viewer.get("/v1/pools/BTCUSDT-PERP/status").json()
    assert (body["state"], body["worker"], body["live"]) == ("PAUSED", "down", None)


def test_status_shows_the_workers_live_record(viewer):
    PoolFactory(symbol="BTCUSDT-PERP")
    PoolFactory(symbol="ETHUSDT-PERP")
    record = {"version": 7, "state_in_effect": "PAUSED", "q": "0.25"}
    redis_client().set("mms:live:pool:BTCUSDT-PERP", json.dumps(record), ex=5)
    try:
        rows = {row["symbol"]: row for row in viewer.get("/v1/pools/status").json()}
        assert rows["BTCUSDT-PERP"]["worker"] == "up"
        assert rows["BTCUSDT-PERP"]["live"] == record
        assert rows["ETHUSDT-PERP"]["worker"] == "down"
        assert viewer.get("/v1/mm/status").json()["workers_up"] == 1
    finally:
        redis_client().delete("mms:live:pool:BTCUSDT-PERP")


def test_unknown_pool_is_404(viewer):
    response = viewer.get("/v1/pools/NOPE-PERP")
    assert response.status_code == 404
    assert response.json()["status"] == 404
