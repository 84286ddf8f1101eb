"""Test settings: the real PostgreSQL and Redis, a separate Redis database."""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/mms")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("SCHEMA_REGISTRY_URL", "mock://tests")
# The Auth Service stand-in is started by the tests' fixtures on a free port;
# they set AUTH_SERVICE_URL in settings themselves.
os.environ.setdefault("AUTH_SERVICE_URL", "http://127.0.0.1:9")

from mms.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Quiet unless a test's process asks for more (LOG_LEVEL).
LOGGING = {
    **LOGGING,  # noqa: F405
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
STATIC_ROOT = None  # type: ignore[assignment]  # whitenoise then skips the folder
