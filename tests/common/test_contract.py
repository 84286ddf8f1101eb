"""The API contract (issue 19, item 9): what the OpenAPI document says is what is
accepted and answered. Wrong JSON types and broken patterns are 400s naming the
field; every error under /v1 is the one JSON body, wherever it is raised; a page
size outside 1–500 is a 400; the published decimal patterns take nothing DRF
would refuse."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.http import HttpResponse, HttpResponseNotAllowed
from django.test import Client, RequestFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from common.api import NOT_BLANK, decimal_pattern
from common.errors import ApiErrorBodyMiddleware, csrf_failure
from participants.api.serializers import ParticipantEnrollInputSerializer
from pools.api.serializers import MemberInputSerializer, PoolCreateInputSerializer
from pools.models import PoolConfig
from tests.factories import ParticipantFactory, PoolFactory

ERROR_KEYS = {"status", "code", "message", "errors"}


def _is_error_body(response, status: int) -> bool:
    body = json.loads(response.content)
    return (
        response["Content-Type"].startswith("application/json")
        and set(body) >= ERROR_KEYS
        and body["status"] == status == response.status_code
    )


# --- wrong JSON types --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("route", ["/v1/mm/emergency/kill", "/v1/mm/emergency/flatten"])
@pytest.mark.parametrize("reason", [0, 1.5, True, ["stop"], {"why": "stop"}])
def test_a_reason_that_is_not_a_string_is_400_and_nothing_halts(ops, route, reason):
    PoolFactory(symbol="BTCUSDT-PERP")
    response = ops.post(route, {"reason": reason}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"reason": ["must be a string"]}
    assert PoolConfig.objects.get(symbol="BTCUSDT-PERP").state == "PAUSED"


POOL = {
    "symbol": "BTCUSDT-PERP",
    "gamma": "0.1",
    "kappa": "1.5",
    "vol_lookback_seconds": 300,
    "tau": "1",
    "num_levels": 3,
    "level_spacing_bps": "1",
    "min_spread_bps": "2",
    "max_spread_bps": "50",
    "order_size_usdt": "100",
    "max_pool_position_usdt": "10000",
    "max_pool_loss_usdt": "500",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_levels", "3"),  # a string for an integer
        ("num_levels", 3.0),
        ("enabled", 1),  # a number for a boolean
        ("enabled", "true"),
        ("gamma", 0.1),  # a number for a decimal string: floats lose digits
        ("gamma", "1e-1"),  # not plain notation
        ("gamma", "+0.1"),
        ("gamma", "00.1"),
        ("gamma", ".1"),
        ("gamma", "0"),  # the pattern says: more than zero
        ("gamma", "0.1 "),
        ("gamma", ""),
        ("max_pool_loss_usdt", "-1"),  # the pattern says: no sign
        ("symbol", " BTCUSDT-PERP"),  # DRF would strip it and take it
        ("symbol", 7),
    ],
)
def test_a_value_outside_its_published_type_or_pattern_is_400_naming_it(ops, field, value):
    response = ops.post("/v1/pools", {**POOL, field: value}, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == [field]
    assert not PoolConfig.objects.exists()


@pytest.mark.django_db
def test_every_field_at_fault_is_named_at_once(ops):
    body = {"symbol": "BTCUSDT-PERP", "gamma": 1, "num_levels": "many", "extra": True}
    response = ops.post("/v1/pools", body, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {"gamma", "num_levels", "extra", "kappa", "tau", "order_size_usdt"} <= set(errors)


@pytest.mark.django_db
def test_the_published_values_are_taken(ops):
    body = {**POOL, "gamma": "0.0000000001", "target_inventory": "-0.5", "unwind_band_bps": "10000"}
    response = ops.post("/v1/pools", body, format="json")
    assert response.status_code == 201, response.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "non_field_errors"),  # minProperties 1
        ({"weight": 2}, "weight"),
        ({"weight": "2", "max_position_usdt": None}, "max_position_usdt"),
    ],
)
def test_a_member_update_outside_its_schema_is_400(ops, body, field):
    from tests.factories import MemberFactory

    member = MemberFactory(pool=PoolFactory(symbol="BTCUSDT-PERP"))
    response = ops.put(f"/v1/pools/BTCUSDT-PERP/members/{member.pk}", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "participant_id",
    ["{12345678-1234-5678-1234-567812345678}", "12345678123456781234567812345678", 12345],
)
def test_a_uuid_in_another_spelling_is_400(ops, participant_id):
    PoolFactory(symbol="BTCUSDT-PERP")
    body = {"participant_id": participant_id, "weight": "1", "max_position_usdt": "1"}
    response = ops.post("/v1/pools/BTCUSDT-PERP/members", body, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["participant_id"]


@pytest.mark.django_db
def test_a_known_participant_joins(ops):
    PoolFactory(symbol="BTCUSDT-PERP")
    participant = ParticipantFactory()
    body = {"participant_id": str(participant.pk).upper(), "weight": "1", "max_position_usdt": "0"}
    response = ops.post("/v1/pools/BTCUSDT-PERP/members", body, format="json")
    assert response.status_code == 201, response.json()


# --- query parameters ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "page_size=0",
        "page_size=501",
        "page_size=5.0",
        "page_size=-1",
        "page_size=",
        "enabled=yes",
        "enabled=",
        "state=",
        "include_archived=1",
        "ordering=",
        "ordering=symbol,state",
    ],
)
def test_a_list_parameter_outside_its_schema_is_400_naming_it(viewer, query):
    PoolFactory()
    response = viewer.get(f"/v1/pools?{query}")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [query.split("=")[0]]


@pytest.mark.django_db
def test_page_size_takes_1_to_500(viewer):
    PoolFactory()
    for size in (1, 500):
        response = viewer.get(f"/v1/pools?page_size={size}")
        assert response.status_code == 200
        assert response.json()["count"] == 1


@pytest.mark.django_db
def test_format_is_no_parameter_of_a_route_that_does_not_publish_it(viewer):
    """URL_FORMAT_OVERRIDE is off: only the statement (and the schema) take ?format=."""
    PoolFactory()
    response = viewer.get("/v1/pools?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


# --- one error body everywhere under /v1 ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "put", "delete", "patch"])
def test_no_route_is_the_json_404_for_every_method(ops, method):
    """Unsafe methods used to meet the CSRF check of the catch-all view: an HTML 403."""
    response = getattr(ops, method)("/v1/pools/%C2%84")
    assert _is_error_body(response, 404)


def test_a_method_a_health_route_does_not_take_is_the_json_405_with_allow():
    response = Client().post("/v1/healthz")
    assert _is_error_body(response, 405)
    assert response["Allow"] == "GET, HEAD"


@pytest.mark.django_db
def test_a_method_an_api_route_does_not_take_is_the_json_405_with_allow(ops):
    response = ops.patch("/v1/pools")
    assert _is_error_body(response, 405)
    assert "GET" in response["Allow"]


@pytest.mark.django_db
def test_an_accept_header_the_route_cannot_answer_is_the_json_406(viewer):
    response = viewer.get("/v1/pools", HTTP_ACCEPT="application/xml")
    assert _is_error_body(response, 406)


@pytest.mark.django_db
def test_a_request_django_itself_refuses_is_the_json_400(viewer):
    query = "&".join(f"f{i}=1" for i in range(1100))  # past DATA_UPLOAD_MAX_NUMBER_FIELDS
    response = viewer.get(f"/v1/pools?{query}")
    assert _is_error_body(response, 400)


def test_a_csrf_refusal_under_v1_is_the_json_403_and_the_admins_is_djangos():
    factory = RequestFactory()
    api = csrf_failure(factory.post("/v1/pools"), reason="CSRF cookie not set.")
    assert api.status_code == 403
    assert api["Content-Type"] == "application/json"
    admin = csrf_failure(factory.post("/admin/login/"), reason="CSRF cookie not set.")
    assert admin.status_code == 403
    assert admin["Content-Type"].startswith("text/html")


def test_the_middleware_gives_any_other_error_under_v1_the_one_body():
    request = RequestFactory().put("/v1/healthz")
    response = ApiErrorBodyMiddleware(lambda r: HttpResponseNotAllowed(["GET"]))(request)
    assert _is_error_body(response, 405)
    assert response["Allow"] == "GET"
    assert json.loads(response.content)["code"] == "method_not_allowed"
    outside = RequestFactory().get("/healthz")
    page = HttpResponse("<h1>no</h1>", status=404)
    assert ApiErrorBodyMiddleware(lambda r: page)(outside) is page


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["?format=csv", "?format=html", ""])
def test_options_on_the_statement_is_json_whatever_the_format(viewer, query):
    """It answered a 500 (KeyError): the CSV renderer was handed the route's description."""
    participant = ParticipantFactory()
    response = viewer.options(f"/v1/participants/{participant.pk}/statements/2025-03{query}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_options_on_the_payout_file_is_json(finance):
    response = finance.options("/v1/settlements/payouts.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
@pytest.mark.parametrize("month", ["9999-12", "0000-01", "0999-12", "2025-3"])
def test_a_month_outside_the_published_pattern_is_400(finance, month):
    participant = ParticipantFactory()
    response = finance.get(f"/v1/participants/{participant.pk}/statements/{month}")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["month"]
    response = finance.get(f"/v1/settlements/payouts.csv?month={month}")
    assert response.status_code == 400


# --- the published patterns take nothing DRF refuses -----------------------------------


def _decimal_fields() -> list[serializers.DecimalField]:
    fields = []
    for serializer in (
        PoolCreateInputSerializer(),
        MemberInputSerializer(),
        ParticipantEnrollInputSerializer(),
    ):
        fields += [f for f in serializer.fields.values() if isinstance(f, serializers.DecimalField)]
    return fields


@pytest.mark.parametrize("field", _decimal_fields(), ids=lambda f: f.field_name)
def test_every_string_a_decimal_pattern_takes_is_a_value_drf_takes(field):
    pattern = decimal_pattern(field)

    @given(st.from_regex(pattern))
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    def check(text: str) -> None:
        value = field.run_validation(text)
        assert isinstance(value, Decimal)

    check()


def test_the_not_blank_pattern_is_drfs_blank_check():
    field = serializers.CharField(max_length=50)
    for text in ["a", " a ", "\ta", "\u00a0x"]:
        assert field.run_validation(text)
    for text in ["", "   ", "\t\n", "\u00a0", "\u2003"]:
        with pytest.raises(serializers.ValidationError):
            field.run_validation(text)
    assert [bool(re.search(NOT_BLANK, t)) for t in ["a", " a ", "", "   ", "\u2003", "a\x00"]] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["?format=", "?format=xml", "?format=CSV"])
def test_a_statement_format_outside_its_enum_is_400_naming_it(viewer, query):
    """An empty ?format= used to be taken as no format at all."""
    participant = ParticipantFactory()
    response = viewer.get(f"/v1/participants/{participant.pk}/statements/2025-03{query}")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["format"]


def test_the_schema_answers_yaml_or_json_by_format():
    client = Client()
    assert client.get("/v1/schema?format=json")["Content-Type"].startswith(
        "application/vnd.oai.openapi+json"
    )
    assert client.get("/v1/schema")["Content-Type"].startswith("application/vnd.oai.openapi")
    assert _is_error_body(client.get("/v1/schema?format=xml"), 400)


@pytest.mark.django_db
def test_a_pattern_ends_where_the_schema_says_not_before_a_final_newline(ops, finance):
    """A JSON Schema validator reads `$` as the end; Python's re also matches it
    before a final newline (and DRF would then strip the newline away)."""
    PoolFactory(symbol="BTCUSDT-PERP")
    response = ops.post("/v1/pools", {**POOL, "symbol": "ETHUSDT-PERP\n"}, format="json")
    assert (response.status_code, list(response.json()["errors"])) == (400, ["symbol"])
    response = ops.post(
        "/v1/pools", {**POOL, "symbol": "ETHUSDT-PERP", "gamma": "0.1\n"}, format="json"
    )
    assert (response.status_code, list(response.json()["errors"])) == (400, ["gamma"])
    for url in ("/v1/mm-fills", "/v1/settlements"):
        response = finance.get(url, {"symbol": "BTCUSDT-PERP\n"})
        assert (response.status_code, list(response.json()["errors"])) == (400, ["symbol"])
    participant = ParticipantFactory()
    response = finance.get(f"/v1/participants/{participant.pk}/statements/2025-03%0A")
    assert (response.status_code, list(response.json()["errors"])) == (400, ["month"])
