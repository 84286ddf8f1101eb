"""A small book of MM orders and fills, with figures worked out by hand in the tests.

Fills (BTC = BTCUSDT-PERP, ETH = ETHUSDT-PERP), `now` taken at setup:

    name    who    symbol side price  size  fee_usdt  filled_at  notional
    a_buy1  Alpha  BTC    BUY  60000  0.5   -3        now − 1 h  30000
    a_buy2  Alpha  BTC    BUY  61000  0.25  -1.525    now − 2 h  15250
    b_sell  Bravo  BTC    SELL 62000  0.1   0.62      now − 23 h  6200
    b_old   Bravo  BTC    SELL 59000  1     -5.9      now − 25 h 59000 (outside 24 h)
    a_eth   Alpha  ETH    BUY  3000   2     -0.6      now − 1 h   6000

Prices and sizes are written as the runquoter writes them, ticks × tick and
lots × lot, so they carry the instrument's places (BTC: tick 0.1, lot 0.001;
ETH: tick 0.01, lot 0.01): 60000.0 and 0.500, which the API shows as stored.

Both symbols have a pool (per-symbol routes 404 and `?symbol=` filters 400 for a
symbol no pool ever had).

Orders (BTC unless said):

    who    side status            price  size  filled  notional
    Alpha  BUY  OPEN              60000  0.01  0       600
    Alpha  BUY  PENDING           59900  0.02  0       1198
    Alpha  SELL PARTIALLY_FILLED  60100  0.03  0.01    1803
    Bravo  SELL CANCELLED         60200  0.01  0       602
    Bravo  BUY  FILLED            60000  0.05  0.05    3000
    Alpha  BUY  OPEN (ETH)        3000   1     0       3000
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import pytest
from django.utils import timezone

from tests.factories import FillFactory, OrderFactory, ParticipantFactory, PoolFactory

BTC = "BTCUSDT-PERP"
ETH = "ETHUSDT-PERP"


@dataclass
class Book:
    now: dt.datetime
    alpha: Any
    bravo: Any
    fills: dict[str, Any]
    orders: dict[str, Any]


def iso(moment: dt.datetime) -> str:
    """A datetime the way the API writes it."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def book() -> Book:
    now = timezone.now()
    PoolFactory(symbol=BTC)
    PoolFactory(symbol=ETH)
    alpha = ParticipantFactory(name="Alpha Liquidity")
    bravo = ParticipantFactory(name="Bravo Markets")
    hours = dt.timedelta(hours=1)

    def fill(who: Any, symbol: str, side: str, price: str, size: str, fee: str, ago: int) -> Any:
        return FillFactory(
            participant=who,
            symbol=symbol,
            side=side,
            price=D(price),
            size=D(size),
            fee_usdt=D(fee),
            liquidity="MAKER" if D(fee) <= 0 else "TAKER",
            filled_at=now - ago * hours,
        )

    fills = {
        "a_buy1": fill(alpha, BTC, "BUY", "60000.0", "0.500", "-3", 1),
        "a_buy2": fill(alpha, BTC, "BUY", "61000.0", "0.250", "-1.525", 2),
        "b_sell": fill(bravo, BTC, "SELL", "62000.0", "0.100", "0.62", 23),
        "b_old": fill(bravo, BTC, "SELL", "59000.0", "1.000", "-5.9", 25),
        "a_eth": fill(alpha, ETH, "BUY", "3000.00", "2.00", "-0.6", 1),
    }

    def order(
        who: Any,
        side: str,
        status: str,
        price: str,
        size: str,
        filled: str,
        ago: int,
        symbol: str = BTC,
    ) -> Any:
        return OrderFactory(
            participant=who,
            symbol=symbol,
            side=side,
            status=status,
            price=D(price),
            size=D(size),
            filled_size=D(filled),
            created_at=now - ago * hours,
        )

    orders = {
        "a_open": order(alpha, "BUY", "OPEN", "60000.0", "0.010", "0", 1),
        "a_pending": order(alpha, "BUY", "PENDING", "59900.0", "0.020", "0", 2),
        "a_partial": order(alpha, "SELL", "PARTIALLY_FILLED", "60100.0", "0.030", "0.010", 3),
        "b_cancelled": order(bravo, "SELL", "CANCELLED", "60200.0", "0.010", "0", 4),
        "b_filled": order(bravo, "BUY", "FILLED", "60000.0", "0.050", "0.050", 30),
        "a_eth": order(alpha, "BUY", "OPEN", "3000.00", "1.00", "0", 5, symbol=ETH),
    }
    return Book(now=now, alpha=alpha, bravo=bravo, fills=fills, orders=orders)


@pytest.fixture
def lp_alpha(api_client, book):
    return api_client("lp", sub="alpha-lp", participant_id=str(book.alpha.pk))
