"""Settlements: the monthly creation (figures in settlements/calculation.py) and
the lifecycle (SPEC Part B.16, B.21); finance acts, every step audited.

A participant's settlements of a month share one high-water mark and one
platform share (its participant-month), so approve, reject and recalculate act
on the participant-month as a whole: its row is locked, then each of its
settlements in id order, and either all of them move, in one transaction, or
none does and the refusal names the ones in the way. Mark settled and mark
failed act on one settlement, never by the person who approved it (four-eyes,
SETTLEMENT_FOUR_EYES); a refused attempt is itself audited.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from common.actors import Actor
from common.exceptions import (
    Conflict,
    FourEyesViolation,
    IllegalTransition,
    InvalidInput,
    Unprocessable,
)
from common.lifecycle import lock, run_transition
from common.services import apply_changes, audit_record
from participants.models import Participant
from settlements import calculation
from settlements.enums import HighWaterMarkScope, SettlementState
from settlements.models import ParticipantMonth, Settlement

logger = logging.getLogger("mms.settlements")

SETTLEMENT = "settlement"
PARTICIPANT_MONTH = "participant_month"
# The participant-month's figures its audit rows record.
_MONTH_AUDITED = (
    "gross_usdt",
    "high_water_mark_usdt",
    "cumulative_gross_usdt",
    "high_water_mark_after_usdt",
    "share_base_usdt",
    "platform_share_usdt",
    "net_usdt",
    "inputs_sha256",
)


def settlements_create_month(*, first: dt.date, actor: Actor) -> list[Settlement]:
    """For each participant with fills or funding in the UTC month starting
    `first`: its participant-month and one PENDING settlement per symbol, in one
    transaction. A participant whose month exists already is left alone (late
    activity, in a new symbol too, is taken in by reject and recalculate), so
    running it twice creates nothing new. Every creation is audited. Returns the
    settlements created."""
    _, end = calculation.bounds(first)
    if end > timezone.now():
        raise Unprocessable(f"the month of {first:%Y-%m} has not ended", field="month")
    activity = calculation.by_participant(calculation.month_activity(first))
    participants = {
        str(key): participant
        for key, participant in Participant.objects.in_bulk(list(activity)).items()
    }
    created: list[Settlement] = []
    for pid, symbols in activity.items():
        with transaction.atomic():
            if ParticipantMonth.objects.filter(participant_id=pid, period_start=first).exists():
                continue
            figures = calculation.compute(participants[pid], first, activity=symbols)
            month = ParticipantMonth.objects.create(
                participant=participants[pid],
                period_start=first,
                period_end=calculation.next_month(first),
                computed_at=timezone.now(),
                **figures.month_fields(),
            )
            audit_record(
                entity_type=PARTICIPANT_MONTH,
                entity_id=month.pk,
                action="create",
                actor=actor,
                changes={name: (None, getattr(month, name)) for name in _MONTH_AUDITED},
            )
            created.extend(
                _settlement_create(month=month, symbol=symbol, figures=figures, actor=actor)
                for symbol in figures.symbols
            )
    logger.info("settlements for %s: %d created", f"{first:%Y-%m}", len(created))
    return created


def _settlement_create(
    *,
    month: ParticipantMonth,
    symbol: str,
    figures: calculation.MonthFigures,
    actor: Actor,
    reason: str = "",
) -> Settlement:
    fields = figures.settlement_fields(symbol)
    settlement = Settlement.objects.create(
        participant_month=month,
        participant_id=month.participant_id,
        symbol=symbol,
        period_start=month.period_start,
        period_end=month.period_end,
        computed_at=month.computed_at,
        **fields,
    )
    audit_record(
        entity_type=SETTLEMENT,
        entity_id=settlement.pk,
        action="create",
        actor=actor,
        to_state=str(settlement.state),
        changes={
            "participant_month": (None, month.pk),
            **{
                name: (None, fields[name])
                for name in ("gross_usdt", "platform_share_usdt", "net_usdt", "inputs_sha256")
            },
        },
        reason=reason,
    )
    return settlement


# --- the participant-month: approve, reject, recalculate together ------------------


def _lock_month(settlement: Settlement) -> tuple[ParticipantMonth, list[Settlement]]:
    """Inside a transaction: the settlement's participant-month and all its
    settlements, locked in that order (the month first, then ids ascending)."""
    month = lock(ParticipantMonth, pk=settlement.participant_month_id)
    rows = list(
        Settlement.objects.select_for_update().filter(participant_month=month).order_by("id")
    )
    return month, rows


def _one(rows: list[Settlement], settlement: Settlement) -> Settlement:
    return next(row for row in rows if row.pk == settlement.pk)


def _together(
    month: ParticipantMonth,
    rows: list[Settlement],
    settlement: Settlement,
    action: str,
    *,
    stay: Collection[str] = (),
) -> list[Settlement]:
    """The month's settlements `action` moves: every one, but those in a state of
    `stay`, which are left as they are. Refused (409) if `settlement` itself
    cannot take it, or if any other cannot, naming each with its state."""
    own = _one(rows, settlement)
    if not can_proceed(getattr(own, action)):
        raise IllegalTransition(entity=SETTLEMENT, action=action, current_state=str(own.state))
    moving = [row for row in rows if can_proceed(getattr(row, action))]
    blocking = [row for row in rows if row not in moving and row.state not in stay]
    if blocking:
        raise IllegalTransition(
            entity=SETTLEMENT,
            action=action,
            current_state=str(own.state),
            message=(
                f"cannot {action} the participant-month {month.period_start:%Y-%m} of "
                f"participant {month.participant_id}: "
                + ", ".join(f"{row.symbol} is {row.state}" for row in blocking)
                + "; a participant's settlements of a month share one high-water mark, so "
                "they are approved, rejected and recalculated together (SPEC Part B.21)"
            ),
            settlement_states={row.symbol: str(row.state) for row in rows},
        )
    return moving


def _inputs_unchanged(month: ParticipantMonth, current_state: str) -> None:
    if month.high_water_mark_scope == HighWaterMarkScope.SYMBOL:
        raise Conflict(
            "the participant-month's figures were computed with a high-water mark per "
            "symbol, before the mark became the participant's (SPEC Part B.21): reject it "
            "and recalculate",
            current_state=current_state,
        )
    now = calculation.compute(month.participant, month.period_start)
    if now.inputs_sha256 != month.inputs_sha256:
        raise Conflict(
            "the participant-month's inputs changed since its figures were computed "
            "(late fills or funding, in any of its symbols, or an earlier month's "
            "settlement): reject it and recalculate",
            current_state=current_state,
        )


def settlement_approve(*, settlement: Settlement, actor: Actor) -> Settlement:
    """PENDING → APPROVED for every settlement of the participant-month, only if
    their inputs are still what they were (the hash is recomputed from the
    database and recorded in each audit row). Returns `settlement` as it now is."""
    with transaction.atomic():
        month, rows = _lock_month(settlement)
        moving = _together(month, rows, settlement, "approve")
        _inputs_unchanged(month, str(_one(rows, settlement).state))
        now = timezone.now()
        for row in moving:
            run_transition(
                row,
                action="approve",
                actor=actor,
                entity_type=SETTLEMENT,
                reason=f"participant-month {month}, inputs sha256 {month.inputs_sha256}",
                updates={"approved_by": actor.name, "approved_at": now},
            )
        return _one(rows, settlement)


def _required(value: str, field: str, what: str) -> str:
    if not value.strip():
        raise InvalidInput(f"{what} is required", field=field)
    return value.strip()


def _may_stay_rejecting(month: ParticipantMonth) -> frozenset[str]:
    """A settlement already REJECTED stays so. A month migrated from per-symbol
    marks may have been approved in part before B.21: those settlements are final
    and stay as they are, so the open ones, which can no longer be approved, can
    still be rejected."""
    if month.high_water_mark_scope == HighWaterMarkScope.SYMBOL:
        return frozenset(SettlementState) - {SettlementState.PENDING}
    return frozenset({SettlementState.REJECTED})


def settlement_reject(*, settlement: Settlement, actor: Actor, reason: str) -> Settlement:
    """PENDING → REJECTED, with a reason, for every settlement of the
    participant-month (see `_may_stay_rejecting` for those left as they are)."""
    reason = _required(reason, "reason", "a rejection reason")
    with transaction.atomic():
        month, rows = _lock_month(settlement)
        moving = _together(month, rows, settlement, "reject", stay=_may_stay_rejecting(month))
        now = timezone.now()
        for row in moving:
            run_transition(
                row,
                action="reject",
                actor=actor,
                entity_type=SETTLEMENT,
                reason=reason,
                updates={"rejected_by": actor.name, "rejected_at": now, "rejection_reason": reason},
            )
        return _one(rows, settlement)


def _no_later_month(month: ParticipantMonth, current_state: str) -> None:
    later = (
        Settlement.objects.filter(
            participant_id=month.participant_id, period_start__gt=month.period_start
        )
        .exclude(state=SettlementState.REJECTED)
        .order_by("period_start", "symbol")
        .first()
    )
    if later is not None:
        raise Conflict(
            f"the participant-month of {later.period_start:%Y-%m} carries this month's "
            "high-water mark forward: reject the later months first",
            current_state=current_state,
        )


def settlement_recalculate(*, settlement: Settlement, actor: Actor, reason: str = "") -> Settlement:
    """REJECTED → PENDING for every settlement of the participant-month, with the
    month's figures computed again from the database; a symbol whose activity
    appeared since gets a PENDING settlement of its own. A later month that
    carries this one's high-water mark must be rejected first."""
    with transaction.atomic():
        month, rows = _lock_month(settlement)
        moving = _together(month, rows, settlement, "recalculate")
        _no_later_month(month, str(_one(rows, settlement).state))
        figures = calculation.compute(
            month.participant, month.period_start, symbols=[row.symbol for row in rows]
        )
        now = timezone.now()
        changes = apply_changes(month, {**figures.month_fields(), "computed_at": now})
        month.save()
        audit_record(
            entity_type=PARTICIPANT_MONTH,
            entity_id=month.pk,
            action="recalculate",
            actor=actor,
            changes=changes,
            reason=reason,
        )
        for row in moving:
            run_transition(
                row,
                action="recalculate",
                actor=actor,
                entity_type=SETTLEMENT,
                reason=reason,
                updates={
                    "rejected_by": "",
                    "rejected_at": None,
                    "rejection_reason": "",
                    "computed_at": now,
                    **figures.settlement_fields(row.symbol),
                },
            )
        known = {row.symbol for row in rows}
        for symbol in figures.symbols:
            if symbol not in known:
                _settlement_create(
                    month=month,
                    symbol=symbol,
                    figures=figures,
                    actor=actor,
                    reason=f"recalculation: activity in {symbol} since the month was computed",
                )
        return _one(rows, settlement)


# --- the payout: one settlement at a time, four-eyes ------------------------------


def _four_eyes(settlement: Settlement, action: str, actor: Actor) -> FourEyesViolation | None:
    """The refusal when `actor` approved `settlement` and four-eyes is on (None when
    the transition is not allowed anyway: run_transition says why)."""
    if not can_proceed(getattr(settlement, action)) or settlement.approved_by != actor.name:
        return None
    if not settings.SETTLEMENT_FOUR_EYES:
        return None
    what = "mark it settled" if action == "mark_settled" else "mark it failed"
    return FourEyesViolation(
        f"four-eyes: {actor.name} approved this settlement, so someone else must {what}",
        approved_by=settlement.approved_by,
        current_state=str(settlement.state),
    )


def _payout_step(
    settlement: Settlement, action: str, actor: Actor, *, reason: str, updates: Mapping[str, Any]
) -> Settlement:
    with transaction.atomic():
        locked = lock(Settlement, pk=settlement.pk)
        refusal = _four_eyes(locked, action, actor)
        if refusal is None:
            if locked.approved_by == actor.name:
                reason = f"{reason} (four-eyes off: by the approver)"
            locked, _ = run_transition(
                locked,
                action=action,
                actor=actor,
                entity_type=SETTLEMENT,
                reason=reason,
                updates=updates,
            )
            return locked
        # The refused attempt is a record too: it commits, then the caller hears why.
        audit_record(
            entity_type=SETTLEMENT,
            entity_id=locked.pk,
            action=f"{action}_refused",
            actor=actor,
            from_state=str(locked.state),
            to_state=str(locked.state),
            reason=refusal.message,
        )
    raise refusal


def settlement_mark_settled(
    *, settlement: Settlement, actor: Actor, payout_reference: str
) -> Settlement:
    """APPROVED (or FAILED, a retry) → SETTLED with the transfer's reference."""
    reference = _required(payout_reference, "payout_reference", "the payout reference")
    return _payout_step(
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
    """APPROVED → FAILED with why the transfer failed; it may be retried."""
    reason = _required(reason, "reason", "a failure reason")
    return _payout_step(
        settlement, "mark_failed", actor, reason=reason, updates={"failure_reason": reason}
    )
