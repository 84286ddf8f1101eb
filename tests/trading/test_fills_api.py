from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import FillFactory, PoolFactory
from tests.trading.conftest import BTC, ETH, iso

pytestmark = pytest.mark.django_db


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["fill_id"] for row in response.json()["results"]]


def _names(book, *keys: str) -> list[str]:
    return [book.fills[k].fill_id for k in keys]


def test_list_is_newest_first_with_notional(viewer, book):
    response = viewer.get("/v1/mm-fills")
    # a_buy1 and a_eth share a filled_at: the later row (higher id) comes first.
    assert _ids(response) == _names(book, "a_eth", "a_buy1", "a_buy2", "b_sell", "b_old")
    row = next(
        r for r in response.json()["results"] if r["fill_id"] == book.fills["a_buy2"].fill_id
    )
    assert row["participant_name"] == "Alpha Liquidity"
    # The price and size as stored, at BTC's tick (0.1) and lot (0.001); money to 8 places.
    assert (row["price"], row["size"], row["notional_usdt"], row["fee_usdt"]) == (
        "61000.0",
        "0.250",
        "15250.00000000",
        "-1.52500000",
    )
    assert (row["side"], row["liquidity"], row["order_id"]) == ("BUY", "MAKER", None)
    assert row["filled_at"] == iso(book.fills["a_buy2"].filled_at)


def test_filters_and_time_range(ops, book):
    assert _ids(ops.get("/v1/mm-fills", {"symbol": ETH})) == _names(book, "a_eth")
    assert _ids(ops.get("/v1/mm-fills", {"side": "SELL"})) == _names(book, "b_sell", "b_old")
    assert _ids(ops.get("/v1/mm-fills", {"participant": str(book.bravo.pk)})) == _names(
        book, "b_sell", "b_old"
    )
    # from inclusive, to exclusive
    window = {
        "from": iso(book.fills["b_sell"].filled_at),
        "to": iso(book.fills["a_buy1"].filled_at),
    }
    assert _ids(ops.get("/v1/mm-fills", {**window, "symbol": BTC})) == _names(
        book, "a_buy2", "b_sell"
    )


def test_symbol_route_and_ordering(finance, book):
    response = finance.get(f"/v1/mm-fills/{BTC}", {"ordering": "fee_usdt"})
    assert _ids(response) == _names(book, "b_old", "a_buy1", "a_buy2", "b_sell")
    assert _ids(finance.get(f"/v1/mm-fills/{BTC}", {"side": "BUY", "ordering": "filled_at"})) == (
        _names(book, "a_buy2", "a_buy1")
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"side": "LONG"}, "side"),
        ({"participant": "42"}, "participant"),
        ({"from": "not-a-time"}, "from"),
        ({"to": "2025-02-30T00:00:00Z"}, "to"),
        ({"from": "2025-01-01T00:00:00"}, "from"),  # no offset
        ({"to": ""}, "to"),
        ({"ordering": "-pnl"}, "ordering"),
        ({"page": "0"}, "page"),
        # malformed beats unknown: a 400, though the symbol alone would be a 422
        ({"page_size": "x", "symbol": "NOPEUSDT-PERP"}, "page_size"),
    ],
)
def test_bad_query_parameter_answers_400_naming_it(ops, book, params, field):
    for url in ("/v1/mm-fills", f"/v1/mm-fills/{BTC}"):
        response = ops.get(url, params)
        assert response.status_code == 400, (url, response.json())
        assert field in response.json()["errors"], (url, response.json())


def test_from_not_before_to_is_422_naming_from(ops, book):
    params = {"from": "2025-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}
    for url in ("/v1/mm-fills", f"/v1/mm-fills/{BTC}"):
        response = ops.get(url, params)
        assert response.status_code == 422, (url, response.json())
        assert list(response.json()["errors"]) == ["from"]


def test_lp_sees_only_its_own_fills(lp_alpha, book):
    assert _ids(lp_alpha.get(f"/v1/mm-fills/{BTC}")) == _names(book, "a_buy1", "a_buy2")
    everything = lp_alpha.get("/v1/mm-fills", {"ordering": "price"})
    assert _ids(everything) == _names(book, "a_eth", "a_buy1", "a_buy2")
    assert lp_alpha.get("/v1/mm-fills", {"participant": str(book.bravo.pk)}).status_code == 403


def test_summary_of_the_last_24_hours(viewer, book):
    response = viewer.get(f"/v1/mm-fills/{BTC}/summary")
    assert response.status_code == 200, response.json()
    body = response.json()
    # b_old (25 h ago) and the ETH fill are left out.
    assert body["symbol"] == BTC
    assert (body["fill_count"], body["participant_count"]) == (3, 2)
    assert body["base_volume"] == "0.850"  # 0.5 + 0.25 + 0.1, exact at the lot's places
    assert body["notional_usdt"] == "51450.00000000"  # 30000 + 15250 + 6200
    assert body["fees_usdt"] == "-3.90500000"  # −3 − 1.525 + 0.62: net rebate
    assert body["buy"] == {
        "fill_count": 2,
        "base_volume": "0.750",
        "notional_usdt": "45250.00000000",
        "vwap": "60333.33333",  # 45250 / 0.75, to the tick's place and 4 more
    }
    assert body["sell"] == {
        "fill_count": 1,
        "base_volume": "0.100",
        "notional_usdt": "6200.00000000",
        "vwap": "62000.00000",
    }


def test_summary_window_edge(ops, book):
    """A fill just inside 24 h counts; one an hour outside does not."""
    PoolFactory(symbol="XRPUSDT-PERP")
    FillFactory(
        participant=book.bravo,
        symbol="XRPUSDT-PERP",
        side="SELL",
        price="0.5",
        size="10",
        fee_usdt="0.001",
        filled_at=book.now - dt.timedelta(hours=23, minutes=59),
    )
    FillFactory(
        participant=book.bravo,
        symbol="XRPUSDT-PERP",
        side="SELL",
        price="0.6",
        size="10",
        fee_usdt="0.001",
        filled_at=book.now - dt.timedelta(hours=25),
    )
    body = ops.get("/v1/mm-fills/XRPUSDT-PERP/summary").json()
    assert (body["fill_count"], body["notional_usdt"], body["fees_usdt"]) == (
        1,
        "5.00000000",
        "0.00100000",
    )
    assert body["buy"]["vwap"] is None
    assert body["sell"]["vwap"] == "0.50000"


def test_summary_vwap_rounds_half_even_four_places_below_the_tick(ops, book):
    PoolFactory(symbol="DOGEUSDT-PERP")
    for price, size in (("1.0", "199999"), ("2.0", "1")):
        FillFactory(
            participant=book.alpha,
            symbol="DOGEUSDT-PERP",
            side="BUY",
            price=price,
            size=size,
            fee_usdt="0",
            filled_at=book.now - dt.timedelta(minutes=1),
        )
    body = ops.get("/v1/mm-fills/DOGEUSDT-PERP/summary").json()
    assert body["buy"]["notional_usdt"] == "200001.00000000"
    # 200001 / 200000 = 1.000005: to 1 + 4 places, the even neighbour, not up.
    assert body["buy"]["vwap"] == "1.00000"


def test_summary_for_a_pool_without_fills_is_zero(viewer, book):
    PoolFactory(symbol="XRPUSDT-PERP")
    response = viewer.get("/v1/mm-fills/XRPUSDT-PERP/summary")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["fill_count"], body["participant_count"]) == (0, 0)
    assert (body["base_volume"], body["notional_usdt"], body["fees_usdt"]) == (
        "0",
        "0.00000000",
        "0.00000000",
    )
    assert body["buy"]["vwap"] is None
    assert _ids(viewer.get("/v1/mm-fills/XRPUSDT-PERP")) == []
    assert _ids(viewer.get("/v1/mm-fills", {"symbol": "XRPUSDT-PERP"})) == []


@pytest.mark.parametrize(
    "url", ["/v1/mm-fills/NOPEUSDT-PERP", "/v1/mm-fills/NOPEUSDT-PERP/summary"]
)
def test_symbol_no_pool_ever_had_is_404(viewer, book, url):
    response = viewer.get(url)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_symbol_filter_no_pool_ever_had_is_422_naming_it(viewer, book):
    response = viewer.get("/v1/mm-fills", {"symbol": "NOPEUSDT-PERP"})
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["symbol"]


@pytest.mark.parametrize(
    "url",
    ["/v1/mm-fills/btcusdt-perp", "/v1/mm-fills/A%00B", "/v1/mm-fills/A%00B/summary"],
)
def test_malformed_symbol_in_the_path_is_no_route(viewer, book, url):
    assert viewer.get(url).status_code == 404


def test_lp_summary_covers_only_its_own_fills(lp_alpha, book):
    body = lp_alpha.get(f"/v1/mm-fills/{BTC}/summary").json()
    assert (body["fill_count"], body["participant_count"]) == (2, 1)
    assert (body["notional_usdt"], body["fees_usdt"]) == ("45250.00000000", "-4.52500000")
    assert body["sell"] == {
        "fill_count": 0,
        "base_volume": "0",
        "notional_usdt": "0.00000000",
        "vwap": None,
    }


def test_summary_is_one_query_after_the_symbol_check(ops, book, django_assert_max_num_queries):
    # one to check a pool has the symbol, one for the summary itself
    with django_assert_max_num_queries(2):
        assert ops.get(f"/v1/mm-fills/{BTC}/summary").status_code == 200


def test_list_does_not_query_per_row(ops, book, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):  # count + page, participant joined in
        assert ops.get("/v1/mm-fills").status_code == 200
    with django_assert_max_num_queries(3):  # + the symbol check
        assert ops.get(f"/v1/mm-fills/{BTC}").status_code == 200
