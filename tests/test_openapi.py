"""The OpenAPI document covers every SPEC route, typed, and generates without warnings."""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command

SPEC_ROUTES = {
    ("get", "/v1/pools"),
    ("post", "/v1/pools"),
    ("get", "/v1/pools/{symbol}"),
    ("put", "/v1/pools/{symbol}"),
    ("delete", "/v1/pools/{symbol}"),
    ("post", "/v1/pools/{symbol}/enable"),
    ("post", "/v1/pools/{symbol}/pause"),
    ("post", "/v1/pools/{symbol}/resume"),
    ("get", "/v1/pools/status"),
    ("get", "/v1/pools/{symbol}/status"),
    ("get", "/v1/pools/{symbol}/members"),
    ("post", "/v1/pools/{symbol}/members"),
    ("put", "/v1/pools/{symbol}/members/{member_id}"),
    ("delete", "/v1/pools/{symbol}/members/{member_id}"),
    ("get", "/v1/participants"),
    ("post", "/v1/participants"),
    ("get", "/v1/participants/{participant_id}"),
    ("put", "/v1/participants/{participant_id}"),
    ("post", "/v1/participants/{participant_id}/activate"),
    ("post", "/v1/participants/{participant_id}/suspend"),
    ("post", "/v1/participants/{participant_id}/terminate"),
    ("get", "/v1/participants/{participant_id}/memberships"),
    ("get", "/v1/performance/leaderboard"),
    ("get", "/v1/performance/symbol/{symbol}"),
    ("get", "/v1/performance/{participant_id}"),
    ("get", "/v1/settlements"),
    ("get", "/v1/settlements/pending"),
    ("get", "/v1/settlements/{settlement_id}"),
    ("post", "/v1/settlements/{settlement_id}/approve"),
    ("post", "/v1/settlements/{settlement_id}/reject"),
    ("post", "/v1/settlements/{settlement_id}/recalculate"),
    ("post", "/v1/settlements/{settlement_id}/mark-settled"),
    ("post", "/v1/settlements/{settlement_id}/mark-failed"),
    ("get", "/v1/mm-orders"),
    ("get", "/v1/mm-orders/{symbol}"),
    ("get", "/v1/mm-orders/{symbol}/breakdown"),
    ("get", "/v1/mm-fills"),
    ("get", "/v1/mm-fills/{symbol}"),
    ("get", "/v1/mm-fills/{symbol}/summary"),
    ("get", "/v1/mm-analytics/overview"),
    ("get", "/v1/mm-analytics/hourly"),
    ("get", "/v1/mm-analytics/{symbol}/metrics"),
    ("post", "/v1/mm/emergency/kill"),
    ("post", "/v1/mm/emergency/flatten"),
    ("post", "/v1/mm/reset"),
    ("get", "/v1/mm/status"),
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("openapi") / "schema.yaml"
    # --fail-on-warn: an untyped view or an unresolvable field fails the suite.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def _operations(schema: dict) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "delete", "patch"}
    }


def _normalise(route: tuple[str, str]) -> tuple[str, str]:
    method, path = route
    return method, re.sub(r"\{[^}]+\}", "{}", path)


def test_every_spec_route_is_in_the_schema(schema):
    have = {_normalise(r) for r in _operations(schema)}
    missing = {r for r in SPEC_ROUTES if _normalise(r) not in have}
    assert not missing


def test_every_request_body_is_a_named_schema(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            media = body["content"]["application/json"]["schema"]
            assert "$ref" in media, f"{method} {path} has an untyped body"


def test_every_operation_requires_the_bearer_scheme(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if path.startswith(("/v1/schema", "/v1/docs")):
                continue
            assert {"bearerAuth": []} in operation.get("security", []), f"{method} {path}"


# --- a precise contract (issue 19, item 9) --------------------------------------------

METHODS = {"get", "post", "put", "delete", "patch"}


def _each_operation(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_every_status_an_operation_can_answer_is_documented(schema):
    for method, path, operation in _each_operation(schema):
        documented = set(operation["responses"])
        expected = {"401", "403", "406", "414", "431", "503"}
        parameters = operation.get("parameters", [])
        if "{" in path:
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"400", "415"}
        if any(p["in"] == "query" for p in parameters):
            expected.add("400")
        if any(p["name"] == "page" for p in parameters):
            expected.add("422")  # a page past the last one
        assert expected <= documented, (method, path, expected - documented)
        for status in documented - {"200", "201", "202", "204"}:
            body = operation["responses"][status]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_every_request_body_is_closed_and_every_string_in_it_constrained(schema):
    components = schema["components"]["schemas"]
    for method, path, operation in _each_operation(schema):
        if "requestBody" not in operation:
            continue
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = components[ref.rsplit("/", 1)[1]]
        assert body["additionalProperties"] is False, (method, path)
        for name, prop in body["properties"].items():
            if prop.get("type") == "string":
                assert {"pattern", "format"} & set(prop), (method, path, name)


def test_page_size_is_1_to_500_and_page_from_1_wherever_a_list_pages(schema):
    lists = 0
    for _method, _path, operation in _each_operation(schema):
        parameters = {p["name"]: p["schema"] for p in operation.get("parameters", [])}
        if "page_size" not in parameters:
            continue
        lists += 1
        assert (parameters["page_size"]["minimum"], parameters["page_size"]["maximum"]) == (1, 500)
        assert parameters["page"]["minimum"] == 1
    assert lists >= 10


def test_every_symbol_and_ordering_parameter_says_what_it_takes(schema):
    symbol = r"^[A-Z0-9]{2,20}(?:-[A-Z]{2,8})?$"
    for method, path, operation in _each_operation(schema):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "symbol":
                assert parameter["schema"]["pattern"] == symbol, (method, path)
            if parameter["name"] == "ordering":
                assert parameter["schema"]["enum"], (method, path)
            if parameter["schema"].get("type") == "string" and parameter["in"] == "query":
                assert {"pattern", "format", "enum"} & set(parameter["schema"]), (
                    method,
                    path,
                    parameter["name"],
                )
