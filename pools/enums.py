from django.db import models


class PoolState(models.TextChoices):
    PAUSED = "PAUSED"
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"


class FlattenStatus(models.TextChoices):
    REQUESTED = "REQUESTED"
    COMPLETED = "COMPLETED"
