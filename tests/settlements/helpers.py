"""A participant's months as the settlement tests build them: its terms, fills
and funding at chosen instants, the monthly job, and its settlements read back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from common.actors import Actor
from participants.models import Participant, ParticipantTerms
from settlements import services
from settlements.models import Settlement
from tests.factories import FillFactory, FundingPaymentFactory, ParticipantFactory

D = Decimal
BTC = "BTCUSDT-PERP"
ETH = "ETHUSDT-PERP"
SOL = "SOLUSDT-PERP"
XRP = "XRPUSDT-PERP"
JOB = Actor("test-job")
FIN = Actor("fiona-finance")
JUL, AUG, SEP = dt.date(2026, 7, 1), dt.date(2026, 8, 1), dt.date(2026, 9, 1)


def at(first: dt.date, day: int = 10, hour: int = 12) -> dt.datetime:
    return dt.datetime(first.year, first.month, day, hour, tzinfo=dt.UTC)


def split(pct: str = "20", **kw: object) -> Participant:
    participant = ParticipantFactory(
        revenue_model="PERCENTAGE_SPLIT", revenue_share_pct=D(pct), state="ACTIVE", **kw
    )
    ParticipantTerms.objects.create(
        participant=participant,
        revenue_model="PERCENTAGE_SPLIT",
        revenue_share_pct=D(pct),
        effective_at=at(JUL, 1, 0) - dt.timedelta(days=30),
        set_by="test",
    )
    return participant


def fill(
    participant: Participant, first: dt.date, *, realised: str, fee: str = "0", **kw: object
) -> None:
    FillFactory(
        participant=participant,
        symbol=kw.pop("symbol", BTC),
        realized_pnl_usdt=D(realised),
        fee_usdt=D(fee),
        filled_at=kw.pop("filled_at", at(first)),
        **kw,
    )


def funding(participant: Participant, first: dt.date, amount: str, symbol: str = BTC) -> None:
    FundingPaymentFactory(
        participant=participant, symbol=symbol, amount_usdt=D(amount), paid_at=at(first, 8, 0)
    )


def settle(first: dt.date) -> list[Settlement]:
    return services.settlements_create_month(first=first, actor=JOB)


def the(participant: Participant, first: dt.date, symbol: str = BTC) -> Settlement:
    return Settlement.objects.select_related("participant_month").get(
        participant=participant, symbol=symbol, period_start=first
    )


def states(participant: Participant, first: dt.date) -> dict[str, str]:
    return dict(
        Settlement.objects.filter(participant=participant, period_start=first).values_list(
            "symbol", "state"
        )
    )
