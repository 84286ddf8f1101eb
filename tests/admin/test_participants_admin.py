"""Participants in the panel: enrolled and updated through the services,
moved through their lifecycle by ops, never deleted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.actors import Actor
from common.models import AuditLog
from participants import services
from participants.enums import ParticipantState
from participants.models import Participant
from tests.admin.helpers import audit_actors, landed_on, messages_of, run_action
from tests.factories import ParticipantFactory

pytestmark = pytest.mark.django_db

PARTICIPANTS = "/participants/participant/"
ENROL_FORM = {
    "name": "Acme Liquidity",
    "user_id": "user-42",
    "account_id": "acct-mm-42",
    "tier": "TIER_1",
    "margin_usdt": "250000",
    "revenue_model": "PERCENTAGE_SPLIT",
    "revenue_share_pct": "20",
}


def _state(participant: Participant) -> str:
    return str(Participant.objects.get(pk=participant.pk).state)


def test_enrolling_in_the_admin_creates_a_pending_participant_audited_to_the_admin(admin_client):
    response = admin_client.post(f"{PARTICIPANTS}add/", ENROL_FORM)
    assert landed_on(response) == PARTICIPANTS
    participant = Participant.objects.get(account_id="acct-mm-42")
    assert participant.state == ParticipantState.PENDING
    assert participant.short_id == str(participant.pk)[:8]
    assert audit_actors("participant", participant.pk, "enroll") == ["ada-admin"]


def test_the_change_page_shows_the_revenue_terms_history(admin_client):
    admin_client.post(f"{PARTICIPANTS}add/", ENROL_FORM)
    participant = Participant.objects.get(account_id="acct-mm-42")
    form = {k: v for k, v in ENROL_FORM.items() if k not in ("user_id", "account_id")}
    admin_client.post(
        f"{PARTICIPANTS}{participant.pk}/change/", {**form, "revenue_share_pct": "35"}
    )
    page = admin_client.get(f"{PARTICIPANTS}{participant.pk}/change/").content.decode()
    assert "Revenue terms history" in page
    # Enrolment's terms, then the change's, each with who set them.
    assert page.index("<td>20.00</td>") < page.index("<td>35.00</td>")
    assert page.count("<td>ada-admin</td>") == 2


def test_a_share_under_keep_all_is_refused_by_the_form(admin_client):
    response = admin_client.post(f"{PARTICIPANTS}add/", {**ENROL_FORM, "revenue_model": "KEEP_ALL"})
    assert landed_on(response) == ""
    assert "revenue_share_pct applies only to PERCENTAGE_SPLIT" in response.content.decode()
    assert not Participant.objects.exists()


def test_editing_a_participant_updates_it_through_the_service(admin_client):
    participant = ParticipantFactory(tier="TIER_2")
    form = {k: v for k, v in ENROL_FORM.items() if k not in ("user_id", "account_id")}
    response = admin_client.post(f"{PARTICIPANTS}{participant.pk}/change/", form)
    assert landed_on(response) == PARTICIPANTS
    updated = Participant.objects.get(pk=participant.pk)
    assert (updated.tier, updated.revenue_share_pct) == ("TIER_1", Decimal("20"))
    assert updated.account_id == participant.account_id  # fixed at enrolment
    audit = AuditLog.objects.get(entity_type="participant", action="update")
    assert audit.actor == "ada-admin"
    assert audit.changes["tier"] == ["TIER_2", "TIER_1"]


def test_activate_suspend_and_terminate_actions(ops_client):
    participant = ParticipantFactory()

    response = run_action(ops_client, PARTICIPANTS, "activate", [participant])
    assert messages_of(response) == [f"Activate: done for {participant}."]
    assert _state(participant) == "ACTIVE"
    run_action(ops_client, PARTICIPANTS, "suspend", [participant])
    assert _state(participant) == "SUSPENDED"

    # Terminating is permanent: it asks for confirmation (and an optional reason) first.
    page = run_action(ops_client, PARTICIPANTS, "terminate", [participant])
    assert landed_on(page) == ""
    assert "Terminate (permanent)" in page.content.decode()
    assert _state(participant) == "SUSPENDED"
    run_action(
        ops_client, PARTICIPANTS, "terminate", [participant], apply="yes", reason="offboarded"
    )
    assert _state(participant) == "TERMINATED"

    for action in ("activate", "suspend", "terminate"):
        assert audit_actors("participant", participant.pk, action) == ["olga-ops"]
    assert AuditLog.objects.get(action="terminate").reason == "offboarded"
    # A terminated participant is read-only and keeps every record.
    assert ops_client.post(f"{PARTICIPANTS}{participant.pk}/change/", ENROL_FORM).status_code == 403


def test_an_illegal_participant_action_is_refused_with_a_message(admin_client):
    participant = ParticipantFactory()  # PENDING
    response = run_action(admin_client, PARTICIPANTS, "suspend", [participant])
    assert messages_of(response) == [
        f"Suspend refused for {participant}: cannot suspend participant in state PENDING"
    ]
    assert _state(participant) == "PENDING"
    assert not AuditLog.objects.exists()


def test_the_change_page_offers_the_allowed_transitions(admin_client):
    participant = services.participant_activate(
        participant=ParticipantFactory(), actor=Actor("someone-ops")
    )
    page = admin_client.get(f"{PARTICIPANTS}{participant.pk}/change/").content.decode()
    assert f"{PARTICIPANTS}{participant.pk}/lifecycle/suspend/" in page
    assert f"{PARTICIPANTS}{participant.pk}/lifecycle/activate/" not in page
    assert "PENDING → ACTIVE" in page  # the audit history
    assert "someone-ops" in page

    admin_client.post(f"{PARTICIPANTS}{participant.pk}/lifecycle/suspend/", {})
    assert _state(participant) == "SUSPENDED"
    assert audit_actors("participant", participant.pk, "suspend") == ["ada-admin"]


def test_participants_cannot_be_deleted(admin_client):
    participant = ParticipantFactory()
    assert admin_client.get(f"{PARTICIPANTS}{participant.pk}/delete/").status_code == 403
    changelist = admin_client.get(PARTICIPANTS)
    actions = [name for name, _ in changelist.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert Participant.objects.filter(pk=participant.pk).exists()


def test_a_finance_user_cannot_change_participants(finance_client):
    participant = ParticipantFactory()
    response = run_action(finance_client, PARTICIPANTS, "activate", [participant])
    assert messages_of(response) == []
    assert (
        finance_client.post(f"{PARTICIPANTS}{participant.pk}/lifecycle/activate/", {}).status_code
        == 403
    )
    assert finance_client.get(f"{PARTICIPANTS}add/").status_code == 403
    assert _state(participant) == "PENDING"
