"""Structured logs for every process: JSON lines in production, readable lines in
development, the same fields either way.

Every entry carries `timestamp`, `level`, `logger`, `event` (the message),
`trace_id` (the current OpenTelemetry trace, null outside one), and `symbol` /
`participant_id` where they apply: bound for a whole task with
`structlog.contextvars.bind_contextvars` (each of the quoter's per-symbol tasks
binds its symbol; the API binds the route's symbol and participant), or given
per call as `extra={...}`. The project's modules keep using the standard
library's `logging`; structlog's `ProcessorFormatter` renders those records,
so third-party libraries' lines come out the same way.

Secrets never reach a log line: values of keys that name a secret (password,
token, authorization, secret, api key, cookie) are replaced, and bearer tokens,
JWTs and URL passwords inside messages are masked.

No Django import: `python -m simulator` and the Celery worker use it as is.
"""

from __future__ import annotations

import logging.config
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

from telemetry import tracing

SECRET_KEY = re.compile(r"pass(word)?|secret|token|authori[sz]ation|api[_-]?key|cookie", re.I)
SECRET_TEXT = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [REDACTED]"),
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), "[REDACTED-JWT]"),
    (re.compile(r"(\w+://[^:/\s@]+):[^@\s/]+@"), r"\1:[REDACTED]@"),
)
REDACTED = "[REDACTED]"
FORMATS = ("json", "console")


def add_trace_id(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event.setdefault("trace_id", tracing.trace_id())
    return event


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if SECRET_KEY.search(key) and value is not None:
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = mask(value)
    return event


def mask(text: str) -> str:
    for pattern, replacement in SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_trace_id,
]


def formatter_options(fmt: str) -> dict[str, Any]:
    """The keyword arguments of the `ProcessorFormatter` for `fmt` ("json" or "console")."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            # Plain tracebacks: rich's, with every frame's locals, take the event
            # loop ~100 ms each, which an outage's burst of them turns into seconds.
            colors=False,
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    final = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact]
    if fmt == "json":
        final.append(structlog.processors.format_exc_info)
    return {"processors": [*final, renderer], "foreign_pre_chain": SHARED_PROCESSORS}


def formatter(fmt: str = "json") -> logging.Formatter:
    """A formatter rendering records as the processes do (for a handler of one's own)."""
    return structlog.stdlib.ProcessorFormatter(**formatter_options(fmt))


def logging_config(fmt: str = "json", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for `fmt` ("json" or "console")."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {"()": structlog.stdlib.ProcessorFormatter, **formatter_options(fmt)}
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # httpx logs every request at INFO; the Auth Service calls are not news.
            "httpx": {"level": "WARNING"},
            # gunicorn's loggers do not propagate: they get the handler themselves.
            "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": level, "propagate": False},
        },
    }


def setup(fmt: str = "json", level: str = "INFO") -> None:
    """Applies the configuration (processes without Django settings)."""
    logging.config.dictConfig(logging_config(fmt, level))
    configure_structlog()


def configure_structlog() -> None:
    """structlog's own loggers (`structlog.get_logger`) through the same formatter."""
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class RequestContextMiddleware:
    """Binds the route's symbol and participant to every log line of an API
    request (and clears what a previous request on the thread bound)."""

    KEYS = ("symbol", "participant_id", "settlement_id")

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        structlog.contextvars.clear_contextvars()
        try:
            return self.get_response(request)
        finally:
            structlog.contextvars.clear_contextvars()

    def process_view(self, request: Any, _view: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        fields = {key: str(kwargs[key]) for key in self.KEYS if key in kwargs}
        if fields:
            structlog.contextvars.bind_contextvars(**fields)
