import warnings

# django-fsm 3.0.1, pinned and working, announces on import that its authors
# moved on to viewflow.fsm; say it once in the README, not in every process log.
warnings.filterwarnings(
    "ignore", message="The 'django-fsm' package has been integrated", category=UserWarning
)

from mms.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
