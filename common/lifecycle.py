"""The one way any lifecycle changes: lock the row, check and run the
django-fsm transition, save, and write the audit row, in the caller's
transaction (the caller adds its outbox row in the same one)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.db import models, transaction
from django.utils import timezone
from django_fsm import can_proceed

from common.actors import Actor
from common.exceptions import IllegalTransition
from common.services import apply_changes, audit_record

M = TypeVar("M", bound=models.Model)


def lock(model: type[M], **lookup: Any) -> M:
    """The row, locked until the transaction ends (raises model.DoesNotExist)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock() must run inside transaction.atomic()")
    return model._default_manager.select_for_update().get(**lookup)


def run_transition(
    instance: M,
    *,
    action: str,
    actor: Actor,
    entity_type: str,
    reason: str = "",
    updates: Mapping[str, Any] | None = None,
    check: Callable[[M], None] | None = None,
    entity_id: object = None,
    state_field: str = "state",
) -> tuple[M, str]:
    """Applies `action` (a @transition method) to a row locked by `lock()`.

    `check` runs after the FSM guard and may raise to refuse; `updates` are
    field values set with the transition and recorded in the audit row;
    `entity_id` names the entity in the audit trail (its primary key by default);
    `state_field` is the model's FSMField.
    Returns the saved instance and the state it left.
    """
    from_state = str(getattr(instance, state_field))
    method = getattr(instance, action)
    if not can_proceed(method):
        raise IllegalTransition(entity=entity_type, action=action, current_state=from_state)
    if check is not None:
        check(instance)
    method()
    changes = apply_changes(instance, updates or {})
    if hasattr(instance, "state_changed_at"):
        instance.state_changed_at = timezone.now()
    instance.save()
    audit_record(
        entity_type=entity_type,
        entity_id=instance.pk if entity_id is None else entity_id,
        action=action,
        actor=actor,
        from_state=from_state,
        to_state=str(getattr(instance, state_field)),
        changes=changes,
        reason=reason,
    )
    return instance, from_state
