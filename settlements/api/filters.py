"""The settlement list's query filters."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters

from pools.models import SYMBOL_VALIDATOR
from pools.selectors import symbol_known
from settlements.models import Settlement


def _known_symbol(symbol: str) -> None:
    """An unknown symbol is a 400 naming `symbol`, not an empty list that looks
    like 'nothing to settle' (as on every other `?symbol=` filter)."""
    if not symbol_known(symbol=symbol):
        raise ValidationError(f"no pool has symbol {symbol!r}")


class SettlementFilter(filters.FilterSet):
    symbol = filters.CharFilter(max_length=32, validators=[SYMBOL_VALIDATOR, _known_symbol])

    class Meta:
        model = Settlement
        fields = ["state", "symbol", "participant", "period_start"]
