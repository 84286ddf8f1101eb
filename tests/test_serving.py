"""The way `make run` serves: one gunicorn process on two ports, the API on one
and the admin panel on the other, chosen by the port the connection arrived on."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.conftest import free_port, wait_until_serving
from tests.otlp_receiver import ExportedSpan, otlp_collector

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def serving(auth_service_url: str, log: Path, **extra_env: str) -> Iterator[tuple[str, str]]:
    """gunicorn as `make run` starts it; its output (stdout and stderr) into `log`."""
    api_port, admin_port = free_port(), free_port()
    name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mms.settings.base",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "s" * 50,
        "POSTGRES_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "REDIS_URL": "redis://127.0.0.1:6379/14",
        "SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081",
        "AUTH_SERVICE_URL": auth_service_url,
        "HTTP_PORT": str(api_port),
        "ADMIN_PORT": str(admin_port),
        **extra_env,
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "mms.wsgi",
                "--config",
                "mms/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{api_port}",
                "--bind",
                f"127.0.0.1:{admin_port}",
                "--workers",
                "1",
                "--access-logfile",
                "-",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api, admin = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{admin_port}"
    try:
        wait_until_serving(f"{api}/healthz", proc)
        yield api, admin
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def served(auth_service_url: str, db: None, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with serving(auth_service_url, tmp_path / "gunicorn.log") as urls:
        yield urls


def test_api_and_admin_are_served_on_their_own_ports(served, issue_token):
    api, admin = served
    assert httpx.get(f"{api}/readyz").json()["status"] == "ok"
    assert httpx.get(f"{api}/v1/pools").status_code == 401
    token = issue_token(roles=("viewer",))
    response = httpx.get(f"{api}/v1/pools", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert httpx.get(f"{api}/v1/docs").status_code == 200

    login = httpx.get(f"{admin}/login/")
    assert login.status_code == 200
    assert "Market Maker Service" in login.text
    # The API is not served on the admin port: the admin sends strangers to its login.
    not_api = httpx.get(f"{admin}/v1/pools")
    assert (not_api.status_code, not_api.headers["location"].split("?")[0]) == (302, "/login/")
    # The admin is not reachable on the API port, whatever the Host header says.
    assert (
        httpx.get(
            f"{api}/login/", headers={"Host": f"127.0.0.1:{admin.rsplit(':', 1)[1]}"}
        ).status_code
        == 404
    )


def test_the_admin_port_serves_the_metrics_and_the_api_port_does_not(served):
    from common.metrics import WEB_FAMILIES

    api, admin = served
    body = httpx.get(f"{admin}/metrics").text
    # A counter's TYPE line names it with its _total suffix.
    families = {
        line.split()[2].removesuffix("_total")
        for line in body.splitlines()
        if line.startswith("# TYPE ")
    }
    assert families >= WEB_FAMILIES, WEB_FAMILIES - families
    assert "django_http_requests_latency_seconds_by_view_method" in families
    assert "mm_outbox_oldest_unsent_age_seconds " in body
    assert httpx.get(f"{api}/metrics").status_code == 404


def test_with_an_otlp_endpoint_api_requests_are_traced_and_every_log_line_is_json(
    auth_service_url: str, db: None, tmp_path: Path, issue_token
) -> None:
    log = tmp_path / "gunicorn.log"
    with (
        otlp_collector() as collector,
        serving(
            auth_service_url,
            log,
            OPENOBSERVE_OTLP_ENDPOINT=collector.url,
            OTEL_BSP_SCHEDULE_DELAY="100",  # ms: export promptly
        ) as (api, _admin),
    ):
        token = issue_token(roles=("viewer",))
        response = httpx.get(f"{api}/v1/pools", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        deadline = time.monotonic() + 20

        def pools_requests() -> list[ExportedSpan]:
            return [s for s in collector.spans if s.attributes.get("http.target") == "/v1/pools"]

        while not pools_requests():
            assert time.monotonic() < deadline, f"no /v1/pools span exported: {collector.spans}"
            time.sleep(0.1)
        (request,) = pools_requests()
        assert request.service == "mms-web"
        assert request.name == "GET v1/pools"
        assert request.attributes["http.status_code"] == 200
        assert set(collector.paths) == {"/api/default/v1/traces"}
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    assert any(e["logger"] == "gunicorn.access" and "/v1/pools" in e["event"] for e in entries)
    assert all({"timestamp", "level", "logger", "event", "trace_id"} <= set(e) for e in entries)
    # The bearer token never reaches the log.
    assert token not in log.read_text()


def test_what_gunicorn_refuses_itself_is_the_json_error_body(served):
    """A request line past gunicorn's limit never reaches Django: its 414 is still
    the API's one error body, not gunicorn's HTML page."""
    api, _ = served
    response = httpx.get(f"{api}/v1/pools?" + "&".join(f"page={i}" for i in range(1000)))
    assert response.status_code == 414
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["status"], body["code"], body["errors"]) == (414, "uri_too_long", {})
