from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from participants.models import Participant
from pools.models import PoolMember


def participant_list() -> QuerySet[Participant]:
    return Participant.objects.all()


def participant_get(*, participant_id: str) -> Participant:
    return get_object_or_404(Participant, pk=participant_id)


def participant_memberships(*, participant: Participant) -> QuerySet[PoolMember]:
    return PoolMember.objects.filter(participant=participant).select_related("pool", "participant")
