"""Settlements in the panel: finance approves, rejects (with a reason),
recalculates, and marks them settled (with the payout reference) or failed
(with a reason); ops cannot; the figures are never edited."""

from __future__ import annotations

import pytest

from common.actors import Actor
from common.models import AuditLog
from settlements import services
from settlements.enums import SettlementState
from settlements.models import Settlement
from tests.admin.helpers import audit_actors, landed_on, messages_of, run_action
from tests.factories import SettlementFactory

pytestmark = pytest.mark.django_db

SETTLEMENTS = "/settlements/settlement/"


def _reload(settlement: Settlement) -> Settlement:
    return Settlement.objects.get(pk=settlement.pk)


def test_finance_approves_and_another_finance_user_marks_it_settled(finance_client, admin_client):
    settlement = SettlementFactory()

    response = run_action(finance_client, SETTLEMENTS, "approve", [settlement])
    assert landed_on(response) == SETTLEMENTS
    approved = _reload(settlement)
    assert (approved.state, approved.approved_by) == (SettlementState.APPROVED, "fred-finance")

    page = run_action(admin_client, SETTLEMENTS, "mark_settled", [settlement])
    assert "Payout reference" in page.content.decode()
    assert _reload(settlement).state == SettlementState.APPROVED
    run_action(
        admin_client,
        SETTLEMENTS,
        "mark_settled",
        [settlement],
        apply="yes",
        payout_reference="TX-2026-0042",
    )
    settled = _reload(settlement)
    assert (settled.state, settled.payout_reference) == (SettlementState.SETTLED, "TX-2026-0042")
    assert audit_actors("settlement", settlement.pk, "approve") == ["fred-finance"]
    assert audit_actors("settlement", settlement.pk, "mark_settled") == ["ada-admin"]


def test_rejecting_needs_a_reason_and_recalculate_returns_it_to_pending(admin_client):
    settlement = SettlementFactory()

    no_reason = run_action(
        admin_client, SETTLEMENTS, "reject", [settlement], apply="yes", reason=""
    )
    assert landed_on(no_reason) == ""
    assert "This field is required." in no_reason.content.decode()
    assert _reload(settlement).state == SettlementState.PENDING

    run_action(
        admin_client, SETTLEMENTS, "reject", [settlement], apply="yes", reason="fees look wrong"
    )
    rejected = _reload(settlement)
    assert (rejected.state, rejected.rejection_reason) == (
        SettlementState.REJECTED,
        "fees look wrong",
    )
    run_action(admin_client, SETTLEMENTS, "recalculate", [settlement])
    assert _reload(settlement).state == SettlementState.PENDING
    reject = AuditLog.objects.get(entity_type="settlement", action="reject")
    assert (reject.actor, reject.reason) == ("ada-admin", "fees look wrong")
    assert audit_actors("settlement", settlement.pk, "recalculate") == ["ada-admin"]


def test_a_failed_payout_is_recorded_and_can_be_retried(admin_client):
    settlement = services.settlement_approve(
        settlement=SettlementFactory(), actor=Actor("someone-finance")
    )
    run_action(
        admin_client,
        SETTLEMENTS,
        "mark_failed",
        [settlement],
        apply="yes",
        reason="wallet service timeout",
    )
    failed = _reload(settlement)
    assert (failed.state, failed.failure_reason) == (
        SettlementState.FAILED,
        "wallet service timeout",
    )
    # Retry under the same id, from the change page's button.
    page = admin_client.get(f"{SETTLEMENTS}{settlement.pk}/change/").content.decode()
    url = f"{SETTLEMENTS}{settlement.pk}/lifecycle/mark_settled/"
    assert url in page
    assert "wallet service timeout" in page  # the audit history
    admin_client.post(url, {"payout_reference": "TX-RETRY-1"})
    assert _reload(settlement).state == SettlementState.SETTLED
    assert audit_actors("settlement", settlement.pk, "mark_failed") == ["ada-admin"]
    assert audit_actors("settlement", settlement.pk, "mark_settled") == ["ada-admin"]


def test_an_illegal_settlement_action_is_refused_with_a_message(admin_client):
    settlement = SettlementFactory()  # PENDING
    response = run_action(admin_client, SETTLEMENTS, "recalculate", [settlement])
    assert messages_of(response) == [
        "Recalculate the participant-month (back to PENDING) refused for participant-month "
        f"{settlement.participant_id} {settlement.period_start:%Y-%m}: "
        "cannot recalculate settlement in state PENDING"
    ]
    assert _reload(settlement).state == SettlementState.PENDING
    assert not AuditLog.objects.exists()


def test_an_ops_user_cannot_approve_settlements(ops_client):
    settlement = SettlementFactory()
    page = ops_client.get(SETTLEMENTS)
    assert page.status_code == 200
    assert page.context["action_form"] is None
    assert messages_of(run_action(ops_client, SETTLEMENTS, "approve", [settlement])) == []
    assert (
        ops_client.post(f"{SETTLEMENTS}{settlement.pk}/lifecycle/approve/", {}).status_code == 403
    )
    change_page = ops_client.get(f"{SETTLEMENTS}{settlement.pk}/change/").content.decode()
    assert "/lifecycle/" not in change_page
    assert _reload(settlement).state == SettlementState.PENDING
    assert not AuditLog.objects.exists()


def test_selecting_two_symbols_of_one_participant_month_approves_it_once(finance_client):
    btc = SettlementFactory()
    eth = SettlementFactory(participant=btc.participant, symbol="ETHUSDT-PERP")
    other = SettlementFactory()

    response = run_action(finance_client, SETTLEMENTS, "approve", [btc, eth])

    month = f"participant-month {btc.participant_id} {btc.period_start:%Y-%m}"
    assert messages_of(response) == [f"Approve the participant-month: done for {month}."]
    assert [_reload(s).state for s in (btc, eth, other)] == ["APPROVED", "APPROVED", "PENDING"]
    assert audit_actors("settlement", btc.pk, "approve") == ["fred-finance"]
    assert audit_actors("settlement", eth.pk, "approve") == ["fred-finance"]


def test_the_change_page_button_rejects_the_whole_participant_month(finance_client):
    btc = SettlementFactory()
    eth = SettlementFactory(participant=btc.participant, symbol="ETHUSDT-PERP")
    page = finance_client.get(f"{SETTLEMENTS}{eth.pk}/change/").content.decode()
    assert "Participant-month (all symbols)" in page
    assert "Approve, reject and recalculate act on all" in page
    finance_client.post(f"{SETTLEMENTS}{eth.pk}/lifecycle/reject/", {"reason": "pnl off"})
    assert [_reload(s).state for s in (btc, eth)] == ["REJECTED", "REJECTED"]


def test_the_approver_is_refused_marking_it_settled_in_the_panel_too(finance_client):
    settlement = SettlementFactory()
    run_action(finance_client, SETTLEMENTS, "approve", [settlement])
    response = run_action(
        finance_client,
        SETTLEMENTS,
        "mark_settled",
        [settlement],
        apply="yes",
        payout_reference="TX-1",
    )
    assert messages_of(response) == [
        f"Mark settled refused for {settlement}: four-eyes: fred-finance approved this "
        "settlement, so someone else must mark it settled"
    ]
    assert _reload(settlement).state == SettlementState.APPROVED
    assert audit_actors("settlement", settlement.pk, "mark_settled_refused") == ["fred-finance"]


def test_finance_downloads_the_payout_file_of_the_selected_participant_months(finance_client):
    btc = SettlementFactory()
    eth = SettlementFactory(participant=btc.participant, symbol="ETHUSDT-PERP")
    services.settlement_approve(settlement=btc, actor=Actor("ann-finance"))
    pending = SettlementFactory()

    response = run_action(finance_client, SETTLEMENTS, "download_payout_file", [btc, pending])
    assert response.status_code == 200

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="payouts-{btc.period_start:%Y-%m}.csv"'
    )
    # Only BTC was selected: the line is its participant-month's, ETH included.
    header, line = response.content.decode().splitlines()
    assert header.startswith("participant_id,short_id,participant_name,account_id,month,")
    assert line.startswith(f"{btc.participant_id},{btc.participant.short_id},")
    ids = ";".join(str(s.pk) for s in (btc, eth))
    assert f",{ids},2451.50000000,0.00000000,2451.50000000,USDT,APPROVED,ann-finance," in line

    nothing = run_action(finance_client, SETTLEMENTS, "download_payout_file", [pending])
    assert messages_of(nothing) == ["No APPROVED settlement among the selected: no payout file."]


def test_an_ops_user_has_no_payout_file_action(ops_client):
    settlement = services.settlement_approve(
        settlement=SettlementFactory(), actor=Actor("ann-finance")
    )
    response = run_action(ops_client, SETTLEMENTS, "download_payout_file", [settlement])
    assert response["Content-Type"].startswith("text/html")
