"""Four-eyes (SPEC Part B.21): the user who approved a settlement cannot mark it
settled or failed; the refusal is a 403 `four_eyes` and is audited, whether or
not anything else happens; SETTLEMENT_FOUR_EYES=false switches it off (and the
audit row says the approver acted)."""

from __future__ import annotations

import pytest

from common.actors import Actor
from common.exceptions import FourEyesViolation, IllegalTransition
from common.models import AuditLog
from settlements import services
from settlements.models import Settlement
from tests.factories import SettlementFactory

pytestmark = pytest.mark.django_db

ANN = Actor("ann-finance")
BOB = Actor("bob-finance")


def _approved_by(actor: Actor) -> Settlement:
    return services.settlement_approve(settlement=SettlementFactory(), actor=actor)


def _refusals(settlement: Settlement) -> list[tuple[str, str, str, str]]:
    return list(
        AuditLog.objects.filter(entity_id=str(settlement.pk), action__endswith="_refused")
        .order_by("id")
        .values_list("action", "actor", "from_state", "reason")
    )


def _state(settlement: Settlement) -> str:
    return Settlement.objects.get(pk=settlement.pk).state


def test_the_approver_cannot_mark_it_settled_and_the_attempt_is_audited() -> None:
    settlement = _approved_by(ANN)
    with pytest.raises(FourEyesViolation) as refused:
        services.settlement_mark_settled(settlement=settlement, actor=ANN, payout_reference="TX-1")
    assert refused.value.status == 403
    assert refused.value.extra == {"approved_by": ANN.name, "current_state": "APPROVED"}
    assert _state(settlement) == "APPROVED"
    assert Settlement.objects.get(pk=settlement.pk).payout_reference == ""
    assert _refusals(settlement) == [
        (
            "mark_settled_refused",
            ANN.name,
            "APPROVED",
            "four-eyes: ann-finance approved this settlement, so someone else must mark it settled",
        )
    ]
    done = services.settlement_mark_settled(
        settlement=settlement, actor=BOB, payout_reference="TX-1"
    )
    assert (done.state, done.settled_by, done.approved_by) == ("SETTLED", BOB.name, ANN.name)


def test_the_approver_cannot_mark_it_failed_nor_settle_the_retry() -> None:
    settlement = _approved_by(ANN)
    with pytest.raises(FourEyesViolation, match="mark it failed"):
        services.settlement_mark_failed(settlement=settlement, actor=ANN, reason="bounced")
    failed = services.settlement_mark_failed(settlement=settlement, actor=BOB, reason="bounced")
    assert failed.state == "FAILED"
    with pytest.raises(FourEyesViolation, match="mark it settled"):
        services.settlement_mark_settled(settlement=failed, actor=ANN, payout_reference="TX-2")
    assert _state(settlement) == "FAILED"
    assert [r[0] for r in _refusals(settlement)] == ["mark_failed_refused", "mark_settled_refused"]


def test_a_transition_the_state_does_not_allow_is_refused_as_such_not_audited() -> None:
    settlement = SettlementFactory()  # PENDING: nobody approved it
    with pytest.raises(IllegalTransition):
        services.settlement_mark_settled(settlement=settlement, actor=ANN, payout_reference="TX")
    settled = services.settlement_mark_settled(
        settlement=_approved_by(ANN), actor=BOB, payout_reference="TX"
    )
    with pytest.raises(IllegalTransition):  # SETTLED is final, for the approver too
        services.settlement_mark_failed(settlement=settled, actor=ANN, reason="late")
    assert not AuditLog.objects.filter(action__endswith="_refused").exists()


@pytest.mark.django_db(transaction=True)
def test_the_refusal_is_committed_even_though_the_caller_gets_an_error() -> None:
    settlement = _approved_by(ANN)
    with pytest.raises(FourEyesViolation):
        services.settlement_mark_settled(settlement=settlement, actor=ANN, payout_reference="TX")
    # No test transaction wraps this one: the row is in the database for good.
    assert [r[0] for r in _refusals(settlement)] == ["mark_settled_refused"]


def test_switched_off_the_approver_may_pay_and_the_audit_says_so(settings) -> None:
    settings.SETTLEMENT_FOUR_EYES = False
    settlement = _approved_by(ANN)
    done = services.settlement_mark_settled(
        settlement=settlement, actor=ANN, payout_reference="TX-9"
    )
    assert (done.state, done.settled_by) == ("SETTLED", ANN.name)
    audit = AuditLog.objects.get(entity_id=str(settlement.pk), action="mark_settled")
    assert audit.reason == "payout TX-9 (four-eyes off: by the approver)"
    assert not _refusals(settlement)


# --- over the API ----------------------------------------------------------------------


def _url(settlement: Settlement, action: str) -> str:
    return f"/v1/settlements/{settlement.pk}/{action}"


@pytest.mark.parametrize(
    ("action", "body"),
    [("mark-settled", {"payout_reference": "TX-42"}), ("mark-failed", {"reason": "bounced"})],
)
def test_the_api_answers_403_four_eyes_and_audits_the_attempt(api_client, action, body):
    ann = api_client("finance", sub="ann-finance")
    settlement = SettlementFactory()
    response = ann.post(_url(settlement, "approve"), {"approved_by": "ann-finance"}, format="json")
    assert response.status_code == 200, response.json()

    response = ann.post(_url(settlement, action), body, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "status": 403,
        "code": "four_eyes",
        "message": (
            "four-eyes: ann-finance approved this settlement, so someone else must "
            f"mark it {'settled' if action == 'mark-settled' else 'failed'}"
        ),
        "errors": {},
        "approved_by": "ann-finance",
        "current_state": "APPROVED",
    }
    assert _state(settlement) == "APPROVED"
    refused = AuditLog.objects.get(entity_id=str(settlement.pk), action__endswith="_refused")
    assert (refused.action, refused.actor, refused.actor_kind) == (
        f"{action.replace('-', '_')}_refused",
        "ann-finance",
        "user",
    )
    bob = api_client("finance", sub="bob-finance")
    response = bob.post(_url(settlement, action), body, format="json")
    assert response.status_code == 200, response.json()


def test_the_api_lets_the_approver_pay_when_switched_off(api_client, settings):
    settings.SETTLEMENT_FOUR_EYES = False
    ann = api_client("finance", sub="ann-finance")
    settlement = SettlementFactory()
    ann.post(_url(settlement, "approve"), {"approved_by": "ann-finance"}, format="json")
    response = ann.post(_url(settlement, "mark-settled"), {"payout_reference": "TX"}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["state"], response.json()["settled_by"]) == ("SETTLED", "ann-finance")


def test_the_schema_documents_four_eyes(viewer):
    paths = viewer.get("/v1/schema?format=json").json()["paths"]
    for action in ("mark-settled", "mark-failed"):
        operation = paths[f"/v1/settlements/{{settlement_id}}/{action}"]["post"]
        assert "four_eyes" in operation["description"]
        assert "403" in operation["responses"]
