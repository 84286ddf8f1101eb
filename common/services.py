"""The two writes every lifecycle service makes besides its own row: the audit
row and, where a topic exists for the event, the outbox row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from common.actors import Actor
from common.batches import delete_in_batches
from common.models import AuditLog, OutboxEvent
from telemetry import tracing


def audit_record(
    *,
    entity_type: str,
    entity_id: object,
    action: str,
    actor: Actor,
    from_state: str = "",
    to_state: str = "",
    changes: Mapping[str, tuple[Any, Any]] | None = None,
    reason: str = "",
) -> AuditLog:
    _require_transaction("audit rows")
    return AuditLog.objects.create(
        entity_type=entity_type,
        entity_id=str(entity_id),
        action=action,
        from_state=from_state,
        to_state=to_state,
        changes={k: [_jsonable(old), _jsonable(new)] for k, (old, new) in (changes or {}).items()},
        actor=actor.name,
        actor_kind=str(actor.kind),
        reason=reason,
    )


def outbox_enqueue(*, topic: str, key: str, event_type: str, payload: Mapping[str, Any]) -> None:
    _require_transaction("outbox rows")
    OutboxEvent.objects.create(
        topic=topic,
        key=key,
        event_type=event_type,
        payload=dict(payload),
        trace_context=tracing.carrier(),
    )


OUTBOX_PRUNE_BATCH = 5_000


def outbox_prune(
    *, now: datetime | None = None, keep: timedelta | None = None, batch: int = OUTBOX_PRUNE_BATCH
) -> int:
    """Deletes outbox rows published more than `keep` (OUTBOX_RETENTION) before
    `now`, in batches of `batch` short statements, oldest id first (the primary
    key's order: published rows sit at the front). An unpublished row is never
    deleted, however old: the relay still owes it to Kafka. Returns how many went."""
    cutoff = (now or timezone.now()) - (keep or settings.OUTBOX_RETENTION)
    return delete_in_batches(
        "DELETE FROM outbox WHERE id IN ("
        " SELECT id FROM outbox WHERE published_at < %s ORDER BY id LIMIT %s)",
        [cutoff],
        batch,
    )


def field_values(instance: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in fields}


def apply_changes(instance: models.Model, updates: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Sets the fields that differ and returns {field: (old, new)} for the audit row."""
    changes: dict[str, tuple[Any, Any]] = {}
    for name, new in updates.items():
        old = getattr(instance, name)
        if old != new:
            setattr(instance, name, new)
            changes[name] = (old, new)
    return changes


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _require_transaction(what: str) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"{what} must be written in the transaction of the change")


def validate_model(instance: models.Model, *, exclude: Iterable[str] = ()) -> None:
    """full_clean() (field validators and check constraints) without touching the
    protected FSM state field, which only transitions may set."""
    from django_fsm import FSMFieldMixin

    fsm = [f.name for f in instance._meta.concrete_fields if isinstance(f, FSMFieldMixin)]
    instance.full_clean(exclude=[*fsm, *exclude], validate_unique=False)
