"""The settlement lists' query filters. Syntax (a symbol's pattern, a UUID, a
state, a date) is a 400; a symbol no pool ever had or a participant that does not
exist is a 422 (code SEMANTIC), not an empty list that looks like 'nothing to
settle' (as on every other `?symbol=` filter)."""

from __future__ import annotations

from uuid import UUID

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django_filters import rest_framework as filters

from common.exceptions import SEMANTIC
from common.filters import StrictFilterSet
from participants.models import Participant
from pools.models import SYMBOL_PATTERN
from pools.selectors import symbol_known
from settlements.models import Settlement

# The published pattern, read as the schema's reader does: "\Z", so that a symbol
# with a final newline breaks it (a model field's RegexValidator's "$" lets it by).
_SYMBOL = RegexValidator(rf"^{SYMBOL_PATTERN}\Z", "a symbol is upper-case, e.g. BTCUSDT-PERP")


def _known_symbol(symbol: str) -> None:
    if not symbol_known(symbol=symbol):
        raise ValidationError(f"no pool has symbol {symbol!r}", code=SEMANTIC)


def _known_participant(participant_id: UUID) -> None:
    if not Participant.objects.filter(pk=participant_id).exists():
        raise ValidationError(f"no participant {participant_id}", code=SEMANTIC)


class SettlementFilter(StrictFilterSet):
    # strip=False: " BTCUSDT-PERP" breaks the published pattern, as it would in a body.
    symbol = filters.CharFilter(max_length=32, strip=False, validators=[_SYMBOL, _known_symbol])
    participant = filters.UUIDFilter(field_name="participant_id", validators=[_known_participant])

    class Meta:
        model = Settlement
        fields = ["state", "symbol", "participant", "period_start"]
