"""Monthly settlement: the figures to the last quantum for both revenue models,
the high-water mark carrying losses forward, the terms in force at the start of
the month, idempotent creation, the inputs hash at approval, and the guards of
recalculation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from common.actors import Actor
from common.exceptions import Conflict, Unprocessable
from common.models import AuditLog
from participants import services as participant_services
from participants.models import ParticipantTerms
from settlements import services
from settlements.calculation import bounds, next_month
from settlements.models import Settlement
from tests.factories import ParticipantFactory
from tests.settlements.helpers import (
    AUG,
    BTC,
    ETH,
    FIN,
    JUL,
    SEP,
    D,
    at,
    fill,
    funding,
    settle,
    split,
    the,
)

pytestmark = pytest.mark.django_db


def test_a_percentage_split_month_to_the_last_quantum() -> None:
    lp = split("20")
    fill(lp, AUG, realised="1000.12345678", fee="-1.00000001")  # a maker rebate
    fill(lp, AUG, realised="-250.5", fee="2.25", side="SELL")
    funding(lp, AUG, "-10.33333333")
    funding(lp, AUG, "3.1")
    fill(lp, JUL, realised="99999", fee="0", filled_at=at(AUG, 1, 0) - dt.timedelta(microseconds=1))
    fill(lp, SEP, realised="99999", fee="0", filled_at=at(SEP, 1, 0))  # the next month, half-open

    (settlement,) = settle(AUG)

    assert settlement.realized_pnl_usdt == D("749.62345678")
    assert settlement.fees_usdt == D("1.24999999")
    assert settlement.funding_usdt == D("-7.23333333")
    # gross = realised − fees + funding
    assert settlement.gross_usdt == D("741.14012346")
    assert (settlement.fill_count, settlement.funding_count) == (2, 2)
    month = settlement.participant_month
    assert month.high_water_mark_usdt == 0
    assert month.share_base_usdt == D("741.14012346")
    # 20% of 741.14012346 = 148.228024692 → 148.22802469 (half-even, 8 places)
    assert month.platform_share_usdt == D("148.22802469")
    assert settlement.platform_share_usdt == D("148.22802469")  # the one symbol: all of it
    assert settlement.net_usdt == D("592.91209877")
    assert settlement.net_usdt + settlement.platform_share_usdt == settlement.gross_usdt
    assert (settlement.period_start, settlement.period_end) == (AUG, SEP)
    assert settlement.state == "PENDING"
    assert len(settlement.inputs_sha256) == 64
    assert settlement.inputs_sha256 == month.inputs_sha256
    audit = AuditLog.objects.get(entity_type="settlement", entity_id=str(settlement.pk))
    assert (audit.action, audit.actor, audit.to_state) == ("create", "test-job", "PENDING")


def test_keep_all_pays_the_whole_gross_and_still_tracks_the_mark() -> None:
    lp = ParticipantFactory(revenue_model="KEEP_ALL", state="ACTIVE")
    fill(lp, AUG, realised="500", fee="-5")
    (settlement,) = settle(AUG)
    assert (settlement.gross_usdt, settlement.platform_share_usdt, settlement.net_usdt) == (
        D("505"),
        0,
        D("505"),
    )
    assert settlement.participant_month.cumulative_gross_usdt == D("505")
    assert settlement.participant_month.high_water_mark_after_usdt == D("505")
    assert settlement.revenue_model == "KEEP_ALL"


def test_a_loss_month_pays_no_share_and_is_made_good_before_the_next_share() -> None:
    lp = split("20")
    fill(lp, JUL, realised="1000", fee="0")
    fill(lp, AUG, realised="-300", fee="0")
    fill(lp, SEP, realised="500", fee="0")
    jul, aug = settle(JUL)[0], settle(AUG)[0]
    assert jul.platform_share_usdt == D("200")  # 20% of 1000
    assert (aug.gross_usdt, aug.platform_share_usdt, aug.net_usdt) == (D("-300"), 0, D("-300"))
    assert aug.participant_month.high_water_mark_usdt == D("1000")
    assert aug.participant_month.cumulative_gross_usdt == D("700")
    with pytest.raises(Unprocessable, match="has not ended"):
        settle(dt.date(timezone.now().year, timezone.now().month, 1))
    sep = settle(SEP)[0]
    # 500 of profit, of which 300 makes good August's loss: the share is on 200.
    assert sep.participant_month.high_water_mark_usdt == D("1000")
    assert sep.participant_month.cumulative_gross_usdt == D("1200")
    assert sep.participant_month.high_water_mark_after_usdt == D("1200")
    assert sep.participant_month.share_base_usdt == D("200")
    assert sep.platform_share_usdt == D("40")
    assert sep.net_usdt == D("460")


def test_the_pct_in_force_at_the_start_of_the_month_applies() -> None:
    lp = split("20")
    fill(lp, AUG, realised="100", fee="0")
    # Changed in the middle of August: applies from September.
    participant_services.participant_update(
        participant=lp, updates={"revenue_share_pct": D("50")}, actor=Actor("olga-ops")
    )
    ParticipantTerms.objects.filter(participant=lp, revenue_share_pct=D("50")).update(
        effective_at=at(AUG, 15)
    )
    fill(lp, SEP, realised="100", fee="0")
    assert settle(AUG)[0].platform_share_usdt == D("20")
    september = settle(SEP)[0]
    assert (september.revenue_share_pct, september.platform_share_usdt) == (D("50"), D("50"))


def test_one_settlement_per_participant_symbol_month_and_a_second_run_creates_nothing() -> None:
    a, b = split(), ParticipantFactory(state="ACTIVE")
    fill(a, AUG, realised="1", fee="0")
    fill(a, AUG, realised="2", fee="0", symbol=ETH)
    funding(b, AUG, "5")  # funding alone is activity too
    ParticipantFactory(state="ACTIVE")  # no activity: no settlement
    created = settle(AUG)
    assert sorted((str(s.participant_id), s.symbol) for s in created) == sorted(
        [(str(a.pk), BTC), (str(a.pk), ETH), (str(b.pk), BTC)]
    )
    before = list(Settlement.objects.values_list("id", "gross_usdt", "inputs_sha256"))
    assert settle(AUG) == []
    call_command("settle_month", "2026-08")
    assert list(Settlement.objects.values_list("id", "gross_usdt", "inputs_sha256")) == before


def test_approval_refuses_when_the_inputs_moved_and_a_rejected_month_is_recalculated() -> None:
    lp = split("10")
    fill(lp, AUG, realised="100", fee="0")
    (settlement,) = settle(AUG)
    fill(lp, AUG, realised="50", fee="0")  # a late fill of August
    with pytest.raises(Conflict, match="inputs changed"):
        services.settlement_approve(settlement=settlement, actor=FIN)
    assert the(lp, AUG).state == "PENDING"

    rejected = services.settlement_reject(settlement=settlement, actor=FIN, reason="late fill")
    again = services.settlement_recalculate(settlement=rejected, actor=FIN, reason="late fill")
    assert (again.state, again.gross_usdt, again.platform_share_usdt) == (
        "PENDING",
        D("150"),
        D("15"),
    )
    approved = services.settlement_approve(settlement=again, actor=FIN)
    assert approved.state == "APPROVED"
    audit = AuditLog.objects.filter(entity_id=str(settlement.pk), action="approve").get()
    assert approved.inputs_sha256 in audit.reason


def test_a_month_whose_mark_a_later_month_carries_cannot_be_recalculated_alone() -> None:
    lp = split("10")
    fill(lp, JUL, realised="100", fee="0")
    fill(lp, AUG, realised="100", fee="0")
    jul, _ = settle(JUL)[0], settle(AUG)[0]
    rejected = services.settlement_reject(settlement=jul, actor=FIN, reason="check")
    with pytest.raises(Conflict, match="2026-08"):
        services.settlement_recalculate(settlement=rejected, actor=FIN)
    services.settlement_reject(settlement=the(lp, AUG), actor=FIN, reason="check")
    assert services.settlement_recalculate(settlement=rejected, actor=FIN).state == "PENDING"


def test_bad_months_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="1st"):
        bounds(dt.date(2026, 10, 2))
    assert next_month(dt.date(2026, 12, 1)) == dt.date(2027, 1, 1)
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("settle_month", "October")
