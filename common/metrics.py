"""Metrics owned by the scheduled jobs, exported from one place.

Celery runs the jobs in several processes (and restarts them), so their counters
live in Redis, not in a process: `count_job` adds to a hash per metric, and
`JobMetricsCollector` — registered once in the web process, whose /metrics the
README names — reads them at scrape time. The gauges that are an app's own
state (settlements by status, the latest Q-score per member) are collected by
that app (settlements/metrics.py, performance/metrics.py).
Also here: every Celery task's outcome (`count_task`, from mms/celery.py's
signals) and the outbox's backlog, read from its table at scrape time (the
relay may be down: that is when the backlog matters).

Labels stay bounded: symbols, participants, statuses, task names, topics;
never order ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.redis import redis_client

logger = logging.getLogger("mms.metrics")

KEY = "mms:metrics:{name}"
JOB_COUNTERS = {
    "mm_performance_snapshot_total": "Performance snapshot rows written, by symbol.",
    "mm_performance_rollup_total": "Daily performance rollups of a symbol.",
}
TASKS_KEY = KEY.format(name="mm_celery_tasks_total")
TASK_OUTCOMES = ("success", "failure", "retry")
# Every family this process's collector serves (counters without `_total`).
WEB_FAMILIES = frozenset(
    {
        "mm_performance_snapshot",
        "mm_performance_rollup",
        "mm_settlement_count",
        "mm_pool_q_score",
        "mm_celery_tasks",
        "mm_outbox_backlog",
        "mm_outbox_oldest_unsent_age_seconds",
    }
)


def count_job(name: str, by_symbol: Mapping[str, int]) -> None:
    """Adds to a job counter; a metrics outage never fails the job."""
    if name not in JOB_COUNTERS:
        raise ValueError(f"no job counter {name!r}")
    increments = {symbol: n for symbol, n in by_symbol.items() if n}
    if not increments:
        return
    try:
        pipe = redis_client().pipeline()
        for symbol, n in increments.items():
            pipe.hincrby(KEY.format(name=name), symbol, n)
        pipe.execute()
    except Exception:
        logger.exception("could not count %s", name)


def count_task(task: str, outcome: str) -> None:
    """One Celery task outcome; a metrics outage never fails the task."""
    if outcome not in TASK_OUTCOMES:
        raise ValueError(f"no task outcome {outcome!r}")
    try:
        redis_client().hincrby(TASKS_KEY, f"{task}|{outcome}", 1)
    except Exception:
        logger.exception("could not count task %s %s", task, outcome)


class JobMetricsCollector(Collector):
    """The job counters and task outcomes from Redis, the outbox's backlog from its
    table. (Settlements by status and the latest Q-scores are the apps' own:
    settlements/metrics.py, performance/metrics.py.)"""

    def describe(self) -> Iterator[Metric]:
        """The families without values: registering must not touch Redis or the DB."""
        for name, documentation in JOB_COUNTERS.items():
            yield CounterMetricFamily(name.removesuffix("_total"), documentation, labels=["symbol"])
        yield CounterMetricFamily("mm_celery_tasks", "", labels=["task", "outcome"])
        yield GaugeMetricFamily("mm_outbox_backlog", "", labels=["topic"])
        yield GaugeMetricFamily("mm_outbox_oldest_unsent_age_seconds", "")

    def collect(self) -> Iterator[Metric]:
        client = redis_client()
        for name, documentation in JOB_COUNTERS.items():
            family = CounterMetricFamily(
                name.removesuffix("_total"), documentation, labels=["symbol"]
            )
            for symbol, value in sorted(client.hgetall(KEY.format(name=name)).items()):
                family.add_metric([_text(symbol)], float(value))
            yield family
        tasks = CounterMetricFamily(
            "mm_celery_tasks", "Celery task outcomes.", labels=["task", "outcome"]
        )
        for field, value in sorted(client.hgetall(TASKS_KEY).items()):
            task, _, outcome = _text(field).rpartition("|")
            tasks.add_metric([task, outcome], float(value))
        yield tasks
        yield from self._outbox()

    @staticmethod
    def _outbox() -> Iterator[Metric]:
        from django.db.models import Count, Min
        from django.utils import timezone

        from common.models import OutboxEvent

        rows = (
            OutboxEvent.objects.filter(published_at__isnull=True)
            .values("topic")
            .annotate(n=Count("id"), oldest=Min("created_at"))
        )
        backlog = GaugeMetricFamily(
            "mm_outbox_backlog", "Outbox rows not yet published, by topic.", labels=["topic"]
        )
        oldest = None
        for row in rows:
            backlog.add_metric([row["topic"]], row["n"])
            oldest = row["oldest"] if oldest is None else min(oldest, row["oldest"])
        yield backlog
        age = (timezone.now() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "mm_outbox_oldest_unsent_age_seconds",
            "Age of the oldest outbox row not yet published (0 when none waits).",
            value=max(0.0, age),
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
