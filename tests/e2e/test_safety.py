"""The safety guarantees end to end (SPEC Part A "Safety guarantees", B.5, B.9,
RELIABILITY.md), against the TradeX simulator as a real process, a real Kafka
broker, PostgreSQL and Redis.

Every kill-switch trigger (exchange halt, stale data, reject storm, position, loss)
halts the pool, takes every member order off the simulator's book,
publishes the halt and places nothing until a person resumes; a pause cancels
everything; a sequence gap closes the gate until the worker's snapshot request
resyncs the book, without halting; shadow mode places nothing; a runquoter
killed with SIGKILL leaves its orders to the venue's dead-man's switch, and
the next one boots every pool PAUSED and reconciles.

The worker runs in a thread of the test process (the `quoter` fixture), except
for the SIGKILL test, which runs `manage.py runquoter` as a subprocess.

The simulator's takers are uninformed, so a pool quoting on it earns the
spread and the maker rebate; the loss test moves the market against the pool's
position on demand (`POST /admin/market`).

The last tests pin product bugs these tests found (a stale pool row resuming a
tripped engine; rejects re-tripping a halted pool; rejects counted twice), now
fixed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from common.exceptions import Unprocessable
from common.models import AuditLog, OutboxEvent
from common.notify import POOL_CHANGED_CHANNEL
from common.redis import redis_client
from pools import services
from pools.models import PoolConfig
from quoting_worker.core.ids import ClientOrderIds
from quoting_worker.core.types import InstrumentStatus, Side
from quoting_worker.runner.upkeep import DEAD_MANS_SWITCH_MS
from tests.adapters.worker_harness import (
    TEST_SESSION_TIMEOUT_MS,
    live_status,
    place_directly,
    wait_for,
)
from tests.conftest import ROOT, free_port
from tests.e2e.conftest import TradeXAdmin, running_tradex
from tests.e2e.test_stack import (  # noqa: F401 - quoter and tradex are shared fixtures
    ETH,
    OPS,
    WEIGHTS,
    eth_pool,
    hosted,
    quoter,
    resting_ladders,
    tradex,
)
from tests.factories import MemberFactory, PoolFactory
from tests.figures import record
from tests.kafka import Bus, unique_group
from trading.models import MMFill, MMOrder

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNTS = tuple(WEIGHTS)
RISK_TOPIC = "mm.risk.triggered.v1"
STATE_TOPIC = "mm.state.changed.v1"
SIMULATED_TOPIC = "mm.quote.simulated.v1"
LIVE_ORDER_STATUSES = ("PENDING", "OPEN", "PARTIALLY_FILLED")

Quoter = Callable[..., Any]


# ---------------------------------------------------------------- helpers


def member_orders(tradex: TradeXAdmin) -> list[dict[str, Any]]:  # noqa: F811
    """Every member's open orders on the simulator's ETH book."""
    return [order for account in ACCOUNTS for order in tradex.open_orders(account, ETH)]


def book_empty(tradex: TradeXAdmin) -> bool:  # noqa: F811
    return not member_orders(tradex)


def both_members_quoting(tradex: TradeXAdmin) -> bool:  # noqa: F811
    return all(tradex.open_orders(account, ETH) for account in ACCOUNTS)


def placements(tradex: TradeXAdmin, since: float = 0.0) -> int:  # noqa: F811
    """Placement requests the simulator's Order Service has answered that arrived
    at or after `since` (wall-clock seconds, the simulator's request log)."""
    log = tradex.get("/admin/requests", route="place")["requests"]
    return sum(1 for request in log if request["t"] >= since)


def row(pool: PoolConfig) -> PoolConfig:
    return PoolConfig.objects.get(pk=pool.pk)


def risk_events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(topic=RISK_TOPIC, key=ETH).order_by("pk"))


def state_changes(to_state: str) -> list[OutboxEvent]:
    return [
        event
        for event in OutboxEvent.objects.filter(topic=STATE_TOPIC, key=ETH).order_by("pk")
        if event.payload["to_state"] == to_state
    ]


def status_beats(count: int, worker_id: str | None = None) -> dict[str, Any]:
    """Waits for `count` more live-status beats of the pool (one a second); the last."""
    first = wait_for("the pool's live status", lambda: live_status(ETH))
    version, worker = first["version"], worker_id or first["worker_id"]

    def later() -> dict[str, Any] | None:
        status = live_status(ETH)
        if status and status["worker_id"] == worker and status["version"] >= version + count:
            return status
        return None

    return dict(wait_for(f"{count} more status beats", later))


def assert_nothing_placed_while(tradex: TradeXAdmin, beats: int = 2) -> dict[str, Any]:  # noqa: F811
    """The book stays empty and no placement reaches the venue while the worker,
    ticking every 50 ms, publishes `beats` more status beats."""
    since = time.time()
    status = status_beats(beats)
    placed = placements(tradex, since)
    assert placed == 0, f"{placed} orders placed while the pool was not ACTIVE"
    assert book_empty(tradex), member_orders(tradex)
    return status


def start_quoting(running: Any, pool: PoolConfig, tradex: TradeXAdmin) -> None:  # noqa: F811
    wait_for("the worker to host ETH", lambda: hosted(running.worker))
    services.pool_resume(pool=row(pool), actor=OPS, note="e2e")
    wait_for("both members' orders on the simulator book", lambda: both_members_quoting(tradex))


def assert_halted_by(trigger: str, pool: PoolConfig, tradex: TradeXAdmin) -> PoolConfig:  # noqa: F811
    """The kill switch as a whole: the row HALTED by `trigger`, one risk event and
    one state change published, every member order off the book, HALTED in the
    live status, and nothing placed afterwards. The row."""
    halted_row = wait_for(
        f"the pool HALTED ({trigger})",
        lambda: (r := row(pool)).state == "HALTED" and r,
        timeout=30,
    )
    risk = risk_events()
    assert halted_row.state_reason.startswith(f"{trigger}:"), halted_row.state_reason
    assert [(e.payload["trigger"], e.payload["actor_kind"]) for e in risk] == [(trigger, "quoter")]
    halted = state_changes("HALTED")
    assert [(e.payload["from_state"], e.payload["action"]) for e in halted] == [("ACTIVE", "halt")]

    wait_for("every member order off the simulator book", lambda: book_empty(tradex))
    # The reason the live status gives is not checked here: see the xfail tests below.
    wait_for(
        "the halt in the live status",
        lambda: (s := live_status(ETH)) and s["mode"] == "HALTED" and not s["quoting"],
    )
    assert_nothing_placed_while(tradex)
    assert row(pool).state == "HALTED"  # nothing resumes by itself
    return halted_row


# ---------------------------------------------------------------- 1. exchange halt


def test_an_exchange_halt_halts_the_pool_cancels_everything_and_waits_for_a_person(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    with quoter() as running:
        start_quoting(running, pool, tradex)
        tradex.halt(ETH)

        assert_halted_by("EXCHANGE_HALT", pool, tradex)
        assert tradex.market()["symbols"][ETH]["halted"] is True

        # The exchange trades again: still nothing, until a person resumes with a note.
        tradex.halt(ETH, halted=False)
        assert_nothing_placed_while(tradex, beats=2)
        with pytest.raises(Unprocessable):
            services.pool_resume(pool=row(pool), actor=OPS, note=" ")
        assert row(pool).state == "HALTED"
        services.pool_resume(pool=row(pool), actor=OPS, note="exchange halt over, reviewed")
        wait_for("quotes again after the resume", lambda: both_members_quoting(tradex))
        assert row(pool).state == "ACTIVE"
        assert len(risk_events()) == 1


# ---------------------------------------------------------------- 2. stale data


def test_a_paused_feed_halts_the_pool_for_stale_data_within_its_threshold(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    threshold_s = pool.staleness_threshold_ms / 1000
    with quoter() as running:
        start_quoting(running, pool, tradex)
        stale_sent = count_placements_sent_on_stale_data(running.worker, threshold_s)
        tradex.feed("pause", ETH)
        paused = time.monotonic()
        wait_for("the pool HALTED", lambda: row(pool).state == "HALTED", timeout=threshold_s + 10)
        elapsed, halted_wall = time.monotonic() - paused, time.time()
        # The last book message came at most a heartbeat (0.5 s) before the pause.
        assert threshold_s - 1.0 <= elapsed <= threshold_s + 2.5, elapsed

        halted = assert_halted_by("STALE_DATA", pool, tradex)
        assert "threshold 3000 ms" in halted.state_reason
        record(
            10,
            stale_halt_after_s=round(elapsed, 3),
            threshold_s=threshold_s,
            placements_on_stale_data=stale_sent["count"],
            placements_after_the_halt=placements(tradex, since=halted_wall),
        )
        assert stale_sent["count"] == 0


def count_placements_sent_on_stale_data(worker: Any, threshold_s: float) -> dict[str, int]:
    """Counts placements that leave the worker (reach its HTTP exchange and are sent)
    while ETH's book is older than `threshold_s`; the count, updated as they go."""
    client = worker.client
    request = client._request
    counted = {"count": 0}

    async def counting(method: str, url: str, **kwargs: Any) -> Any:
        engine = worker.hosted[ETH].engine
        age_s = (worker.clock.now_ns() - engine.book.last_received_ns) / 1e9
        response = await request(method, url, **kwargs)  # the gate may withdraw it
        if method == "POST" and url == "/v1/orders" and age_s > threshold_s:
            counted["count"] += 1
        return response

    client._request = counting
    return counted


# ---------------------------------------------------------------- 3. reject storm


def test_a_storm_of_injected_rejects_halts_the_pool(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    with quoter() as running:
        start_quoting(running, pool, tradex)
        tradex.faults(reject_rate=1.0, routes=["place"])
        # A new clip size: every resting order is replaced, and every replacement refused.
        services.pool_update(pool=row(pool), config={"order_size_usdt": Decimal("2400")}, actor=OPS)

        assert_halted_by("REJECT_STORM", pool, tradex)
        rejected = tradex.get("/admin/stats")["requests"]["place"].get("422", 0)
        assert rejected >= 10, tradex.get("/admin/stats")["requests"]
        # The metrics say which trigger and why the venue refused.
        metrics = running.worker.metrics.registry
        assert (
            metrics.get_sample_value(
                "mm_pool_kill_switch_total", {"symbol": ETH, "trigger": "REJECT_STORM"}
            )
            == 1
        )
        by_reason = {
            sample.labels["reason"]: sample.value
            for family in metrics.collect()
            if family.name == "mm_pool_order_rejects"
            for sample in family.samples
            if sample.name.endswith("_total")
        }
        assert sum(by_reason.values()) >= 10, by_reason
        assert "OTHER" not in by_reason, by_reason


# ---------------------------------------------------------------- 4. position


def test_a_fill_past_the_pool_position_limit_halts_the_pool(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    # One lot of ETH is worth ~30 USDT: the first fill breaches the limit.
    services.pool_update(pool=pool, config={"max_pool_position_usdt": Decimal("1")}, actor=OPS)
    with quoter() as running:
        start_quoting(running, pool, tradex)

        assert_halted_by("POSITION", pool, tradex)
        assert MMFill.objects.filter(symbol=ETH).exists()
        assert Decimal(live_status(ETH)["q"]) != 0  # type: ignore[index]


def test_a_market_move_against_the_pools_position_past_its_loss_limit_halts_the_pool(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    services.pool_update(pool=pool, config={"max_pool_loss_usdt": Decimal("5")}, actor=OPS)
    with quoter() as running:
        start_quoting(running, pool, tradex)
        q = wait_for(
            "the pool to hold a position",
            lambda: (q := Decimal((live_status(ETH) or {}).get("q") or 0)) and q,
            timeout=30,
        )
        # 3% against a position of at least one level (~0.6 ETH near 3,000 USDT)
        # is a loss of ~50 USDT, ten times the limit.
        tradex.move(ETH, -300 if q > 0 else 300)

        halted = assert_halted_by("LOSS", pool, tradex)
        assert "pool PnL today" in halted.state_reason


# ---------------------------------------------------------------- 5. pause


def test_a_pause_cancels_every_order_and_nothing_is_placed_afterwards(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    with quoter() as running:
        start_quoting(running, pool, tradex)
        services.pool_pause(pool=row(pool), actor=OPS, reason="e2e pause")

        wait_for("every member order off the simulator book", lambda: book_empty(tradex))
        wait_for(
            "the pause in the live status",
            lambda: (live_status(ETH) or {}).get("mode") == "PAUSED",
        )
        status = assert_nothing_placed_while(tradex)
        assert status["mode"] == "PAUSED"
        assert row(pool).state == "PAUSED"
        assert risk_events() == []
        assert [e.payload["actor"] for e in state_changes("PAUSED")] == ["olga-ops"]


# ---------------------------------------------------------------- 6. sequence gap


def test_a_sequence_gap_closes_the_gate_until_a_requested_snapshot_resyncs_without_halting(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    with quoter() as running:
        start_quoting(running, pool, tradex)
        requested = tradex.get("/admin/stats")["snapshot_requests"].get(ETH, 0)
        # The simulator answers snapshot requests 1.8 s late (the client waits 2 s):
        # long enough to see the gate closed, which a live status beat shows.
        tradex.faults(latency_ms=1800, routes=["snapshot"])
        tradex.feed("skip", ETH)

        seen: dict[str, Any] = {}
        states: set[str] = set()

        def gate_closed_and_orders_withdrawn() -> bool:
            states.add(row(pool).state)
            if "empty" not in seen and book_empty(tradex):
                seen["empty"] = time.monotonic()
            status = live_status(ETH) or {}
            if (
                "status" not in seen
                and status.get("mode") == "ACTIVE"
                and not status.get("quoting")
                and "not synced" in status.get("gate_reason", "")
            ):
                seen["status"] = status
            return {"empty", "status"} <= set(seen)

        wait_for("the gate closed and the orders withdrawn", gate_closed_and_orders_withdrawn)

        def quoting_again() -> bool:
            states.add(row(pool).state)
            status = live_status(ETH) or {}
            return both_members_quoting(tradex) and bool(status.get("quoting"))

        wait_for("quoting again after the resync", quoting_again)
        assert states == {"ACTIVE"}
        assert risk_events() == []
        assert tradex.get("/admin/stats")["snapshot_requests"].get(ETH, 0) > requested


# ---------------------------------------------------------------- 7. shadow mode


def test_shadow_mode_places_nothing_and_publishes_simulated_quotes(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, members = eth_pool()
    with quoter(shadow=True) as running:
        wait_for("the worker to host ETH", lambda: hosted(running.worker))
        services.pool_resume(pool=row(pool), actor=OPS, note="e2e shadow")
        quotes = wait_for(
            "simulated quotes in the outbox",
            lambda: list(OutboxEvent.objects.filter(topic=SIMULATED_TOPIC)),
        )
        status = assert_nothing_placed_while(tradex, beats=2)

    assert {q.key for q in quotes} == {ETH}
    assert {q.payload["participant_id"] for q in quotes} == {str(p.pk) for p in members.values()}
    assert {q.payload["side"] for q in quotes} == {"BUY", "SELL"}
    assert status["mode"] == "ACTIVE"
    stats = tradex.get("/admin/stats")
    assert "place" not in stats["requests"], stats["requests"]
    assert stats["dead_man_switch"]["armed"] == 0


# ---------------------------------------------------------------- 8. SIGKILL


def start_runquoter(
    log: Path,
    *,
    broker: Bus,
    registry: str,
    order_service: str,
    metadata: str,
    group: str,
    extra_env: dict[str, str] | None = None,
    partitions: int = 3,
    processes: int = 1,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mms.settings.test",
        "DJANGO_DEBUG": "true",
        "POSTGRES_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.SERVICE.redis_url,
        **broker.env,
        # A successor in the group gets a killed worker's partitions within seconds.
        "KAFKA_SESSION_TIMEOUT": f"{TEST_SESSION_TIMEOUT_MS}ms",
        "SCHEMA_REGISTRY_URL": registry,
        "ORDER_SERVICE_URL": order_service,
        "METADATA_SERVICE_GRPC_URL": metadata,
        "MM_SHADOW_MODE": "false",
        "METRICS_PORT": str(free_port()),
        **(extra_env or {}),
    }
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "manage.py",
                "runquoter",
                "--partitions",
                str(partitions),
                "--group",
                group,
                "--processes",
                str(processes),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_within(proc: subprocess.Popen[bytes], log: Path, seconds: float) -> float:
    """SIGTERM, then the seconds the process took to exit; fails with its threads'
    stacks if it is still running after `seconds`."""
    asked = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        proc.wait()
        pytest.fail(
            f"runquoter still running {seconds} s after SIGTERM:\n{log.read_text()[-12000:]}"
        )
    return time.monotonic() - asked


def worker_id_of(proc: subprocess.Popen[bytes]) -> str:
    return f"{socket.gethostname()}-{proc.pid}"


def hosted_by(proc: subprocess.Popen[bytes], log: Path) -> Callable[[], dict[str, Any] | None]:
    """The pool's live status once `proc` hosts it; fails at once if `proc` died."""

    def check() -> dict[str, Any] | None:
        if proc.poll() is not None:
            raise AssertionError(f"runquoter exited with {proc.returncode}:\n{log.read_text()}")
        status = live_status(ETH)
        return status if status and status["worker_id"] == worker_id_of(proc) else None

    check.explain = lambda: log.read_text()[-6000:]  # type: ignore[attr-defined]
    return check


@pytest.fixture
def runquoter(
    broker: Bus,
    schema_registry_url: str,
    metadata_target: str,
    tradex: TradeXAdmin,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `manage.py runquoter` processes (one consumer group); ends each left running."""
    group = unique_group("e2e-kill")
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = start_runquoter(
            tmp_path / f"runquoter-{len(started)}.log",
            broker=broker,
            registry=schema_registry_url,
            order_service=tradex.url,
            metadata=metadata_target,
            group=group,
        )
        started.append(proc)
        return proc

    yield start
    stop_all(started)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each process still running; SIGKILL if it lingers past 30 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def venue_trades(tradex: TradeXAdmin) -> dict[str, int]:  # noqa: F811
    """Each member account's ETH trades in the venue's ledger."""
    return {
        account: int(tradex.ledger(account).get("trades", {}).get(ETH, 0)) for account in ACCOUNTS
    }


def unsettled_orders(tradex: TradeXAdmin) -> list[tuple[str, str, int]]:  # noqa: F811
    """mm_orders rows of ETH still open: (client order id, status, the venue's HTTP
    answer to a query for it: 404 when the venue never received the order)."""
    rows = MMOrder.objects.filter(symbol=ETH, status__in=LIVE_ORDER_STATUSES).values_list(
        "client_order_id", "status", "participant__account_id"
    )
    return [
        (
            coid,
            status,
            tradex.http.get(f"/v1/orders/{coid}", params={"account_id": account}).status_code,
        )
        for coid, status, account in rows
    ]


def test_a_runquoter_killed_with_sigkill_leaves_no_order_for_long_and_its_successor_boots_paused(
    tradex: TradeXAdmin,  # noqa: F811
    runquoter: Callable[[], subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    pool, _ = eth_pool()
    first = runquoter()
    wait_for("the first runquoter to host ETH", hosted_by(first, tmp_path / "runquoter-0.log"))
    services.pool_resume(pool=row(pool), actor=OPS, note="e2e")
    wait_for("both members' full ladders on the simulator book", lambda: resting_ladders(tradex))

    first.kill()  # SIGKILL: no cancel, no goodbye
    killed = time.monotonic()
    first.wait(timeout=10)
    timeout_s = DEAD_MANS_SWITCH_MS / 1000

    def switches_fired() -> bool:
        switches = tradex.get("/admin/stats")["dead_man_switch"]
        return switches["fired"] >= len(ACCOUNTS) and book_empty(tradex)

    wait_for(
        "the venue's dead-man's switches to fire and the member orders to be gone",
        switches_fired,
        timeout=timeout_s + 5,
    )
    elapsed = time.monotonic() - killed
    print(f"SIGKILL: dead-man's switches fired, book empty {elapsed:.2f} s after the kill")
    assert elapsed <= timeout_s + 2.0, elapsed
    assert row(pool).state == "ACTIVE"  # nobody told the database
    assert MMOrder.objects.filter(symbol=ETH, status__in=LIVE_ORDER_STATUSES).exists()

    # An order left resting for a member while no worker runs.
    stray = place_directly(
        tradex.url,
        account_id="acct-e2e-big",
        user_id="user-e2e-big",
        symbol=ETH,
        side="BUY",
        price="2000.00",
        size="0.01",
        coid="left-behind-by-someone",
    )
    assert stray["status"] == "OPEN"
    before = placements(tradex)

    second = runquoter()
    status = wait_for(
        "the second runquoter to host ETH", hosted_by(second, tmp_path / "runquoter-1.log")
    )
    assert row(pool).state == "PAUSED"  # the boot pause
    assert status["mode"] == "PAUSED"
    assert AuditLog.objects.filter(
        entity_type="pool", entity_id=ETH, action="pause", actor="system", to_state="PAUSED"
    ).exists()
    wait_for("the stray order cancelled", lambda: book_empty(tradex))
    # Reconciled: every order the venue knows is settled in mm_orders. (Rows written
    # ahead for orders the kill stopped before they left stay PENDING: see
    # test_an_order_written_ahead_but_never_sent_is_settled_after_a_restart.)
    wait_for(
        "mm_orders settled for every order the venue knows",
        lambda: all(
            status == "PENDING" and venue == 404 for _, status, venue in unsettled_orders(tradex)
        ),
        timeout=20,
    )
    assert_nothing_placed_while(tradex)
    assert placements(tradex) == before

    services.pool_resume(pool=row(pool), actor=OPS, note="restart reviewed")
    wait_for("quotes again once resumed", lambda: both_members_quoting(tradex))
    assert second.poll() is None


# ---------------------------------------------------------------- product bugs, pinned


def pool_configs_lock_waiters() -> int:
    """Sessions waiting for a lock on mm_pool_configs (the worker's database thread)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks"
            " WHERE NOT granted AND relation = 'mm_pool_configs'::regclass"
        )
        return int(cursor.fetchone()[0])


def queued_unhalt(host: Any) -> bool:
    """The engine's queue holds the instrument's "trading again" status (the engine
    is blocked, so that is how far the event can get)."""
    for _ in range(5):  # the loop thread may append meanwhile
        try:
            items = list(host.queue._queue)
            break
        except RuntimeError:
            continue
    else:
        return False
    return any(
        item and isinstance(item[0], InstrumentStatus) and not item[0].halted for item in items
    )


def test_a_pool_row_read_just_before_a_kill_switch_trip_does_not_resume_the_pool(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    # No periodic re-read: only the pool-changed hints below make the worker read the row.
    with quoter(reread_interval_s=60.0) as running:
        start_quoting(running, pool, tradex)
        host = running.worker.hosted[ETH]
        with transaction.atomic():
            # The database is slow: the worker's read of the pool row waits...
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE mm_pool_configs IN ACCESS EXCLUSIVE MODE")
            redis_client().publish(
                POOL_CHANGED_CHANNEL, json.dumps({"symbol": ETH, "reason": "config"})
            )
            wait_for("the worker reading the pool row", lambda: pool_configs_lock_waiters() > 0)
            # ...while the exchange halts the symbol: the kill switch trips and cancels.
            tradex.halt(ETH)
            wait_for("every member order off the simulator book", lambda: book_empty(tradex))
            tradex.halt(ETH, halted=False)  # and trades again soon after
            wait_for("the worker to receive the end of the halt", lambda: queued_unhalt(host))
            before = placements(tradex)
        wait_for("the pool HALTED", lambda: row(pool).state == "HALTED")
        status = status_beats(2)
        placed = placements(tradex) - before
        assert placed == 0, f"{placed} orders placed after the kill switch, row HALTED"
        assert status["halt"].startswith("EXCHANGE_HALT:"), status["halt"]


def test_rejects_of_orders_in_flight_when_the_exchange_halts_keep_the_halt_reason(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    # Six levels a side: the members' orders at one price go one after another
    # (fair queue position), so twelve prices put twelve placements in flight.
    PoolConfig.objects.filter(pk=pool.pk).update(num_levels=6)
    with quoter() as running:
        start_quoting(running, pool, tradex)
        # Placements take 1.5 s to reach the book; a new clip size replaces every order.
        tradex.faults(latency_ms=1500, routes=["place"])
        services.pool_update(pool=row(pool), config={"order_size_usdt": Decimal("2400")}, actor=OPS)
        wait_for("the old orders cancelled, the new ones in flight", lambda: book_empty(tradex))
        tradex.halt(ETH)  # the venue refuses the late placements: INSTRUMENT_HALTED

        assert_halted_by("EXCHANGE_HALT", pool, tradex)
        stats = tradex.get("/admin/stats")["requests"]["place"]
        assert stats.get("422", 0) >= 10, stats
        status = status_beats(1)
        assert status["halt"].startswith("EXCHANGE_HALT:"), status["halt"]


def venue_rejections(tradex: TradeXAdmin) -> int:  # noqa: F811
    return int(tradex.get("/admin/stats")["requests"].get("place", {}).get("422", 0))


def test_a_reject_storm_needs_ten_rejected_placements(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    # One ladder of 8 orders (2 levels, 2 sides, 2 members), none again for a minute.
    services.pool_update(
        pool=pool, config={"num_levels": 2, "quote_interval_ms": 60_000}, actor=OPS
    )
    tradex.faults(reject_rate=1.0, routes=["place"])
    with quoter() as running:
        wait_for("the worker to host ETH", lambda: hosted(running.worker))
        services.pool_resume(pool=row(pool), actor=OPS, note="e2e")
        wait_for("the first ladder refused", lambda: venue_rejections(tradex) >= 8)
        status_beats(2)
        assert venue_rejections(tradex) == 8  # one ladder, nothing placed since
        halted = row(pool)
        assert halted.state == "ACTIVE", f"8 rejections tripped {halted.state_reason!r}"


def test_an_order_written_ahead_but_never_sent_is_settled_after_a_restart(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Quoter,  # noqa: F811
) -> None:
    _, members = eth_pool()
    big = members["acct-e2e-big"]
    # A worker recorded the order (write-ahead) and was killed before sending it.
    coid = ClientOrderIds(time.time_ns).new(
        short_id=big.short_id, symbol=ETH, level=0, side=Side.BUY
    )
    MMOrder.objects.create(
        client_order_id=coid,
        participant=big,
        symbol=ETH,
        side="BUY",
        level=0,
        price=Decimal("2000.00"),
        size=Decimal("0.01"),
        status="PENDING",
        created_at=timezone.now(),
    )

    def not_found_three_times() -> bool:
        asked = tradex.get("/admin/requests", route="query")["requests"]
        return sum(1 for r in asked if coid in r["path"] and r["outcome"] == "404") >= 3

    with quoter() as running:
        wait_for("the worker to host ETH", lambda: hosted(running.worker))
        wait_for("the venue to answer 'not found' three times", not_found_three_times)
        wait_for(
            "the order settled in mm_orders",
            lambda: MMOrder.objects.get(client_order_id=coid).status not in LIVE_ORDER_STATUSES,
            timeout=10,
        )


# ---------------------------------------------------------------- 9. two processes

BTC = "BTCUSDT-PERP"


@pytest.fixture
def tradex_eth_btc(broker: Bus, schema_registry_url: str, tmp_path: Path) -> Iterator[TradeXAdmin]:
    with running_tradex(
        broker, schema_registry_url, tmp_path, "--symbol", ETH, "--symbol", BTC, "--seed", "5"
    ) as admin:
        yield admin


def btc_pool(members: dict[str, Any]) -> PoolConfig:
    """ETH's members, on BTC too."""
    pool = PoolFactory(
        symbol=BTC,
        enabled=True,
        gamma=Decimal("0.00001"),
        kappa=Decimal("2"),
        min_spread_bps=Decimal("2.5"),
        max_spread_bps=Decimal("50"),
        num_levels=2,
        level_spacing_bps=Decimal("3"),
        order_size_usdt=Decimal("3000"),
        max_pool_position_usdt=Decimal("500000"),
        max_pool_loss_usdt=Decimal("20000"),
        staleness_threshold_ms=3000,
        quote_interval_ms=500,
        price_threshold_bps=Decimal("2"),
    )
    for account, participant in members.items():
        MemberFactory(
            pool=pool,
            participant=participant,
            weight=WEIGHTS[account],
            max_position_usdt=Decimal(200_000),
        )
    return pool


def pid_of(worker_id: str) -> int:
    return int(worker_id.rsplit("-", 1)[1])


def test_a_child_killed_under_the_supervisor_pauses_only_its_own_pools(
    broker: Bus,
    schema_registry_url: str,
    metadata_target: str,
    tradex_eth_btc: TradeXAdmin,
    tmp_path: Path,
) -> None:
    """runquoter --processes 2 on three partitions: range assignment gives one
    child partitions 0-1 (ETH is on 1) and the other partition 2 (BTC), so each
    child owns one of the symbols. SIGKILL the child hosting ETH: the
    supervisor starts it again, it takes its partition back under the same
    static identity and boots ETH PAUSED; BTC's child never notices (no
    rebalance): BTC stays ACTIVE, hosted by the same process, quoting."""
    venue = tradex_eth_btc
    eth, members = eth_pool()
    btc = btc_pool(members)
    log = tmp_path / "supervisor.log"
    supervisor = start_runquoter(
        log,
        broker=broker,
        registry=schema_registry_url,
        order_service=venue.url,
        metadata=metadata_target,
        group=unique_group("e2e-children"),
        # Longer than a child's restart: the group waits for it instead of handing
        # its partition to the other child.
        extra_env={"KAFKA_SESSION_TIMEOUT": "30s", "LOG_LEVEL": "INFO"},
        processes=2,
    )
    try:

        def both_hosted() -> dict[str, str] | None:
            if supervisor.poll() is not None:
                raise AssertionError(f"supervisor exited:\n{log.read_text()[-6000:]}")
            workers = {s: (live_status(s) or {}).get("worker_id") for s in (ETH, BTC)}
            # The first child to join owns both partitions until the second joins.
            settled = all(workers.values()) and workers[ETH] != workers[BTC]
            return workers if settled else None  # type: ignore[return-value]

        # Two processes, one symbol each.
        workers = wait_for("each child to host its own symbol", both_hosted, timeout=90)
        for pool in (eth, btc):
            services.pool_resume(pool=row(pool), actor=OPS, note="e2e")

        def quoting(symbol: str) -> bool:
            return all(venue.open_orders(account, symbol) for account in ACCOUNTS)

        wait_for("both pools quoting", lambda: quoting(ETH) and quoting(BTC), timeout=60)
        os.kill(pid_of(workers[ETH]), signal.SIGKILL)
        killed = time.monotonic()

        def eth_back() -> dict[str, Any] | None:
            status = live_status(ETH)
            return status if status and status["worker_id"] != workers[ETH] else None

        status = wait_for("ETH hosted by the restarted child", eth_back, timeout=60)
        print(f"child SIGKILL: ETH hosted again {time.monotonic() - killed:.1f} s later")
        assert status["mode"] == "PAUSED"
        assert row(eth).state == "PAUSED"  # the takeover rule: its orders went with it
        assert AuditLog.objects.filter(
            entity_type="pool", entity_id=ETH, action="pause", to_state="PAUSED"
        ).exists()
        # BTC: the same process, never paused, still quoting.
        btc_status = live_status(BTC)
        assert btc_status is not None
        assert btc_status["worker_id"] == workers[BTC]
        assert btc_status["mode"] == "ACTIVE"
        assert row(btc).state == "ACTIVE"
        assert not AuditLog.objects.filter(
            entity_type="pool", entity_id=BTC, action="pause"
        ).exists()
        placed = placements(venue)
        wait_for("BTC still placing orders", lambda: placements(venue) > placed, timeout=30)
        assert quoting(BTC)
    finally:
        took = stop_within(supervisor, log, 60)
    print(f"supervisor SIGTERM: both children stopped in {took:.1f} s")
    assert supervisor.returncode == 0, log.read_text()[-6000:]
