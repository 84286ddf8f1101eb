"""factory-boy factories for the domain models (rows created straight in the
database, the way a test's precondition needs them)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import factory
from django.utils import timezone

from participants.models import Participant
from pools.models import PoolConfig, PoolMember
from settlements.calculation import compute
from settlements.models import ParticipantMonth, Settlement
from trading.models import MMFill, MMFundingPayment, MMOrder


class ParticipantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Participant

    id = factory.LazyFunction(uuid.uuid4)
    short_id = factory.LazyAttribute(lambda o: str(o.id)[:8])
    name = factory.Sequence(lambda n: f"Liquidity Co {n}")
    user_id = factory.Sequence(lambda n: f"user-{n}")
    account_id = factory.Sequence(lambda n: f"acct-{n}")
    tier = "TIER_2"


class PoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PoolConfig

    symbol = factory.Sequence(lambda n: f"SYM{n}USDT-PERP")
    gamma = Decimal("0.1")
    kappa = Decimal("1.5")
    vol_lookback_seconds = 300
    tau = Decimal("1")
    num_levels = 3
    level_spacing_bps = Decimal("2")
    min_spread_bps = Decimal("2")
    max_spread_bps = Decimal("50")
    order_size_usdt = Decimal("1000")
    max_pool_position_usdt = Decimal("100000")
    max_pool_loss_usdt = Decimal("5000")


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PoolMember

    pool = factory.SubFactory(PoolFactory)
    participant = factory.SubFactory(ParticipantFactory)
    weight = Decimal("1")
    max_position_usdt = Decimal("10000")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MMOrder

    participant = factory.SubFactory(ParticipantFactory)
    symbol = "BTCUSDT-PERP"
    side = "BUY"
    level = 0
    price = Decimal("60000")
    size = Decimal("0.01")
    status = "OPEN"
    client_order_id = factory.Sequence(lambda n: f"mm-test-{n}")
    created_at = factory.LazyFunction(timezone.now)


class FillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MMFill

    participant = factory.SubFactory(ParticipantFactory)
    fill_id = factory.Sequence(lambda n: f"fill-{n}")
    client_order_id = factory.Sequence(lambda n: f"mm-test-fill-{n}")
    symbol = "BTCUSDT-PERP"
    side = "BUY"
    price = Decimal("60000")
    size = Decimal("0.01")
    fee_usdt = Decimal("-0.06")
    liquidity = "MAKER"
    filled_at = factory.LazyFunction(timezone.now)


class FundingPaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MMFundingPayment

    participant = factory.SubFactory(ParticipantFactory)
    payment_id = factory.Sequence(lambda n: f"funding-{n}")
    symbol = "BTCUSDT-PERP"
    amount_usdt = Decimal("1")
    paid_at = factory.LazyFunction(timezone.now)


class SettlementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Settlement
        skip_postgeneration_save = True

    participant = factory.SubFactory(ParticipantFactory)
    symbol = "BTCUSDT-PERP"
    period_start = factory.LazyFunction(lambda: timezone.now().date().replace(day=1))
    period_end = factory.LazyAttribute(
        lambda o: (o.period_start.replace(day=28) + timezone.timedelta(days=4)).replace(day=1)
    )
    realized_pnl_usdt = Decimal("1200.50")
    fees_usdt = Decimal("-35.25")
    funding_usdt = Decimal("-10")
    gross_usdt = Decimal("1225.75")
    revenue_model = "KEEP_ALL"
    net_usdt = Decimal("1225.75")
    participant_month = factory.LazyAttribute(
        lambda o: participant_month_of(o.participant, o.period_start, o.period_end)
    )
    inputs_sha256 = factory.LazyAttribute(lambda o: o.participant_month.inputs_sha256)

    @factory.post_generation
    def month_totals(obj: Settlement, create: bool, extracted: object, **kwargs: object) -> None:
        """The participant-month states its settlements' sums, as the job's would."""
        if create:
            participant_month_totals(obj.participant_month)


def participant_month_of(
    participant: Participant, first: dt.date, end: dt.date
) -> ParticipantMonth:
    """The participant's month, created on first use with the hash of the inputs
    as the database holds them now, as the monthly job records it: approval
    checks it (the figures are the test's own)."""
    month, _ = ParticipantMonth.objects.get_or_create(
        participant=participant,
        period_start=first,
        defaults={
            "period_end": end,
            "revenue_model": participant.revenue_model,
            "revenue_share_pct": participant.revenue_share_pct,
            "inputs_sha256": compute(participant, first).inputs_sha256,
        },
    )
    return month


def participant_month_totals(month: ParticipantMonth) -> None:
    rows = list(month.settlements.all())
    gross = sum((s.gross_usdt for s in rows), Decimal(0))
    share = sum((s.platform_share_usdt for s in rows), Decimal(0))
    ParticipantMonth.objects.filter(pk=month.pk).update(
        gross_usdt=gross,
        positive_gross_usdt=sum((max(Decimal(0), s.gross_usdt) for s in rows), Decimal(0)),
        cumulative_gross_usdt=gross,
        high_water_mark_after_usdt=max(Decimal(0), gross),
        share_base_usdt=max(Decimal(0), gross),
        platform_share_usdt=share,
        net_usdt=gross - share,
    )


class PerformanceDailyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "performance.PerformanceDaily"

    participant = factory.SubFactory(ParticipantFactory)
    symbol = "BTCUSDT-PERP"
    day = factory.LazyFunction(lambda: timezone.now().date())
    samples = 8640
    uptime = Decimal("0.950000")
    avg_spread_bps = Decimal("4.5000")
    avg_depth_usdt = Decimal("25000")
    trade_count = 40
    volume_usdt = Decimal("120000.50")
    realized_pnl_usdt = Decimal("35.25")
    q_score = Decimal("0.5")
    efficiency = Decimal("1")
