import logging

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("mms.auth")


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Audit trail and outbox"

    def ready(self) -> None:
        from common import schema  # noqa: F401  (registers the OpenAPI auth scheme)

        if settings.DISABLE_AUTH:
            logger.warning(
                "DISABLE_AUTH=true: every API request is treated as a development user "
                "with all roles. Never run like this with real money."
            )
