"""Bad input answers a 4xx naming what was wrong, in one error format, never a 500."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from common.errors import api_exception_handler
from pools.models import PoolConfig
from tests.factories import PoolFactory

pytestmark = pytest.mark.django_db


def test_malformed_json_is_400(ops):
    response = ops.generic("POST", "/v1/pools", "{not json", content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) >= {"status", "code", "message", "errors"}
    assert body["code"] == "malformed_request"


def test_wrong_types_name_each_field(ops):
    response = ops.post(
        "/v1/pools",
        {"symbol": "BTCUSDT-PERP", "gamma": "abc", "num_levels": "many", "order_size_usdt": "-1"},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {"gamma", "num_levels", "order_size_usdt", "kappa", "tau"} <= set(errors)


def test_bad_symbol_is_named(ops):
    response = ops.post("/v1/pools", {"symbol": "btc usdt"}, format="json")
    assert response.status_code == 400
    assert "symbol" in response.json()["errors"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page_size=100000", "page_size"),
        ("page_size=0", "page_size"),
        ("page=abc", "page"),
        ("page=0", "page"),
        ("page=", "page"),
        ("page=%C2%B2", "page"),  # "²" is a digit to str.isdigit, not to int()
    ],
)
def test_bad_pages_are_400_naming_the_parameter(viewer, query, field):
    PoolFactory()
    response = viewer.get(f"/v1/pools?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_a_page_past_the_last_is_422_naming_it(viewer):
    """Well formed; only the data says where the last page is."""
    PoolFactory()
    response = viewer.get("/v1/pools?page=99")
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["page"]


def test_unknown_route_under_v1_is_json_404(viewer):
    response = APIClient().get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_database_constraints_hold_even_past_the_service():
    """The table itself refuses min_spread > max_spread and a zero weight."""
    pool = PoolFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        PoolConfig.objects.filter(pk=pool.pk).update(min_spread_bps=Decimal(90))
    from pools.models import PoolMember
    from tests.factories import ParticipantFactory

    with pytest.raises(IntegrityError), transaction.atomic():
        PoolMember.objects.create(
            pool=pool, participant=ParticipantFactory(), weight=0, max_position_usdt=1
        )


def _integrity_error(statement) -> IntegrityError:
    try:
        with transaction.atomic():
            statement()
    except IntegrityError as exc:
        return exc
    raise AssertionError("the database accepted a row it must refuse")


def test_a_lost_race_on_a_constraint_answers_4xx_not_500():
    """Services check first; if a concurrent write still trips a constraint, the
    client gets a 4xx naming the constraint."""
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    check = _integrity_error(
        lambda: PoolConfig.objects.filter(pk=pool.pk).update(min_spread_bps=Decimal(90))
    )
    response = api_exception_handler(check, {})
    assert response is not None
    assert (response.status_code, response.data["constraint"]) == (
        400,
        "pool_min_spread_le_max_spread",
    )
    duplicate = _integrity_error(lambda: PoolFactory(symbol="BTCUSDT-PERP"))
    response = api_exception_handler(duplicate, {})
    assert response is not None
    assert (response.status_code, response.data["code"]) == (409, "duplicate")
