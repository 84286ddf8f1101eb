"""A settlement's page in the panel shows what its figures come from: the
month's fills (summary, a link to all of them, the first 50), its funding
payments, the participant's daily Q-scores in that symbol, and whether the
figures reconcile and their inputs are unchanged since computed."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.actors import Actor
from participants.models import Participant
from settlements import services
from settlements.models import Settlement
from tests.factories import (
    FillFactory,
    FundingPaymentFactory,
    ParticipantFactory,
    PerformanceDailyFactory,
    SettlementFactory,
)

pytestmark = pytest.mark.django_db

D = Decimal
BTC = "BTCUSDT-PERP"
MARCH = dt.date(2025, 3, 1)


def _at(day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, minute, tzinfo=dt.UTC)


def _page(client, settlement: Settlement) -> str:
    response = client.get(f"/settlements/settlement/{settlement.pk}/change/")
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def _funding(participant: Participant, when: dt.datetime, amount: str, payment_id: str) -> None:
    FundingPaymentFactory(
        payment_id=payment_id, participant=participant, amount_usdt=D(amount), paid_at=when
    )


def _text(page: str) -> str:
    """The page's text with tags dropped and whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


@pytest.fixture
def settled_march() -> Settlement:
    """March 2025 for one participant in BTC, created by the monthly job."""
    participant = ParticipantFactory(revenue_model="PERCENTAGE_SPLIT", revenue_share_pct=D("10"))
    FillFactory(
        participant=participant,
        symbol=BTC,
        side="BUY",
        price=D("60000.0"),  # at BTC's tick (0.1) and lot (0.001), as the runquoter writes
        size=D("0.500"),
        fee_usdt=D("1.5"),
        realized_pnl_usdt=D("0"),
        filled_at=_at(2, 8, 15),
    )
    FillFactory(
        participant=participant,
        symbol=BTC,
        side="SELL",
        price=D("62000.0"),
        size=D("0.200"),
        fee_usdt=D("-0.25"),
        realized_pnl_usdt=D("400.5"),
        filled_at=_at(20, 9, 30),
    )
    # The first instant of April: not March's.
    FillFactory(
        participant=participant,
        symbol=BTC,
        fee_usdt=D("99"),
        filled_at=dt.datetime(2025, 4, 1, tzinfo=dt.UTC),
    )
    _funding(participant, _at(3), "2.75", "fund-march-1")
    _funding(participant, dt.datetime(2025, 4, 1, tzinfo=dt.UTC), "500", "fund-april-1")
    PerformanceDailyFactory(
        participant=participant,
        symbol=BTC,
        day=dt.date(2025, 3, 2),
        uptime=D("0.912345"),
        q_score=D("0.4321"),
        efficiency=D("1.25"),
        sla_met=True,
        trade_count=17,
        volume_usdt=D("30000"),
    )
    PerformanceDailyFactory(
        participant=participant, symbol=BTC, day=dt.date(2025, 4, 1), q_score=D("0.9876")
    )
    (settlement,) = services.settlements_create_month(first=MARCH, actor=Actor("test-job"))
    return settlement


def test_the_page_shows_the_fills_funding_and_qscores_behind_the_figures(
    finance_client, settled_march
):
    page = _page(finance_client, settled_march)
    text = _text(page)

    assert "Behind the figures" in text
    # The fills summary, computed over March only, agrees with the stored figures.
    assert "Fills 2 Buys 1 (size 0.500) Sells 1 (size 0.200)" in text
    assert "Volume USDT 42400.00000000" in text  # 30000 + 12400
    assert "Σ fee USDT 1.25000000" in text
    assert "Σ realised PnL USDT 400.50000000" in text
    assert "✓ Count, fees and realised PnL match the stored figures." in text
    # The first fills, oldest first.
    assert text.index("2025-03-02 08:15:00") < text.index("2025-03-20 09:30:00")
    assert "BUY 60000.0 0.500 1.50000000 0.00000000" in text  # price and size as stored
    assert "2025-04-01" not in text
    # Funding: March's payment only.
    assert "Payments: 1, Σ 2.75000000 USDT received. ✓ Count and sum match" in text
    assert "fund-march-1" in text
    assert "fund-april-1" not in text
    # The daily Q-score rows of March.
    assert "2025-03-02 0.912345 0.4321000000 1.25000000 yes 17 30000.00000000" in text
    assert "0.9876" not in text


def test_the_page_shows_the_figures_reconcile(finance_client, settled_march):
    text = _text(_page(finance_client, settled_march))
    # gross = 400.5 − 1.25 + 2.75 = 402; share = 10 % of it.
    assert (
        "✓ realised 400.50000000 − fees 1.25000000 + funding 2.75000000 = 402.00000000 "
        "(gross 402.00000000)"
    ) in text
    assert "✓ gross 402.00000000 − share 40.20000000 = 361.80000000 (net 361.80000000)" in text
    assert "✓ the inputs are unchanged since computed" in text
    assert "✗" not in text


def test_the_page_flags_figures_that_do_not_add_up_and_inputs_that_moved(
    admin_client, settled_march
):
    Settlement.objects.filter(pk=settled_march.pk).update(gross_usdt=D("999"), net_usdt=D("1"))
    FillFactory(
        participant=settled_march.participant,
        symbol=BTC,
        fee_usdt=D("0.1"),
        realized_pnl_usdt=D("5"),
        filled_at=_at(25),
    )
    _funding(settled_march.participant, _at(26), "0.5", "fund-late")
    text = _text(_page(admin_client, Settlement.objects.get(pk=settled_march.pk)))

    assert "✗ Count, fees and realised PnL do not match the stored figures." in text
    assert "✗ Count and sum do not match the stored figures." in text
    assert "✗ realised 400.50000000 − fees 1.25000000 + funding 2.75000000 = 402.00000000" in text
    assert "✗ gross 999.00000000 − share 40.20000000 = 958.80000000 (net 1.00000000)" in text
    assert "✗ the inputs moved since computed" in text


def test_the_fills_link_opens_exactly_the_months_fills(finance_client, settled_march):
    FillFactory(symbol=BTC, filled_at=_at(5))  # another participant's
    FillFactory(participant=settled_march.participant, symbol="ETHUSDT-PERP", filled_at=_at(5))
    page = finance_client.get(f"/settlements/settlement/{settled_march.pk}/change/")
    link = re.search(r'href="(/trading/mmfill/\?[^"]+)"', page.content.decode())
    assert link is not None

    fills = finance_client.get(html.unescape(link[1]))
    assert fills.status_code == 200
    assert fills.redirect_chain == []  # not bounced to ?e=1 for a disallowed lookup
    assert fills.context["cl"].result_count == 2


def test_the_page_escapes_what_it_shows(finance_client, settled_march):
    _funding(settled_march.participant, _at(4), "0", "<b>bold-id</b>")
    response = finance_client.get(f"/settlements/settlement/{settled_march.pk}/change/")
    assert "&lt;b&gt;bold-id&lt;/b&gt;" in response.content.decode()
    assert "<b>bold-id</b>" not in response.content.decode()


def test_a_month_without_activity_says_so(finance_client):
    settlement = SettlementFactory(period_start=MARCH)
    text = _text(_page(finance_client, settlement))
    assert "No fill this month." in text
    assert "Payments: 0, Σ 0 USDT received." in text
    assert "No performance row for this symbol and month." in text


def test_the_page_costs_the_same_queries_however_many_fills_and_days(finance_client, settled_march):
    def queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as ctx:
            page = _page(finance_client, settled_march)
        return len(ctx.captured_queries), page

    few, _ = queries()
    participant = settled_march.participant
    for day in range(3, 31):
        for minute in (0, 1, 2):
            FillFactory(participant=participant, symbol=BTC, filled_at=_at(day, 10, minute))
        _funding(participant, _at(day, 16), "1", f"fund-more-{day}")
        PerformanceDailyFactory(participant=participant, symbol=BTC, day=dt.date(2025, 3, day))
    many, page = queries()

    assert few == many
    # 86 fills in the month; the page lists the first 50 and links to the rest.
    text = _text(page)
    assert "Fills 86 " in text
    assert "2025-03-19 10:00:00" in text  # the 50th
    assert "2025-03-19 10:01:00" not in text  # the 51st
