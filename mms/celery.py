"""The one Celery app: snapshots, daily rollups and monthly settlement run here,
scheduled by django-celery-beat's DatabaseScheduler (editable in the admin).

Every task's outcome is counted in Redis (`mm_celery_tasks_total{task,outcome}`
on the web process's /metrics, common/metrics.py), whichever worker process
ran it; each worker process traces its tasks when OPENOBSERVE_OTLP_ENDPOINT is set.
"""

import os
from typing import Any

from celery import Celery
from celery.signals import task_failure, task_retry, task_success, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mms.settings.base")

app = Celery("mms")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _trace_this_process(**_: Any) -> None:
    from mms.observability import instrument_celery

    instrument_celery()


def _count(sender: Any, outcome: str) -> None:
    from common.metrics import count_task

    name = getattr(sender, "name", None) or str(sender)
    count_task(name, outcome)


@task_success.connect
def _succeeded(sender: Any = None, **_: Any) -> None:
    _count(sender, "success")


@task_failure.connect
def _failed(sender: Any = None, **_: Any) -> None:
    _count(sender, "failure")


@task_retry.connect
def _retried(sender: Any = None, request: Any = None, **_: Any) -> None:
    # A retry's sender is the request, not the task.
    _count(getattr(request, "task", None) or sender, "retry")
