from django.db import models


class PoolState(models.TextChoices):
    PAUSED = "PAUSED"
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"
    UNWINDING = "UNWINDING"  # reducing orders only (SPEC B.20)


class FlattenStatus(models.TextChoices):
    REQUESTED = "REQUESTED"
    COMPLETED = "COMPLETED"
