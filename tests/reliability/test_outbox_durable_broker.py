"""Issue 8, row 6: the outbox relay against a Kafka node of the test's own, which
keeps its data through a crash (SIGKILL) and a restart (tests/kafka.py own_kafka).

Guarantee: every committed event reaches Kafka at least once, in order per key
(symbol), and nothing of a rolled-back transaction does. Shown with real relay
processes (`manage.py runoutboxrelay`) while
  1. the broker is up (the steady state, for the publish lag);
  2. the broker is killed while the relay is sending a batch, more events are
     written, and the broker comes back on the same storage;
  3. a relay is killed (SIGKILL) after the broker acknowledged its batch and
     before the rows were marked: the rows are sent again (same event_id);
  4. two relays run at once while more events are written: each of those once;
and in 2 and 4 a transaction that wrote events rolls back.

Afterwards a fresh consumer reads the topics from the beginning and counts
lost (committed, never in the log), phantom (in the log, never committed) and
reordered (a key's events, deduplicated by event_id, not in id order) events.
A consumer running through the whole test notes when each event first arrived:
the publish lag is that time minus the row's created_at (the row commits a few
ms after created_at, so the lag is overstated by that much).

An outage longer than the relay's delivery timeout is a case of its own (the
last test): an idempotent producer whose batch timed out mid-sequence may be
refused by the broker afterwards (on the retired development broker it was
fenced for good), so the relay replaces a producer in that state.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from django.db import DatabaseError, connection, transaction

from common.actors import Actor
from common.models import OutboxEvent
from devstack.kafka import KafkaNode
from messaging.avro import AvroCodec
from messaging.kafka import consumer_config, ensure_topics, producer_config
from messaging.topics import PUBLISHED as PUBLISHED_TOPICS
from pools import services
from pools.events import STATE_CHANGED_TOPIC
from pools.models import PoolConfig
from tests.conftest import ROOT
from tests.factories import PoolFactory
from tests.figures import record as record_figures
from tests.kafka import own_kafka, read_to_end, unique_group

OPS = Actor("olga-ops")
PARTITIONS = 3
WAIT_S = 30.0
# The relays' settings: a short poll and backoff; the delivery timeout is the default
# (10 s), longer than the outages of the main test (a Kafka restart takes 2-4 s).
RELAY_ARGS = ["--partitions", str(PARTITIONS), "--poll-interval", "0.05", "--max-backoff", "0.5"]
# Small batches for the two relays at once, so the lock changes hands more often.
PAIR_ARGS = ("--batch-size", "5")
# How long the broker stays down in the main test: well within the delivery timeout.
OUTAGE_S = 2.0
# The outage outlasts this delivery timeout in the last test.
SHORT_DELIVERY_TIMEOUT_S = 2.0

pytestmark = pytest.mark.django_db(transaction=True)


# ------------------------------------------------------------------ helpers


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        threading.Event().wait(0.05)


def new_pool() -> PoolConfig:
    return cast(PoolConfig, PoolFactory())


def toggle(pool: PoolConfig, times: int) -> None:
    """enable/pause `times` times: 2 × times committed events keyed by the pool's symbol."""
    for _ in range(times):
        services.pool_enable(pool=pool, actor=OPS, reason="row 6")
        services.pool_pause(pool=pool, actor=OPS, reason="row 6")


def rolled_back_change(pool: PoolConfig) -> list[str]:
    """Enables the pool in a transaction that then rolls back; the event ids it wrote."""
    written: list[str] = []

    def enable_then_fail() -> None:
        with transaction.atomic():
            before = set(OutboxEvent.objects.values_list("event_id", flat=True))
            services.pool_enable(pool=pool, actor=OPS, reason="never")
            after = OutboxEvent.objects.values_list("event_id", flat=True)
            written.extend(str(e) for e in after if e not in before)
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        enable_then_fail()
    assert written, "the rolled-back change wrote no outbox row"
    assert not OutboxEvent.objects.filter(event_id__in=written).exists()
    return written


def unpublished() -> int:
    return OutboxEvent.objects.filter(published_at__isnull=True).count()


def all_published() -> bool:
    return not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class Relay:
    """A relay process (`manage.py runoutboxrelay`) on the test database; `failpoint`:
    armed in it (common/failpoints.py)."""

    def __init__(
        self,
        broker: KafkaNode,
        registry: str,
        log: Path,
        *,
        failpoint: str = "",
        args: tuple[str, ...] = (),
    ):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mms.settings.test",
            "POSTGRES_URL": (
                f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"
            ),
            "KAFKA_BROKERS": broker.bootstrap,
            "SCHEMA_REGISTRY_URL": registry,
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "MMS_FAILPOINTS": failpoint,
        }
        command = [sys.executable, "manage.py", "runoutboxrelay", *RELAY_ARGS, *args]
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(  # noqa: S603
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
            )

    def output(self) -> str:
        return self.log.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_publishing(self) -> None:
        """Until the command has set up (topics, schemas) and runs its loop."""

        def publishing() -> bool:
            assert self.alive(), f"the relay exited:\n{self.output()}"
            return "runoutboxrelay: publishing the outbox" in self.output()

        wait_until(publishing, "the relay to start")

    def batches(self) -> list[int]:
        """The published count of each batch it logged."""
        marker = '"outbox relay: published '
        return [
            int(line.split(marker)[1].split(",")[0].split('"')[0])
            for line in self.output().splitlines()
            if marker in line
        ]

    def totals(self) -> dict[str, int]:
        """The counters it logged when it stopped."""
        marker = "runoutboxrelay: stopped; totals "
        (line,) = [line for line in self.output().splitlines() if marker in line]
        totals: dict[str, int] = ast.literal_eval(json.loads(line)["event"].split(marker)[1])
        return totals

    def stop(self) -> int:
        """SIGTERM (the relay ends after the batch in progress); its exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"relay did not stop on SIGTERM:\n{self.output()}") from None


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    event_id: str
    value: bytes


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else value or ""


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(consumer_config(bootstrap=bootstrap, group_id=unique_group("row6")))


@contextlib.contextmanager
def broker_with(home: Path, topics: Iterable[str]) -> Iterator[KafkaNode]:
    """A Kafka node of the test's own with `topics` (PARTITIONS partitions each)."""
    with own_kafka(home) as node:
        ensure_topics(node.bootstrap, dict.fromkeys(topics, PARTITIONS), co_partitioned=())
        yield node


class Watcher:
    """Reads the published topics through the whole test (broker restarts included)
    and notes the wall-clock time each event_id was first seen."""

    def __init__(self, bootstrap: str, topics: tuple[str, ...]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        assert self._ready.wait(WAIT_S), "the watcher did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT_S)

    def _run(self) -> None:
        consumer = _consumer(self.bootstrap)
        try:
            consumer.assign(
                [
                    TopicPartition(topic, number, OFFSET_BEGINNING)
                    for topic in self.topics
                    for number in range(PARTITIONS)
                ]
            )
            self._ready.set()
            while not self._stop.is_set():
                message = consumer.poll(0.1)
                if message is None or message.error() is not None:
                    continue
                event_id = dict(message.headers() or []).get("event_id")
                if event_id is None:
                    continue
                with self._lock:
                    self.first_seen.setdefault(_text(event_id), time.time())
        finally:
            consumer.close()

    def seen(self, event_ids: list[str]) -> bool:
        with self._lock:
            return all(e in self.first_seen for e in event_ids)


def read_log(bootstrap: str) -> list[Record]:
    """Every event on the published topics, read by a fresh consumer from the
    beginning to the end offsets."""
    consumer = _consumer(bootstrap)
    try:
        messages = read_to_end(consumer, PUBLISHED_TOPICS, timeout_s=WAIT_S)
    finally:
        consumer.close()
    return [
        Record(
            topic=_text(message.topic()),
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            key=_text(message.key()),
            event_id=_text(dict(message.headers() or [])["event_id"]),
            value=message.value() or b"",
        )
        for message in messages
    ]


def read_values(consumer: Consumer, wanted: int) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    while len(values) < wanted:
        assert time.monotonic() < deadline, f"read {len(values)} of {wanted} records"
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            values.append(message.value() or b"")
    return values


def claimed_by_a_relay(pk: int) -> bool:
    """True while a relay's batch holds the row (SELECT ... FOR UPDATE, not yet committed)."""
    try:
        with transaction.atomic():
            list(OutboxEvent.objects.select_for_update(nowait=True).filter(pk=pk))
    except DatabaseError:
        return True
    return False


def last_pk() -> int:
    return OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def ids_after(pk: int) -> list[str]:
    rows = OutboxEvent.objects.filter(pk__gt=pk).order_by("id")
    return [str(e) for e in rows.values_list("event_id", flat=True)]


@dataclass(frozen=True)
class Figures:
    lost: list[str]
    phantom: list[str]
    reordered: int
    duplicates: int
    copies: Counter[str]
    mismatched: list[str]


def count(records: list[Record], codec: AvroCodec) -> Figures:
    """Lost, phantom and reordered events of the log against the committed outbox."""
    committed = {str(row.event_id): row for row in OutboxEvent.objects.order_by("id")}
    copies = Counter(r.event_id for r in records)
    first_copies: dict[tuple[str, str], list[int]] = defaultdict(list)
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        if record.event_id in committed and record.event_id not in seen:
            seen.add(record.event_id)
            first_copies[(record.topic, record.key)].append(committed[record.event_id].pk)
    reordered = sum(
        1 for pks in first_copies.values() for i, pk in enumerate(pks) if pk < max(pks[: i + 1])
    )
    mismatched = [
        r.event_id
        for r in records
        if r.event_id in committed
        and (
            r.topic != committed[r.event_id].topic
            or r.key != committed[r.event_id].key
            or codec.decode(r.topic, r.value)
            != {**committed[r.event_id].payload, "event_id": r.event_id}
        )
    ]
    return Figures(
        lost=sorted(set(committed) - set(copies)),
        phantom=sorted(set(copies) - set(committed)),
        reordered=reordered,
        duplicates=sum(copies.values()) - len(copies),
        copies=copies,
        mismatched=mismatched,
    )


def unpublished_detail() -> str:
    stuck = OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")
    row = stuck.first()
    if row is None:
        return "no row unpublished"
    return f"{stuck.count()} rows unpublished, the first after {row.attempts} attempts: " + (
        row.last_error or "(no error recorded)"
    )


class StuckRelay(AssertionError):
    """The relay runs and the broker is up, yet the rows stay unpublished."""


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("crash", [True, False], ids=["SIGKILL", "SIGTERM"])
def test_kafka_keeps_records_and_committed_offsets_across_a_restart(
    tmp_path: Path, crash: bool
) -> None:
    topic = "row6.durability"
    with broker_with(tmp_path, [topic]) as broker:
        producer = Producer(producer_config(bootstrap=broker.bootstrap, client_id="row6"))
        for i in range(30):
            producer.produce(topic, key=f"k{i % 5}", value=str(i).encode())
        assert producer.flush(WAIT_S) == 0
        group = unique_group("row6-offsets")
        config = consumer_config(bootstrap=broker.bootstrap, group_id=group)
        consumer = Consumer(config)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        read = read_values(consumer, 30)
        positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        consumer.commit(offsets=positions, asynchronous=False)
        consumer.close()

        if crash:
            broker.kill()  # the page cache keeps what was written; the log is recovered
        else:
            broker.stop()
        broker.start()  # the same ports and data folder

        consumer = Consumer(config)
        try:
            committed = consumer.committed(
                [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10
            )
            assert {(tp.partition, tp.offset) for tp in committed} >= {
                (tp.partition, tp.offset) for tp in positions
            }
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
            again = read_values(consumer, 30)
        finally:
            consumer.close()
        assert sorted(again) == sorted(read) == sorted(str(i).encode() for i in range(30))


def test_every_event_at_least_once_in_order_none_rolled_back_through_crashes(
    tmp_path: Path, schema_registry_url: str, capsys: pytest.CaptureFixture[str]
):
    started = time.monotonic()
    pools = [new_pool() for _ in range(4)]
    rolled_back: list[str] = []
    relays: list[Relay] = []

    with (
        broker_with(tmp_path, PUBLISHED_TOPICS) as broker,
        # The pools' state changes are the events here: fewer partitions to fetch.
        Watcher(broker.bootstrap, (STATE_CHANGED_TOPIC,)) as watcher,
    ):

        def relay(name: str, failpoint: str = "", args: tuple[str, ...] = ()) -> Relay:
            log = tmp_path / f"{name}.log"
            process = Relay(broker, schema_registry_url, log, failpoint=failpoint, args=args)
            relays.append(process)
            return process

        def published(*watched: Relay) -> Callable[[], bool]:
            def check() -> bool:
                for process in watched:
                    assert process.alive(), f"a relay died:\n{process.output()}"
                return all_published()

            return check

        try:
            # 1. The broker up, one relay: the steady state.
            first = relay("relay-1")
            first.wait_publishing()
            toggle(pools[0], 1)
            wait_until(published(first), "the relay's first events to be published")
            mark = last_pk()
            for pool in pools:
                toggle(pool, 3)
            wait_until(published(first), "the steady-state events to be published")
            steady = ids_after(mark)
            # Read before the broker goes down, or their lag would include the outage.
            wait_until(lambda: watcher.seen(steady), "the steady-state events to be read")

            # 2. The broker killed while the relay sends a batch; the broker back.
            mark = last_pk()
            broker.kill()
            down_since = time.monotonic()
            for pool in pools:
                toggle(pool, 2)
            rolled_back += rolled_back_change(pools[0])
            written_down = ids_after(mark)
            # The relay's batch holds the first of them (the rest may come in later
            # batches): it is sending it to the dead broker. The outage ends well
            # within the delivery timeout (the next test is about a longer one).
            down_pk = OutboxEvent.objects.get(event_id=written_down[0]).pk
            wait_until(
                lambda: claimed_by_a_relay(down_pk),
                "the relay to send a row written while the broker is down",
            )
            assert unpublished() == len(written_down), "a row was marked while the broker was down"
            threading.Event().wait(max(0.0, OUTAGE_S - (time.monotonic() - down_since)))
            broker.start()
            outage = time.monotonic() - down_since
            try:
                wait_until(published(first), "the rows written while the broker was down")
            except AssertionError as exc:
                raise StuckRelay(f"{exc}: {unpublished_detail()}") from None
            assert first.stop() == 0, first.output()

            # 3. A relay killed after the broker acknowledged its batch, before marking it.
            mark = last_pk()
            for pool in pools[:2]:
                toggle(pool, 2)
            replayed = ids_after(mark)
            killed = relay("relay-killed", failpoint="outbox.published")
            killed.proc.wait(timeout=WAIT_S)
            assert killed.proc.returncode == -signal.SIGKILL, killed.output()
            assert "failpoint outbox.published reached" in killed.output()
            assert unpublished() == len(replayed), "the killed relay marked rows"
            wait_until(lambda: watcher.seen(replayed), "the killed relay's batch in the log")

            # 4. Two relays at once (sending the killed relay's rows again) while
            #    more events and a rolled-back change are written.
            pair = [relay("relay-a", args=PAIR_ARGS), relay("relay-b", args=PAIR_ARGS)]
            for process in pair:
                process.wait_publishing()
            wait_until(published(*pair), "the killed relay's rows to be sent again")
            mark = last_pk()
            for round_ in range(3):
                for pool in pools:
                    toggle(pool, 1)
                if round_ == 1:
                    rolled_back += rolled_back_change(pools[1])
            concurrent = ids_after(mark)
            wait_until(published(*pair), "the events written while two relays ran")
            wait_until(lambda: watcher.seen(ids_after(0)), "every event seen by the watcher")
            assert [process.stop() for process in pair] == [0, 0], [p.output() for p in pair]
            records = read_log(broker.bootstrap)
        finally:
            for process in relays:
                if process.alive():
                    process.proc.kill()
                    process.proc.wait()

    figures = count(records, AvroCodec(schema_registry_url))
    times = OutboxEvent.objects.values_list("event_id", "created_at", "published_at")
    created = {str(e): c.timestamp() for e, c, _ in times}
    marked = {str(e): p.timestamp() for e, _, p in times if p is not None}
    lag_s = {e: watcher.first_seen[e] - t for e, t in created.items()}
    up = [*steady, *concurrent]  # written while a relay ran and the broker was up
    consumed_ms = [lag_s[e] * 1000 for e in up]
    marked_ms = [(marked[e] - created[e]) * 1000 for e in up]
    down_max_s = max(lag_s[e] for e in written_down)
    batches = [process.batches() for process in pair]
    busy = [process.totals()["lock_busy"] for process in pair]
    line = (
        f"row 6: {len(created)} events committed, {len(rolled_back)} rolled back;"
        f" lost {len(figures.lost)} / phantom {len(figures.phantom)} /"
        f" reordered {figures.reordered};"
        f" duplicates {figures.duplicates} (the killed relay's batch: {len(replayed)});"
        f" publish lag (committed → consumed), broker up: p50 {percentile(consumed_ms, 0.5):.0f}"
        f" ms, p99 {percentile(consumed_ms, 0.99):.0f} ms (n={len(up)}; committed → acknowledged"
        f" and marked: p50 {percentile(marked_ms, 0.5):.0f} ms, p99"
        f" {percentile(marked_ms, 0.99):.0f} ms);"
        f" written during the {outage:.1f} s outage: consumed within {down_max_s:.1f} s;"
        f" two relays: batches {batches[0]} and {batches[1]}, found the lock busy"
        f" {busy[0]} and {busy[1]} times;"
        f" {time.monotonic() - started:.0f} s"
    )
    with capsys.disabled():
        print(f"\n{line}")
    record_figures(
        6,
        events=len(created),
        rolled_back=len(rolled_back),
        lost=len(figures.lost),
        phantom=len(figures.phantom),
        reordered=figures.reordered,
        duplicates=figures.duplicates,
        publish_lag_p50_ms=round(percentile(consumed_ms, 0.5)),
        publish_lag_p99_ms=round(percentile(consumed_ms, 0.99)),
        outage_s=round(outage, 2),
        outage_consumed_within_s=round(down_max_s, 2),
    )

    assert (figures.lost, figures.phantom, figures.reordered) == ([], [], 0), line
    assert figures.mismatched == []
    assert not set(rolled_back) & set(figures.copies), "a rolled-back event was published"
    # At least once: the killed relay's rows are in the log twice, with the same
    # event_id; the rows written in step 4 once (the two relays took turns).
    assert all(figures.copies[e] >= 2 for e in replayed), {e: figures.copies[e] for e in replayed}
    assert all(figures.copies[e] == 1 for e in concurrent), line
    assert sum(map(sum, batches)) == len(replayed) + len(concurrent)


def test_the_relay_recovers_from_an_outage_longer_than_its_delivery_timeout(
    tmp_path: Path, schema_registry_url: str
):
    pool = new_pool()
    with broker_with(tmp_path, PUBLISHED_TOPICS) as broker:
        relay = Relay(
            broker,
            schema_registry_url,
            tmp_path / "relay.log",
            args=("--delivery-timeout", str(SHORT_DELIVERY_TIMEOUT_S)),
        )
        try:
            relay.wait_publishing()
            toggle(pool, 1)
            wait_until(all_published, "the events written before the outage")
            mark = last_pk()
            broker.kill()
            toggle(pool, 2)
            written_down = ids_after(mark)
            wait_until(
                lambda: OutboxEvent.objects.filter(
                    event_id__in=written_down, attempts__gte=1
                ).exists(),
                "a delivery to the dead broker to time out",
            )
            broker.start()

            def published() -> bool:
                assert relay.alive(), relay.output()
                return all_published()

            try:
                wait_until(published, "the rows written during the outage", timeout=10)
            except AssertionError as exc:
                raise StuckRelay(f"{exc}: {unpublished_detail()}") from None
            assert relay.stop() == 0, relay.output()
            records = read_log(broker.bootstrap)
        finally:
            if relay.alive():
                relay.proc.kill()
                relay.proc.wait()
    figures = count(records, AvroCodec(schema_registry_url))
    assert (figures.lost, figures.phantom, figures.reordered) == ([], [], 0)
