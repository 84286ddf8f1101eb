"""The worker's ORM store against the real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.models import AuditLog, OutboxEvent
from pools.leases import StaleLease, lease_acquire, lease_release
from pools.models import PoolConfig
from quoting_worker.adapters import store
from quoting_worker.core.engine import PoolEngine
from quoting_worker.core.member import OrderState
from quoting_worker.core.ports import FakeClock
from quoting_worker.core.types import (
    Fill,
    FundingPayment,
    Instrument,
    MemberStatus,
    PlaceOrder,
    PoolMode,
    Side,
)
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from trading.models import MMFill, MMFundingPayment, MMOrder

pytestmark = pytest.mark.django_db

BTC = Instrument("BTCUSDT-PERP", Decimal("0.1"), Decimal("0.001"), 1, Decimal("5"))
NS = 1_700_000_000_000_000_000


@pytest.fixture
def pool():
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    MemberFactory(pool=pool, participant=ParticipantFactory(state="ACTIVE"), weight=Decimal(2))
    return pool


def _place(participant_id: str, n: int, side: Side = Side.BUY, lots: int = 10) -> PlaceOrder:
    return PlaceOrder(
        f"mm-x-BTCUSDT-PERP-0-{side}-{n}", participant_id, "acct", side, 0, 600_000, lots
    )


def test_pool_setup_maps_config_and_members(pool):
    suspended = ParticipantFactory(state="SUSPENDED")
    MemberFactory(pool=pool, participant=suspended)
    MemberFactory(pool=pool, participant=ParticipantFactory(state="TERMINATED"))
    setup = store.pool_setup(symbol="BTCUSDT-PERP")
    assert setup is not None
    assert setup.mode is PoolMode.PAUSED
    assert setup.params.gamma == 0.1
    assert setup.params.order_size_usdt == Decimal("1000.00000000")
    assert [m.status for m in setup.members] == [MemberStatus.ACTIVE, MemberStatus.SUSPENDED]
    assert setup.members[0].weight == Decimal(2)
    assert store.pool_setup(symbol="NOPE-PERP") is None


def test_pool_setups_read_any_number_of_pools_in_two_queries(pool, django_assert_num_queries):
    """The worker re-reads every hosted pool each interval: named pools, and with
    `every_enabled` the enabled ones too, never an archived one, each with only
    its own members."""
    eth = PoolFactory(symbol="ETHUSDT-PERP", enabled=True)
    trader = ParticipantFactory(state="ACTIVE")
    MemberFactory(pool=eth, participant=trader, weight=Decimal(5))
    PoolFactory(symbol="SOLUSDT-PERP", enabled=True, archived_at=timezone.now())
    PoolFactory(symbol="XRPUSDT-PERP", enabled=False)

    with django_assert_num_queries(2):
        setups = store.pool_setups(symbols=["BTCUSDT-PERP", "NOPE-PERP"], every_enabled=True)
    assert sorted(setups) == ["BTCUSDT-PERP", "ETHUSDT-PERP"]
    assert [m.weight for m in setups["BTCUSDT-PERP"].members] == [Decimal(2)]
    assert [m.weight for m in setups["ETHUSDT-PERP"].members] == [Decimal(5)]
    assert setups["ETHUSDT-PERP"].user_ids == {trader.account_id: trader.user_id}
    assert sorted(store.pool_setups(symbols=["XRPUSDT-PERP", "SOLUSDT-PERP"])) == ["XRPUSDT-PERP"]
    assert store.pool_setups() == {}


def test_orders_and_fills_are_recorded_once_with_the_order_following(pool):
    token, _ = lease_acquire(symbol="BTCUSDT-PERP", owner="w1")
    pid = str(pool.members.get().participant_id)
    order = _place(pid, 1)
    store.orders_record(symbol="BTCUSDT-PERP", token=token, instrument=BTC, placed=[(order, NS)])
    row = MMOrder.objects.get()
    assert (row.status, row.price, row.size, row.fencing_token) == (
        "PENDING",
        Decimal("60000.00000000"),
        Decimal("0.01000000"),
        token,
    )
    store.orders_record(
        symbol="BTCUSDT-PERP",
        token=token,
        instrument=BTC,
        changes=[store.OrderChange(order.client_order_id, store.OrderStatus.OPEN, "v-1")],
    )
    fill = Fill("f-1", order.client_order_id, Side.BUY, 600_000, 4, Decimal("-0.024"), NS)
    assert (
        store.fills_record(symbol="BTCUSDT-PERP", token=token, instrument=BTC, fills=[(pid, fill)])
        == 1
    )
    assert (
        store.fills_record(symbol="BTCUSDT-PERP", token=token, instrument=BTC, fills=[(pid, fill)])
        == 0
    )
    row.refresh_from_db()
    assert (row.status, row.venue_order_id, row.filled_size) == (
        "PARTIALLY_FILLED",
        "v-1",
        Decimal("0.004"),
    )
    rest = Fill("f-2", order.client_order_id, Side.BUY, 600_000, 6, Decimal("-0.036"), NS + 1)
    store.fills_record(symbol="BTCUSDT-PERP", token=token, instrument=BTC, fills=[(pid, rest)])
    row.refresh_from_db()
    assert (row.status, row.filled_size) == ("FILLED", Decimal("0.01"))
    assert row.closed_at is not None
    # A late "accepted" never reopens a terminal order.
    store.orders_record(
        symbol="BTCUSDT-PERP",
        token=token,
        instrument=BTC,
        changes=[store.OrderChange(order.client_order_id, store.OrderStatus.OPEN)],
    )
    row.refresh_from_db()
    assert row.status == "FILLED"
    assert MMFill.objects.count() == 2


def test_status_changes_are_one_update_per_run_and_keep_the_venues_order(pool):
    """A kill answers thousands of cancels at once: a run of changes that set the
    same values is one UPDATE. Runs apply in order, so an order accepted and then
    cancelled keeps its venue id, and an "accepted" after a cancel reopens nothing."""
    token, _ = lease_acquire(symbol="BTCUSDT-PERP", owner="w1")
    pid = str(pool.members.get().participant_id)
    orders = [_place(pid, n) for n in range(300)]
    store.orders_record(
        symbol="BTCUSDT-PERP", token=token, instrument=BTC, placed=[(o, NS) for o in orders]
    )
    first, late = orders[0].client_order_id, orders[1].client_order_id
    cancelled = [store.OrderChange(o.client_order_id, store.OrderStatus.CANCELLED) for o in orders]
    changes = [
        store.OrderChange(first, store.OrderStatus.OPEN, "v-0"),
        *cancelled,
        store.OrderChange(late, store.OrderStatus.OPEN, "v-1"),
    ]
    with CaptureQueriesContext(connection) as queries:
        store.orders_record(symbol="BTCUSDT-PERP", token=token, instrument=BTC, changes=changes)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 3  # three runs: accepted, 300 cancels, accepted
    rows = {row.client_order_id: row for row in MMOrder.objects.all()}
    assert {row.status for row in rows.values()} == {"CANCELLED"}
    assert all(row.closed_at is not None for row in rows.values())
    assert rows[first].venue_order_id == "v-0"
    assert not rows[late].venue_order_id  # came after its cancel: not applied


def test_a_stale_token_writes_nothing(pool):
    old, _ = lease_acquire(symbol="BTCUSDT-PERP", owner="w1")
    new, previous = lease_acquire(symbol="BTCUSDT-PERP", owner="w2")
    assert previous == "w1"
    assert new == old + 1
    pid = str(pool.members.get().participant_id)
    with pytest.raises(StaleLease):
        store.orders_record(
            symbol="BTCUSDT-PERP", token=old, instrument=BTC, placed=[(_place(pid, 1), NS)]
        )
    fill = Fill("f-1", "mm-x-BTCUSDT-PERP-0-BUY-1", Side.BUY, 600_000, 4, Decimal(0), NS)
    with pytest.raises(StaleLease):
        store.fills_record(symbol="BTCUSDT-PERP", token=old, instrument=BTC, fills=[(pid, fill)])
    assert not MMOrder.objects.exists()
    assert not MMFill.objects.exists()
    assert lease_release(symbol="BTCUSDT-PERP", owner="w1", token=old) is False
    assert lease_release(symbol="BTCUSDT-PERP", owner="w2", token=new) is True


def test_funding_is_recorded_once_and_only_with_the_current_token(pool):
    old, _ = lease_acquire(symbol="BTCUSDT-PERP", owner="w1")
    member = pool.members.get()
    pid, account = str(member.participant_id), member.participant.account_id
    payment = FundingPayment("fund-btc-1", account, Decimal("-1.25"), NS)
    assert store.funding_record(symbol="BTCUSDT-PERP", token=old, payments=[(pid, payment)]) == 1
    assert store.funding_record(symbol="BTCUSDT-PERP", token=old, payments=[(pid, payment)]) == 0
    new, _ = lease_acquire(symbol="BTCUSDT-PERP", owner="w2")
    later = FundingPayment("fund-btc-2", account, Decimal("0.5"), NS + 1)
    with pytest.raises(StaleLease):
        store.funding_record(symbol="BTCUSDT-PERP", token=old, payments=[(pid, later)])
    row = MMFundingPayment.objects.get()
    assert (row.payment_id, row.amount_usdt, str(row.participant_id)) == (
        "fund-btc-1",
        Decimal("-1.25"),
        pid,
    )
    assert new == old + 1


def test_restore_rebuilds_the_engine_from_the_database(pool):
    token, _ = lease_acquire(symbol="BTCUSDT-PERP", owner="w1")
    pid = str(pool.members.get().participant_id)
    buy, sell, unacked = _place(pid, 1), _place(pid, 2, Side.SELL), _place(pid, 3)
    store.orders_record(
        symbol="BTCUSDT-PERP",
        token=token,
        instrument=BTC,
        placed=[(buy, NS), (sell, NS), (unacked, NS)],
        changes=[
            store.OrderChange(buy.client_order_id, store.OrderStatus.OPEN, "v-1"),
            store.OrderChange(sell.client_order_id, store.OrderStatus.OPEN, "v-2"),
        ],
    )
    fills = [
        (pid, Fill("f-1", buy.client_order_id, Side.BUY, 600_000, 10, Decimal("-0.06"), NS)),
        (pid, Fill("f-2", sell.client_order_id, Side.SELL, 600_100, 3, Decimal("-0.018"), NS + 5)),
    ]
    store.fills_record(symbol="BTCUSDT-PERP", token=token, instrument=BTC, fills=fills)
    account = pool.members.get().participant.account_id
    funding = [
        (pid, FundingPayment("fund-1", account, Decimal("-0.42"), NS + 7)),
        (pid, FundingPayment("fund-2", account, Decimal("0.12"), NS + 9)),
    ]
    assert store.funding_record(symbol="BTCUSDT-PERP", token=token, payments=funding) == 2
    data = store.restore_data(symbol="BTCUSDT-PERP", instrument=BTC)
    setup = store.pool_setup(symbol="BTCUSDT-PERP")
    engine = PoolEngine(
        instrument=BTC, params=setup.params, members=setup.members, clock=FakeClock()
    )
    boot = engine.restore(fills=data.fills, open_orders=data.open_orders, funding=data.funding)
    runtime = engine.members[pid].runtime
    assert runtime.position_lots == 7
    assert runtime.funding_usdt == Decimal("-0.30")
    # 3 lots of 0.001 BTC sold 10 USDT above the entry: 0.03 USDT.
    assert runtime.realised_pnl_usdt == Decimal("0.03")
    assert runtime.fees_usdt == Decimal("-0.078")
    states = {o.client_order_id: o.state for o in runtime.open_orders.values()}
    assert states == {
        sell.client_order_id: OrderState.OPEN,
        unacked.client_order_id: OrderState.UNKNOWN,
    }
    # The pool is PAUSED at boot: everything restored is cancelled first.
    assert {getattr(a, "client_order_id", None) for a in boot} >= set(states)


def test_halt_and_boot_pause_go_through_the_pool_service(pool):
    PoolConfig.objects.filter(pk=pool.pk)  # PAUSED at creation
    from common.actors import Actor
    from pools.services import pool_enable

    pool_enable(pool=pool, actor=Actor("olga"))
    assert (
        store.pool_boot_pause(symbol="BTCUSDT-PERP", worker_id="w1", reason="boot")
        is PoolMode.PAUSED
    )
    pool_enable(pool=pool, actor=Actor("olga"))
    assert (
        store.pool_halt(symbol="BTCUSDT-PERP", worker_id="w1", trigger="LOSS", detail="-6000")
        is True
    )
    assert (
        store.pool_halt(symbol="BTCUSDT-PERP", worker_id="w1", trigger="LOSS", detail="-6000")
        is False
    )
    assert (
        store.pool_boot_pause(symbol="BTCUSDT-PERP", worker_id="w1", reason="boot")
        is PoolMode.HALTED
    )
    audit = AuditLog.objects.filter(entity_id="BTCUSDT-PERP", action="halt").get()
    assert (audit.actor, audit.actor_kind) == ("w1", "quoter")
    assert OutboxEvent.objects.filter(topic="mm.risk.triggered.v1").count() == 1


def test_a_halt_that_loses_the_race_to_an_emergency_kill_is_on_record_all_the_same(
    pool, monkeypatch
):
    """The row read ACTIVE, then a person's kill committed before the halt took the
    lock: the halt is on record (HALTED), not an error that fails the timer."""
    from common.actors import Actor
    from pools import services as pool_services
    from pools.services import emergency_kill, pool_enable

    pool_enable(pool=pool, actor=Actor("olga"))
    real_halt = pool_services.pool_halt

    def killed_first(**kwargs):
        emergency_kill(actor=Actor("olga"), reason="desk kill")
        return real_halt(**kwargs)

    monkeypatch.setattr(pool_services, "pool_halt", killed_first)
    assert (
        store.pool_halt(symbol="BTCUSDT-PERP", worker_id="w1", trigger="STALE_DATA", detail="5 s")
        is False
    )
    assert PoolConfig.objects.get(pk=pool.pk).state == "HALTED"
