"""MMS against the TradeX simulator, end to end: real processes, real broker.

A pool is driven through the API's service functions; its orders rest on the
simulator's book under each member's own account; the simulator's taker flow
fills them; MMS's books must then equal the simulator's account ledger.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from django.db.models import Sum

from common.actors import Actor
from participants.models import Participant
from performance import jobs
from performance.models import PerformanceSnapshot
from pools import services
from pools.models import PoolConfig
from quoting_worker.worker import QuoterWorker
from tests.adapters.worker_harness import (
    RunningWorker,
    live_status,
    running_worker,
    wait_for,
    worker_config,
)
from tests.e2e.conftest import TradeXAdmin, running_tradex
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from tests.kafka import Bus, unique_group
from trading.models import MMFill, MMFundingPayment

pytestmark = pytest.mark.django_db(transaction=True)

OPS = Actor("olga-ops")
ETH = "ETHUSDT-PERP"
WEIGHTS = {"acct-e2e-big": Decimal(3), "acct-e2e-small": Decimal(1)}


@pytest.fixture
def tradex(broker: Bus, schema_registry_url: str, tmp_path: Path) -> Iterator[TradeXAdmin]:
    with running_tradex(
        broker,
        schema_registry_url,
        tmp_path,
        *("--symbol", ETH, "--seed", "11", "--funding-interval-s", "5"),
    ) as admin:
        yield admin


@pytest.fixture
def quoter(
    broker: Bus,
    schema_registry_url: str,
    metadata_target: str,
    tradex: TradeXAdmin,
) -> Callable[..., Any]:
    def start(**overrides: Any) -> Any:
        return running_worker(
            worker_config(
                bus=broker,
                registry_url=schema_registry_url,
                order_service_url=tradex.url,
                metadata_target=metadata_target,
                group_id=unique_group("e2e"),
                partitions=3,
                **overrides,
            )
        )

    return start


def eth_pool() -> tuple[PoolConfig, dict[str, Participant]]:
    """Two members, weights 3 : 1, quoting near the simulator's other makers."""
    pool = PoolFactory(
        symbol=ETH,
        enabled=True,
        gamma=Decimal("0.0001"),
        kappa=Decimal("20"),
        min_spread_bps=Decimal("2.5"),
        max_spread_bps=Decimal("50"),
        num_levels=3,
        level_spacing_bps=Decimal("3"),
        order_size_usdt=Decimal("2000"),
        max_pool_position_usdt=Decimal("200000"),
        max_pool_loss_usdt=Decimal("20000"),
        staleness_threshold_ms=3000,
        quote_interval_ms=500,
        price_threshold_bps=Decimal("2"),
    )
    members = {}
    for account, weight in WEIGHTS.items():
        participant = ParticipantFactory(
            state="ACTIVE", account_id=account, user_id=account.replace("acct", "user")
        )
        MemberFactory(
            pool=pool, participant=participant, weight=weight, max_position_usdt=Decimal(100_000)
        )
        members[account] = participant
    return pool, members


def hosted(worker: QuoterWorker) -> bool:
    return ETH in worker.hosted


def resting_ladders(tradex: TradeXAdmin) -> dict[str, list[dict[str, Any]]] | None:
    """Every member's open orders once each shows both sides at every level."""
    ladders = {account: tradex.open_orders(account, ETH) for account in WEIGHTS}
    for orders in ladders.values():
        if {(o["side"], o["price"]) for o in orders} == set() or len(orders) < 6:
            return None
    return ladders


def test_a_pool_quotes_on_the_simulator_gets_filled_and_agrees_with_its_ledger(
    tradex: TradeXAdmin, quoter: Callable[..., Any]
) -> None:
    pool, members = eth_pool()
    with quoter() as running:
        running = cast(RunningWorker, running)
        wait_for("the worker to host ETH", lambda: hosted(running.worker))
        services.pool_resume(pool=PoolConfig.objects.get(pk=pool.pk), actor=OPS, note="e2e")

        # Both sides, every level, each member's own account, sized by weight.
        ladders = wait_for(
            "both members' ladders on the simulator book", lambda: resting_ladders(tradex)
        )
        sizes: dict[tuple[str, int], dict[str, Decimal]] = defaultdict(dict)
        for account, orders in ladders.items():
            assert all(o["account_id"] == account for o in orders)
            assert all(o["account_type"] == "SYSTEM_MARKET_MAKER" for o in orders)
            assert {o["side"] for o in orders} == {"BUY", "SELL"}
            for order in orders:
                level = int(order["client_order_id"].rsplit("-", 3)[1])
                sizes[(order["side"], level)][account] = Decimal(order["size"])
        for by_account in sizes.values():
            if len(by_account) == 2:
                ratio = by_account["acct-e2e-big"] / by_account["acct-e2e-small"]
                assert Decimal("2") <= ratio <= Decimal("4"), by_account  # 3 : 1, rounded to lots

        # The simulator's takers fill them.
        wait_for(
            "fills for both members",
            lambda: all(
                MMFill.objects.filter(participant=p).count() >= 3 for p in members.values()
            ),
            timeout=120,
        )
        # Funding every 5 simulated seconds reaches the members with a position.
        wait_for("a funding payment stored for a member", MMFundingPayment.objects.exists)
        # Engine and venue agree on what rests (between two re-quotes).
        engine = running.worker.hosted[ETH].engine

        def engine_matches_venue() -> bool:
            return all(
                set(engine.members[str(p.pk)].runtime.open_orders)
                == {o["client_order_id"] for o in tradex.open_orders(a, ETH)}
                for a, p in members.items()
            )

        wait_for("the engine's orders to be exactly the venue's", engine_matches_venue)

        # A performance snapshot reads the worker's live status as published: both
        # members quote both sides within the band (QSCORE_MAX_SPREAD_BPS 50).
        def snapshot_of_both_quoting() -> bool:
            PerformanceSnapshot.objects.all().delete()
            jobs.snapshot_take(interval=dt.timedelta(seconds=1))
            rows = list(PerformanceSnapshot.objects.filter(symbol=ETH))
            return len(rows) == 2 and all(r.pool_active and r.liquidity > 0 for r in rows)

        wait_for("a snapshot with both members quoting", snapshot_of_both_quoting)
        services.pool_pause(pool=PoolConfig.objects.get(pk=pool.pk), actor=OPS, reason="e2e")
        wait_for(
            "every order cancelled on the simulator book",
            lambda: all(not tradex.open_orders(a, ETH) for a in WEIGHTS),
        )

        def books_settled() -> bool:
            return all(
                MMFill.objects.filter(participant=p).count()
                == tradex.ledger(a).get("trades", {}).get(ETH, -1)
                for a, p in members.items()
            )

        wait_for("every venue fill stored in mm_fills", books_settled)

        def funding_settled() -> bool:
            return all(
                (
                    MMFundingPayment.objects.filter(participant=p).aggregate(s=Sum("amount_usdt"))[
                        "s"
                    ]
                    or Decimal(0)
                )
                == Decimal(tradex.ledger(a)["funding"])
                for a, p in members.items()
            )

        wait_for("every funding payment stored", funding_settled)

        def books_agree() -> None:
            """MMS's records and live status equal the simulator's ledger (funding goes
            on every 5 simulated seconds on what positions remain, so this is read
            again until one moment shows every source agreeing)."""
            status = live_status(ETH)
            assert status is not None
            for account, participant in members.items():
                ledger = tradex.ledger(account)
                fills = MMFill.objects.filter(participant=participant, symbol=ETH)
                bought = fills.filter(side="BUY").aggregate(s=Sum("size"))["s"] or Decimal(0)
                sold = fills.filter(side="SELL").aggregate(s=Sum("size"))["s"] or Decimal(0)
                assert bought - sold == Decimal(ledger["positions"].get(ETH, "0")), account
                assert fills.aggregate(f=Sum("fee_usdt"))["f"] == Decimal(ledger["fees"]), account
                # Cash: what MMS's own records say the account paid and received.
                notional = {
                    side: sum((f.price * f.size for f in fills.filter(side=side)), Decimal(0))
                    for side in ("BUY", "SELL")
                }
                funding = MMFundingPayment.objects.filter(participant=participant).aggregate(
                    s=Sum("amount_usdt")
                )["s"] or Decimal(0)
                cash = notional["SELL"] - notional["BUY"] - Decimal(ledger["fees"]) + funding
                assert cash == Decimal(ledger["cash"]), account
                member = next(
                    m for m in status["members"] if m["participant_id"] == str(participant.pk)
                )
                assert member["trade_count"] == fills.count(), account
                assert Decimal(member["position"]) == Decimal(ledger["positions"].get(ETH, "0"))
                assert Decimal(member["fees_usdt"]) == Decimal(ledger["fees"])
                assert Decimal(member["funding_usdt"]) == Decimal(ledger["funding"])
                assert member["open_orders"] == 0

        def agreeing() -> bool:
            try:
                books_agree()
            except AssertionError:
                return False
            return True

        with contextlib.suppress(AssertionError):  # wait_for's timeout: books_agree says why
            wait_for("MMS's books to equal the simulator's ledger", agreeing, timeout=20)
        books_agree()
