"""Reads over settlements: the list, finance's approval queue and one record."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from common.selectors import filter_given
from settlements.enums import SettlementState
from settlements.models import Settlement


def settlement_list(*, participant_id: str | None = None) -> QuerySet[Settlement]:
    """Every settlement, or only one participant's (an lp caller's scope)."""
    settlements = Settlement.objects.select_related("participant", "participant_month")
    return filter_given(settlements, participant_id=participant_id)


def settlement_pending_list(*, participant_id: str | None = None) -> QuerySet[Settlement]:
    """The approval queue: PENDING settlements, oldest period (then oldest record) first."""
    return (
        settlement_list(participant_id=participant_id)
        .filter(state=SettlementState.PENDING)
        .order_by("period_start", "created_at", "id")
    )


def settlement_get(*, settlement_id: object) -> Settlement:
    return get_object_or_404(settlement_list(), pk=settlement_id)
