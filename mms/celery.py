"""The one Celery app: snapshots, daily rollups and monthly settlement run here,
scheduled by django-celery-beat's DatabaseScheduler (editable in the admin)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mms.settings.base")

app = Celery("mms")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
