"""`manage.py install_schedules`: the django-celery-beat schedules of the jobs.

Creates what is missing and leaves what exists as the admin last edited it
(`--reset` puts the defaults back). The snapshot interval comes from
PERFORMANCE_SNAPSHOT_INTERVAL.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

SNAPSHOT = "performance snapshot"
ROLLUP = "performance daily rollup"
SETTLEMENT = "monthly settlement"
ORDER_RETENTION = "order retention"
OUTBOX_RETENTION = "outbox retention"


class Command(BaseCommand):
    help = (
        "Create the Celery beat schedules of the snapshot, rollup, settlement and retention jobs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="restore the default schedules")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        every = max(1, round(settings.PERFORMANCE_SNAPSHOT_INTERVAL.total_seconds()))
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=every, period=IntervalSchedule.SECONDS
        )
        nightly = _utc_crontab(minute="5", hour="0", day_of_month="*")
        monthly = _utc_crontab(minute="30", hour="0", day_of_month="1")
        pruning = _utc_crontab(minute="20", hour="0", day_of_month="*")
        wanted = {
            SNAPSHOT: {"task": "performance.snapshot", "interval": interval, "crontab": None},
            ROLLUP: {"task": "performance.rollup", "crontab": nightly, "interval": None},
            SETTLEMENT: {"task": "settlements.monthly", "crontab": monthly, "interval": None},
            ORDER_RETENTION: {"task": "trading.prune_orders", "crontab": pruning, "interval": None},
            OUTBOX_RETENTION: {"task": "common.prune_outbox", "crontab": pruning, "interval": None},
        }
        for name, fields in wanted.items():
            task, created = PeriodicTask.objects.get_or_create(name=name, defaults=fields)
            if not created and options["reset"]:
                for field, value in fields.items():
                    setattr(task, field, value)
                task.enabled = True
                task.save()
            self.stdout.write(f"{name}: {'created' if created else 'kept'}")


def _utc_crontab(*, minute: str, hour: str, day_of_month: str) -> CrontabSchedule:
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year="*",
        day_of_week="*",
        timezone="UTC",
    )
    return crontab
