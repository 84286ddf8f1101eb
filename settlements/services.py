"""Settlements: the monthly creation (figures in settlements/calculation.py) and
the lifecycle (SPEC Part B.16); finance acts, every step audited."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.actors import Actor
from common.exceptions import Conflict, InvalidInput
from common.lifecycle import lock, run_transition
from common.services import audit_record
from participants.models import Participant
from settlements import calculation
from settlements.enums import SettlementState
from settlements.models import Settlement

logger = logging.getLogger("mms.settlements")


def settlements_create_month(*, first: dt.date, actor: Actor) -> list[Settlement]:
    """One PENDING settlement per participant × symbol with fills or funding in the
    UTC month starting `first`; a pair already settled for that month is left
    alone, so running it twice creates nothing new. Each creation is audited.
    Returns the settlements created."""
    _, end = calculation.bounds(first)
    if end > timezone.now():
        raise InvalidInput(f"the month of {first:%Y-%m} has not ended", field="month")
    activity = calculation.month_activity(first)
    created: list[Settlement] = []
    participants = {
        str(key): participant
        for key, participant in Participant.objects.in_bulk({pid for pid, _ in activity}).items()
    }
    for (pid, symbol), month in sorted(activity.items()):
        participant = participants[pid]
        with transaction.atomic():
            if Settlement.objects.filter(
                participant_id=pid, symbol=symbol, period_start=first
            ).exists():
                continue
            figures = calculation.compute(participant, symbol, first, activity=month)
            settlement = Settlement.objects.create(
                participant=participant,
                symbol=symbol,
                period_start=first,
                period_end=calculation.next_month(first),
                computed_at=timezone.now(),
                **figures.as_fields(),
            )
            audit_record(
                entity_type="settlement",
                entity_id=settlement.pk,
                action="create",
                actor=actor,
                to_state=str(settlement.state),
                changes={
                    "gross_usdt": (None, figures.gross_usdt),
                    "platform_share_usdt": (None, figures.platform_share_usdt),
                    "net_usdt": (None, figures.net_usdt),
                    "inputs_sha256": (None, figures.inputs_sha256),
                },
            )
        created.append(settlement)
    logger.info("settlements for %s: %d created", f"{first:%Y-%m}", len(created))
    return created


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


def _inputs_unchanged(settlement: Settlement) -> None:
    now = calculation.compute(settlement.participant, settlement.symbol, settlement.period_start)
    if now.inputs_sha256 != settlement.inputs_sha256:
        raise Conflict(
            "the settlement's inputs changed since its figures were computed "
            "(late fills or funding, or an earlier month's settlement): reject it and "
            "recalculate",
            current_state=str(settlement.state),
        )


def settlement_approve(*, settlement: Settlement, actor: Actor) -> Settlement:
    """PENDING → APPROVED, only if the figures' inputs are still what they were
    (the hash is recomputed from the database and recorded in the audit row)."""
    return _transition(
        settlement,
        "approve",
        actor,
        reason=f"inputs sha256 {settlement.inputs_sha256}",
        updates={"approved_by": actor.name, "approved_at": timezone.now()},
        check=_inputs_unchanged,
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


def _no_later_month(settlement: Settlement) -> None:
    later = (
        Settlement.objects.filter(
            participant_id=settlement.participant_id,
            symbol=settlement.symbol,
            period_start__gt=settlement.period_start,
        )
        .exclude(state=SettlementState.REJECTED)
        .order_by("period_start")
        .first()
    )
    if later is not None:
        raise Conflict(
            f"the settlement of {later.period_start:%Y-%m} carries this month's high-water "
            "mark forward: reject the later months first",
            current_state=str(settlement.state),
        )


def settlement_recalculate(*, settlement: Settlement, actor: Actor, reason: str = "") -> Settlement:
    """REJECTED → PENDING with every figure computed again from the database (a
    later month that carries this one's high-water mark must be rejected first)."""
    with transaction.atomic():
        locked = lock(Settlement, pk=settlement.pk)
        figures = calculation.compute(locked.participant, locked.symbol, locked.period_start)
        locked, _ = run_transition(
            locked,
            action="recalculate",
            actor=actor,
            entity_type="settlement",
            reason=reason,
            updates={
                "rejected_by": "",
                "rejected_at": None,
                "rejection_reason": "",
                "computed_at": timezone.now(),
                **figures.as_fields(),
            },
            check=_no_later_month,
        )
        return locked


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
