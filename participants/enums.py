from django.db import models


class ParticipantState(models.TextChoices):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"


class Tier(models.TextChoices):
    TIER_1 = "TIER_1", "Tier 1 (institutional)"
    TIER_2 = "TIER_2", "Tier 2 (professional)"
    TIER_3 = "TIER_3", "Tier 3 (retail / test)"


class RevenueModel(models.TextChoices):
    KEEP_ALL = "KEEP_ALL"
    PERCENTAGE_SPLIT = "PERCENTAGE_SPLIT"
