"""Every write to participants: enrolment, updates and the lifecycle."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.actors import Actor
from common.exceptions import Conflict, InvalidInput, Unprocessable
from common.lifecycle import lock, run_transition
from common.services import apply_changes, audit_record, validate_model
from participants.enums import ParticipantState, RevenueModel
from participants.models import Participant, ParticipantTerms

MUTABLE_FIELDS = ("name", "tier", "margin_usdt", "revenue_model", "revenue_share_pct")
TERMS_FIELDS = ("revenue_model", "revenue_share_pct")
ENROL_FIELDS = ("name", "user_id", "account_id", *MUTABLE_FIELDS[1:])


def _check(participant: Participant) -> None:
    if participant.revenue_model == RevenueModel.KEEP_ALL and participant.revenue_share_pct != 0:
        raise Unprocessable("revenue_share_pct must be 0 under KEEP_ALL", field="revenue_share_pct")
    validate_model(participant, exclude=["short_id"])


def _record_terms(participant: Participant, actor: Actor) -> None:
    """The revenue terms in force from now (settlements apply those in force at
    the start of their month)."""
    ParticipantTerms.objects.create(
        participant=participant,
        revenue_model=participant.revenue_model,
        revenue_share_pct=participant.revenue_share_pct,
        effective_at=timezone.now(),
        set_by=actor.name,
    )


def participant_enroll(*, data: Mapping[str, Any], actor: Actor) -> Participant:
    """A new participant, PENDING. Its id's first 8 characters are unique, since
    they name it inside every client_order_id (SPEC Part B.6)."""
    unknown = set(data) - set(ENROL_FIELDS)
    if unknown:
        raise InvalidInput(f"not an enrolment field: {sorted(unknown)}", field=min(unknown))
    with transaction.atomic():
        if Participant.objects.filter(account_id=data.get("account_id")).exists():
            raise Conflict("a participant with this account_id exists", field="account_id")
        while True:
            pid = uuid.uuid4()
            if not Participant.objects.filter(short_id=str(pid)[:8]).exists():
                break
        participant = Participant(id=pid, short_id=str(pid)[:8], **data)
        _check(participant)
        participant.save()
        _record_terms(participant, actor)
        audit_record(
            entity_type="participant",
            entity_id=participant.pk,
            action="enroll",
            actor=actor,
            to_state=str(participant.state),
            changes={name: (None, value) for name, value in data.items()},
        )
        return participant


def participant_update(
    *, participant: Participant, updates: Mapping[str, Any], actor: Actor
) -> Participant:
    unknown = set(updates) - set(MUTABLE_FIELDS)
    if unknown:
        raise InvalidInput(
            f"{sorted(unknown)} cannot be changed after enrolment", field=min(unknown)
        )
    with transaction.atomic():
        locked = lock(Participant, pk=participant.pk)
        if locked.state == ParticipantState.TERMINATED:
            raise Conflict("a terminated participant cannot change", current_state=locked.state)
        changes = apply_changes(locked, updates)
        _check(locked)
        locked.save()
        if any(name in changes for name in TERMS_FIELDS):
            _record_terms(locked, actor)
        if changes:
            audit_record(
                entity_type="participant",
                entity_id=locked.pk,
                action="update",
                actor=actor,
                changes=changes,
            )
        return locked


def _transition(participant: Participant, action: str, actor: Actor, reason: str) -> Participant:
    with transaction.atomic():
        locked = lock(Participant, pk=participant.pk)
        locked, _ = run_transition(
            locked, action=action, actor=actor, entity_type="participant", reason=reason
        )
        return locked


def participant_activate(
    *, participant: Participant, actor: Actor, reason: str = ""
) -> Participant:
    return _transition(participant, "activate", actor, reason)


def participant_suspend(*, participant: Participant, actor: Actor, reason: str = "") -> Participant:
    return _transition(participant, "suspend", actor, reason)


def participant_terminate(
    *, participant: Participant, actor: Actor, reason: str = ""
) -> Participant:
    """Permanent: the participant is never allocated again; every record stays."""
    return _transition(participant, "terminate", actor, reason)
