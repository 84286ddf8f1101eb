"""Settings for every MMS process, read from the environment (mms.env)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dj_database_url

from mms.env import load_service_env
from telemetry import logs

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SERVICE = load_service_env()

DEBUG = SERVICE.debug
SECRET_KEY = SERVICE.secret_key
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "common",
    "participants",
    "pools",
    "trading",
    "performance",
    "settlements",
    "demo",
    "quoting_worker",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "common.ports.PortRoutingMiddleware",
    # Under /v1 every error is the one JSON body, whoever answered it (common/errors.py).
    "common.errors.ApiErrorBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "telemetry.logs.RequestContextMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# The API takes bearer tokens and its views are CSRF-exempt; were a CSRF check to
# refuse a request under /v1, it answers the JSON error body (the admin: Django's page).
CSRF_FAILURE_VIEW = "common.errors.csrf_failure"

# The API (HTTP_PORT) and the admin panel (ADMIN_PORT) are served by one
# process on two ports; the port a request arrived on picks the URLconf.
ROOT_URLCONF = "mms.urls_api"
ADMIN_URLCONF = "mms.urls_admin"
HTTP_PORT = SERVICE.http_port
ADMIN_PORT = SERVICE.admin_port

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "mms.wsgi.application"
ASGI_APPLICATION = "mms.asgi.application"

DATABASES = {
    "default": {
        **dj_database_url.parse(SERVICE.postgres_url, conn_max_age=60, conn_health_checks=True),
        "ENGINE": "django_prometheus.db.backends.postgresql",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": SERVICE.redis_url,
        "KEY_PREFIX": "mms",
        "TIMEOUT": 300,
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["common.auth.AuthServiceAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["common.auth.RolePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.StrictPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "common.filters.StrictDjangoFilterBackend",
        "common.filters.StrictOrderingFilter",
    ],
    # Publishes the contract the API enforces (common/schema.py).
    "DEFAULT_SCHEMA_CLASS": "common.schema.ContractAutoSchema",
    # `?format=` is a parameter only where a route documents it (the statement).
    "URL_FORMAT_OVERRIDE": None,
    "EXCEPTION_HANDLER": "common.errors.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Market Maker Service API",
    "DESCRIPTION": (
        "Avellaneda-Stoikov liquidity pools: pool configuration and lifecycle, "
        "participants, members, orders, fills, performance and settlements. "
        "Every route needs a bearer JWT issued by the Auth Service."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's assets are served by this process, not fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

AUTH_SERVICE_URL = SERVICE.auth_service_url
DISABLE_AUTH = SERVICE.disable_auth
# How long a validated token is trusted before asking the Auth Service again.
AUTH_CACHE_SECONDS = 30
AUTH_TIMEOUT_SECONDS = 2.0

# Performance snapshots, the daily rollup and the Q-score (performance/qscore.py).
PERFORMANCE_SNAPSHOT_INTERVAL = SERVICE.performance_snapshot_interval
PERFORMANCE_SNAPSHOT_RETENTION = SERVICE.performance_snapshot_retention
ORDER_RETENTION = dt.timedelta(days=SERVICE.order_retention_days)
OUTBOX_RETENTION = dt.timedelta(days=SERVICE.outbox_retention_days)
QSCORE = SERVICE.qscore
QSCORE_SYMBOL_WEIGHTS = SERVICE.qscore_symbol_weights  # leaderboard; a symbol not named: 1
QSCORE_TIER_UPTIME_FLOORS = SERVICE.qscore_tier_uptime_floors
# Four-eyes on settlements: whoever approved one may not mark it settled or failed.
SETTLEMENT_FOUR_EYES = SERVICE.settlement_four_eyes

CELERY_BROKER_URL = SERVICE.redis_url
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# Structured logs (telemetry/logs.py): JSON lines, or readable lines with LOG_FORMAT=console.
LOGGING = logs.logging_config(SERVICE.log_format, SERVICE.log_level)
logs.configure_structlog()
# Celery keeps Django's logging instead of replacing the root logger's handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
