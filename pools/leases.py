"""Symbol leases and fencing tokens (SPEC Part B.11).

Partition assignment in the Kafka consumer group decides which worker owns a
symbol; the lease records it in PostgreSQL. Taking a symbol always increments
its token; every order and state write of the worker carries the token it
got, and `lease_check` refuses a stale one inside the writer's transaction.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from common.exceptions import Conflict
from pools.models import SymbolLease


class StaleLease(Conflict):
    """The writer's token is not the symbol's current one: another worker owns it now."""

    code = "stale_lease"


def lease_acquire(*, symbol: str, owner: str) -> tuple[int, str]:
    """Takes the symbol for `owner`; returns the new fencing token and the previous
    owner (its last holder, released or not: a worker getting its own symbol back
    after a rebalance is not taking it over from another)."""
    with transaction.atomic():
        lease, _ = SymbolLease.objects.select_for_update().get_or_create(symbol=symbol)
        previous = lease.owner
        lease.owner = owner
        lease.token += 1
        lease.acquired_at = timezone.now()
        lease.released_at = None
        lease.save()
        return lease.token, previous


def lease_release(*, symbol: str, owner: str, token: int) -> bool:
    """Gives the symbol up, if `owner` still holds it with `token` (the row keeps
    the owner's name as the last holder; `released_at` says it is free)."""
    with transaction.atomic():
        updated = SymbolLease.objects.filter(
            symbol=symbol, owner=owner, token=token, released_at__isnull=True
        ).update(released_at=timezone.now())
        return updated == 1


def lease_check(*, symbol: str, token: int) -> None:
    """Inside the writer's transaction: locks the lease row and refuses a stale token."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lease_check belongs inside the write's transaction")
    current = (
        SymbolLease.objects.select_for_update()
        .filter(symbol=symbol)
        .values_list("token", flat=True)
        .first()
    )
    if current != token:
        raise StaleLease(
            f"{symbol}: token {token} is stale (current {current})", current_token=current
        )
