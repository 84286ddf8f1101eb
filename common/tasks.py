"""The shared app's Celery task, scheduled by django-celery-beat
(`manage.py install_schedules`)."""

from __future__ import annotations

from celery import shared_task

from common.services import outbox_prune


@shared_task(name="common.prune_outbox", ignore_result=True)
def prune_outbox() -> int:
    """Outbox rows published more than OUTBOX_RETENTION_DAYS ago (daily)."""
    return outbox_prune()
