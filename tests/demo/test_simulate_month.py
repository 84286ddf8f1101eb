"""`manage.py simulate_month`: a seeded month through the runquoter's ingestion
path, rolled up and settled, and the settlements reconcile with the ledgers."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum
from django.utils import timezone

from common.redis import redis_client
from messaging.live_status import LIVE_STATUS_KEY
from performance.models import PerformanceDaily
from pools.models import SymbolLease
from quoting_worker.core.member import MemberRuntime
from quoting_worker.core.types import Fill, Instrument, Side
from settlements.models import Settlement
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from trading.models import MMFill, MMFundingPayment

pytestmark = pytest.mark.django_db

ETH = "ETHUSDT-PERP"
ARGS = ("2026-02", "--trades-per-day", "6", "--sample-minutes", "120", "--seed", "3")


@pytest.fixture
def pool() -> list:
    pool = PoolFactory(symbol=ETH)
    return [
        MemberFactory(pool=pool, weight=Decimal(w), participant=ParticipantFactory(state="ACTIVE"))
        for w in ("3", "1")
    ]


def run(*extra: str) -> str:
    out = StringIO()
    call_command("simulate_month", *ARGS, *extra, stdout=out)
    return out.getvalue()


def test_a_simulated_month_is_stored_rolled_up_settled_and_reconciles(pool: list) -> None:
    output = run("--settle")
    assert "2 settlements created" in output
    assert MMFill.objects.filter(symbol=ETH).count() > 200
    assert SymbolLease.objects.get(symbol=ETH).released_at is not None  # the lease is given back

    instrument = Instrument(ETH, Decimal("0.01"), Decimal("0.001"), 1, Decimal("5"))
    for member in pool:
        fills = MMFill.objects.filter(participant=member.participant, symbol=ETH)
        # Each fill's stored realised PnL is what the core's ledger books, replayed in order.
        runtime = MemberRuntime(str(member.participant_id), instrument)
        for row in fills.order_by("filled_at", "id"):
            fill = Fill(
                row.fill_id,
                row.client_order_id,
                Side(row.side),
                instrument.ticks(row.price),
                instrument.lots(row.size),
                row.fee_usdt,
                0,
            )
            assert row.realized_pnl_usdt == runtime.realised_by(fill).quantize(Decimal("1e-8"))
            runtime.apply_fill(fill)
        settlement = Settlement.objects.get(participant=member.participant, symbol=ETH)
        sums = fills.aggregate(realised=Sum("realized_pnl_usdt"), fees=Sum("fee_usdt"))
        funding = MMFundingPayment.objects.filter(participant=member.participant).aggregate(
            s=Sum("amount_usdt")
        )["s"]
        assert settlement.fill_count == fills.count()
        assert settlement.realized_pnl_usdt == sums["realised"]
        assert settlement.fees_usdt == sums["fees"] < 0  # maker rebates
        assert settlement.funding_usdt == funding
        assert settlement.gross_usdt == sums["realised"] - sums["fees"] + funding
        assert settlement.net_usdt == settlement.gross_usdt - settlement.platform_share_usdt
    days = PerformanceDaily.objects.filter(symbol=ETH).values("day").annotate(q=Sum("q_score"))
    assert len(days) == 28
    assert {row["q"] for row in days} <= {Decimal(1), Decimal(0)}

    # Seeded ids: a second run stores nothing new.
    before = (MMFill.objects.count(), MMFundingPayment.objects.count(), Settlement.objects.count())
    assert "ETHUSDT-PERP: 0 fills and 0 funding payments stored (new)" in run("--settle")
    assert (
        MMFill.objects.count(),
        MMFundingPayment.objects.count(),
        Settlement.objects.count(),
    ) == before


def test_it_refuses_while_a_runquoter_hosts_a_pool_and_a_month_not_ended(pool: list) -> None:
    redis_client().set(LIVE_STATUS_KEY.format(symbol=ETH), json.dumps({"mode": "PAUSED"}))
    with pytest.raises(CommandError, match="runquoter hosts ETHUSDT-PERP"):
        run()
    redis_client().delete(LIVE_STATUS_KEY.format(symbol=ETH))
    today = timezone.now().date()
    with pytest.raises(CommandError, match="has not ended"):
        call_command("simulate_month", f"{today:%Y-%m}")
    assert not MMFill.objects.exists()
