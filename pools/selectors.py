"""Reads over pools, members and the live status the quoting worker publishes."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from common.redis import redis_client
from messaging.live_status import status_key, status_parse
from pools.enums import FlattenStatus, PoolState
from pools.models import FlattenRequest, PoolConfig, PoolMember

# The worker writes one JSON record per pool here at least every second, with
# an expiry (SPEC Part B.10); a missing key means no worker hosts the pool.


def pool_list(*, include_archived: bool = False) -> QuerySet[PoolConfig]:
    pools = PoolConfig.objects.all()
    return pools if include_archived else pools.filter(archived_at__isnull=True)


def pools_not_halted() -> QuerySet[PoolConfig]:
    """What an emergency kill acts on: every live (not archived) pool not yet HALTED."""
    return pool_list().exclude(state=PoolState.HALTED).order_by("symbol")


def symbol_known(*, symbol: str) -> bool:
    """A symbol that has (or had: pools are archived, never deleted) a pool."""
    return PoolConfig.objects.filter(symbol=symbol).exists()


def require_symbol(*, symbol: str) -> str:
    """404 for a symbol no pool ever had."""
    if not symbol_known(symbol=symbol):
        raise Http404(f"no pool {symbol}")
    return symbol


def pool_get(*, symbol: str) -> PoolConfig:
    return get_object_or_404(PoolConfig, symbol=symbol)


def member_list(*, pool: PoolConfig) -> QuerySet[PoolMember]:
    return PoolMember.objects.filter(pool=pool).select_related("participant", "pool")


def member_get(*, pool: PoolConfig, member_id: int) -> PoolMember:
    return get_object_or_404(member_list(pool=pool), pk=member_id)


def pools_enabled_symbols() -> list[str]:
    """The symbols whose engines a worker should host (SPEC: `enabled`, not archived)."""
    return list(
        PoolConfig.objects.filter(enabled=True, archived_at__isnull=True).values_list(
            "symbol", flat=True
        )
    )


def flattens_pending() -> list[int]:
    """The flatten requests no worker has carried out yet (SPEC Part B.13)."""
    return list(
        FlattenRequest.objects.filter(status=FlattenStatus.REQUESTED).values_list("pk", flat=True)
    )


def member_accounts_all() -> list[tuple[str, str]]:
    """(account id, symbol) of every membership, archived pools included: a flatten
    cancels at the venue whatever MMS may have lost track of."""
    return sorted(set(PoolMember.objects.values_list("participant__account_id", "pool__symbol")))


def live_status_get(*, symbols: list[str]) -> dict[str, dict[str, Any] | None]:
    """The live record per symbol, or None where the worker is down or absent."""
    if not symbols:
        return {}
    raw = redis_client().mget([status_key(s) for s in symbols])
    return {s: status_parse(r) for s, r in zip(symbols, raw, strict=True)}


def pool_status(pool: PoolConfig, live: dict[str, Any] | None) -> dict[str, Any]:
    """What is in effect: the database state, and whether a worker reports quoting."""
    return {
        "symbol": pool.symbol,
        "state": pool.state,
        "enabled": pool.enabled,
        "state_reason": pool.state_reason,
        "state_changed_at": pool.state_changed_at,
        "worker": "up" if live is not None else "down",
        "live": live,
    }
