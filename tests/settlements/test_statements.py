"""A participant's monthly statement: the month's settlements and, per symbol,
its fills, funding and Q-scores, summed by the database over the half-open UTC
month; as JSON, CSV and a printable page; readable by staff and by the lp whose
participant it is."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.actors import Actor
from participants.models import Participant
from settlements import services, statements
from settlements.models import Settlement
from tests.factories import (
    FillFactory,
    FundingPaymentFactory,
    ParticipantFactory,
    PerformanceDailyFactory,
    SettlementFactory,
)

pytestmark = pytest.mark.django_db

D = Decimal
BTC = "BTCUSDT-PERP"
ETH = "ETHUSDT-PERP"
MARCH = dt.date(2025, 3, 1)
LAST_INSTANT_OF_MARCH = dt.datetime(2025, 3, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
FIRST_INSTANT_OF_APRIL = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
LAST_INSTANT_OF_FEBRUARY = dt.datetime(2025, 2, 28, 23, 59, 59, 999999, tzinfo=dt.UTC)


def _at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, tzinfo=dt.UTC)


def _fill(participant: Participant, when: dt.datetime, **kw: object) -> None:
    FillFactory(participant=participant, filled_at=when, **kw)


def _funding(participant: Participant, when: dt.datetime, amount: str, symbol: str = BTC) -> None:
    FundingPaymentFactory(
        participant=participant, symbol=symbol, amount_usdt=D(amount), paid_at=when
    )


@pytest.fixture
def march() -> Participant:
    """A 20 % split participant with March 2025 activity in two symbols, activity
    just outside March on either side, and another participant's March fill."""
    p = ParticipantFactory(revenue_model="PERCENTAGE_SPLIT", revenue_share_pct=D("20"))
    # BTC in March: 3 fills (the last at March's last microsecond).
    _fill(
        p,
        _at(1, 0),
        symbol=BTC,
        side="BUY",
        price=D("60000"),
        size=D("0.5"),
        fee_usdt=D("1.5"),
        realized_pnl_usdt=D("0"),
    )
    _fill(
        p,
        _at(15),
        symbol=BTC,
        side="SELL",
        price=D("62000"),
        size=D("0.25"),
        fee_usdt=D("-0.3"),
        realized_pnl_usdt=D("500.12345678"),
    )
    _fill(
        p,
        LAST_INSTANT_OF_MARCH,
        symbol=BTC,
        side="SELL",
        price=D("61000.5"),
        size=D("0.1"),
        fee_usdt=D("0.2"),
        realized_pnl_usdt=D("-10"),
    )
    # Outside March: April's first instant and February's last.
    _fill(
        p,
        FIRST_INSTANT_OF_APRIL,
        symbol=BTC,
        side="BUY",
        price=D("60000"),
        size=D("1"),
        fee_usdt=D("100"),
        realized_pnl_usdt=D("1000"),
    )
    _fill(
        p,
        LAST_INSTANT_OF_FEBRUARY,
        symbol=BTC,
        side="SELL",
        price=D("60000"),
        size=D("1"),
        fee_usdt=D("50"),
        realized_pnl_usdt=D("700"),
    )
    # ETH in March: one fill.
    _fill(
        p,
        _at(10),
        symbol=ETH,
        side="BUY",
        price=D("3000"),
        size=D("2"),
        fee_usdt=D("0.6"),
        realized_pnl_usdt=D("0"),
    )
    # Someone else's March fill.
    FillFactory(symbol=BTC, filled_at=_at(5), fee_usdt=D("7"), realized_pnl_usdt=D("9"))

    _funding(p, _at(2), "3.5")
    _funding(p, _at(20), "-1.25")
    _funding(p, FIRST_INSTANT_OF_APRIL, "1000")
    _funding(p, LAST_INSTANT_OF_FEBRUARY, "1000")
    _funding(p, _at(3), "0.75", symbol=ETH)

    for day, q, uptime, sla in (
        (dt.date(2025, 3, 1), "0.4", "0.9", True),
        (dt.date(2025, 3, 31), "0.65", "0.85", False),
        (dt.date(2025, 4, 1), "1", "1", True),
        (dt.date(2025, 2, 28), "0", "0", True),
    ):
        PerformanceDailyFactory(
            participant=p, symbol=BTC, day=day, q_score=D(q), uptime=D(uptime), sla_met=sla
        )
    PerformanceDailyFactory(
        participant=p, symbol=ETH, day=dt.date(2025, 3, 15), q_score=D("0.3"), uptime=D("0.7")
    )

    # The settlements: February's and April's are not March's.
    SettlementFactory(participant=p, symbol=ETH, period_start=dt.date(2025, 2, 1))
    services.settlements_create_month(first=MARCH, actor=Actor("test-job"))
    SettlementFactory(participant=p, symbol=BTC, period_start=dt.date(2025, 4, 1))
    return p


def _url(participant: Participant | uuid.UUID | str, month: str = "2025-03") -> str:
    pid = participant.pk if isinstance(participant, Participant) else participant
    return f"/v1/participants/{pid}/statements/{month}"


# --- the numbers ------------------------------------------------------------------


def test_statement_sums_the_half_open_utc_month_only(march):
    statement = statements.statement_get(participant=march, first=MARCH)

    assert (statement.month, statement.period_end) == ("2025-03", dt.date(2025, 4, 1))
    assert statement.fills == [
        statements.FillsSummary(
            symbol=BTC,
            fill_count=3,
            buy_count=1,
            sell_count=2,
            buy_size=D("0.5"),
            sell_size=D("0.35"),
            volume_usdt=D("51600.05"),  # 30000 + 15500 + 6100.05
            fees_usdt=D("1.4"),
            realized_pnl_usdt=D("490.12345678"),
        ),
        statements.FillsSummary(
            symbol=ETH,
            fill_count=1,
            buy_count=1,
            buy_size=D("2"),
            volume_usdt=D("6000"),
            fees_usdt=D("0.6"),
            realized_pnl_usdt=D("0"),
        ),
    ]
    assert statement.funding == [
        statements.FundingSummary(symbol=BTC, payment_count=2, amount_usdt=D("2.25")),
        statements.FundingSummary(symbol=ETH, payment_count=1, amount_usdt=D("0.75")),
    ]
    assert statement.qscores == [
        statements.QScoreSummary(
            symbol=BTC, days=2, mean_q_score=D("0.525"), mean_uptime=D("0.875"), sla_days_met=1
        ),
        statements.QScoreSummary(
            symbol=ETH, days=1, mean_q_score=D("0.3"), mean_uptime=D("0.7"), sla_days_met=0
        ),
    ]
    btc, eth = statement.settlements
    assert (btc.symbol, btc.period_start, eth.symbol) == (BTC, MARCH, ETH)
    # gross = 490.12345678 − 1.4 + 2.25. The share is the participant's: 20 % of
    # the month's 491.12345678 = 98.22469136 (half-even), allocated pro rata to
    # gross: BTC 98.1946913599…, ETH 0.0300000000… rounded down, and the one
    # 1e-8 left goes to BTC's larger remainder.
    assert statement.participant_month is not None
    assert statement.participant_month.platform_share_usdt == D("98.22469136")
    assert (btc.gross_usdt, btc.platform_share_usdt, btc.net_usdt) == (
        D("490.97345678"),
        D("98.19469136"),
        D("392.77876542"),
    )
    # The settlement and the fills summary agree on what they share.
    assert (btc.fill_count, btc.fees_usdt, btc.realized_pnl_usdt, btc.volume_usdt) == (
        3,
        D("1.4"),
        D("490.12345678"),
        D("51600.05"),
    )
    assert (eth.gross_usdt, eth.platform_share_usdt, eth.net_usdt) == (
        D("0.15"),
        D("0.03"),
        D("0.12"),
    )
    assert statement.totals == statements.StatementTotals(
        gross_usdt=D("491.12345678"),
        platform_share_usdt=D("98.22469136"),
        net_usdt=D("392.89876542"),
    )


def test_a_quiet_month_is_an_empty_statement(march):
    statement = statements.statement_get(participant=march, first=dt.date(2025, 5, 1))
    assert (statement.settlements, statement.fills, statement.funding, statement.qscores) == (
        [],
        [],
        [],
        [],
    )
    assert statement.totals == statements.StatementTotals()
    assert statement.participant_month is None


# --- JSON ---------------------------------------------------------------------------


def test_json_statement_has_every_part_with_money_as_decimal_strings(finance, march):
    response = finance.get(_url(march))
    assert response.status_code == 200, response.json()
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["participant"] == {
        "id": str(march.pk),
        "short_id": march.short_id,
        "name": march.name,
    }
    assert (body["month"], body["period_start"], body["period_end"]) == (
        "2025-03",
        "2025-03-01",
        "2025-04-01",
    )
    assert [(s["symbol"], s["period_start"]) for s in body["settlements"]] == [
        (BTC, "2025-03-01"),
        (ETH, "2025-03-01"),
    ]
    btc = body["settlements"][0]
    assert btc["id"] == str(
        Settlement.objects.get(participant=march, symbol=BTC, period_start=MARCH).pk
    )
    assert {k: btc[k] for k in ("gross_usdt", "platform_share_usdt", "net_usdt")} == {
        "gross_usdt": "490.97345678",
        "platform_share_usdt": "98.19469136",
        "net_usdt": "392.77876542",
    }
    assert (btc["fill_count"], btc["volume_usdt"], btc["share_weight_usdt"]) == (
        3,
        "51600.05000000",
        "490.97345678",
    )
    assert (btc["participant_gross_usdt"], btc["participant_platform_share_usdt"]) == (
        "491.12345678",
        "98.22469136",
    )
    assert body["participant_month"]["share_base_usdt"] == "491.12345678"
    assert body["participant_month"]["high_water_mark_scope"] == "PARTICIPANT"
    assert body["totals"]["net_usdt"] == "392.89876542"
    assert body["fills"][0] == {
        "symbol": BTC,
        "fill_count": 3,
        "buy_count": 1,
        "sell_count": 2,
        # Sizes at the instrument's precision, as stored (SPEC Part B.14); money to 8 places.
        "buy_size": "0.5",
        "sell_size": "0.35",
        "volume_usdt": "51600.05000000",
        "fees_usdt": "1.40000000",
        "realized_pnl_usdt": "490.12345678",
    }
    assert body["funding"][1] == {"symbol": ETH, "payment_count": 1, "amount_usdt": "0.75000000"}
    assert body["qscores"][0] == {
        "symbol": BTC,
        "days": 2,
        "mean_q_score": "0.5250000000",
        "mean_uptime": "0.875000",
        "sla_days_met": 1,
    }


# --- CSV ------------------------------------------------------------------------------


def _sections(text: str) -> dict[str, list[dict[str, str]]]:
    """The CSV back: section name → its rows as dicts keyed by the header row."""
    sections: dict[str, list[dict[str, str]]] = {}
    rows = list(csv.reader(io.StringIO(text)))
    i = 0
    while i < len(rows):
        if not rows[i]:
            i += 1
            continue
        name, header = rows[i][0], rows[i + 1]
        i += 2
        sections[name] = []
        while i < len(rows) and rows[i]:
            sections[name].append(dict(zip(header, rows[i], strict=True)))
            i += 1
    return sections


@pytest.mark.parametrize(
    ("query", "headers"),
    [("?format=csv", {}), ("", {"HTTP_ACCEPT": "text/csv"})],
    ids=["format-param", "accept-header"],
)
def test_csv_statement_parses_back_with_the_figures(viewer, march, query, headers):
    response = viewer.get(_url(march) + query, **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="statement-{march.short_id}-2025-03.csv"'
    )
    parts = _sections(response.content.decode())

    assert list(parts) == [
        "statement",
        "settlements",
        "participant_month",
        "totals",
        "fills",
        "funding",
        "qscores",
    ]
    assert parts["statement"] == [
        {
            "participant_id": str(march.pk),
            "short_id": march.short_id,
            "name": march.name,
            "month": "2025-03",
            "period_start": "2025-03-01",
            "period_end": "2025-04-01",
        }
    ]
    btc, eth = parts["settlements"]
    assert (btc["symbol"], btc["gross_usdt"], btc["platform_share_usdt"], btc["net_usdt"]) == (
        BTC,
        "490.97345678",
        "98.19469136",
        "392.77876542",
    )
    assert (eth["symbol"], eth["net_usdt"], eth["fees_usdt"]) == (ETH, "0.12000000", "0.60000000")
    (month,) = parts["participant_month"]
    assert (month["gross_usdt"], month["platform_share_usdt"], month["positive_gross_usdt"]) == (
        "491.12345678",
        "98.22469136",
        "491.12345678",
    )
    assert parts["totals"] == [
        {
            "gross_usdt": "491.12345678",
            "platform_share_usdt": "98.22469136",
            "net_usdt": "392.89876542",
        }
    ]
    assert [
        (f["symbol"], f["fill_count"], f["volume_usdt"], f["fees_usdt"], f["realized_pnl_usdt"])
        for f in parts["fills"]
    ] == [
        (BTC, "3", "51600.05000000", "1.40000000", "490.12345678"),
        (ETH, "1", "6000.00000000", "0.60000000", "0.00000000"),
    ]
    assert [(f["symbol"], f["payment_count"], f["amount_usdt"]) for f in parts["funding"]] == [
        (BTC, "2", "2.25000000"),
        (ETH, "1", "0.75000000"),
    ]
    assert parts["qscores"][0] == {
        "symbol": BTC,
        "days": "2",
        "mean_q_score": "0.5250000000",
        "mean_uptime": "0.875000",
        "sla_days_met": "1",
    }


def test_csv_keeps_negative_numbers_but_defuses_a_formula_in_a_name(finance):
    participant = ParticipantFactory(name='=HYPERLINK("http://evil","x")')
    SettlementFactory(participant=participant, period_start=MARCH)  # fees −35.25
    parts = _sections(finance.get(_url(participant) + "?format=csv").content.decode())
    assert parts["statement"][0]["name"] == '\'=HYPERLINK("http://evil","x")'
    assert parts["settlements"][0]["fees_usdt"] == "-35.25000000"
    assert parts["fills"] == []  # a header row, no rows


# --- HTML ------------------------------------------------------------------------------


def test_html_statement_is_a_printable_page_with_the_figures(ops, march):
    response = ops.get(_url(march) + "?format=html")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert "@media print" in page
    assert "<script" not in page
    assert f"({march.short_id})" in page
    for figure in (
        "490.97345678",  # BTC gross
        "98.19469136",  # BTC share
        "392.77876542",  # BTC net
        "392.89876542",  # total net
        "51600.05000000",  # BTC volume
        "0.5250000000",  # BTC mean Q-score
        "2.25000000",  # BTC funding
        "491.12345678",  # the participant-month's gross, all symbols
        "98.22469136",  # its share, before allocation
    ):
        assert figure in page
    assert "The high-water mark is the participant's, across its symbols" in page
    assert "pro rata to their positive gross" in page


def test_html_escapes_the_participant_name(ops):
    participant = ParticipantFactory(name="<script>alert(1)</script>")
    page = ops.get(_url(participant) + "?format=html").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page


# --- who may read it, and what is refused -----------------------------------------------


def test_an_lp_reads_its_own_statement_but_not_another(api_client, march):
    lp = api_client("lp", sub="lena-lp", participant_id=str(march.pk))
    assert lp.get(_url(march)).status_code == 200
    assert lp.get(_url(march) + "?format=csv").status_code == 200

    other = ParticipantFactory()
    response = lp.get(_url(other))
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    # An lp learns nothing of participants that do not exist either.
    assert lp.get(_url(uuid.uuid4())).status_code == 403


@pytest.mark.parametrize("role", ["ops", "finance", "viewer"])
def test_staff_roles_read_any_statement(api_client, march, role):
    assert api_client(role).get(_url(march)).status_code == 200


def test_a_statement_needs_a_token(api_client, march):
    response = api_client().get(_url(march))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "month", ["2025-13", "2025-00", "2025-3", "202503", "2025-03-01", "0000-01", "２０２５-03"]
)
def test_a_bad_month_is_400_naming_month(finance, march, month):
    response = finance.get(_url(march, month))
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["month"]


def test_an_unknown_participant_is_404(finance):
    response = finance.get(_url(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_errors_are_json_whatever_the_format_asked(finance, api_client, march):
    response = finance.get(_url(march, "2025-13") + "?format=csv")
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert list(response.json()["errors"]) == ["month"]
    response = api_client().get(_url(march) + "?format=html")
    assert (response.status_code, response["Content-Type"]) == (401, "application/json")


def test_an_unknown_format_is_400_naming_format(finance, march):
    response = finance.get(_url(march) + "?format=pdf")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["format"]


# --- cost ----------------------------------------------------------------------------------


def test_the_statement_costs_the_same_queries_however_many_fills_and_days(finance):
    participant = ParticipantFactory()

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = finance.get(_url(participant))
        assert response.status_code == 200
        return len(ctx.captured_queries)

    _fill(participant, _at(1))
    PerformanceDailyFactory(participant=participant, day=dt.date(2025, 3, 1))
    SettlementFactory(participant=participant, period_start=MARCH)
    few = queries()

    for day in range(2, 29):
        _fill(participant, _at(day), symbol=ETH)
        _fill(participant, _at(day, 13))
        _funding(participant, _at(day), "1")
        PerformanceDailyFactory(participant=participant, day=dt.date(2025, 3, day))
        PerformanceDailyFactory(participant=participant, symbol=ETH, day=dt.date(2025, 3, day))
    SettlementFactory(participant=participant, symbol=ETH, period_start=MARCH)
    many = queries()

    assert few == many <= 5  # participant, settlements, fills, funding, Q-scores
