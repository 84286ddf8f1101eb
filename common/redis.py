from __future__ import annotations

from functools import cache

import redis
from django.conf import settings


@cache
def redis_client() -> redis.Redis:
    """The process's one Redis connection pool (live status records)."""
    return redis.Redis.from_url(settings.SERVICE.redis_url, socket_timeout=2.0)
