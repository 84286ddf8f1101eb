from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from performance.models import PerformanceDaily
from tests.factories import ParticipantFactory, PerformanceDailyFactory, PoolFactory

pytestmark = pytest.mark.django_db

D1 = dt.date(2025, 3, 1)
D2 = dt.date(2025, 3, 2)
D3 = dt.date(2025, 3, 3)
BTC, ETH = "BTCUSDT-PERP", "ETHUSDT-PERP"


def _row(participant, symbol, day, q_score, **kwargs):
    return PerformanceDailyFactory(
        participant=participant, symbol=symbol, day=day, q_score=Decimal(q_score), **kwargs
    )


@pytest.fixture
def two_symbols():
    """Alpha quotes both pools, Beta only BTC, Gamma only ETH, over two days."""
    PoolFactory(symbol=BTC)
    PoolFactory(symbol=ETH)
    alpha = ParticipantFactory(name="Alpha")
    beta = ParticipantFactory(name="Beta")
    gamma = ParticipantFactory(name="Gamma")
    # Day 1: BTC alpha 0.6 / beta 0.4; ETH alpha 0.2 / gamma 0.8.
    _row(alpha, BTC, D1, "0.6", volume_usdt=Decimal("1000.10"), trade_count=10, uptime="0.9")
    _row(beta, BTC, D1, "0.4", volume_usdt=Decimal("500"), trade_count=5, uptime="1")
    _row(alpha, ETH, D1, "0.2", volume_usdt=Decimal("300"), trade_count=3, uptime="0.5")
    _row(gamma, ETH, D1, "0.8", volume_usdt=Decimal("800"), trade_count=8, uptime="1")
    # Day 2 (the latest): BTC alpha 0.25 / beta 0.75; ETH gamma alone.
    _row(alpha, BTC, D2, "0.25", volume_usdt=Decimal("100"), trade_count=1, uptime="0.8")
    _row(beta, BTC, D2, "0.75", volume_usdt=Decimal("700"), trade_count=7, uptime="0.95")
    _row(gamma, ETH, D2, "1", volume_usdt=Decimal("900"), trade_count=9, uptime="1")
    return alpha, beta, gamma


def _by_name(body):
    return {r["participant_name"]: r for r in body["results"]}


# --- leaderboard -----------------------------------------------------------------


def test_leaderboard_defaults_to_the_latest_day(viewer, two_symbols):
    response = viewer.get("/v1/performance/leaderboard")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["from"], body["to"], body["symbol"]) == ("2025-03-02", "2025-03-02", None)
    assert body["symbol_days"] == 2
    # Day 2: gamma (1 + 0)/2, beta (0.75 + 0)/2, alpha (0.25 + 0)/2.
    assert [(r["rank"], r["participant_name"], r["score"]) for r in body["results"]] == [
        (1, "Gamma", "0.5000000000"),
        (2, "Beta", "0.3750000000"),
        (3, "Alpha", "0.1250000000"),
    ]
    assert sum(Decimal(r["score"]) for r in body["results"]) == 1


def test_leaderboard_over_a_range_combines_symbols_with_equal_weight(ops, two_symbols):
    alpha, _, _ = two_symbols
    response = ops.get("/v1/performance/leaderboard?from=2025-03-01&to=2025-03-02")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["symbol_days"] == 4
    rows = _by_name(body)
    # Sum of shares over 4 symbol-days: gamma 1.8, beta 1.15, alpha 1.05.
    assert rows["Gamma"]["score"] == "0.4500000000"
    assert rows["Beta"]["score"] == "0.2875000000"
    assert rows["Alpha"]["score"] == "0.2625000000"
    assert [r["rank"] for r in body["results"]] == [1, 2, 3]
    alpha_row = rows["Alpha"]
    assert alpha_row["participant_id"] == str(alpha.pk)
    assert alpha_row["symbol_days"] == 3
    assert alpha_row["volume_usdt"] == "1400.10000000"
    assert alpha_row["trade_count"] == 14
    # Mean uptime over alpha's own rows: (0.9 + 0.5 + 0.8) / 3.
    assert alpha_row["mean_uptime"] == "0.733333"
    assert alpha_row["realized_pnl_usdt"] == "105.75000000"


def test_leaderboard_weights_symbols_as_configured(ops, two_symbols, settings):
    settings.QSCORE_SYMBOL_WEIGHTS = {BTC: Decimal("3")}  # ETH: 1
    body = ops.get("/v1/performance/leaderboard?from=2025-03-01&to=2025-03-02").json()
    rows = _by_name(body)
    # Σ_s W_s·Σ_d q ÷ Σ_s W_s·D_s, the denominator 3·2 + 1·2 = 8:
    # alpha (3·0.85 + 0.2)/8, beta 3·1.15/8, gamma 1.8/8.
    assert rows["Alpha"]["score"] == "0.3437500000"
    assert rows["Beta"]["score"] == "0.4312500000"
    assert rows["Gamma"]["score"] == "0.2250000000"
    assert sum(Decimal(r["score"]) for r in body["results"]) == 1
    assert [r["participant_name"] for r in body["results"]] == ["Beta", "Alpha", "Gamma"]


def test_leaderboard_for_one_date_and_one_symbol(finance, two_symbols):
    response = finance.get(f"/v1/performance/leaderboard?date=2025-03-01&symbol={ETH}")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["from"], body["to"], body["symbol"], body["symbol_days"]) == (
        "2025-03-01",
        "2025-03-01",
        ETH,
        1,
    )
    assert [(r["participant_name"], r["score"]) for r in body["results"]] == [
        ("Gamma", "0.8000000000"),
        ("Alpha", "0.2000000000"),
    ]


def test_leaderboard_for_a_symbol_no_pool_ever_had_is_422_naming_it(viewer, two_symbols):
    response = viewer.get("/v1/performance/leaderboard?symbol=NOPEUSDT-PERP")
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["symbol"]


def test_leaderboard_open_ended_range_reports_the_days_it_covered(viewer, two_symbols):
    body = viewer.get("/v1/performance/leaderboard?from=2025-03-02").json()
    assert (body["from"], body["to"]) == ("2025-03-02", "2025-03-02")
    body = viewer.get("/v1/performance/leaderboard?to=2025-03-02").json()
    assert (body["from"], body["to"], body["symbol_days"]) == ("2025-03-01", "2025-03-02", 4)


def test_leaderboard_ties_share_a_rank(viewer):
    a, b, c = (ParticipantFactory(name=n) for n in ("A", "B", "C"))
    _row(a, BTC, D1, "0.4")
    _row(b, BTC, D1, "0.4")
    _row(c, BTC, D1, "0.2")
    body = viewer.get("/v1/performance/leaderboard").json()
    assert [r["rank"] for r in body["results"]] == [1, 1, 3]


def test_leaderboard_without_any_rows_is_empty(viewer):
    response = viewer.get("/v1/performance/leaderboard")
    assert response.status_code == 200
    assert response.json() == {
        "from": None,
        "to": None,
        "symbol": None,
        "symbol_days": 0,
        "results": [],
    }


def test_leaderboard_for_a_day_without_rows_is_empty(viewer, two_symbols):
    body = viewer.get("/v1/performance/leaderboard?date=2024-01-01").json()
    assert body["results"] == []
    assert body["from"] == "2024-01-01"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("date=2025-13-01", "date"),
        ("date=yesterday", "date"),
        ("from=2025-03-xx", "from"),
        ("to=03/02/2025", "to"),
        ("to=20250302", "to"),
        ("date=", "date"),
    ],
)
def test_leaderboard_bad_dates_are_400_naming_the_parameter(viewer, query, field):
    response = viewer.get(f"/v1/performance/leaderboard?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["errors"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("from=2025-03-02&to=2025-03-01", "from"), ("date=2025-03-01&from=2025-03-01", "date")],
)
def test_leaderboard_dates_that_do_not_go_together_are_422_naming_the_parameter(
    viewer, query, field
):
    response = viewer.get(f"/v1/performance/leaderboard?{query}")
    assert response.status_code == 422
    assert response.json()["code"] == "unprocessable"
    assert list(response.json()["errors"]) == [field]


def test_leaderboard_is_not_for_an_lp(api_client, two_symbols):
    alpha, _, _ = two_symbols
    lp = api_client("lp", participant_id=str(alpha.pk))
    assert lp.get("/v1/performance/leaderboard").status_code == 403


def test_leaderboard_needs_a_token(api_client):
    assert api_client().get("/v1/performance/leaderboard").status_code == 401


def _leaderboard_queries(client, participants: int) -> tuple[int, int]:
    symbols = [f"Q{participants}S{i}USDT-PERP" for i in range(3)]
    share = Decimal(1) / participants
    for _ in range(participants):
        p = ParticipantFactory()
        for symbol in symbols:
            _row(p, symbol, D3, str(share.quantize(Decimal("0.0000000001"))))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/v1/performance/leaderboard?date=2025-03-03")
    assert response.status_code == 200
    return len(ctx.captured_queries), len(response.json()["results"])


def test_leaderboard_query_count_does_not_grow_with_participants(viewer):
    few, few_rows = _leaderboard_queries(viewer, 2)
    PerformanceDaily.objects.all().delete()
    many, many_rows = _leaderboard_queries(viewer, 20)
    assert (few_rows, many_rows) == (2, 20)
    assert many == few
    assert many <= 2


def test_leaderboard_default_day_costs_one_query_more(viewer, django_assert_max_num_queries):
    for _ in range(20):
        p = ParticipantFactory()
        for symbol in ("A1USDT-PERP", "A2USDT-PERP", "A3USDT-PERP"):
            _row(p, symbol, D3, "0.05")
    with django_assert_max_num_queries(3):
        body = viewer.get("/v1/performance/leaderboard").json()
    assert len(body["results"]) == 20
    assert body["symbol_days"] == 3


# --- per symbol ------------------------------------------------------------------


def test_symbol_rows_newest_first_and_paginated(viewer, two_symbols):
    response = viewer.get(f"/v1/performance/symbol/{BTC}?page_size=3")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["count"] == 4
    assert [(r["day"], r["participant_name"]) for r in body["results"]] == [
        ("2025-03-02", "Beta"),
        ("2025-03-02", "Alpha"),
        ("2025-03-01", "Alpha"),
    ]
    row = body["results"][0]
    assert row["q_score"] == "0.7500000000"
    assert row["volume_usdt"] == "700.00000000"
    assert row["uptime"] == "0.950000"
    assert body["next"] is not None


def test_symbol_rows_in_a_date_range(ops, two_symbols):
    response = ops.get(f"/v1/performance/symbol/{ETH}?from=2025-03-01&to=2025-03-01")
    assert {(r["day"], r["participant_name"]) for r in response.json()["results"]} == {
        ("2025-03-01", "Alpha"),
        ("2025-03-01", "Gamma"),
    }


def test_symbol_rows_unknown_symbol_is_404(viewer):
    response = viewer.get("/v1/performance/symbol/NOPEUSDT-PERP")
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["A%00B", "btcusdt-perp", "BTC%20USDT", "%00"])
def test_symbol_rows_malformed_symbol_is_404_not_500(viewer, path):
    PoolFactory(symbol=BTC)
    assert viewer.get(f"/v1/performance/symbol/{path}").status_code == 404


def test_symbol_rows_bad_range_is_422(viewer):
    PoolFactory(symbol=BTC)
    response = viewer.get(f"/v1/performance/symbol/{BTC}?from=2025-03-05&to=2025-03-01")
    assert response.status_code == 422  # two well-formed days in the wrong order
    assert "from" in response.json()["errors"]


def test_symbol_rows_are_not_for_an_lp(api_client, two_symbols):
    alpha, _, _ = two_symbols
    lp = api_client("lp", participant_id=str(alpha.pk))
    assert lp.get(f"/v1/performance/symbol/{BTC}").status_code == 403


def test_symbol_rows_do_not_query_per_row(viewer, django_assert_max_num_queries):
    PoolFactory(symbol=BTC)
    for _ in range(20):
        _row(ParticipantFactory(), BTC, D1, "0.05")
    with django_assert_max_num_queries(3):
        response = viewer.get(f"/v1/performance/symbol/{BTC}")
    assert response.json()["count"] == 20


# --- per participant -------------------------------------------------------------


def test_participant_rows_across_its_pools(finance, two_symbols):
    alpha, _, _ = two_symbols
    response = finance.get(f"/v1/performance/{alpha.pk}")
    assert response.status_code == 200, response.json()
    assert [(r["day"], r["symbol"]) for r in response.json()["results"]] == [
        ("2025-03-02", BTC),
        ("2025-03-01", BTC),
        ("2025-03-01", ETH),
    ]


def test_participant_rows_filtered_by_symbol_and_range(viewer, two_symbols):
    alpha, _, _ = two_symbols
    response = viewer.get(f"/v1/performance/{alpha.pk}?symbol={BTC}&from=2025-03-02")
    assert [(r["day"], r["symbol"]) for r in response.json()["results"]] == [("2025-03-02", BTC)]


def test_lp_reads_its_own_performance_but_not_another(api_client, two_symbols):
    alpha, beta, _ = two_symbols
    lp = api_client("lp", participant_id=str(alpha.pk))
    response = lp.get(f"/v1/performance/{alpha.pk}")
    assert response.status_code == 200
    assert {r["participant_id"] for r in response.json()["results"]} == {str(alpha.pk)}
    response = lp.get(f"/v1/performance/{beta.pk}")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_participant_rows_for_a_symbol_no_pool_ever_had_is_422_naming_it(viewer, two_symbols):
    alpha, _, _ = two_symbols
    response = viewer.get(f"/v1/performance/{alpha.pk}?symbol=NOPEUSDT-PERP")
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["symbol"]


@pytest.mark.parametrize("route", ["leaderboard", "participant"])
def test_symbol_filter_with_a_nul_byte_is_400_naming_it(viewer, two_symbols, route):
    alpha, _, _ = two_symbols
    url = "/v1/performance/leaderboard" if route == "leaderboard" else f"/v1/performance/{alpha.pk}"
    response = viewer.get(url, {"symbol": "A\x00B"})
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["symbol"]


def test_participant_rows_unknown_participant_is_404(viewer):
    assert viewer.get(f"/v1/performance/{uuid.uuid4()}").status_code == 404


def test_participant_rows_bad_date_is_400(viewer, two_symbols):
    alpha, _, _ = two_symbols
    response = viewer.get(f"/v1/performance/{alpha.pk}?to=never")
    assert response.status_code == 400
    assert "to" in response.json()["errors"]


def test_participant_rows_need_a_token(api_client, two_symbols):
    alpha, _, _ = two_symbols
    assert api_client().get(f"/v1/performance/{alpha.pk}").status_code == 401


def test_openapi_schema_types_the_new_routes(viewer):
    response = viewer.get("/v1/schema?format=json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    leaderboard = paths["/v1/performance/leaderboard"]["get"]
    assert {p["name"] for p in leaderboard["parameters"]} >= {"date", "from", "to", "symbol"}
    assert "((v − d)/v)²" in leaderboard["description"]  # the Q-score's formula
    assert "QSCORE_SYMBOL_WEIGHTS" in leaderboard["description"]
    symbol_rows = paths["/v1/performance/symbol/{symbol}"]["get"]
    assert "U^p · Λ^α · V^(1−α)" in symbol_rows["description"]
    entry = schema["components"]["schemas"]["LeaderboardEntryOutput"]["properties"]
    assert entry["score"]["type"] == "string"
    assert entry["score"]["format"] == "decimal"
    approve = paths["/v1/settlements/{settlement_id}/approve"]["post"]
    assert "requestBody" in approve
    assert set(approve["responses"]) >= {"200", "400", "401", "403", "404", "409"}
