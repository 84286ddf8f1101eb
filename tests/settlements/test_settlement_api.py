from __future__ import annotations

import datetime as dt
import uuid

import pytest

from common.models import AuditLog
from settlements.models import Settlement
from tests.factories import ParticipantFactory, PoolFactory, SettlementFactory

pytestmark = pytest.mark.django_db

FINANCE_SUB = "fred-finance"


def _set_state(settlement: Settlement, state: str) -> Settlement:
    # The FSM field is protected; a test precondition writes the row directly.
    Settlement.objects.filter(pk=settlement.pk).update(state=state)
    return Settlement.objects.get(pk=settlement.pk)


def _url(settlement: Settlement, action: str = "") -> str:
    return f"/v1/settlements/{settlement.pk}" + (f"/{action}" if action else "")


# --- reads -------------------------------------------------------------------


def test_list_shows_money_as_decimal_strings(viewer):
    settlement = SettlementFactory(platform_share_usdt="122.575", net_usdt="1103.175")
    response = viewer.get("/v1/settlements")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["id"] == str(settlement.pk)
    assert row["participant_id"] == str(settlement.participant_id)
    assert row["participant_name"] == settlement.participant.name
    assert row["realized_pnl_usdt"] == "1200.50000000"
    assert row["fees_usdt"] == "-35.25000000"
    assert row["gross_usdt"] == "1225.75000000"
    assert row["platform_share_usdt"] == "122.57500000"
    assert row["net_usdt"] == "1103.17500000"
    assert row["state"] == "PENDING"
    assert row["approved_by"] == ""
    assert row["approved_at"] is None


def test_list_filters_by_state_symbol_participant_and_period(finance):
    PoolFactory(symbol="BTCUSDT-PERP")
    PoolFactory(symbol="ETHUSDT-PERP")
    first = SettlementFactory(symbol="BTCUSDT-PERP", period_start=dt.date(2025, 1, 1))
    second = SettlementFactory(symbol="ETHUSDT-PERP", period_start=dt.date(2025, 2, 1))
    third = _set_state(SettlementFactory(period_start=dt.date(2025, 2, 1)), "APPROVED")

    def ids(query: str) -> set[str]:
        response = finance.get(f"/v1/settlements?{query}")
        assert response.status_code == 200, response.json()
        return {r["id"] for r in response.json()["results"]}

    assert ids("state=APPROVED") == {str(third.pk)}
    assert ids("symbol=ETHUSDT-PERP") == {str(second.pk)}
    assert ids(f"participant={first.participant_id}") == {str(first.pk)}
    assert ids("period_start=2025-02-01") == {str(second.pk), str(third.pk)}


def test_list_orders_by_requested_field(ops):
    SettlementFactory(period_start=dt.date(2025, 3, 1))
    SettlementFactory(period_start=dt.date(2025, 1, 1))
    SettlementFactory(period_start=dt.date(2025, 2, 1))
    response = ops.get("/v1/settlements?ordering=period_start")
    assert [r["period_start"] for r in response.json()["results"]] == [
        "2025-01-01",
        "2025-02-01",
        "2025-03-01",
    ]


def test_list_bad_filter_value_is_400_naming_it(finance):
    response = finance.get("/v1/settlements?state=NOPE")
    assert response.status_code == 400
    assert "state" in response.json()["errors"]


@pytest.mark.parametrize("route", ["/v1/settlements", "/v1/settlements/pending"])
def test_an_unknown_symbol_or_participant_filter_is_422_naming_it(finance, route):
    SettlementFactory(symbol="BTCUSDT-PERP")
    response = finance.get(f"{route}?symbol=NOPEUSDT-PERP")
    assert response.status_code == 422
    assert response.json()["errors"]["symbol"] == ["no pool has symbol 'NOPEUSDT-PERP'"]
    response = finance.get(f"{route}?participant=00000000-0000-0000-0000-000000000001")
    assert (response.status_code, list(response.json()["errors"])) == (422, ["participant"])


@pytest.mark.parametrize("route", ["/v1/settlements", "/v1/settlements/pending"])
@pytest.mark.parametrize(
    "query",
    ["symbol=bad%20symbol", "symbol=", "symbol=%20BTCUSDT-PERP", "state=", "participant=7"],
)
def test_a_malformed_filter_is_400_naming_it(finance, route, query):
    SettlementFactory(symbol="BTCUSDT-PERP")
    response = finance.get(f"{route}?{query}")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [query.split("=")[0]]


def test_list_needs_a_token(api_client):
    response = api_client().get("/v1/settlements")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_lp_lists_only_its_own_participant(api_client):
    own = SettlementFactory()
    SettlementFactory()
    lp = api_client("lp", sub="lena-lp", participant_id=str(own.participant_id))
    response = lp.get("/v1/settlements")
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(own.pk)]
    # Naming another participant in the filter does not widen the scope.
    other = SettlementFactory()
    response = lp.get(f"/v1/settlements?participant={other.participant_id}")
    assert response.json()["results"] == []


def test_pending_queue_lists_only_pending_oldest_first(viewer):
    newer = SettlementFactory(period_start=dt.date(2025, 3, 1))
    older = SettlementFactory(period_start=dt.date(2025, 1, 1))
    _set_state(SettlementFactory(period_start=dt.date(2024, 12, 1)), "APPROVED")
    response = viewer.get("/v1/settlements/pending")
    assert response.status_code == 200, response.json()
    assert [r["id"] for r in response.json()["results"]] == [str(older.pk), str(newer.pk)]


def test_lp_pending_queue_is_scoped(api_client):
    own = SettlementFactory()
    SettlementFactory()
    lp = api_client("lp", participant_id=str(own.participant_id))
    response = lp.get("/v1/settlements/pending")
    assert [r["id"] for r in response.json()["results"]] == [str(own.pk)]


def test_detail_returns_one(finance):
    settlement = SettlementFactory()
    response = finance.get(_url(settlement))
    assert response.status_code == 200
    assert response.json()["id"] == str(settlement.pk)
    assert response.json()["net_usdt"] == "1225.75000000"


def test_detail_unknown_id_is_404(finance):
    response = finance.get(f"/v1/settlements/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_lp_reads_its_own_settlement_but_not_another(api_client):
    own = SettlementFactory()
    other = SettlementFactory()
    lp = api_client("lp", participant_id=str(own.participant_id))
    assert lp.get(_url(own)).status_code == 200
    response = lp.get(_url(other))
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


# --- approve -----------------------------------------------------------------


def test_finance_approves_and_the_caller_is_recorded_and_audited(finance):
    settlement = SettlementFactory()
    response = finance.post(
        _url(settlement, "approve"), {"approved_by": FINANCE_SUB}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "APPROVED"
    assert body["approved_by"] == FINANCE_SUB
    assert body["approved_at"] is not None
    audit = AuditLog.objects.get(entity_type="settlement", entity_id=str(settlement.pk))
    assert (audit.action, audit.from_state, audit.to_state) == ("approve", "PENDING", "APPROVED")
    assert audit.actor == FINANCE_SUB
    assert audit.changes["approved_by"] == ["", FINANCE_SUB]


def test_approve_with_someone_elses_name_is_422_naming_approved_by(finance):
    settlement = SettlementFactory()
    response = finance.post(_url(settlement, "approve"), {"approved_by": "mallory"}, format="json")
    assert response.status_code == 422  # a well-formed name, but not the caller's
    assert "approved_by" in response.json()["errors"]
    assert Settlement.objects.get(pk=settlement.pk).state == "PENDING"
    assert not AuditLog.objects.filter(entity_type="settlement").exists()


def test_approve_without_body_is_400_naming_approved_by(finance):
    response = finance.post(_url(SettlementFactory(), "approve"), {}, format="json")
    assert response.status_code == 400
    assert "approved_by" in response.json()["errors"]


def test_approve_twice_is_409_with_current_state(finance):
    settlement = _set_state(SettlementFactory(), "APPROVED")
    response = finance.post(
        _url(settlement, "approve"), {"approved_by": FINANCE_SUB}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "illegal_transition"
    assert response.json()["current_state"] == "APPROVED"


def test_approve_unknown_id_is_404(finance):
    response = finance.post(
        f"/v1/settlements/{uuid.uuid4()}/approve", {"approved_by": FINANCE_SUB}, format="json"
    )
    assert response.status_code == 404


@pytest.mark.parametrize("roles", [("ops",), ("viewer",), ("ops", "viewer")])
def test_approve_needs_the_finance_role(api_client, roles):
    settlement = SettlementFactory()
    client = api_client(*roles, sub="olga")
    response = client.post(_url(settlement, "approve"), {"approved_by": "olga"}, format="json")
    assert response.status_code == 403
    assert Settlement.objects.get(pk=settlement.pk).state == "PENDING"


def test_lp_cannot_approve_even_its_own(api_client):
    settlement = SettlementFactory()
    lp = api_client("lp", sub="lena", participant_id=str(settlement.participant_id))
    response = lp.post(_url(settlement, "approve"), {"approved_by": "lena"}, format="json")
    assert response.status_code == 403


def test_approve_needs_a_token(api_client):
    settlement = SettlementFactory()
    response = api_client().post(
        _url(settlement, "approve"), {"approved_by": FINANCE_SUB}, format="json"
    )
    assert response.status_code == 401


# --- reject / recalculate ----------------------------------------------------


def test_reject_records_reason_and_caller(finance):
    settlement = SettlementFactory()
    response = finance.post(
        _url(settlement, "reject"),
        {"rejected_by": FINANCE_SUB, "reason": "fees do not match the venue statement"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "REJECTED"
    assert body["rejected_by"] == FINANCE_SUB
    assert body["rejection_reason"] == "fees do not match the venue statement"
    audit = AuditLog.objects.get(entity_type="settlement", action="reject")
    assert audit.actor == FINANCE_SUB
    assert audit.reason == "fees do not match the venue statement"


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"rejected_by": FINANCE_SUB}, "reason", 400),
        ({"rejected_by": FINANCE_SUB, "reason": "   "}, "reason", 400),
        ({"rejected_by": FINANCE_SUB, "reason": 0}, "reason", 400),
        ({"rejected_by": "someone-else", "reason": "wrong"}, "rejected_by", 422),
        ({"reason": "wrong"}, "rejected_by", 400),
    ],
)
def test_reject_bad_body_names_the_field(finance, body, field, status):
    settlement = SettlementFactory()
    response = finance.post(_url(settlement, "reject"), body, format="json")
    assert response.status_code == status
    assert field in response.json()["errors"]
    assert Settlement.objects.get(pk=settlement.pk).state == "PENDING"


def test_recalculate_puts_a_rejected_settlement_back_in_the_queue(finance):
    settlement = _set_state(SettlementFactory(), "REJECTED")
    response = finance.post(
        _url(settlement, "recalculate"), {"reason": "fees corrected"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "PENDING"
    audit = AuditLog.objects.get(entity_type="settlement", action="recalculate")
    assert (audit.from_state, audit.to_state, audit.actor) == ("REJECTED", "PENDING", FINANCE_SUB)
    assert audit.reason == "fees corrected"
    pending = finance.get("/v1/settlements/pending").json()["results"]
    assert [r["id"] for r in pending] == [str(settlement.pk)]


def test_recalculate_clears_the_rejection(finance):
    settlement = SettlementFactory()
    response = finance.post(
        _url(settlement, "reject"),
        {"rejected_by": FINANCE_SUB, "reason": "pnl off"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    response = finance.post(_url(settlement, "recalculate"), {}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "PENDING"
    assert (body["rejected_by"], body["rejected_at"], body["rejection_reason"]) == ("", None, "")
    row = Settlement.objects.get(pk=settlement.pk)
    assert (row.rejected_by, row.rejected_at, row.rejection_reason) == ("", None, "")
    audit = AuditLog.objects.get(entity_type="settlement", action="recalculate")
    assert audit.changes["rejected_by"] == [FINANCE_SUB, ""]
    assert audit.changes["rejection_reason"] == ["pnl off", ""]
    assert audit.changes["rejected_at"][1] is None
    # The rejection stays in the audit trail.
    reject = AuditLog.objects.get(entity_type="settlement", action="reject")
    assert reject.reason == "pnl off"


def test_recalculate_a_pending_settlement_is_409(finance):
    response = finance.post(_url(SettlementFactory(), "recalculate"), {}, format="json")
    assert response.status_code == 409
    assert response.json()["current_state"] == "PENDING"


# --- payout ------------------------------------------------------------------


def test_mark_settled_records_the_payout_reference(finance):
    settlement = _set_state(SettlementFactory(), "APPROVED")
    response = finance.post(
        _url(settlement, "mark-settled"), {"payout_reference": "TX-2025-0042"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "SETTLED"
    assert body["payout_reference"] == "TX-2025-0042"
    assert body["settled_by"] == FINANCE_SUB
    assert body["settled_at"] is not None


def test_mark_settled_without_reference_is_400(finance):
    settlement = _set_state(SettlementFactory(), "APPROVED")
    response = finance.post(_url(settlement, "mark-settled"), {}, format="json")
    assert response.status_code == 400
    assert "payout_reference" in response.json()["errors"]


def test_mark_settled_from_pending_is_409(finance):
    response = finance.post(
        _url(SettlementFactory(), "mark-settled"), {"payout_reference": "TX-1"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["current_state"] == "PENDING"


def test_failed_payout_is_retried_under_the_same_id(finance):
    settlement = _set_state(SettlementFactory(), "APPROVED")
    response = finance.post(
        _url(settlement, "mark-failed"), {"reason": "wallet frozen"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "FAILED"
    assert response.json()["failure_reason"] == "wallet frozen"
    response = finance.post(
        _url(settlement, "mark-settled"), {"payout_reference": "TX-RETRY-1"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "SETTLED"
    assert response.json()["id"] == str(settlement.pk)
    actions = list(
        AuditLog.objects.filter(entity_type="settlement", entity_id=str(settlement.pk))
        .order_by("id")
        .values_list("action", "from_state", "to_state", "actor")
    )
    assert actions == [
        ("mark_failed", "APPROVED", "FAILED", FINANCE_SUB),
        ("mark_settled", "FAILED", "SETTLED", FINANCE_SUB),
    ]


def test_mark_settled_after_a_failure_clears_the_failure_reason(finance):
    settlement = _set_state(SettlementFactory(), "APPROVED")
    finance.post(_url(settlement, "mark-failed"), {"reason": "wallet frozen"}, format="json")
    assert Settlement.objects.get(pk=settlement.pk).failure_reason == "wallet frozen"
    response = finance.post(
        _url(settlement, "mark-settled"), {"payout_reference": "TX-RETRY-2"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["state"], response.json()["failure_reason"]) == ("SETTLED", "")
    assert Settlement.objects.get(pk=settlement.pk).failure_reason == ""
    audit = AuditLog.objects.get(entity_type="settlement", action="mark_settled")
    assert audit.changes["failure_reason"] == ["wallet frozen", ""]


@pytest.mark.parametrize(
    ("action", "source", "body"),
    [
        ("approve", "PENDING", {"approved_by": FINANCE_SUB, "note": "ok"}),
        ("reject", "PENDING", {"rejected_by": FINANCE_SUB, "reason": "x", "note": "ok"}),
        ("mark-settled", "APPROVED", {"payout_reference": "TX-1", "note": "ok"}),
        ("mark-failed", "APPROVED", {"reason": "bounced", "note": "ok"}),
    ],
)
def test_unknown_body_key_is_400_naming_it(finance, action, source, body):
    settlement = _set_state(SettlementFactory(), source)
    response = finance.post(_url(settlement, action), body, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == ["note"]
    assert Settlement.objects.get(pk=settlement.pk).state == source
    assert not AuditLog.objects.filter(entity_type="settlement").exists()


def test_mark_failed_without_reason_is_400(finance):
    settlement = _set_state(SettlementFactory(), "APPROVED")
    response = finance.post(_url(settlement, "mark-failed"), {"reason": ""}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["errors"]


def test_mark_failed_a_settled_settlement_is_409(finance):
    settlement = _set_state(SettlementFactory(), "SETTLED")
    response = finance.post(_url(settlement, "mark-failed"), {"reason": "oops"}, format="json")
    assert response.status_code == 409
    assert response.json()["current_state"] == "SETTLED"


# --- every write ---------------------------------------------------------------

WRITES = [
    ("approve", "PENDING", {"approved_by": "ann-finance"}, "APPROVED"),
    ("reject", "PENDING", {"rejected_by": "ann-finance", "reason": "pnl off"}, "REJECTED"),
    ("recalculate", "REJECTED", {}, "PENDING"),
    ("mark-settled", "APPROVED", {"payout_reference": "TX-9"}, "SETTLED"),
    ("mark-failed", "APPROVED", {"reason": "bounced"}, "FAILED"),
]


@pytest.mark.parametrize(("action", "source", "body", "target"), WRITES)
def test_every_transition_is_audited_with_the_token_sub(api_client, action, source, body, target):
    settlement = _set_state(SettlementFactory(), source)
    client = api_client("finance", sub="ann-finance")
    response = client.post(_url(settlement, action), body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == target
    audit = AuditLog.objects.get(entity_type="settlement", entity_id=str(settlement.pk))
    assert audit.action == action.replace("-", "_")
    assert (audit.from_state, audit.to_state) == (source, target)
    assert audit.actor == "ann-finance"
    assert audit.actor_kind == "user"


@pytest.mark.parametrize(("action", "source", "body", "target"), WRITES)
def test_every_transition_is_finance_only(api_client, action, source, body, target):
    settlement = _set_state(SettlementFactory(), source)
    client = api_client("ops", sub="ann-finance")
    response = client.post(_url(settlement, action), body, format="json")
    assert response.status_code == 403
    assert Settlement.objects.get(pk=settlement.pk).state == source
    assert not AuditLog.objects.filter(entity_type="settlement").exists()


@pytest.mark.parametrize(
    "action", ["approve", "reject", "recalculate", "mark-settled", "mark-failed"]
)
def test_every_transition_on_unknown_id_is_404(finance, action):
    response = finance.post(f"/v1/settlements/{uuid.uuid4()}/{action}", {}, format="json")
    assert response.status_code == 404


def test_list_does_not_query_per_row(finance, django_assert_max_num_queries):
    participant = ParticipantFactory()
    for month in range(1, 13):
        SettlementFactory(participant=participant, period_start=dt.date(2024, month, 1))
    for _ in range(10):
        SettlementFactory()
    with django_assert_max_num_queries(3):
        response = finance.get("/v1/settlements?page_size=100")
    assert response.json()["count"] == 22


# --- the participant-month moves together (SPEC Part B.21) -------------------------


def test_approve_reject_and_recalculate_move_the_participant_month_together(finance):
    participant = ParticipantFactory()
    btc = SettlementFactory(participant=participant, symbol="BTCUSDT-PERP")
    eth = SettlementFactory(participant=participant, symbol="ETHUSDT-PERP")
    other = SettlementFactory()  # another participant's month

    def states() -> dict[str, str]:
        return {
            s: Settlement.objects.get(pk=p).state for s, p in (("BTC", btc.pk), ("ETH", eth.pk))
        }

    response = finance.post(
        _url(eth, "reject"), {"rejected_by": FINANCE_SUB, "reason": "recheck"}, format="json"
    )
    assert (response.status_code, response.json()["id"]) == (200, str(eth.pk))
    assert states() == {"BTC": "REJECTED", "ETH": "REJECTED"}
    response = finance.post(_url(btc, "recalculate"), {"reason": "rechecked"}, format="json")
    assert response.status_code == 200, response.json()
    assert states() == {"BTC": "PENDING", "ETH": "PENDING"}
    response = finance.post(_url(btc, "approve"), {"approved_by": FINANCE_SUB}, format="json")
    assert response.status_code == 200, response.json()
    assert states() == {"BTC": "APPROVED", "ETH": "APPROVED"}
    assert Settlement.objects.get(pk=other.pk).state == "PENDING"
    body = finance.get(_url(eth)).json()
    assert body["participant_month_id"] == str(btc.participant_month_id)
    assert (body["approved_by"], body["high_water_mark_scope"]) == (FINANCE_SUB, "PARTICIPANT")


def test_a_participant_month_whose_settlements_cannot_all_move_is_409_naming_them(finance):
    participant = ParticipantFactory()
    btc = _set_state(SettlementFactory(participant=participant), "APPROVED")
    eth = SettlementFactory(participant=participant, symbol="ETHUSDT-PERP")
    response = finance.post(_url(eth, "approve"), {"approved_by": FINANCE_SUB}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "illegal_transition"
    assert body["current_state"] == "PENDING"
    assert body["settlement_states"] == {"BTCUSDT-PERP": "APPROVED", "ETHUSDT-PERP": "PENDING"}
    assert "BTCUSDT-PERP is APPROVED" in body["message"]
    assert Settlement.objects.get(pk=eth.pk).state == "PENDING"
    assert Settlement.objects.get(pk=btc.pk).state == "APPROVED"
    assert not AuditLog.objects.filter(entity_type="settlement").exists()
