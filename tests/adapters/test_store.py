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
    BookHeartbeat,
    BookSnapshot,
    CancelOrder,
    Command,
    Fill,
    FundingPayment,
    Instrument,
    InstrumentStatus,
    MarkPrice,
    MemberStatus,
    OrderAccepted,
    OrderCancelled,
    PlaceOrder,
    PoolMode,
    PublicTrade,
    Side,
    Timer,
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


# ---------------------------------------------------------------- PEPE: a 1e-9 tick

PEPE = Instrument("PEPEUSDT-PERP", Decimal("0.000000001"), Decimal(1000), 1, Decimal("5"))
PEPE_MID = 10_006  # ticks: 0.000010006 USDT, which 8 places would make 0.00001001


def _pepe_engine(setup, clock: FakeClock) -> PoolEngine:
    return PoolEngine(
        instrument=PEPE, params=setup.params, members=setup.members, clock=clock, mode=setup.mode
    )


def _warm_and_quote(engine: PoolEngine, clock: FakeClock) -> list:
    """A PEPE book around PEPE_MID, a mark and trades for σ, then the pool enabled:
    the engine's own ladder, at whatever ticks A-S puts it."""
    ms = 1_000_000
    bids = tuple((PEPE_MID - 4 - 3 * i, 5_000) for i in range(10))
    asks = tuple((PEPE_MID + 4 + 3 * i, 5_000) for i in range(10))
    engine.handle(InstrumentStatus(halted=False, ts_ns=clock.now_ns()))
    engine.handle(BookSnapshot(1, bids, asks, clock.now_ns()))
    engine.handle(MarkPrice(PEPE.price(PEPE_MID), clock.now_ns()))
    for i in range(25):
        clock.advance(1000 * ms)
        engine.handle(BookHeartbeat(1, clock.now_ns()))
        engine.handle(PublicTrade(PEPE_MID + (3 if i % 2 else -3), 10, clock.now_ns()))
    actions = engine.handle(Command("enable", clock.now_ns()))
    clock.advance(500 * ms)
    actions += engine.handle(BookHeartbeat(1, clock.now_ns()))
    return actions + engine.handle(Timer(clock.now_ns()))


def _venue(engine: PoolEngine, clock: FakeClock, token: int, actions: list) -> list[PlaceOrder]:
    """What the runquoter and the venue make of the engine's actions: placements
    journalled and accepted, cancels confirmed, each stored; until the engine is
    quiet. Returns the placements."""
    placed: list[PlaceOrder] = []
    while actions:
        places = [a for a in actions if isinstance(a, PlaceOrder)]
        cancels = [a for a in actions if isinstance(a, CancelOrder)]
        store.orders_record(
            symbol=PEPE.symbol,
            token=token,
            instrument=PEPE,
            placed=[(o, clock.now_ns()) for o in places],
            changes=[
                *(
                    store.OrderChange(
                        o.client_order_id, store.OrderStatus.OPEN, f"v-{o.client_order_id}"
                    )
                    for o in places
                ),
                *(
                    store.OrderChange(c.client_order_id, store.OrderStatus.CANCELLED)
                    for c in cancels
                ),
            ],
        )
        placed += places
        actions = []
        for o in places:
            actions += engine.handle(OrderAccepted(o.client_order_id, "v", clock.now_ns()))
        for c in cancels:
            actions += engine.handle(OrderCancelled(c.client_order_id, clock.now_ns()))
    return placed


def _state(engine: PoolEngine) -> dict:
    """What a restart must give back, member by member, and the pool's own levels."""
    members = {
        pid: (
            m.runtime.position_lots,
            m.runtime.cost_basis_usdt,
            m.runtime.avg_entry_price,
            m.runtime.realised_pnl_usdt,
            m.runtime.fees_usdt,
            {
                o.client_order_id: (o.side, o.price_ticks, o.remaining_lots, o.level)
                for o in m.runtime.open_orders.values()
            },
        )
        for pid, m in engine.members.items()
    }
    own = {side: dict(levels) for side, levels in engine.orders.own_levels.items()}
    return {"members": members, "own_levels": own}


def test_a_pepe_pool_comes_back_from_a_restart_at_its_exact_ticks():
    """A 1e-9 tick pool quotes, is filled (a partial, a round trip) and restarts:
    positions, cost basis, average entry, realised PnL, fees, resting orders and
    own levels are what they were. Rounded to 8 places, 0.000010006 came back as
    10,010 ticks: a wrong cost basis, wrong PnL, and own levels where MMS has none."""
    pool = PoolFactory(
        symbol=PEPE.symbol,
        gamma=Decimal("0.00001"),
        kappa=Decimal("1000000000"),
        min_spread_bps=Decimal("3"),
        max_spread_bps=Decimal("120"),
        level_spacing_bps=Decimal("3"),
        order_size_usdt=Decimal("500"),
        max_pool_position_usdt=Decimal("40000"),
    )
    for weight in (2, 1):
        MemberFactory(
            pool=pool,
            participant=ParticipantFactory(state="ACTIVE"),
            weight=Decimal(weight),
            max_position_usdt=Decimal("20000"),
        )
    token, _ = lease_acquire(symbol=PEPE.symbol, owner="w1")
    setup = store.pool_setup(symbol=PEPE.symbol)
    clock = FakeClock()
    live = _pepe_engine(setup, clock)
    placed = _venue(live, clock, token, _warm_and_quote(live, clock))
    assert placed, "the engine quoted"
    assert any(o.price_ticks % 10 for o in placed)  # ticks 8 places cannot hold

    # Each member: its best bid filled in part, then its best ask in full (a round
    # trip that realises PnL), each stored with that PnL before the engine books it
    # (as the runquoter does), the engine's answers to each carried out.
    fills = []
    for pid in live.members:
        mine = [o for o in placed if o.participant_id == pid and o.level == 0]
        bid = next(o for o in mine if o.side is Side.BUY)
        ask = next(o for o in mine if o.side is Side.SELL)
        fills += [
            (
                pid,
                Fill(
                    f"{pid}-b",
                    bid.client_order_id,
                    Side.BUY,
                    bid.price_ticks,
                    bid.size_lots // 2 or 1,
                    Decimal("-0.0001"),
                    clock.now_ns(),
                ),
            ),
            (
                pid,
                Fill(
                    f"{pid}-a",
                    ask.client_order_id,
                    Side.SELL,
                    ask.price_ticks,
                    ask.size_lots,
                    Decimal("-0.0002"),
                    clock.now_ns() + 1,
                ),
            ),
        ]
    for pid, fill in fills:
        runtime = live.members[pid].runtime
        store.fills_record(
            symbol=PEPE.symbol,
            token=token,
            instrument=PEPE,
            fills=[(pid, fill)],
            realised={fill.fill_id: runtime.realised_by(fill)},
        )
        _venue(live, clock, token, live.handle(fill))
    before = _state(live)
    assert any(state[3] for state in before["members"].values())  # PnL was realised

    # The restart: a new engine from what the database holds.
    data = store.restore_data(symbol=PEPE.symbol, instrument=PEPE)
    restarted = _pepe_engine(store.pool_setup(symbol=PEPE.symbol), FakeClock())
    restarted.restore(fills=data.fills, open_orders=data.open_orders, funding=data.funding)
    assert _state(restarted) == before
    stored = sorted(format(p, "f") for p in MMFill.objects.values_list("price", flat=True))
    assert stored == sorted(format(PEPE.price(f.price_ticks), "f") for _, f in fills)
