"""Model fields shared by the apps.

`InstrumentDecimalField` holds a price or a size at the instrument's own
precision (SPEC Part B.14): a PEPE price on a 1e-9 tick is stored, read and
shown as 0.000010006, never rounded to a fixed number of places. It is
PostgreSQL `numeric` without precision or scale, which keeps each value's own
scale, so a price written as ticks × tick_size comes back with the tick's
decimal places. Money (USDT) keeps its fixed 8 places (plain DecimalField).

Moving a `numeric(p, s)` column to this type is a change of the catalogue
only, with no rewrite of the table (bench/precision_migration.py measures it
on 10 M fills). Values already rounded to the old scale are not recovered.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core import checks
from django.db import models

# What PostgreSQL's unconstrained numeric holds: up to 131072 digits before the
# decimal point and 16383 after it.
NUMERIC_MAX_WHOLE_DIGITS = 131072
NUMERIC_MAX_PLACES = 16383


def unstorable(value: Decimal) -> str | None:
    """Why `value` cannot be stored exactly in an InstrumentDecimalField, or None
    when it can. For a tick or a lot size at the door: every price is a whole
    number of ticks and every size of lots, so neither has more places than the
    unit, and a column that holds the unit holds them all."""
    _, digits, exponent = value.as_tuple()
    if not value.is_finite() or not isinstance(exponent, int):
        return f"{value} is not a finite number"
    places = max(0, -exponent)
    whole = max(0, len(digits) + exponent)
    if places > NUMERIC_MAX_PLACES:
        return f"{places} decimal places, more than the {NUMERIC_MAX_PLACES} a numeric column holds"
    if whole > NUMERIC_MAX_WHOLE_DIGITS:
        return f"{whole} whole digits, more than the {NUMERIC_MAX_WHOLE_DIGITS} a numeric holds"
    return None


class InstrumentDecimalField(models.DecimalField):
    """A price or size in the instrument's units: `numeric`, exact, any scale.

    It has neither max_digits nor decimal_places: nothing quantises its values
    on the way in (the ORM, a form) or out (the admin's display, a model
    serializer), so what was written is what is read and shown.
    """

    description = "Decimal number at the instrument's own precision"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("max_digits", None)
        kwargs.pop("decimal_places", None)
        super().__init__(*args, **kwargs)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        # DecimalField's checks insist on max_digits and decimal_places; this field
        # has neither on purpose, so only the checks every field has apply.
        return models.Field.check(self, **kwargs)

    def db_type(self, connection: Any) -> str:
        return "numeric"

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("max_digits", None)
        kwargs.pop("decimal_places", None)
        return name, path, args, kwargs
