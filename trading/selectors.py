"""Reads over mm_orders and mm_fills."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db.models import Case, DecimalField, F, Sum, When

from trading.enums import Side
from trading.models import MMFill

_SIGNED_SIZE = Case(
    When(side=Side.BUY, then=F("size")),
    default=-F("size"),
    output_field=DecimalField(max_digits=28, decimal_places=8),
)


def member_position(*, participant_id: uuid.UUID | str, symbol: str) -> Decimal:
    """Net position in base units from the member's fills (positive = long)."""
    total = MMFill.objects.filter(participant_id=participant_id, symbol=symbol).aggregate(
        q=Sum(_SIGNED_SIZE)
    )["q"]
    return total if total is not None else Decimal("0")
