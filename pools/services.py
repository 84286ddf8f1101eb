"""Every write to pools, members and emergency controls (SPEC Part B.9, B.13).

The API, the admin and the quoting worker all call these functions; none of
them changes a pool's state any other way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.actors import Actor, ActorKind
from common.exceptions import Conflict, IllegalTransition, InvalidInput, Unprocessable
from common.lifecycle import lock, run_transition
from common.notify import notify_flatten, notify_pool_changed
from common.services import apply_changes, audit_record, field_values, validate_model
from participants.enums import ParticipantState
from participants.models import Participant
from pools.enums import FlattenStatus, PoolState
from pools.events import emit_risk_triggered, emit_state_changed
from pools.models import FlattenRequest, PoolConfig, PoolMember
from pools.selectors import pools_not_halted
from trading.selectors import member_position

POOL_CONFIG_FIELDS = (
    "enabled",
    "gamma",
    "kappa",
    "vol_lookback_seconds",
    "tau",
    "num_levels",
    "level_spacing_bps",
    "min_spread_bps",
    "max_spread_bps",
    "order_size_usdt",
    "max_pool_position_usdt",
    "max_pool_loss_usdt",
    "check_staleness",
    "staleness_threshold_ms",
    "quote_interval_ms",
    "price_threshold_bps",
    "target_inventory",
    "unwind_band_bps",
    "unwind_max_loss_usdt",
    "unwind_time_limit_s",
)
MEMBER_FIELDS = ("weight", "max_position_usdt")
# The states in which the quoting worker places orders (UNWINDING: reducing ones).
PLACING_STATES = frozenset({PoolState.ACTIVE, PoolState.UNWINDING})


def _check_config(pool: PoolConfig) -> None:
    if pool.min_spread_bps > pool.max_spread_bps:
        raise Unprocessable("min_spread_bps must be ≤ max_spread_bps", field="min_spread_bps")
    validate_model(pool)


def pool_create_or_update(
    *, symbol: str, config: Mapping[str, Any], actor: Actor
) -> tuple[PoolConfig, bool]:
    """The upsert of POST /pools. A new pool starts PAUSED; an archived one is
    restored (still PAUSED or HALTED, as it was)."""
    with transaction.atomic():
        pool = PoolConfig.objects.select_for_update().filter(symbol=symbol).first()
        if pool is None:
            pool = PoolConfig(symbol=symbol, **config)
            _check_config(pool)
            pool.save()
            audit_record(
                entity_type="pool",
                entity_id=symbol,
                action="create",
                actor=actor,
                to_state=str(pool.state),
                changes={name: (None, getattr(pool, name)) for name in config},
            )
            notify_pool_changed(symbol=symbol, reason="create")
            return pool, True
        if pool.archived_at is not None:
            audit_record(
                entity_type="pool",
                entity_id=symbol,
                action="restore",
                actor=actor,
                changes=apply_changes(pool, {"archived_at": None}),
            )
        _update(pool, config, actor)
        return pool, False


def pool_update(*, pool: PoolConfig, config: Mapping[str, Any], actor: Actor) -> PoolConfig:
    with transaction.atomic():
        locked = lock(PoolConfig, pk=pool.pk)
        if locked.archived_at is not None:
            raise Conflict(f"pool {locked.symbol} is archived", current_state="ARCHIVED")
        _update(locked, config, actor)
        return locked


def _update(pool: PoolConfig, config: Mapping[str, Any], actor: Actor) -> None:
    unknown = set(config) - set(POOL_CONFIG_FIELDS)
    if unknown:
        raise InvalidInput(f"not a pool config field: {sorted(unknown)}", field=min(unknown))
    if config.get("enabled") is False and pool.state in PLACING_STATES:
        raise Conflict(
            f"an {pool.state} pool cannot be disabled; pause it first",
            field="enabled",
            current_state=str(pool.state),
        )
    changes = apply_changes(pool, config)
    _check_config(pool)
    pool.save()
    if changes:
        audit_record(
            entity_type="pool", entity_id=pool.symbol, action="update", actor=actor, changes=changes
        )
        notify_pool_changed(symbol=pool.symbol, reason="config")


def pool_archive(*, pool: PoolConfig, actor: Actor) -> PoolConfig:
    """DELETE /pools/{symbol}: a pool is never hard-deleted; it must not be ACTIVE."""
    with transaction.atomic():
        locked = lock(PoolConfig, pk=pool.pk)
        if locked.state in PLACING_STATES:
            raise IllegalTransition(entity="pool", action="delete", current_state=locked.state)
        if locked.archived_at is None:
            changes = apply_changes(locked, {"enabled": False, "archived_at": timezone.now()})
            locked.save()
            audit_record(
                entity_type="pool",
                entity_id=locked.symbol,
                action="archive",
                actor=actor,
                changes=changes,
            )
            notify_pool_changed(symbol=locked.symbol, reason="archive")
        return locked


def _pool_transition(
    pool: PoolConfig,
    *,
    action: str,
    actor: Actor,
    reason: str,
    updates: Mapping[str, Any] | None = None,
    check: Any = None,
) -> PoolConfig:
    locked = lock(PoolConfig, pk=pool.pk)
    if locked.archived_at is not None:
        raise IllegalTransition(entity="pool", action=action, current_state="ARCHIVED")
    locked, from_state = run_transition(
        locked,
        action=action,
        actor=actor,
        entity_type="pool",
        entity_id=locked.symbol,
        reason=reason,
        updates={**(updates or {}), "state_reason": reason, "state_changed_by": actor.name},
        check=check,
    )
    emit_state_changed(
        pool=locked, from_state=from_state, action=action, actor=actor, reason=reason
    )
    notify_pool_changed(symbol=locked.symbol, reason=action, state=str(locked.state))
    return locked


def pool_enable(*, pool: PoolConfig, actor: Actor, reason: str = "") -> PoolConfig:
    """PAUSED → ACTIVE, and host the pool at every start (it still boots PAUSED)."""
    with transaction.atomic():
        return _pool_transition(
            pool, action="enable", actor=actor, reason=reason, updates={"enabled": True}
        )


def pool_pause(*, pool: PoolConfig, actor: Actor, reason: str = "") -> PoolConfig:
    with transaction.atomic():
        return _pool_transition(pool, action="pause", actor=actor, reason=reason)


def pool_resume(*, pool: PoolConfig, actor: Actor, note: str = "") -> PoolConfig:
    """PAUSED or HALTED → ACTIVE. Leaving HALTED needs a person and a review note."""

    def check(locked: PoolConfig) -> None:
        if locked.state == PoolState.HALTED:
            if actor.kind is not ActorKind.USER:
                raise IllegalTransition(
                    entity="pool", action="resume", current_state=str(locked.state)
                )
            if not note.strip():
                raise Unprocessable("resuming a HALTED pool needs a review note", field="note")

    with transaction.atomic():
        return _pool_transition(pool, action="resume", actor=actor, reason=note, check=check)


def pool_unwind(*, pool: PoolConfig, actor: Actor, note: str) -> PoolConfig:
    """PAUSED or HALTED → UNWINDING (SPEC B.20): only a person, with a note."""

    def check(locked: PoolConfig) -> None:
        if actor.kind is not ActorKind.USER:
            raise IllegalTransition(entity="pool", action="unwind", current_state=str(locked.state))
        if not note.strip():
            raise InvalidInput("unwinding a pool needs a note", field="note")

    with transaction.atomic():
        return _pool_transition(pool, action="unwind", actor=actor, reason=note, check=check)


def pool_unwind_finished(*, pool: PoolConfig, actor: Actor, reason: str) -> PoolConfig | None:
    """UNWINDING → PAUSED, as the quoting worker saw it end (every member flat,
    or the time limit). None when the pool had left UNWINDING meanwhile (a
    person paused or killed it): nothing to record."""
    with transaction.atomic():
        locked = lock(PoolConfig, pk=pool.pk)
        if locked.state != PoolState.UNWINDING:
            return None
        return _pool_transition(
            locked, action="finish_unwind", actor=actor, reason=f"unwind over: {reason}"
        )


def pool_halt(*, pool: PoolConfig, actor: Actor, trigger: str, detail: str) -> PoolConfig:
    """The kill switch of one pool (risk guards, exchange halt, emergency kill)."""
    with transaction.atomic():
        locked = _pool_transition(pool, action="halt", actor=actor, reason=f"{trigger}: {detail}")
        emit_risk_triggered(pool=locked, trigger=trigger, detail=detail, actor=actor)
        return locked


def pool_boot_pause(*, pool: PoolConfig, actor: Actor, reason: str) -> PoolConfig | None:
    """At boot or takeover: an ACTIVE or UNWINDING pool goes PAUSED before anything
    else (a person decides again); others stay."""
    with transaction.atomic():
        locked = lock(PoolConfig, pk=pool.pk)
        if locked.state not in PLACING_STATES:
            return None
        return _pool_transition(locked, action="pause", actor=actor, reason=reason)


def emergency_kill(*, actor: Actor, reason: str) -> list[PoolConfig]:
    """Every pool not already HALTED goes HALTED, in one transaction."""
    with transaction.atomic():
        halted = []
        for pool in pools_not_halted().select_for_update():
            halted.append(
                _pool_transition(
                    pool, action="halt", actor=actor, reason=f"EMERGENCY_KILL: {reason}"
                )
            )
            emit_risk_triggered(pool=pool, trigger="EMERGENCY_KILL", detail=reason, actor=actor)
        return halted


def emergency_flatten(*, actor: Actor, reason: str) -> tuple[FlattenRequest, list[PoolConfig]]:
    """Kill, plus a durable request that the workers cancel every order of every
    member account on every symbol at the venue."""
    with transaction.atomic():
        halted = emergency_kill(actor=actor, reason=reason)
        request = FlattenRequest.objects.create(requested_by=actor.name, reason=reason)
        notify_flatten(request_id=request.pk)
        audit_record(
            entity_type="flatten",
            entity_id=request.pk,
            action="request",
            actor=actor,
            to_state=request.status,
            reason=reason,
        )
        return request, halted


def flatten_complete(*, request_ids: Sequence[int], actor: Actor) -> list[int]:
    """Records that the workers carried the flatten requests out (each once: one
    already completed is left as it is). Returns the ids completed now."""
    completed = []
    with transaction.atomic():
        for request in FlattenRequest.objects.select_for_update().filter(
            pk__in=request_ids, status=FlattenStatus.REQUESTED
        ):
            run_transition(
                request,
                action="complete",
                actor=actor,
                entity_type="flatten",
                updates={"completed_at": timezone.now()},
                state_field="status",
            )
            completed.append(request.pk)
    return completed


def member_add(
    *,
    pool: PoolConfig,
    participant: Participant,
    weight: Decimal,
    max_position_usdt: Decimal,
    actor: Actor,
) -> PoolMember:
    with transaction.atomic():
        locked = lock(PoolConfig, pk=pool.pk)
        if locked.archived_at is not None:
            raise Conflict(f"pool {locked.symbol} is archived", current_state="ARCHIVED")
        participant = lock(Participant, pk=participant.pk)
        if participant.state == ParticipantState.TERMINATED:
            raise Unprocessable(
                "a terminated participant cannot join a pool", field="participant_id"
            )
        if PoolMember.objects.filter(pool=locked, participant=participant).exists():
            raise Conflict(
                "the participant is already a member of this pool", field="participant_id"
            )
        member = PoolMember(
            pool=locked, participant=participant, weight=weight, max_position_usdt=max_position_usdt
        )
        validate_model(member)
        member.save()
        audit_record(
            entity_type="member",
            entity_id=member.pk,
            action="add",
            actor=actor,
            changes={
                "pool": (None, locked.symbol),
                "participant": (None, participant.pk),
                **{name: (None, getattr(member, name)) for name in MEMBER_FIELDS},
            },
        )
        notify_pool_changed(symbol=locked.symbol, reason="members")
        return member


def member_update(*, member: PoolMember, updates: Mapping[str, Any], actor: Actor) -> PoolMember:
    with transaction.atomic():
        locked = lock(PoolMember, pk=member.pk)
        unknown = set(updates) - set(MEMBER_FIELDS)
        if unknown:
            raise InvalidInput(f"not a member field: {sorted(unknown)}", field=min(unknown))
        changes = apply_changes(locked, updates)
        validate_model(locked)
        locked.save()
        if changes:
            audit_record(
                entity_type="member",
                entity_id=locked.pk,
                action="update",
                actor=actor,
                changes=changes,
            )
        notify_pool_changed(symbol=locked.pool.symbol, reason="members")
        return locked


def member_remove(*, member: PoolMember, actor: Actor) -> None:
    """Only when the member is flat, or while the pool places no orders (not ACTIVE
    or UNWINDING; SPEC Part B.3):
    q must never lose a position the pool still carries while it quotes."""
    with transaction.atomic():
        pool = lock(PoolConfig, pk=member.pool_id)
        locked = lock(PoolMember, pk=member.pk)
        position = member_position(participant_id=locked.participant_id, symbol=pool.symbol)
        if pool.state in PLACING_STATES and position != 0:
            # At the lot's places, in plain notation (SPEC Part B.14).
            held = format(position, "f")
            raise Conflict(
                f"the member holds {held} {pool.symbol}; pause the pool or flatten first",
                position=held,
            )
        audit_record(
            entity_type="member",
            entity_id=locked.pk,
            action="remove",
            actor=actor,
            changes={
                "pool": (pool.symbol, None),
                "participant": (locked.participant_id, None),
                **{
                    name: (value, None)
                    for name, value in field_values(locked, MEMBER_FIELDS).items()
                },
            },
            reason=f"position at removal {position}",
        )
        locked.delete()
        notify_pool_changed(symbol=pool.symbol, reason="members")
