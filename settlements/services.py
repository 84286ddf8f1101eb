"""The settlement lifecycle (SPEC Part B.16); finance acts, every step audited."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.actors import Actor
from common.exceptions import InvalidInput
from common.lifecycle import lock, run_transition
from settlements.models import Settlement


def _transition(
    settlement: Settlement,
    action: str,
    actor: Actor,
    *,
    reason: str = "",
    updates: Mapping[str, Any] | None = None,
    check: Callable[[Settlement], None] | None = None,
) -> Settlement:
    with transaction.atomic():
        locked = lock(Settlement, pk=settlement.pk)
        locked, _ = run_transition(
            locked,
            action=action,
            actor=actor,
            entity_type="settlement",
            reason=reason,
            updates=updates,
            check=check,
        )
        return locked


def _required(value: str, field: str, what: str) -> str:
    if not value.strip():
        raise InvalidInput(f"{what} is required", field=field)
    return value.strip()


def settlement_approve(*, settlement: Settlement, actor: Actor) -> Settlement:
    return _transition(
        settlement,
        "approve",
        actor,
        updates={"approved_by": actor.name, "approved_at": timezone.now()},
    )


def settlement_reject(*, settlement: Settlement, actor: Actor, reason: str) -> Settlement:
    reason = _required(reason, "reason", "a rejection reason")
    return _transition(
        settlement,
        "reject",
        actor,
        reason=reason,
        updates={
            "rejected_by": actor.name,
            "rejected_at": timezone.now(),
            "rejection_reason": reason,
        },
    )


def settlement_recalculate(*, settlement: Settlement, actor: Actor, reason: str = "") -> Settlement:
    """REJECTED → PENDING. The revenue issue recomputes the figures here too."""
    return _transition(
        settlement,
        "recalculate",
        actor,
        reason=reason,
        updates={"rejected_by": "", "rejected_at": None, "rejection_reason": ""},
    )


def settlement_mark_settled(
    *, settlement: Settlement, actor: Actor, payout_reference: str
) -> Settlement:
    reference = _required(payout_reference, "payout_reference", "the payout reference")
    return _transition(
        settlement,
        "mark_settled",
        actor,
        reason=f"payout {reference}",
        updates={
            "payout_reference": reference,
            "settled_by": actor.name,
            "settled_at": timezone.now(),
            "failure_reason": "",
        },
    )


def settlement_mark_failed(*, settlement: Settlement, actor: Actor, reason: str) -> Settlement:
    reason = _required(reason, "reason", "a failure reason")
    return _transition(
        settlement, "mark_failed", actor, reason=reason, updates={"failure_reason": reason}
    )
