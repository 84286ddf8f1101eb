from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import PoolFactory
from tests.trading.conftest import BTC, ETH, iso

pytestmark = pytest.mark.django_db

ALL_ROUTES = [
    "/v1/mm-orders",
    f"/v1/mm-orders/{BTC}",
    f"/v1/mm-orders/{BTC}/breakdown",
    "/v1/mm-fills",
    f"/v1/mm-fills/{BTC}",
    f"/v1/mm-fills/{BTC}/summary",
    "/v1/mm-analytics/overview",
    "/v1/mm-analytics/hourly",
    f"/v1/mm-analytics/{BTC}/metrics",
]
ANALYTICS_ROUTES = [r for r in ALL_ROUTES if r.startswith("/v1/mm-analytics")]


def _hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("url", ALL_ROUTES)
def test_every_route_needs_a_token(api_client, url):
    response = api_client().get(url)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("url", ANALYTICS_ROUTES)
def test_analytics_are_staff_only(lp_alpha, url):
    response = lp_alpha.get(url)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("url", ALL_ROUTES)
@pytest.mark.parametrize("role", ["ops", "finance", "viewer"])
def test_every_staff_role_reads_every_route(api_client, book, url, role):
    assert api_client(role).get(url).status_code == 200


def test_overview_per_symbol_and_total(viewer, book):
    response = viewer.get("/v1/mm-analytics/overview")
    assert response.status_code == 200, response.json()
    body = response.json()
    btc, eth = body["symbols"]
    assert btc["symbol"] == BTC
    # b_old, 25 h ago, is outside the window.
    assert (btc["fill_count"], btc["participant_count"], btc["base_volume"]) == (3, 2, "0.850")
    assert (btc["notional_usdt"], btc["fees_usdt"]) == ("51450.00000000", "-3.90500000")
    assert btc["buy"]["vwap"] == "60333.33333"  # BTC's tick has 1 place: 4 more
    assert btc["sell"]["vwap"] == "62000.00000"
    assert eth == {
        "symbol": ETH,
        "fill_count": 1,
        "participant_count": 1,
        "base_volume": "2.00",
        "notional_usdt": "6000.00000000",
        "fees_usdt": "-0.60000000",
        "buy": {
            "fill_count": 1,
            "base_volume": "2.00",
            "notional_usdt": "6000.00000000",
            "vwap": "3000.000000",  # ETH's tick has 2 places: 4 more
        },
        "sell": {
            "fill_count": 0,
            "base_volume": "0",
            "notional_usdt": "0.00000000",
            "vwap": None,
        },
    }
    assert body["total"] == {
        "symbol_count": 2,
        "fill_count": 4,
        "participant_count": 2,  # Alpha trades both symbols: counted once
        "notional_usdt": "57450.00000000",
        "fees_usdt": "-4.50500000",
        "buy_notional_usdt": "51250.00000000",
        "sell_notional_usdt": "6200.00000000",
    }


def test_overview_without_fills_is_empty(ops):
    body = ops.get("/v1/mm-analytics/overview").json()
    assert body["symbols"] == []
    assert body["total"]["fill_count"] == 0
    assert body["total"]["notional_usdt"] == "0.00000000"


def test_overview_costs_two_queries(ops, book, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):  # per symbol, and distinct participants overall
        assert ops.get("/v1/mm-analytics/overview").status_code == 200


def test_hourly_across_symbols(ops, book):
    # `until` pins the window to the data's clock, so an hour boundary passing
    # between setup and request cannot shift the buckets.
    response = ops.get("/v1/mm-analytics/hourly", {"until": book.now.isoformat()})
    assert response.status_code == 200, response.json()
    body = response.json()
    current = _hour(book.now)
    assert (body["symbol"], body["hours"]) == (None, 24)
    assert body["window_start"] == iso(current - dt.timedelta(hours=23))
    buckets = body["buckets"]
    assert [b["hour"] for b in buckets] == [
        iso(current - dt.timedelta(hours=h)) for h in range(23, -1, -1)
    ]
    busy = {
        b["hour"]: (b["fill_count"], b["base_volume"], b["notional_usdt"], b["fees_usdt"])
        for b in buckets
        if b["fill_count"]
    }
    assert busy == {
        # a_buy1 + a_eth; base volume is not summed across symbols
        iso(current - dt.timedelta(hours=1)): (2, None, "36000.00000000", "-3.60000000"),
        iso(current - dt.timedelta(hours=2)): (1, None, "15250.00000000", "-1.52500000"),
        iso(current - dt.timedelta(hours=23)): (1, None, "6200.00000000", "0.62000000"),
    }
    quiet = next(b for b in buckets if not b["fill_count"])
    assert (quiet["notional_usdt"], quiet["fees_usdt"]) == ("0.00000000", "0.00000000")


def test_hourly_for_one_symbol_with_a_short_window(viewer, book):
    current = _hour(book.now)
    body = viewer.get(
        "/v1/mm-analytics/hourly", {"symbol": BTC, "hours": 2, "until": book.now.isoformat()}
    ).json()
    assert body["symbol"] == BTC
    # Two buckets: the previous hour (a_buy1) and the current one; a_buy2 is too old.
    assert [
        (b["hour"], b["fill_count"], b["base_volume"], b["notional_usdt"], b["fees_usdt"])
        for b in body["buckets"]
    ] == [
        (iso(current - dt.timedelta(hours=1)), 1, "0.500", "30000.00000000", "-3.00000000"),
        (iso(current), 0, "0", "0.00000000", "0.00000000"),
    ]


def test_hourly_longest_window_reaches_older_fills(viewer, book):
    body = viewer.get(
        "/v1/mm-analytics/hourly", {"symbol": BTC, "hours": 168, "until": book.now.isoformat()}
    ).json()
    assert len(body["buckets"]) == 168
    assert sum(b["fill_count"] for b in body["buckets"]) == 4  # b_old included now


def test_hourly_for_a_symbol_no_pool_ever_had_is_422_naming_it(ops, book):
    response = ops.get("/v1/mm-analytics/hourly", {"symbol": "NOPEUSDT-PERP"})
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["symbol"]


@pytest.mark.parametrize("until", ["0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z"])
def test_hourly_until_before_2000_is_422_naming_it(ops, until):
    response = ops.get("/v1/mm-analytics/hourly", {"until": until})
    assert response.status_code == 422  # a well-formed date-time, before what is answered
    assert list(response.json()["errors"]) == ["until"]


@pytest.mark.parametrize("url", ["/v1/mm-orders", "/v1/mm-fills", "/v1/mm-analytics/hourly"])
def test_symbol_filter_with_a_nul_byte_is_400_naming_it(ops, book, url):
    response = ops.get(url, {"symbol": "A\x00B"})
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["symbol"]


def test_hourly_until_in_2000_is_fine(ops):
    response = ops.get("/v1/mm-analytics/hourly", {"until": "2000-01-01T00:00:00Z", "hours": 168})
    assert response.status_code == 200, response.json()
    assert len(response.json()["buckets"]) == 168


@pytest.mark.parametrize("params", [{"hours": "0"}, {"hours": "1000"}, {"hours": "a day"}])
def test_hourly_bad_hours_answers_400(ops, params):
    response = ops.get("/v1/mm-analytics/hourly", params)
    assert response.status_code == 400
    assert "hours" in response.json()["errors"]


def test_hourly_is_one_query(ops, book, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        assert ops.get("/v1/mm-analytics/hourly", {"hours": 168}).status_code == 200


def test_symbol_metrics(finance, book):
    response = finance.get(f"/v1/mm-analytics/{BTC}/metrics")
    assert response.status_code == 200, response.json()
    body = response.json()
    fills = body["fills_24h"]
    assert (fills["fill_count"], fills["notional_usdt"], fills["fees_usdt"]) == (
        3,
        "51450.00000000",
        "-3.90500000",
    )
    assert fills["buy"]["vwap"] == "60333.33333"
    assert body["orders_by_status"] == {
        "PENDING": 1,
        "OPEN": 1,
        "PARTIALLY_FILLED": 1,
        "FILLED": 1,
        "CANCELLED": 1,
        "REJECTED": 0,
    }
    assert (body["order_count"], body["open_order_count"]) == (5, 3)
    # Positions come from every fill, old ones included: Bravo 0.1 + 1 sold.
    assert body["positions"] == [
        {
            "participant_id": str(book.alpha.pk),
            "participant_name": "Alpha Liquidity",
            "net_position": "0.750",
            "bought": "0.750",
            "sold": "0",
            "fill_count": 2,
            "fees_usdt": "-4.52500000",
        },
        {
            "participant_id": str(book.bravo.pk),
            "participant_name": "Bravo Markets",
            "net_position": "-1.100",
            "bought": "0",
            "sold": "1.100",
            "fill_count": 2,
            "fees_usdt": "-5.28000000",  # 0.62 − 5.9
        },
    ]


def test_symbol_metrics_for_a_pool_without_activity_are_zero(ops, book):
    PoolFactory(symbol="XRPUSDT-PERP")
    response = ops.get("/v1/mm-analytics/XRPUSDT-PERP/metrics")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["fills_24h"]["fill_count"] == 0
    assert (body["order_count"], body["open_order_count"], body["positions"]) == (0, 0, [])
    assert set(body["orders_by_status"].values()) == {0}


def test_symbol_metrics_for_a_symbol_no_pool_ever_had_are_404(ops, book):
    response = ops.get("/v1/mm-analytics/NOPEUSDT-PERP/metrics")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "url", ["/v1/mm-analytics/btcusdt-perp/metrics", "/v1/mm-analytics/A%00B/metrics"]
)
def test_symbol_metrics_for_a_malformed_symbol_are_no_route(ops, book, url):
    assert ops.get(url).status_code == 404


def test_symbol_metrics_cost_three_queries_after_the_symbol_check(
    ops, book, django_assert_max_num_queries
):
    with django_assert_max_num_queries(4):  # the symbol check, then three
        assert ops.get(f"/v1/mm-analytics/{BTC}/metrics").status_code == 200
