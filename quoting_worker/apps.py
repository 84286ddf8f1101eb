from django.apps import AppConfig


class QuotingWorkerConfig(AppConfig):
    """Registered so that `manage.py runquoter` exists; the worker owns no models."""

    name = "quoting_worker"
    verbose_name = "Quoting worker"
