"""A throwaway PostgreSQL database and Redis database for a benchmark run.

    with scratch_database("mms_bench_e2e", redis_url="redis://127.0.0.1:6379/12") as name:
        ...  # Django is set up against `name`, migrated; dropped (and Redis flushed) at exit

Settings as in production where it matters for speed: DEBUG off (with it on,
Django keeps every query's SQL text).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

PG = ("-h", "127.0.0.1", "-U", "postgres")


@contextlib.contextmanager
def scratch_database(
    prefix: str, *, redis_url: str, before_migrate: Callable[[], None] | None = None
) -> Iterator[str]:
    """Creates `<prefix>_<pid>`, points Django at it (and at `redis_url`), sets
    Django up and migrates; `before_migrate` runs once Django is set up. At exit
    the database is dropped and the Redis database flushed, whatever happened."""
    db_name = f"{prefix}_{os.getpid()}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "mms.settings.test"
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SECRET_KEY", uuid.uuid4().hex * 2)
    os.environ["POSTGRES_URL"] = f"postgres://postgres@127.0.0.1:5432/{db_name}"
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("SCHEMA_REGISTRY_URL", "mock://bench")
    subprocess.run(["createdb", *PG, db_name], check=True)  # noqa: S603,S607
    try:
        import django

        django.setup()
        from django.core.management import call_command

        if before_migrate is not None:
            before_migrate()
        started = time.monotonic()
        call_command("migrate", verbosity=0, interactive=False)
        print(f"database {db_name} migrated in {time.monotonic() - started:.1f} s", flush=True)
        yield db_name
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        subprocess.run(["dropdb", *PG, "--force", "--if-exists", db_name], check=False)  # noqa: S603,S607
        with contextlib.suppress(Exception):
            import redis

            redis.Redis.from_url(redis_url).flushdb()
