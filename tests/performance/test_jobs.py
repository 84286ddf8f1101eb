"""The performance jobs on the real PostgreSQL and Redis: snapshots from the
worker's live status and mm_fills, the daily rollup (SQL) agreeing with the
pure reference (performance/qscore.py), idempotence, pruning, the counters
exported on /metrics, and the Celery tasks run by a real Celery worker."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from common.redis import redis_client
from messaging.live_status import LIVE_STATUS_KEY
from performance import jobs
from performance.models import PerformanceDaily, PerformanceSnapshot
from performance.qscore import QScoreConfig, SampleRow, day_scores, member_days
from tests.conftest import ROOT
from tests.factories import FillFactory, MemberFactory, ParticipantFactory, PoolFactory
from tests.otlp_receiver import otlp_collector

pytestmark = pytest.mark.django_db

D = Decimal
ETH = "ETHUSDT-PERP"
DAY = dt.date(2026, 11, 2)
T0 = dt.datetime(2026, 11, 2, 9, 0, 0, tzinfo=dt.UTC)
TEN_S = dt.timedelta(seconds=10)
CONFIG = QScoreConfig(min_depth_usdt=D("50"), min_uptime=D("0.5"))


def publish(
    symbol: str, *, mode: str = "ACTIVE", mid: str | None, members: dict[str, list]
) -> None:
    """A live status as the worker publishes it (quoting_worker/adapters/live.py)."""
    record = {
        "symbol": symbol,
        "mode": mode,
        "mid": mid,
        "members": [{"participant_id": pid, "orders": orders} for pid, orders in members.items()],
    }
    redis_client().set(LIVE_STATUS_KEY.format(symbol=symbol), json.dumps(record))


def eth_pool(state: str = "ACTIVE", weights: tuple[str, ...] = ("3", "1")) -> list[Any]:
    pool = PoolFactory(symbol=ETH, state=state)
    return [
        MemberFactory(pool=pool, weight=D(w), participant=ParticipantFactory(state="ACTIVE"))
        for w in weights
    ]


# ---------------------------------------------------------------- snapshots


def test_a_snapshot_scores_each_members_resting_orders_and_counts_its_fills() -> None:
    big, small = eth_pool()
    one_sided = MemberFactory(pool=big.pool, participant=ParticipantFactory(state="ACTIVE"))
    publish(
        ETH,
        mid="3000",
        members={
            # 1 ETH at 3 bps (2999.1/3000.9) each side: 2999.1 and 3000.9 USDT of depth.
            str(big.participant_id): [["BUY", "2999.1", "1"], ["SELL", "3000.9", "1"]],
            str(small.participant_id): [["BUY", "2999.1", "0.01"], ["SELL", "3000.9", "0.01"]],
            str(one_sided.participant_id): [["BUY", "2999.4", "5"]],
        },
    )
    FillFactory(
        participant=big.participant,
        symbol=ETH,
        price=D("3000"),
        size=D("0.5"),
        filled_at=T0 - dt.timedelta(seconds=3),
    )
    FillFactory(participant=big.participant, symbol=ETH, filled_at=T0)  # the next interval's
    FillFactory(
        participant=big.participant, symbol=ETH, filled_at=T0 - TEN_S - dt.timedelta(seconds=1)
    )

    assert jobs.snapshot_take(now=T0 + dt.timedelta(seconds=4), interval=TEN_S, config=CONFIG) == 3

    rows = {str(r.participant_id): r for r in PerformanceSnapshot.objects.all()}
    big_row = rows[str(big.participant_id)]
    assert big_row.taken_at == T0  # floored to the interval
    assert (big_row.pool_active, big_row.quoting) == (True, True)
    assert big_row.spread_bps == D("6.0000")
    assert (big_row.bid_depth_usdt, big_row.ask_depth_usdt) == (D("2999.1000"), D("3000.9000"))
    # min of the sides, each notional × ((50 − 3)/50)²
    assert big_row.liquidity == (D("2999.1") * (D(47) / 50) ** 2).quantize(D("0.00000001"))
    assert (big_row.trades, big_row.volume_usdt) == (1, D("1500"))
    assert rows[str(small.participant_id)].quoting is False  # 30 USDT a side: under the minimum
    assert rows[str(one_sided.participant_id)].liquidity == 0
    assert rows[str(one_sided.participant_id)].spread_bps is None

    # The same instant again (a retried task): nothing more.
    assert jobs.snapshot_take(now=T0 + dt.timedelta(seconds=9), interval=TEN_S, config=CONFIG) == 0
    assert PerformanceSnapshot.objects.count() == 3


def test_samples_of_a_paused_pool_or_a_worker_that_is_down_do_not_count() -> None:
    (member,) = eth_pool(state="PAUSED", weights=("1",))
    publish(ETH, mode="PAUSED", mid="3000", members={str(member.participant_id): []})
    jobs.snapshot_take(now=T0, interval=TEN_S, config=CONFIG)
    redis_client().delete(LIVE_STATUS_KEY.format(symbol=ETH))  # the worker is down
    type(member.pool).objects.filter(pk=member.pool.pk).update(state="ACTIVE")
    jobs.snapshot_take(now=T0 + TEN_S, interval=TEN_S, config=CONFIG)
    assert list(PerformanceSnapshot.objects.values_list("pool_active", "quoting")) == [
        (False, False),
        (False, False),
    ]


# ---------------------------------------------------------------- the rollup


def _random_day(seed: int) -> tuple[list[Any], list[SampleRow], dict[str, int], dict[str, D]]:
    """Hand-made snapshots and fills for three members over 60 instants."""
    rng = random.Random(seed)
    members = eth_pool(weights=("5", "3", "2"))
    rows: list[SampleRow] = []
    snapshots = []
    for i in range(60):
        taken_at = T0 + i * TEN_S
        active = i % 10 != 9  # one instant in ten the pool was paused
        for m in members:
            quoting = rng.random() < 0.8
            liquidity = D(rng.randrange(1, 10_000)) / 100 if quoting else D(0)
            pid = str(m.participant_id)
            rows.append(SampleRow(i, pid, liquidity, quoting, active))
            snapshots.append(
                PerformanceSnapshot(
                    taken_at=taken_at,
                    symbol=ETH,
                    participant_id=pid,
                    pool_active=active,
                    quoting=quoting,
                    spread_bps=D("6") if quoting else None,
                    bid_depth_usdt=D(100),
                    ask_depth_usdt=D(120),
                    liquidity=liquidity,
                    trades=0,
                    volume_usdt=D(0),
                )
            )
    PerformanceSnapshot.objects.bulk_create(snapshots)
    trades: dict[str, int] = {}
    volume: dict[str, D] = {}
    for m in members:
        pid = str(m.participant_id)
        n = rng.randrange(0, 4)
        trades[pid], volume[pid] = n, D(0)
        for _ in range(n):
            size = D(rng.randrange(1, 100)) / 100
            FillFactory(
                participant=m.participant,
                symbol=ETH,
                price=D("3000"),
                size=size,
                realized_pnl_usdt=D("1.5"),
                filled_at=T0 + dt.timedelta(hours=1),
            )
            volume[pid] += D("3000") * size
    return members, rows, trades, volume


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_sql_rollup_gives_the_reference_scores_and_a_second_run_the_same_rows(
    seed: int,
) -> None:
    members, rows, trades, volume = _random_day(seed)
    weights = {str(m.participant_id): m.weight for m in members}
    floors = {"TIER_1": D("0.95"), "TIER_2": D("0.7")}
    expected = day_scores(
        member_days(
            rows,
            weights=weights,
            trades=trades,
            maker_volume=volume,
            uptime_floors=dict.fromkeys(weights, floors["TIER_2"]),
        ),
        CONFIG,
    )

    assert jobs.rollup_day(DAY, config=CONFIG, floors=floors) == 3
    stored = {
        str(r.participant_id): r for r in PerformanceDaily.objects.filter(day=DAY, symbol=ETH)
    }
    for score in expected:
        row = stored[score.participant_id]
        assert row.q_score == score.q_score
        assert row.uptime == score.uptime
        assert row.efficiency == score.efficiency
        assert row.sla_met == score.sla_met
        assert row.qualified == score.qualified
        assert row.samples == 54  # the paused instants do not count
        assert row.trade_count == trades[score.participant_id]
    total = sum(r.q_score for r in stored.values())
    assert total in (D(1), D(0))
    first = list(PerformanceDaily.objects.order_by("id").values())
    assert jobs.rollup_day(DAY, config=CONFIG, floors=floors) == 3
    again = list(PerformanceDaily.objects.order_by("id").values())
    strip = ("updated_at",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in again] == [
        {k: v for k, v in r.items() if k not in strip} for r in first
    ]


def test_pruning_takes_only_rolled_up_days_past_the_retention() -> None:
    (member,) = eth_pool(weights=("1",))
    pid = str(member.participant_id)

    def snap(at: dt.datetime) -> PerformanceSnapshot:
        return PerformanceSnapshot(
            taken_at=at,
            symbol=ETH,
            participant_id=pid,
            pool_active=True,
            quoting=True,
            spread_bps=D(5),
            bid_depth_usdt=D(1),
            ask_depth_usdt=D(1),
            liquidity=D(1),
            trades=0,
            volume_usdt=D(0),
        )

    day1, day2, day3 = T0, T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=2)
    PerformanceSnapshot.objects.bulk_create(
        [snap(day1), snap(day1 + TEN_S), snap(day2), snap(day3)]
    )
    jobs.rollup_day(day1.date(), config=CONFIG)  # day 2 is not rolled up
    jobs.rollup_day(day3.date(), config=CONFIG)  # day 3 is, but within the retention
    removed = jobs.snapshots_prune(now=day3 + dt.timedelta(hours=1), keep=dt.timedelta(hours=12))
    assert removed == 2
    assert sorted(PerformanceSnapshot.objects.values_list("taken_at", flat=True)) == [day2, day3]


def test_the_job_counters_and_gauges_are_on_the_admin_ports_metrics(settings: Any) -> None:
    members, *_ = _random_day(4)
    publish(ETH, mid="3000", members={str(m.participant_id): [] for m in members})
    jobs.snapshot_take(now=T0 + dt.timedelta(days=1), interval=TEN_S, config=CONFIG)
    jobs.rollup_day(DAY, config=CONFIG)
    settings.ROOT_URLCONF = "mms.urls_admin"
    body = Client().get("/metrics").content.decode()
    assert f'mm_performance_snapshot_total{{symbol="{ETH}"}} 3.0' in body
    assert f'mm_performance_rollup_total{{symbol="{ETH}"}} 1.0' in body
    assert 'mm_settlement_count{status="PENDING"} 0.0' in body
    best = PerformanceDaily.objects.order_by("-q_score").first()
    assert best is not None
    assert (
        f'mm_pool_q_score{{participant_id="{best.participant_id}",symbol="{ETH}"}} '
        f"{float(best.q_score)}" in body
    )


# ---------------------------------------------------------------- Celery for real


@pytest.mark.django_db(transaction=True)
def test_the_snapshot_and_rollup_tasks_run_in_a_real_celery_worker(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        _run_the_tasks_in_a_real_celery_worker(tmp_path, stack)


def _run_the_tasks_in_a_real_celery_worker(tmp_path: Path, stack: contextlib.ExitStack) -> None:
    """Counts of the outcomes and spans over OTLP too."""
    (member,) = eth_pool(weights=("1",))
    publish(
        ETH,
        mid="3000",
        members={str(member.participant_id): [["BUY", "2999.1", "1"], ["SELL", "3000.9", "1"]]},
    )
    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mms.settings.test",
        "POSTGRES_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.SERVICE.redis_url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans exported promptly
    }
    collector = stack.enter_context(otlp_collector())
    env["OPENOBSERVE_OTLP_ENDPOINT"] = collector.url
    log = tmp_path / "celery.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mms",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                f"test-{os.getpid()}",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        from performance import tasks

        queue = f"test-{os.getpid()}"
        tasks.snapshot.apply_async(queue=queue)
        deadline = time.monotonic() + 60
        while not PerformanceSnapshot.objects.exists():
            assert worker.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        row = PerformanceSnapshot.objects.get()
        assert (row.pool_active, row.quoting) == (True, True)
        day = row.taken_at.date().isoformat()
        tasks.rollup.apply_async(args=[day], queue=queue)
        while not PerformanceDaily.objects.exists():
            assert worker.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        assert PerformanceDaily.objects.get().q_score == 1
        # Each outcome counted in Redis by the worker process, read by the web's /metrics.
        from common.metrics import JobMetricsCollector

        def task_counts() -> dict[tuple[str, ...], float]:
            return {
                tuple(sample.labels.values()): sample.value
                for family in JobMetricsCollector().collect()
                if family.name == "mm_celery_tasks"
                for sample in family.samples
            }

        while task_counts().get(("performance.rollup", "success"), 0) < 1:
            assert time.monotonic() < deadline, task_counts()
            time.sleep(0.2)
        assert task_counts()[("performance.snapshot", "success")] >= 1
        # The worker process traced both tasks and exported the spans over OTLP.
        while {"run/performance.snapshot", "run/performance.rollup"} - {
            s.name for s in collector.spans if s.service == "mms-celery"
        }:
            assert time.monotonic() < deadline + 30, collector.spans
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


# ---------------------------------------------------------------- schedules


def test_install_schedules_creates_the_jobs_once_and_keeps_an_admins_edit() -> None:
    from django.core.management import call_command
    from django_celery_beat.models import PeriodicTask

    call_command("install_schedules")
    tasks = {t.name: t for t in PeriodicTask.objects.all()}
    assert {t.task for t in tasks.values()} == {
        "performance.snapshot",
        "performance.rollup",
        "settlements.monthly",
        "trading.prune_orders",
        "common.prune_outbox",
    }
    assert tasks["order retention"].crontab.hour == "0"
    assert tasks["performance snapshot"].interval.every == 10
    monthly = tasks["monthly settlement"].crontab
    assert (monthly.minute, monthly.hour, monthly.day_of_month, str(monthly.timezone)) == (
        "30",
        "0",
        "1",
        "UTC",
    )
    PeriodicTask.objects.filter(name="performance daily rollup").update(enabled=False)
    call_command("install_schedules")
    assert PeriodicTask.objects.count() == 5
    assert not PeriodicTask.objects.get(name="performance daily rollup").enabled  # kept
    call_command("install_schedules", "--reset")
    assert PeriodicTask.objects.get(name="performance daily rollup").enabled
