"""Settlement transitions race on the row locks, as pool transitions do."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from common.actors import Actor
from common.exceptions import IllegalTransition
from common.models import AuditLog
from settlements import services
from settlements.models import Settlement
from tests.factories import ParticipantFactory, SettlementFactory


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_cannot_both_win():
    """Two finance users approve at the same instant: the row lock lets one win
    and the other sees APPROVED and is refused."""
    settlement = SettlementFactory()
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def approve(name: str) -> None:
        try:
            barrier.wait()
            services.settlement_approve(settlement=settlement, actor=Actor(name))
            outcomes[name] = "won"
        except IllegalTransition as exc:
            outcomes[name] = f"refused:{exc.extra['current_state']}"
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(f"fin{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["refused:APPROVED", "won"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    row = Settlement.objects.get(pk=settlement.pk)
    assert (row.state, row.approved_by) == ("APPROVED", winner)
    audit = AuditLog.objects.get(entity_type="settlement", action="approve")
    assert (audit.actor, audit.from_state, audit.to_state) == (winner, "PENDING", "APPROVED")


@pytest.mark.django_db(transaction=True)
def test_approving_two_symbols_of_one_participant_month_at_once_approves_it_once():
    """Two finance users approve BTC and ETH of the same participant-month at the
    same instant: the participant-month's lock lets one move both, and the other
    finds its settlement APPROVED already."""
    participant = ParticipantFactory()
    btc = SettlementFactory(participant=participant, symbol="BTCUSDT-PERP")
    eth = SettlementFactory(participant=participant, symbol="ETHUSDT-PERP")
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def approve(name: str, settlement: Settlement) -> None:
        try:
            barrier.wait()
            services.settlement_approve(settlement=settlement, actor=Actor(name))
            outcomes[name] = "won"
        except IllegalTransition as exc:
            outcomes[name] = f"refused:{exc.extra['current_state']}"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=approve, args=(name, settlement))
        for name, settlement in (("fin-btc", btc), ("fin-eth", eth))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["refused:APPROVED", "won"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    rows = Settlement.objects.filter(participant=participant)
    assert sorted(rows.values_list("state", "approved_by")) == [("APPROVED", winner)] * 2
    audits = AuditLog.objects.filter(entity_type="settlement", action="approve")
    assert sorted(audits.values_list("actor", flat=True)) == [winner, winner]
