from django.db import models


class SettlementState(models.TextChoices):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    SETTLED = "SETTLED"
    FAILED = "FAILED"


class HighWaterMarkScope(models.TextChoices):
    """How a participant-month's platform share was computed."""

    # SPEC Part B.21: on the participant's month gross above its mark, allocated
    # to the symbols pro rata to positive gross.
    PARTICIPANT = "PARTICIPANT"
    # Before B.21: each symbol on its own mark. Only months migrated from then
    # (settlements/migrations/0004) carry it; a recalculation moves them on.
    SYMBOL = "SYMBOL"
