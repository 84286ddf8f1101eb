from __future__ import annotations

import pytest

from common.models import AuditLog
from participants.models import Participant
from tests.factories import MemberFactory, ParticipantFactory

pytestmark = pytest.mark.django_db

ACME = {"name": "Acme Liquidity", "user_id": "u-1", "account_id": "acct-acme", "tier": "TIER_1"}


def test_enroll_starts_pending_with_unique_short_id(ops):
    response = ops.post("/v1/participants", ACME, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "PENDING"
    assert body["short_id"] == body["id"][:8]
    audit = AuditLog.objects.get(entity_type="participant", entity_id=body["id"])
    assert (audit.action, audit.actor, audit.to_state) == ("enroll", "olga-ops", "PENDING")


def test_duplicate_account_is_refused_without_a_second_row(ops):
    assert ops.post("/v1/participants", ACME, format="json").status_code == 201
    response = ops.post("/v1/participants", {**ACME, "name": "Other"}, format="json")
    assert response.status_code == 409
    assert "account_id" in response.json()["errors"]
    assert Participant.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({**ACME, "tier": "TIER_9"}, "tier", 400),
        ({**ACME, "margin_usdt": "-5"}, "margin_usdt", 400),
        # each value fits the schema; a share under KEEP_ALL does not
        ({**ACME, "revenue_share_pct": "20"}, "revenue_share_pct", 422),
        (
            {**ACME, "revenue_model": "PERCENTAGE_SPLIT", "revenue_share_pct": "101"},
            "revenue_share_pct",
            400,
        ),
        ({k: v for k, v in ACME.items() if k != "account_id"}, "account_id", 400),
        ({**ACME, "name": 7}, "name", 400),
        ({**ACME, "name": "  "}, "name", 400),
    ],
)
def test_bad_enrolment_names_the_field(ops, body, field, status):
    response = ops.post("/v1/participants", body, format="json")
    assert response.status_code == status
    assert field in response.json()["errors"]
    assert not Participant.objects.exists()


def test_lifecycle_pending_active_suspended_active_terminated(ops):
    pid = ops.post("/v1/participants", ACME, format="json").json()["id"]
    for action, state in [
        ("activate", "ACTIVE"),
        ("suspend", "SUSPENDED"),
        ("activate", "ACTIVE"),
        ("terminate", "TERMINATED"),
    ]:
        response = ops.post(f"/v1/participants/{pid}/{action}", {"reason": "review"}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["state"] == state
    actions = list(
        AuditLog.objects.filter(entity_id=pid).order_by("id").values_list("action", "to_state")
    )
    assert actions[1:] == [
        ("activate", "ACTIVE"),
        ("suspend", "SUSPENDED"),
        ("activate", "ACTIVE"),
        ("terminate", "TERMINATED"),
    ]


def test_illegal_transition_answers_409_with_current_state(ops):
    pid = ops.post("/v1/participants", ACME, format="json").json()["id"]
    response = ops.post(f"/v1/participants/{pid}/suspend", {}, format="json")
    assert response.status_code == 409
    assert response.json()["current_state"] == "PENDING"
    assert response.json()["code"] == "illegal_transition"
    ops.post(f"/v1/participants/{pid}/terminate", {}, format="json")
    response = ops.post(f"/v1/participants/{pid}/activate", {}, format="json")
    assert (response.status_code, response.json()["current_state"]) == (409, "TERMINATED")


def test_update_mutable_fields_audits_old_and_new(ops):
    pid = ops.post("/v1/participants", ACME, format="json").json()["id"]
    response = ops.put(
        f"/v1/participants/{pid}",
        {"revenue_model": "PERCENTAGE_SPLIT", "revenue_share_pct": "20"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    audit = AuditLog.objects.get(entity_id=pid, action="update")
    assert audit.changes["revenue_share_pct"] == ["0.00", "20.00"]
    assert audit.changes["revenue_model"] == ["KEEP_ALL", "PERCENTAGE_SPLIT"]


def test_identity_fields_cannot_change(ops):
    pid = ops.post("/v1/participants", ACME, format="json").json()["id"]
    response = ops.put(f"/v1/participants/{pid}", {"account_id": "acct-other"}, format="json")
    assert response.status_code == 400
    assert "account_id" in response.json()["errors"]
    assert Participant.objects.get(pk=pid).account_id == "acct-acme"


def test_unknown_participant_is_404(ops):
    response = ops.get("/v1/participants/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_lp_reads_only_itself(api_client):
    mine, other = ParticipantFactory(), ParticipantFactory()
    MemberFactory(participant=mine)
    lp = api_client("lp", participant_id=str(mine.pk))
    listing = lp.get("/v1/participants").json()
    assert [p["id"] for p in listing["results"]] == [str(mine.pk)]
    assert lp.get(f"/v1/participants/{mine.pk}").status_code == 200
    assert lp.get(f"/v1/participants/{mine.pk}/memberships").json()["count"] == 1
    assert lp.get(f"/v1/participants/{other.pk}").status_code == 403
    assert lp.get(f"/v1/participants/{other.pk}/memberships").status_code == 403
    assert lp.post(f"/v1/participants/{mine.pk}/activate", {}, format="json").status_code == 403


def test_viewer_reads_but_cannot_write(viewer):
    assert viewer.get("/v1/participants").status_code == 200
    response = viewer.post("/v1/participants", ACME, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
