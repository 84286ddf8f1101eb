"""Retention (SPEC Part B.18): terminal orders and published outbox rows go
once past their retention, in small batches; open orders, orders of unknown
outcome, unpublished outbox rows and recent rows stay; fills stay, unlinked
from a deleted order but with its client order id."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from common.models import OutboxEvent
from common.services import outbox_prune
from tests.factories import FillFactory, OrderFactory, ParticipantFactory
from trading.models import MMFill, MMOrder
from trading.retention import orders_prune
from trading.tasks import prune_orders

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=31)
RECENT = NOW - dt.timedelta(days=29)


def order(status: str, closed_at: dt.datetime | None, **kwargs: object) -> MMOrder:
    return OrderFactory(status=status, closed_at=closed_at, created_at=OLD, **kwargs)


def test_terminal_orders_past_the_retention_go_and_their_fills_stay_unlinked() -> None:
    member = ParticipantFactory()
    filled = order("FILLED", OLD, participant=member)
    partly = order("CANCELLED", OLD, participant=member)  # partly filled, then cancelled
    gone = [
        order("CANCELLED", OLD, participant=member),
        order("REJECTED", OLD, participant=member),
        order("CANCELLED", OLD - dt.timedelta(days=300), participant=member),
        filled,
        partly,
    ]
    fills = [
        FillFactory(order=o, client_order_id=o.client_order_id, participant=member)
        for o in (filled, partly)
    ]
    recent_filled = order("FILLED", RECENT, participant=member)
    recent_fill = FillFactory(
        order=recent_filled, client_order_id=recent_filled.client_order_id, participant=member
    )
    kept = [
        recent_filled,
        order("CANCELLED", RECENT, participant=member),
        order("OPEN", None, participant=member),
        order("PENDING", None, participant=member),  # unknown outcome: the rebuild needs it
        order("PARTIALLY_FILLED", None, participant=member),
        # Terminal without a close time (never written so, but never guessed at).
        order("CANCELLED", None, participant=member),
    ]

    assert orders_prune(now=NOW, keep=dt.timedelta(days=30), batch=2) == len(gone)

    left = set(MMOrder.objects.values_list("client_order_id", flat=True))
    assert left == {o.client_order_id for o in kept}
    # Every fill is still there, with its order's id; only the link to the row went.
    for fill, its_order in zip(fills, (filled, partly), strict=True):
        fill.refresh_from_db()
        assert fill.order_id is None
        assert fill.client_order_id == its_order.client_order_id
    recent_fill.refresh_from_db()
    assert recent_fill.order_id == recent_filled.pk
    assert MMFill.objects.count() == 3
    assert orders_prune(now=NOW, keep=dt.timedelta(days=30), batch=2) == 0  # nothing twice


def test_the_daily_task_uses_order_retention_days() -> None:
    now = timezone.now()
    old = OrderFactory(status="CANCELLED", closed_at=now - dt.timedelta(days=11))
    young = OrderFactory(status="CANCELLED", closed_at=now - dt.timedelta(days=9))
    with override_settings(ORDER_RETENTION=dt.timedelta(days=10)):
        assert prune_orders() == 1
    assert list(MMOrder.objects.values_list("pk", flat=True)) == [young.pk]
    assert not MMOrder.objects.filter(pk=old.pk).exists()


def outbox(published_at: dt.datetime | None) -> OutboxEvent:
    return OutboxEvent.objects.create(
        topic="mm.pool.state",
        key="BTCUSDT-PERP",
        event_type="t",
        payload={},
        published_at=published_at,
    )


def test_published_outbox_rows_past_the_retention_go_unpublished_ones_never() -> None:
    gone = [outbox(NOW - dt.timedelta(days=8)) for _ in range(5)]
    kept = [
        outbox(None),  # the relay still owes it to Kafka, however old
        outbox(NOW - dt.timedelta(days=6)),
        outbox(None),
    ]
    OutboxEvent.objects.filter(pk=kept[0].pk).update(created_at=NOW - dt.timedelta(days=60))
    assert outbox_prune(now=NOW, keep=dt.timedelta(days=7), batch=2) == len(gone)
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {o.pk for o in kept}


@pytest.mark.parametrize("prune", [orders_prune, outbox_prune])
def test_a_batch_below_one_is_refused_by_name(prune) -> None:
    with pytest.raises(ValueError, match="batch must be at least 1, got 0"):
        prune(batch=0)
