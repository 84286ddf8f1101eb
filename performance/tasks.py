"""The performance jobs as Celery tasks, scheduled by django-celery-beat
(`manage.py install_schedules` creates the schedules; the admin edits them)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from performance import jobs


@shared_task(name="performance.snapshot", ignore_result=True)
def snapshot() -> int:
    """A sample of every pool member (every PERFORMANCE_SNAPSHOT_INTERVAL)."""
    return jobs.snapshot_take()


@shared_task(name="performance.rollup", ignore_result=True)
def rollup(day: str | None = None) -> int:
    """The Q-score rollup of `day` (ISO date; default: yesterday, UTC), then the
    pruning of snapshots whose day is rolled up and past the retention."""
    target = dt.date.fromisoformat(day) if day else timezone.now().date() - dt.timedelta(days=1)
    rows = jobs.rollup_day(target)
    jobs.snapshots_prune()
    return rows
