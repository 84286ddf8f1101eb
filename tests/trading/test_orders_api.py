from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import OrderFactory, PoolFactory
from tests.trading.conftest import BTC, ETH, iso

pytestmark = pytest.mark.django_db


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["client_order_id"] for row in response.json()["results"]]


def _names(book, *keys: str) -> list[str]:
    return [book.orders[k].client_order_id for k in keys]


def test_list_is_newest_first_with_decimals_as_strings(viewer, book):
    response = viewer.get("/v1/mm-orders")
    assert _ids(response) == _names(
        book, "a_open", "a_pending", "a_partial", "b_cancelled", "a_eth", "b_filled"
    )
    body = response.json()
    assert body["count"] == 6
    partial = next(r for r in body["results"] if r["status"] == "PARTIALLY_FILLED")
    assert partial["participant_id"] == str(book.alpha.pk)
    assert partial["participant_name"] == "Alpha Liquidity"
    assert (partial["symbol"], partial["side"]) == (BTC, "SELL")
    # As stored: at BTC's tick (0.1) and lot (0.001), not padded to 8 places.
    assert (partial["price"], partial["size"], partial["filled_size"]) == (
        "60100.0",
        "0.030",
        "0.010",
    )
    assert partial["created_at"] == iso(book.orders["a_partial"].created_at)


def test_filters_combine(ops, book):
    assert _ids(ops.get("/v1/mm-orders", {"symbol": ETH})) == _names(book, "a_eth")
    assert _ids(ops.get("/v1/mm-orders", {"status": "OPEN"})) == _names(book, "a_open", "a_eth")
    assert _ids(ops.get("/v1/mm-orders", {"side": "SELL"})) == _names(
        book, "a_partial", "b_cancelled"
    )
    assert _ids(ops.get("/v1/mm-orders", {"participant": str(book.bravo.pk)})) == _names(
        book, "b_cancelled", "b_filled"
    )
    assert _ids(
        ops.get("/v1/mm-orders", {"symbol": BTC, "side": "BUY", "status": "FILLED"})
    ) == _names(book, "b_filled")


def test_created_at_range_is_from_inclusive_to_exclusive(ops, book):
    start = book.orders["a_partial"].created_at  # now − 3 h
    end = book.orders["a_open"].created_at  # now − 1 h
    response = ops.get("/v1/mm-orders", {"from": iso(start), "to": iso(end)})
    assert _ids(response) == _names(book, "a_pending", "a_partial")


def test_ordering_and_pagination(ops, book):
    response = ops.get("/v1/mm-orders", {"ordering": "price", "page_size": 2})
    assert _ids(response) == _names(book, "a_eth", "a_pending")
    assert response.json()["count"] == 6
    assert response.json()["next"] is not None
    page3 = ops.get("/v1/mm-orders", {"ordering": "price", "page_size": 2, "page": 3})
    assert _ids(page3) == _names(book, "a_partial", "b_cancelled")


def test_symbol_route_lists_only_that_symbol(finance, book):
    response = finance.get(f"/v1/mm-orders/{BTC}", {"status": "OPEN"})
    assert _ids(response) == _names(book, "a_open")
    assert _ids(finance.get(f"/v1/mm-orders/{BTC}")) == _names(
        book, "a_open", "a_pending", "a_partial", "b_cancelled", "b_filled"
    )


def test_symbol_with_a_pool_but_no_orders_is_simply_empty(viewer, book):
    PoolFactory(symbol="XRPUSDT-PERP")
    response = viewer.get("/v1/mm-orders/XRPUSDT-PERP")
    assert response.status_code == 200
    assert response.json()["count"] == 0
    assert _ids(viewer.get("/v1/mm-orders", {"symbol": "XRPUSDT-PERP"})) == []
    breakdown = viewer.get("/v1/mm-orders/XRPUSDT-PERP/breakdown").json()
    assert breakdown["order_count"] == 0
    assert breakdown["notional_usdt"] == "0.00000000"
    assert all(r["order_count"] == 0 for r in breakdown["rows"])


def test_archived_pool_symbol_is_still_readable(viewer, book):
    PoolFactory(symbol="XRPUSDT-PERP", archived_at=book.now)
    assert viewer.get("/v1/mm-orders/XRPUSDT-PERP").status_code == 200
    assert viewer.get("/v1/mm-orders/XRPUSDT-PERP/breakdown").status_code == 200
    assert viewer.get("/v1/mm-orders", {"symbol": "XRPUSDT-PERP"}).status_code == 200


@pytest.mark.parametrize(
    "url", ["/v1/mm-orders/NOPEUSDT-PERP", "/v1/mm-orders/NOPEUSDT-PERP/breakdown"]
)
def test_symbol_no_pool_ever_had_is_404(viewer, book, url):
    response = viewer.get(url)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_symbol_filter_no_pool_ever_had_is_422_naming_it(viewer, book):
    response = viewer.get("/v1/mm-orders", {"symbol": "NOPEUSDT-PERP"})
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["symbol"]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/mm-orders/btc",
        "/v1/mm-orders/btcusdt-perp/breakdown",
        "/v1/mm-orders/A%00B",
        "/v1/mm-orders/A%00B/breakdown",
        "/v1/mm-orders/BTC%20USDT",
    ],
)
def test_malformed_symbol_in_the_path_is_no_route(viewer, book, url):
    assert viewer.get(url).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "LOST"}, "status"),
        ({"side": "HOLD"}, "side"),
        ({"participant": "not-a-uuid"}, "participant"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-13-01T00:00:00Z"}, "to"),
        ({"ordering": "fencing_token"}, "ordering"),
        ({"ordering": ""}, "ordering"),
        ({"status": ""}, "status"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "501"}, "page_size"),
        ({"page": "²"}, "page"),  # a digit to str.isdigit, not to int()
    ],
)
def test_bad_query_parameter_answers_400_naming_it(ops, book, params, field):
    for url in ("/v1/mm-orders", f"/v1/mm-orders/{BTC}"):
        response = ops.get(url, params)
        assert response.status_code == 400, (url, response.json())
        assert field in response.json()["errors"], (url, response.json())


def test_lp_sees_only_its_own_orders(lp_alpha, book):
    assert _ids(lp_alpha.get("/v1/mm-orders")) == _names(
        book, "a_open", "a_pending", "a_partial", "a_eth"
    )
    assert _ids(lp_alpha.get(f"/v1/mm-orders/{BTC}", {"side": "SELL"})) == _names(book, "a_partial")
    own = lp_alpha.get("/v1/mm-orders", {"participant": str(book.alpha.pk), "symbol": ETH})
    assert _ids(own) == _names(book, "a_eth")


def test_lp_asking_for_another_participant_is_refused(lp_alpha, book):
    response = lp_alpha.get("/v1/mm-orders", {"participant": str(book.bravo.pk)})
    assert response.status_code == 403


def test_breakdown_by_side_and_status(viewer, book):
    response = viewer.get(f"/v1/mm-orders/{BTC}/breakdown")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["symbol"] == BTC
    rows = {(r["side"], r["status"]): r for r in body["rows"]}
    assert len(rows) == 12  # every side × status, zeros included
    figures = {
        key: (r["order_count"], r["total_size"], r["filled_size"], r["notional_usdt"])
        for key, r in rows.items()
        if r["order_count"]
    }
    assert figures == {
        ("BUY", "PENDING"): (1, "0.020", "0", "1198.00000000"),
        ("BUY", "OPEN"): (1, "0.010", "0", "600.00000000"),
        ("BUY", "FILLED"): (1, "0.050", "0.050", "3000.00000000"),
        ("SELL", "PARTIALLY_FILLED"): (1, "0.030", "0.010", "1803.00000000"),
        ("SELL", "CANCELLED"): (1, "0.010", "0", "602.00000000"),
    }
    assert rows[("SELL", "REJECTED")]["notional_usdt"] == "0.00000000"
    assert (
        body["order_count"],
        body["total_size"],
        body["filled_size"],
        body["notional_usdt"],
    ) == (5, "0.120", "0.060", "7203.00000000")


def test_breakdown_groups_several_orders_in_one_row(ops, book):
    OrderFactory(
        participant=book.bravo,
        symbol=BTC,
        side="BUY",
        status="OPEN",
        price="60000.5",
        size="0.015",
        created_at=book.now - dt.timedelta(minutes=5),
    )
    row = next(
        r
        for r in ops.get(f"/v1/mm-orders/{BTC}/breakdown").json()["rows"]
        if (r["side"], r["status"]) == ("BUY", "OPEN")
    )
    # 600 + 60000.5 × 0.015 = 600 + 900.0075
    assert (row["order_count"], row["total_size"], row["notional_usdt"]) == (
        2,
        "0.025",
        "1500.00750000",
    )


def test_lp_breakdown_counts_only_its_own_orders(lp_alpha, book):
    body = lp_alpha.get(f"/v1/mm-orders/{BTC}/breakdown").json()
    assert (
        body["order_count"],
        body["total_size"],
        body["filled_size"],
        body["notional_usdt"],
    ) == (3, "0.060", "0.010", "3601.00000000")


def test_list_does_not_query_per_row(ops, book, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):  # count + page, participant joined in
        assert ops.get("/v1/mm-orders").status_code == 200
    with django_assert_max_num_queries(3):  # + the symbol check
        assert ops.get(f"/v1/mm-orders/{BTC}").status_code == 200


def test_breakdown_is_one_query_after_the_symbol_check(ops, book, django_assert_max_num_queries):
    # one to check a pool has the symbol, one for the breakdown itself
    with django_assert_max_num_queries(2):
        assert ops.get(f"/v1/mm-orders/{BTC}/breakdown").status_code == 200
