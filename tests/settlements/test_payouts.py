"""The payout file (GET /v1/settlements/payouts.csv): one line per
participant-month of approved settlements, the amounts exact; finance only."""

from __future__ import annotations

import csv
import io

import pytest

from common.actors import Actor
from settlements import payouts, services
from settlements.models import Settlement
from tests.settlements.helpers import AUG, BTC, ETH, SEP, fill, settle, split, the

pytestmark = pytest.mark.django_db

URL = "/v1/settlements/payouts.csv"
ANN = Actor("ann-finance")
BOB = Actor("bob-finance")


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def approved() -> dict[str, object]:
    """August: alpha (BTC profit, ETH loss) and bravo approved, charlie pending;
    September: alpha approved; a settled and a failed month besides."""
    alpha = split("20", short_id="alpha001", name="Alpha Liquidity", account_id="acct-alpha")
    bravo = split("10", short_id="bravo001", name='=HYPERLINK("x")', account_id="acct-bravo")
    charlie = split("10", short_id="charlie1")
    delta = split("10", short_id="delta001")
    fill(alpha, AUG, realised="1000.12345678", fee="-0.00000001")
    fill(alpha, AUG, realised="-400", symbol=ETH)
    fill(bravo, AUG, realised="33.33333333")
    fill(charlie, AUG, realised="5")
    fill(delta, AUG, realised="7")
    fill(alpha, SEP, realised="50")
    settle(AUG)
    settle(SEP)
    for participant in (alpha, bravo, delta):
        services.settlement_approve(settlement=the(participant, AUG), actor=ANN)
    services.settlement_approve(settlement=the(alpha, SEP), actor=ANN)
    services.settlement_mark_failed(settlement=the(delta, AUG), actor=BOB, reason="bounced")
    return {"alpha": alpha, "bravo": bravo, "charlie": charlie, "delta": delta}


def test_the_payout_file_of_a_month_lists_each_approved_participant_month(api_client, approved):
    finance = api_client("finance", sub="bob-finance")
    response = finance.get(f"{URL}?month=2026-08")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="payouts-2026-08.csv"'
    text = response.content.decode()
    assert text.splitlines()[0] == (
        "participant_id,short_id,participant_name,account_id,month,symbols,settlement_ids,"
        "gross_usdt,platform_share_usdt,amount_usdt,currency,state,approved_by,approved_at"
    )
    alpha_line, bravo_line = _rows(text)
    alpha, bravo = approved["alpha"], approved["bravo"]
    btc, eth = the(alpha, AUG), the(alpha, AUG, ETH)
    # Alpha: 1,000.12345679 − 400 = 600.12345679 of gross; 20 % = 120.02469136 (half-even).
    assert alpha_line == {
        "participant_id": str(alpha.pk),
        "short_id": "alpha001",
        "participant_name": "Alpha Liquidity",
        "account_id": "acct-alpha",
        "month": "2026-08",
        "symbols": f"{BTC};{ETH}",
        "settlement_ids": f"{btc.pk};{eth.pk}",
        "gross_usdt": "600.12345679",
        "platform_share_usdt": "120.02469136",
        "amount_usdt": "480.09876543",
        "currency": "USDT",
        "state": "APPROVED",
        "approved_by": "ann-finance",
        "approved_at": btc.approved_at.isoformat(),
    }
    assert btc.net_usdt + eth.net_usdt == btc.participant_month.net_usdt
    # Bravo: 33.33333333, 10 % = 3.33333333; its name would run as a formula: quoted.
    assert (bravo_line["short_id"], bravo_line["participant_name"]) == (
        "bravo001",
        '\'=HYPERLINK("x")',
    )
    assert (bravo_line["participant_id"], bravo_line["symbols"]) == (str(bravo.pk), BTC)
    assert (bravo_line["platform_share_usdt"], bravo_line["amount_usdt"]) == (
        "3.33333333",
        "30.00000000",
    )


def test_without_a_month_every_month_is_listed_oldest_first(finance, approved):
    lines = _rows(finance.get(URL).content.decode())
    assert [(line["month"], line["short_id"]) for line in lines] == [
        ("2026-08", "alpha001"),
        ("2026-08", "bravo001"),
        ("2026-09", "alpha001"),
    ]
    assert finance.get(URL)["Content-Disposition"] == 'attachment; filename="payouts.csv"'


def test_failed_transfers_have_a_file_of_their_own_and_settled_ones_leave_it(finance, approved):
    response = finance.get(f"{URL}?month=2026-08&state=FAILED")
    assert response["Content-Disposition"] == 'attachment; filename="payouts-2026-08-failed.csv"'
    (line,) = _rows(response.content.decode())
    assert (line["short_id"], line["state"], line["amount_usdt"]) == (
        "delta001",
        "FAILED",
        "6.30000000",
    )
    bravo = the(approved["bravo"], AUG)
    services.settlement_mark_settled(settlement=bravo, actor=BOB, payout_reference="TX-1")
    assert [r["short_id"] for r in _rows(finance.get(f"{URL}?month=2026-08").content.decode())] == [
        "alpha001"
    ]
    assert _rows(finance.get(f"{URL}?month=2026-10").content.decode()) == []


@pytest.mark.parametrize("roles", [("ops",), ("viewer",), ("ops", "viewer")])
def test_the_payout_file_is_finance_only(api_client, approved, roles):
    response = api_client(*roles).get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_an_lp_cannot_read_the_payout_file_and_a_token_is_needed(api_client, approved):
    lp = api_client("lp", participant_id=str(approved["alpha"].pk))
    assert lp.get(URL).status_code == 403
    response = api_client().get(URL)
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


@pytest.mark.parametrize(
    ("query", "field"),
    [("month=2026-13", "month"), ("month=aug", "month"), ("state=PENDING", "state")],
)
def test_bad_parameters_are_a_json_400_naming_them(finance, query, field):
    response = finance.get(f"{URL}?{query}")
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert list(response.json()["errors"]) == [field]


def test_the_payout_file_is_in_the_schema(viewer):
    schema = viewer.get("/v1/schema?format=json").json()
    operation = schema["paths"]["/v1/settlements/payouts.csv"]["get"]
    assert "text/csv" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} >= {"month", "state"}
    assert "amount_usdt" in operation["description"]
    assert {"400", "401", "403"} <= set(operation["responses"])


def test_the_payout_file_does_not_query_per_line(approved, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        lines = payouts.payout_lines()
    assert len(lines) == 3
    assert Settlement.objects.filter(state="APPROVED").count() == 4
