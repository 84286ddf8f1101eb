"""Structured logs (telemetry/logs.py): the fields every line carries, secrets kept
out, and the two formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry import logs, tracing
from telemetry.logs import RequestContextMiddleware


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose records are rendered by the project's JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    logger = logging.getLogger("mms.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        structlog.contextvars.clear_contextvars()


def entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_json_with_level_logger_time_and_a_null_trace_id_outside_a_trace(lines) -> None:
    logger, stream = lines
    logger.info("%s: hosted with token %s", "BTCUSDT-PERP", 7)
    (entry,) = entries(stream)
    assert entry["event"] == "BTCUSDT-PERP: hosted with token 7"
    assert entry["level"] == "info"
    assert entry["logger"] == "mms.test-logs"
    assert str(entry["timestamp"]).endswith("Z")
    assert "trace_id" in entry
    assert entry["trace_id"] is None


def test_symbol_and_participant_come_from_the_task_context_or_the_call(lines) -> None:
    logger, stream = lines
    structlog.contextvars.bind_contextvars(symbol="ETHUSDT-PERP")
    logger.warning("dead-man's switch renewal failed", extra={"participant_id": "p-1"})
    (entry,) = entries(stream)
    assert entry["symbol"] == "ETHUSDT-PERP"
    assert entry["participant_id"] == "p-1"


def test_a_line_inside_a_span_carries_that_spans_trace_id(lines) -> None:
    logger, stream = lines
    exporter = InMemorySpanExporter()
    tracing.configure("test", None, processor=SimpleSpanProcessor(exporter))
    try:
        with tracing.span("orders.send"):
            logger.info("sending")
    finally:
        tracing.shutdown()
    (span,) = exporter.get_finished_spans()
    (entry,) = entries(stream)
    assert entry["trace_id"] == format(span.context.trace_id, "032x")


def test_secrets_are_masked_in_fields_and_in_messages(lines) -> None:
    logger, stream = lines
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvbGdhIn0.c2lnbmF0dXJl"
    logger.warning(
        "auth failed for Bearer %s via postgres://mms:hunter2@db:5432/mms",
        "abc.def-ghi",
        extra={"password": "hunter2", "api_key": "k-123", "token": jwt, "note": f"jwt {jwt}"},
    )
    text = stream.getvalue()
    for secret in ("hunter2", "abc.def-ghi", "k-123", jwt):
        assert secret not in text, secret
    (entry,) = entries(stream)
    assert entry["password"] == entry["api_key"] == entry["token"] == "[REDACTED]"
    assert "Bearer [REDACTED]" in str(entry["event"])
    assert "postgres://mms:[REDACTED]@db:5432/mms" in str(entry["event"])
    assert entry["note"] == "jwt [REDACTED-JWT]"


def test_the_console_format_is_readable_and_an_unknown_format_is_refused() -> None:
    config = logs.logging_config("console")
    renderer = config["formatters"]["structured"]["processors"][-1]
    assert isinstance(renderer, structlog.dev.ConsoleRenderer)
    with pytest.raises(ValueError, match="LOG_FORMAT must be one of json, console, not 'xml'"):
        logs.logging_config("xml")


def test_an_exception_is_rendered_into_the_json_line(lines) -> None:
    logger, stream = lines
    try:
        raise RuntimeError("venue unreachable")
    except RuntimeError:
        logger.exception("order traffic failed")
    (entry,) = entries(stream)
    assert "RuntimeError: venue unreachable" in str(entry["exception"])


def test_the_api_binds_the_routes_symbol_and_participant_for_the_request(rf) -> None:
    seen: dict[str, object] = {}

    def view(request: object) -> str:
        seen.update(structlog.contextvars.get_contextvars())
        return "ok"

    middleware = RequestContextMiddleware(view)
    request = rf.get("/v1/performance/p-9")
    structlog.contextvars.bind_contextvars(symbol="LEFTOVER")  # a previous request's
    middleware.process_view(request, view, (), {"participant_id": "p-9"})
    assert seen == {}
    assert middleware(request) == "ok"
    # __call__ cleared what the earlier request left before the view ran.
    assert "symbol" not in seen
    assert structlog.contextvars.get_contextvars() == {}
    structlog.contextvars.clear_contextvars()
    middleware.process_view(request, view, (), {"symbol": "BTCUSDT-PERP", "participant_id": "p"})
    assert structlog.contextvars.get_contextvars() == {
        "symbol": "BTCUSDT-PERP",
        "participant_id": "p",
    }
    structlog.contextvars.clear_contextvars()


def test_log_format_and_level_are_validated_at_start(monkeypatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from mms.env import load_service_env

    monkeypatch.setenv("LOG_FORMAT", "xml")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ImproperlyConfigured) as error:
        load_service_env()
    assert "LOG_FORMAT: must be one of json, console, not 'xml'" in str(error.value)
    assert "LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, not 'LOUD'" in str(error.value)
