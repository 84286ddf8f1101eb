"""Reads the service's configuration from the environment.

Every variable of SPEC's "Service environment" table is read here and nowhere
else. Problems are collected, not raised one at a time, so a bad deployment
fails once with every missing or malformed variable named.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvValidationError

from messaging.topics import Topics
from performance.qscore import QScoreConfig

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(raw: str) -> timedelta:
    """'10s', '500ms', '2m', '1h', '3d' or a bare number of seconds."""
    match = _DURATION.match(raw)
    if match is None:
        raise ValueError(f"{raw!r} is not a duration (use e.g. 10s, 500ms, 2m)")
    value = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if value <= 0:
        raise ValueError(f"{raw!r} must be greater than zero")
    return timedelta(seconds=value)


def _url(raw: str, *, schemes: tuple[str, ...]) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise ValueError(f"{raw!r} is not a URL with scheme {' or '.join(schemes)}")
    return raw


def _port(raw: str) -> int:
    if not raw.strip().isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{raw!r} is not a TCP port (1-65535)")
    return int(raw)


def _positive_int(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"{raw!r} is not a whole number ≥ 1")
    return int(raw)


def _positive_or_zero_int(raw: str) -> int:
    if not raw.strip().isdigit():
        raise ValueError(f"{raw!r} is not a whole number ≥ 0")
    return int(raw)


def _decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{raw!r} is not a finite number")
    return value


def _decimal_map(raw: str) -> dict[str, Decimal]:
    """'BTCUSDT-PERP=2,ETHUSDT-PERP=1' → {name: value ≥ 0}."""
    result: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{part!r} is not NAME=number")
        number = _decimal(value)
        if number < 0:
            raise ValueError(f"{part!r}: the number must be ≥ 0")
        result[name.strip()] = number
    return result


def _qscore(env: Env, errors: dict[str, str]) -> QScoreConfig | None:
    """The Q-score's configuration (performance/qscore.py), one error per bad variable."""
    fields: dict[str, Any] = {}
    for name, field, parse in (
        ("QSCORE_MAX_SPREAD_BPS", "max_spread_bps", _decimal),
        ("QSCORE_MIN_DEPTH_USDT", "min_depth_usdt", _decimal),
        ("QSCORE_UPTIME_EXPONENT", "uptime_exponent", _decimal),
        ("QSCORE_LIQUIDITY_EXPONENT", "liquidity_exponent", _decimal),
        ("QSCORE_MIN_UPTIME", "min_uptime", _decimal),
        ("QSCORE_MIN_TRADES", "min_trades", _positive_or_zero_int),
    ):
        raw = env.str(name, "")
        if raw:
            try:
                fields[field] = parse(raw)
            except ValueError as exc:
                errors[name] = str(exc)
    try:
        return QScoreConfig(**fields)
    except ValueError as exc:
        errors["QSCORE_*"] = str(exc)
        return None


def _topic_namespace(raw: str) -> str:
    Topics(raw)  # raises ValueError naming the rule
    return raw


def _host_ports(raw: str) -> str:
    for part in raw.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{part!r} is not host:port")
    return raw


@dataclass(frozen=True)
class ServiceEnv:
    postgres_url: str
    redis_url: str
    kafka_brokers: str
    kafka_topic_namespace: str
    kafka_session_timeout: timedelta
    schema_registry_url: str
    order_service_url: str
    metadata_service_grpc_url: str
    http_port: int
    admin_port: int
    metrics_port: int
    shadow_mode: bool
    performance_snapshot_interval: timedelta
    performance_snapshot_retention: timedelta
    order_retention_days: int
    outbox_retention_days: int
    qscore: QScoreConfig
    qscore_symbol_weights: dict[str, Decimal]
    qscore_tier_uptime_floors: dict[str, Decimal]
    shutdown_timeout: timedelta
    order_rate_per_s: int
    order_cancel_reserve: int
    auth_service_url: str
    disable_auth: bool
    debug: bool
    settlement_four_eyes: bool
    secret_key: str
    otlp_endpoint: str | None
    log_format: str = "json"
    log_level: str = "INFO"


def _choice(*allowed: str) -> Any:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")
        return value

    return parse


_HTTP = ("http", "https")
# (ServiceEnv field, variable, parser, default: None when required), SPEC's table
# and this project's own variables.
_VARIABLES: tuple[tuple[str, str, Callable[[str], Any], str | None], ...] = (
    ("postgres_url", "POSTGRES_URL", lambda v: _url(v, schemes=("postgres", "postgresql")), None),
    ("redis_url", "REDIS_URL", lambda v: _url(v, schemes=("redis", "rediss")), None),
    ("kafka_brokers", "KAFKA_BROKERS", _host_ports, "localhost:9092"),
    # A prefix for every topic name on the broker, so stacks can share one
    # (messaging/topics.py); empty in production.
    ("kafka_topic_namespace", "KAFKA_TOPIC_NAMESPACE", _topic_namespace, ""),
    ("kafka_session_timeout", "KAFKA_SESSION_TIMEOUT", parse_duration, "45s"),
    (
        "schema_registry_url",
        "SCHEMA_REGISTRY_URL",
        lambda v: _url(v, schemes=("http", "https", "mock")),
        None,
    ),
    (
        "order_service_url",
        "ORDER_SERVICE_URL",
        lambda v: _url(v, schemes=_HTTP),
        "http://order-service:3000",
    ),
    (
        "metadata_service_grpc_url",
        "METADATA_SERVICE_GRPC_URL",
        _host_ports,
        "localhost:50051",
    ),
    ("http_port", "HTTP_PORT", _port, "8095"),
    ("admin_port", "ADMIN_PORT", _port, "3001"),
    ("metrics_port", "METRICS_PORT", _port, "9090"),
    (
        "performance_snapshot_interval",
        "PERFORMANCE_SNAPSHOT_INTERVAL",
        parse_duration,
        "10s",
    ),
    (
        "performance_snapshot_retention",
        "PERFORMANCE_SNAPSHOT_RETENTION",
        parse_duration,
        "3d",
    ),
    ("order_retention_days", "ORDER_RETENTION_DAYS", _positive_int, "30"),
    ("outbox_retention_days", "OUTBOX_RETENTION_DAYS", _positive_int, "7"),
    ("qscore_symbol_weights", "QSCORE_SYMBOL_WEIGHTS", _decimal_map, ","),
    (
        "qscore_tier_uptime_floors",
        "QSCORE_TIER_UPTIME_FLOORS",
        _decimal_map,
        "TIER_1=0.95,TIER_2=0.90,TIER_3=0",
    ),
    ("shutdown_timeout", "SHUTDOWN_TIMEOUT", parse_duration, "30s"),
    ("order_rate_per_s", "ORDER_SERVICE_RATE_PER_S", _positive_int, "100"),
    ("order_cancel_reserve", "ORDER_SERVICE_CANCEL_RESERVE", _positive_int, "10"),
    (
        "auth_service_url",
        "AUTH_SERVICE_URL",
        lambda v: _url(v, schemes=_HTTP),
        "http://auth-service:3000",
    ),
    ("otlp_endpoint", "OPENOBSERVE_OTLP_ENDPOINT", lambda v: _url(v, schemes=_HTTP), ""),
)


def load_service_env() -> ServiceEnv:
    """Reads and validates everything; raises ImproperlyConfigured naming each problem."""
    env = Env(eager=False, expand_vars=False)
    errors: dict[str, str] = {}

    def custom(name: str, parser: Any, default: str | None = None) -> Any:
        raw = env.str(name, default) if default is not None else env.str(name, None)
        if raw is None or raw == "":
            if default is None:
                errors[name] = "is required but not set"
            return None
        try:
            return parser(raw)
        except ValueError as exc:
            errors[name] = str(exc)
            return None

    values: dict[str, Any] = {
        field: custom(name, parser, default) for field, name, parser, default in _VARIABLES
    }
    values["kafka_topic_namespace"] = values["kafka_topic_namespace"] or ""
    bools: dict[str, Any] = {
        "shadow_mode": env.bool("MM_SHADOW_MODE", False),
        "disable_auth": env.bool("DISABLE_AUTH", False),
        "debug": env.bool("DJANGO_DEBUG", False),
        # Whoever approved a settlement may not mark it settled or failed (SPEC Part B.21).
        "settlement_four_eyes": env.bool("SETTLEMENT_FOUR_EYES", True),
    }
    values["qscore"] = _qscore(env, errors)
    # Readable lines while developing, JSON lines otherwise (telemetry/logs.py).
    values["log_format"] = custom(
        "LOG_FORMAT", _choice("json", "console"), "console" if bools["debug"] else "json"
    )
    values["log_level"] = custom(
        "LOG_LEVEL", lambda v: _choice("DEBUG", "INFO", "WARNING", "ERROR")(v.upper()), "INFO"
    )
    secret_key = env.str("DJANGO_SECRET_KEY", "")
    try:
        env.seal()
    except EnvValidationError as exc:
        messages_by_name: Any = exc.error_messages
        if not isinstance(messages_by_name, dict):
            messages_by_name = {"environment": messages_by_name}
        for name, messages in messages_by_name.items():
            errors[name] = "; ".join(str(m) for m in messages)
    if not errors:
        secret_key = _check_together(values, bools, secret_key, errors)
    if errors:
        lines = "\n".join(f"  {name}: {message}" for name, message in sorted(errors.items()))
        raise ImproperlyConfigured(f"MMS configuration is invalid:\n{lines}")
    return ServiceEnv(secret_key=secret_key, **values, **bools)


def _check_together(
    values: dict[str, Any], bools: dict[str, Any], secret_key: str, errors: dict[str, str]
) -> str:
    """What only the variables together can say is wrong (added to `errors`); the
    secret key to use."""
    if not secret_key:
        if bools["debug"]:
            secret_key = "insecure-development-key-debug-only"  # noqa: S105
        else:
            errors["DJANGO_SECRET_KEY"] = "is required when DJANGO_DEBUG is off"  # noqa: S105
    if values["http_port"] == values["admin_port"]:
        errors["ADMIN_PORT"] = f"must differ from HTTP_PORT ({values['http_port']})"
    if values["order_cancel_reserve"] >= values["order_rate_per_s"]:
        errors["ORDER_SERVICE_CANCEL_RESERVE"] = (
            f"must be below ORDER_SERVICE_RATE_PER_S ({values['order_rate_per_s']})"
        )
    tiers = ("TIER_1", "TIER_2", "TIER_3")
    floors = values["qscore_tier_uptime_floors"]
    if set(floors) - set(tiers) or any(f > 1 for f in floors.values()):
        errors["QSCORE_TIER_UPTIME_FLOORS"] = (
            f"names tiers among {', '.join(tiers)}, each floor between 0 and 1: {floors}"
        )
    if bools["disable_auth"] and not bools["debug"]:
        errors["DISABLE_AUTH"] = "true is only allowed for development, with DJANGO_DEBUG=true"
    return secret_key
