"""`manage.py reconcile_pnl`: each settlement's realised PnL recomputed from its
stored fills by an average-cost ledger of its own equals the stored figure to
the quantum, for every symbol, PEPE's 1e-9 tick included (issue 19, item 8),
and a fill that does not explain its money is caught."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from common.actors import Actor
from quoting_worker.core import member as core_ledger
from settlements import reconciliation
from settlements.models import Settlement
from settlements.reconciliation import AverageCostLedger, settlement_pnl_reconcile
from settlements.services import settlements_create_month
from tests.factories import FillFactory, ParticipantFactory
from trading.models import MMFill

pytestmark = pytest.mark.django_db

D = Decimal
PEPE, BTC, ETH = "PEPEUSDT-PERP", "BTCUSDT-PERP", "ETHUSDT-PERP"
MONTH = "2026-02"
FEB, MAR = dt.date(2026, 2, 1), dt.date(2026, 3, 1)


def reconcile(*args: str) -> str:
    out = StringIO()
    call_command("reconcile_pnl", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def demo_month() -> None:
    """The demo's pools and members (BTC, ETH and PEPE) and a seeded month of
    their trading, settled: the runquoter's ingestion path, as `make run` shows it."""
    call_command("seed_demo", stdout=StringIO())
    call_command(
        "simulate_month",
        MONTH,
        "--trades-per-day",
        "8",
        "--sample-minutes",
        "240",
        "--settle",
        stdout=StringIO(),
    )


def test_a_simulated_month_of_the_demo_pools_reconciles_for_every_symbol(demo_month) -> None:
    output = reconcile(MONTH)
    checks = settlement_pnl_reconcile(first=FEB)
    assert {c.symbol for c in checks} == {BTC, ETH, PEPE}
    assert len(checks) == Settlement.objects.filter(period_start=FEB).count() == 9
    for check in checks:
        assert check.reconciles, check
        assert check.fill_count == check.settled_fill_count > 0
    # Realised PnL there is to check, PEPE's included.
    assert all(c.stored != 0 for c in checks if c.symbol == PEPE)
    assert "all 9 settlements reconcile with their fills to 0.00000001 USDT" in output
    assert output.count(" ok") == 9


def test_a_tampered_pepe_fill_is_caught_naming_it(demo_month) -> None:
    """One PEPE fill's price moved by a single 1e-9 tick: its settlement no longer
    follows from its fills; the others still do."""
    fill = MMFill.objects.filter(symbol=PEPE, realized_pnl_usdt__gt=0).order_by("id").first()
    MMFill.objects.filter(pk=fill.pk).update(price=fill.price + D("0.000000001"))
    with pytest.raises(
        CommandError, match=r"1 of 9 settlements do not reconcile.*\(PEPEUSDT-PERP\)"
    ):
        reconcile(MONTH)
    (check,) = [c for c in settlement_pnl_reconcile(first=FEB) if not c.reconciles]
    assert (check.symbol, check.participant_id) == (PEPE, str(fill.participant_id))
    assert check.first_differing_fill == fill.fill_id
    assert check.difference != 0


def test_pepe_prices_rounded_to_8_places_no_longer_explain_the_money(demo_month) -> None:
    """What numeric(28,8) did to every PEPE fill before trading 0005: BTC's and
    ETH's ticks fit in 8 places and still reconcile, PEPE's do not."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE mm_fills SET price = round(price, 8) WHERE symbol = %s", [PEPE])
    checks = settlement_pnl_reconcile(first=FEB)
    assert {c.symbol for c in checks if not c.reconciles} == {PEPE}
    assert all(c.reconciles for c in checks if c.symbol != PEPE)
    output = StringIO()
    with pytest.raises(CommandError, match=r"2 of 9 settlements do not reconcile"):
        call_command("reconcile_pnl", MONTH, stdout=output)
    assert output.getvalue().count("DIFFERS") == 2


def test_a_month_opens_on_the_position_the_months_before_left() -> None:
    """Long 2 at 100 in January; in February a sale of 3 at 110 realises 20 and
    goes short 1 at 110, a buy back at 80 realises 30: 50 in all, not the 0 and
    30 a ledger starting flat in February would find."""
    trader = ParticipantFactory(state="ACTIVE")

    def fill(n: int, when: dt.datetime, side: str, price: str, size: str, pnl: str) -> None:
        FillFactory(
            participant=trader,
            fill_id=f"carry-{n}",
            side=side,
            price=D(price),
            size=D(size),
            fee_usdt=D(0),
            realized_pnl_usdt=D(pnl),
            filled_at=when,
        )

    fill(1, dt.datetime(2026, 1, 20, tzinfo=dt.UTC), "BUY", "100.0", "2.000", "0")
    fill(2, dt.datetime(2026, 2, 3, tzinfo=dt.UTC), "SELL", "110.0", "3.000", "20")
    fill(3, dt.datetime(2026, 2, 5, tzinfo=dt.UTC), "BUY", "80.0", "1.000", "30")
    fill(4, dt.datetime(2026, 3, 1, tzinfo=dt.UTC), "SELL", "90.0", "1.000", "0")  # March's
    settlements_create_month(first=FEB, actor=Actor("test-job"))
    (check,) = settlement_pnl_reconcile(first=FEB)
    assert (check.stored, check.recomputed, check.fill_count) == (D(50), D(50), 2)
    assert check.reconciles
    assert "no settlement to reconcile" in reconcile("2026-03")


def test_the_ledger_rounds_as_the_runquoters_and_nothing_else() -> None:
    """Reducing a long of 3 by 1 releases a third of the basis: rounded half-even to
    1e-30 after a 60-digit division, the rule quoting_worker/core/member.py writes
    down (its constants are the ledger's)."""
    assert reconciliation.BASIS_QUANTUM == core_ledger.BASIS_QUANTUM
    assert core_ledger.DIVISION.prec == reconciliation.DIVISION_DIGITS
    ledger = AverageCostLedger()
    assert ledger.book(side="BUY", price=D("0.000010006"), size=D(1000)) == 0
    assert ledger.book(side="BUY", price=D("0.000010007"), size=D(2000)) == 0
    realised = ledger.book(side="SELL", price=D("0.000010009"), size=D(1000))
    # basis 0.030020, a third of it 0.010006666…; 0.010009 − that.
    assert realised == D("0.010009") - D("0.010006666666666666666666666667")
    assert ledger.position == D(2000)
    # Through zero: the 2,000 left close (their whole basis, 0.020013333…333, is
    # released) and 1,000 open short at the sale's price.
    closing = ledger.book(side="SELL", price=D("0.000010010"), size=D(3000))
    assert closing == D("0.000006666666666666666666666667")
    assert (ledger.position, ledger.basis) == (D(-1000), D("-0.010010"))


def test_a_month_is_yyyy_mm() -> None:
    with pytest.raises(CommandError, match="month must be YYYY-MM"):
        reconcile("2026-13")
