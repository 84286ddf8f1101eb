"""The trading app's Celery task, scheduled by django-celery-beat
(`manage.py install_schedules`)."""

from __future__ import annotations

from celery import shared_task

from trading.retention import orders_prune


@shared_task(name="trading.prune_orders", ignore_result=True)
def prune_orders() -> int:
    """Terminal orders closed more than ORDER_RETENTION_DAYS ago (daily)."""
    return orders_prune()
