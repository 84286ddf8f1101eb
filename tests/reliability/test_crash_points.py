"""Issue 8, rows 5 and 7: a runquoter killed (SIGKILL) at each step of placing an
order and right after storing a fill, then a successor started.

A real `manage.py runquoter` quotes a pool on the TradeX simulator with one
failpoint armed (`common/failpoints.py`), and dies there as in a power cut:

- `place.recorded`: the order is on record, never sent;
- `place.answered`: the venue accepted it, the worker never heard;
- `place.acked`: the acceptance is on record;
- `fill.stored`: a fill is on record, not applied, its offset not committed.

Each time the successor boots the pool PAUSED, places nothing before a person
resumes (quotes before reconciliation: 0), takes every orphan off the venue,
and settles mm_orders against the venue; after `fill.stored` the redelivered
fill is stored once and the successor's positions equal the venue's.
Figures printed: the orphans' lifetime (kill → none left at the venue) and
the time to reconcile (successor started → mm_orders settled).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from pools import services
from tests.adapters.worker_harness import live_status, member_view, wait_for
from tests.e2e.conftest import TradeXAdmin
from tests.e2e.test_safety import (  # noqa: F401 - tradex is a shared fixture
    ACCOUNTS,
    LIVE_ORDER_STATUSES,
    assert_nothing_placed_while,
    book_empty,
    both_members_quoting,
    hosted_by,
    member_orders,
    placements,
    row,
    start_runquoter,
    stop_all,
    tradex,
    unsettled_orders,
    venue_trades,
)
from tests.e2e.test_stack import ETH, OPS, eth_pool
from tests.figures import record
from tests.kafka import Bus, unique_group
from trading.models import MMFill, MMOrder

pytestmark = pytest.mark.django_db(transaction=True)

Start = Callable[..., tuple[subprocess.Popen[bytes], Path]]


@pytest.fixture
def runquoters(
    broker: Bus,
    schema_registry_url: str,
    metadata_target: str,
    tradex: TradeXAdmin,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Start]:
    """Starts runquoters of one group, a failpoint armed if given; ends the living."""
    group = unique_group("crash")
    started: list[subprocess.Popen[bytes]] = []

    def start(failpoint: str = "") -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"runquoter-{len(started)}.log"
        proc = start_runquoter(
            log,
            broker=broker,
            registry=schema_registry_url,
            order_service=tradex.url,
            metadata=metadata_target,
            group=group,
            extra_env={"MMS_FAILPOINTS": failpoint} if failpoint else None,
        )
        started.append(proc)
        return proc, log

    yield start
    stop_all(started)


def killed_at_failpoint(proc: subprocess.Popen[bytes], log: Path, point: str) -> float:
    """Waits for `proc` to die by its failpoint; the monotonic time it was seen dead."""
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, log.read_text()[-3000:])
    assert f"failpoint {point} reached" in log.read_text()
    return time.monotonic()


def venue_positions(tradex: TradeXAdmin) -> dict[str, Decimal]:  # noqa: F811
    return {
        account: Decimal(tradex.ledger(account).get("positions", {}).get(ETH, "0"))
        for account in ACCOUNTS
    }


def stored_fills(members: dict[str, object]) -> dict[str, int]:
    return {a: MMFill.objects.filter(participant=p, symbol=ETH).count() for a, p in members.items()}


def recover(
    start: Start,
    tradex: TradeXAdmin,  # noqa: F811
    killed: float,
) -> dict[str, float]:
    """A successor boots after the kill: PAUSED, nothing placed, orphans gone,
    mm_orders settled. Its figures (seconds)."""
    before = placements(tradex)
    second, log = start()
    started = time.monotonic()
    status = wait_for("the successor to host ETH", hosted_by(second, log))
    assert status["mode"] == "PAUSED"
    wait_for("no orphan left at the venue", lambda: book_empty(tradex), timeout=20)
    orphans_gone = time.monotonic()
    wait_for(
        "mm_orders settled for every order the venue knows",
        lambda: all(s == "PENDING" and venue == 404 for _, s, venue in unsettled_orders(tradex)),
        timeout=20,
    )
    reconciled = time.monotonic()
    wait_for(
        "every write-ahead order never sent settled too",
        lambda: not MMOrder.objects.filter(symbol=ETH, status__in=LIVE_ORDER_STATUSES).exists(),
        timeout=30,
    )
    settled = time.monotonic()
    assert_nothing_placed_while(tradex)
    return {
        "quotes_before_reconciliation": placements(tradex) - before,
        "orphan_lifetime_s": round(orphans_gone - killed, 3),
        "reconcile_s": round(reconciled - started, 3),
        "settled_s": round(settled - started, 3),
    }


@pytest.mark.parametrize("point", ["place.recorded", "place.answered", "place.acked"])
def test_a_kill_at_each_step_of_placing_an_order_leaves_nothing_behind_after_a_restart(
    point: str,
    runquoters: Start,
    tradex: TradeXAdmin,  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    first, log = runquoters(point)
    wait_for("the runquoter to host ETH", hosted_by(first, log))
    services.pool_resume(pool=row(pool), actor=OPS, note="row 7")
    killed = killed_at_failpoint(first, log, point)
    at_venue = len(member_orders(tradex))
    recorded = MMOrder.objects.filter(symbol=ETH).count()
    assert recorded > 0  # written ahead in every case
    if point == "place.recorded":
        assert at_venue == 0  # died before the first request left
    figures = recover(runquoters, tradex, killed)
    record(7, point=point, orphans_at_kill=at_venue, orders_on_record=recorded, **figures)
    assert figures["quotes_before_reconciliation"] == 0, "placed before a person resumed"
    assert row(pool).state == "PAUSED"


def test_a_kill_after_a_fill_is_stored_before_its_offset_is_committed_neither_loses_nor_doubles_it(
    runquoters: Start,
    tradex: TradeXAdmin,  # noqa: F811
) -> None:
    pool, members = eth_pool()
    first, log = runquoters("fill.stored")
    wait_for("the runquoter to host ETH", hosted_by(first, log))
    services.pool_resume(pool=row(pool), actor=OPS, note="row 5")
    wait_for("both members quoting", lambda: both_members_quoting(tradex), timeout=30)
    tradex.move(ETH, 40)  # the takers trade through the ladder
    killed = killed_at_failpoint(first, log, "fill.stored")
    assert sum(stored_fills(members).values()) == 1  # on record; its offset never committed

    figures = recover(runquoters, tradex, killed)
    assert figures["quotes_before_reconciliation"] == 0, "placed before a person resumed"
    # The redelivered fill and those made meanwhile: each stored once, none missing.
    with contextlib.suppress(AssertionError):
        wait_for(
            "mm_fills equal to the venue's ledger",
            lambda: stored_fills(members) == venue_trades(tradex),
            timeout=20,
        )
    stored, venue = stored_fills(members), venue_trades(tradex)
    duplicated = MMFill.objects.count() - MMFill.objects.values("fill_id").distinct().count()
    missing = sum(max(0, venue[a] - stored.get(a, 0)) for a in venue)
    record(5, fills_at_venue=sum(venue.values()), missing=missing, duplicated=duplicated, **figures)
    assert (missing, duplicated) == (0, 0), (stored, venue)
    assert stored == venue
    positions = venue_positions(tradex)

    def successor_agrees() -> bool:
        status = live_status(ETH)
        return status is not None and all(
            Decimal(str(member_view(status, str(p.pk))["position"])) == positions[a]
            for a, p in members.items()
        )

    wait_for("the successor's positions equal to the venue's", successor_agrees)
