"""`manage.py demo_venue_positions`: the demo simulator, empty at each start, is
told the positions MMS's stored fills left (a real venue would still hold them)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from django.core.management import call_command

from tests.adapters.order_service_fixture import SimAdmin, run_order_service
from tests.factories import FillFactory, MemberFactory, ParticipantFactory, PoolFactory


@pytest.fixture(scope="module")
def order_service() -> Iterator[str]:
    with run_order_service() as url:
        yield url


def venue_position(url: str, account: str, symbol: str) -> Decimal:
    body = {"account_id": account, "symbol": symbol, "delta": "0"}
    return Decimal(httpx.post(f"{url}/admin/positions", json=body, timeout=5).json()["position"])


@pytest.mark.django_db
def test_each_member_accounts_venue_position_becomes_its_stored_one_once(order_service, capsys):
    SimAdmin(order_service).reset()
    btc, eth = PoolFactory(symbol="BTCUSDT-PERP"), PoolFactory(symbol="ETHUSDT-PERP")
    alice = ParticipantFactory(state="ACTIVE", account_id="acct-alice")
    bob = ParticipantFactory(state="ACTIVE", account_id="acct-bob")
    for pool in (btc, eth):
        MemberFactory(pool=pool, participant=alice)
    MemberFactory(pool=btc, participant=bob)
    FillFactory(participant=alice, symbol="BTCUSDT-PERP", side="BUY", size=Decimal("0.030"))
    FillFactory(participant=alice, symbol="BTCUSDT-PERP", side="SELL", size=Decimal("0.005"))
    FillFactory(participant=alice, symbol="ETHUSDT-PERP", side="SELL", size=Decimal("1.25"))
    # bob has no fills: flat on both sides

    call_command("demo_venue_positions", order_service)
    assert "2 of 3 member positions set" in capsys.readouterr().out
    assert venue_position(order_service, "acct-alice", "BTCUSDT-PERP") == Decimal("0.025")
    assert venue_position(order_service, "acct-alice", "ETHUSDT-PERP") == Decimal("-1.25")
    assert venue_position(order_service, "acct-bob", "BTCUSDT-PERP") == 0

    call_command("demo_venue_positions", order_service)  # again: nothing to move
    assert "0 of 3 member positions set" in capsys.readouterr().out
    assert venue_position(order_service, "acct-alice", "BTCUSDT-PERP") == Decimal("0.025")
