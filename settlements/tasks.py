"""The monthly settlement as a Celery task, scheduled by django-celery-beat on
the 1st of each month, UTC (`manage.py install_schedules`)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from common.actors import Actor, ActorKind
from settlements import calculation
from settlements.services import settlements_create_month

JOB = Actor("monthly-settlement", ActorKind.SYSTEM)


@shared_task(name="settlements.monthly", ignore_result=True)
def monthly(month: str | None = None) -> int:
    """Settlements of `month` ('YYYY-MM'; default: the month that just ended)."""
    if month:
        first = dt.date.fromisoformat(f"{month}-01")
    else:
        last_day = timezone.now().date().replace(day=1) - dt.timedelta(days=1)
        first = calculation.month_start(last_day)
    return len(settlements_create_month(first=first, actor=JOB))
