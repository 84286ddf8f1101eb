"""Every topic's records survive the trip through the Confluent wire format
between two separate codecs sharing one registry (as a producer and a consumer
process would); damaged messages are refused with a reason, never misread."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from messaging.avro import (
    SCHEMA_DIR,
    AvroCodec,
    DecodeError,
    EncodeError,
    RegistryUnavailableError,
)
from tests.adapters.conftest import running_registry
from tests.conftest import free_port

SYMBOL = "BTCUSDT-PERP"
TS_NS = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z
COID = "MM-3f9a1c2e-BTCUSDT-PERP-1767225600123456789"

SAMPLES: list[tuple[str, dict[str, Any]]] = [
    (
        "md.orderbook.snap.v1",
        {
            "symbol": SYMBOL,
            "seq": 1042,
            "bids": [
                {"price": "65000.10", "size": "1.250"},
                {"price": "64999.90", "size": "0.004"},
            ],
            "asks": [{"price": "65000.20", "size": "0.731"}],
            "reason": "START",
            "ts_ns": TS_NS,
        },
    ),
    (
        "md.orderbook.delta.v1",
        {
            "type": "BookDelta",
            "symbol": SYMBOL,
            "seq": 1043,
            "bids": [{"price": "65000.10", "size": "0"}],
            "asks": [{"price": "65000.20", "size": "2.500"}, {"price": "65000.30", "size": "0"}],
            "ts_ns": TS_NS + 1_000_000,
        },
    ),
    (
        "md.orderbook.delta.v1",
        {"type": "BookHeartbeat", "symbol": SYMBOL, "seq": 1043, "ts_ns": TS_NS + 10**9},
    ),
    (
        "md.mark.v1",
        {"symbol": SYMBOL, "mark_price": "65000.15", "index_price": "64998.70", "ts_ns": TS_NS},
    ),
    ("md.mark.v1", {"symbol": SYMBOL, "mark_price": "65000.15", "index_price": None, "ts_ns": 1}),
    (
        "engine.event.v1",
        {
            "type": "Fill",
            "fill_id": "F-9001",
            "order_id": "O-77",
            "client_order_id": COID,
            "account_id": "acct-mm-1",
            "symbol": SYMBOL,
            "side": "BUY",
            "price": "65000.10",
            "size": "0.015",
            "fee": "-0.00975150",
            "fee_asset": "USDT",
            "liquidity": "MAKER",
            "ts_ns": TS_NS,
        },
    ),
    (
        "engine.event.v1",
        {
            "type": "OrderAccepted",
            "client_order_id": COID,
            "order_id": "O-77",
            "account_id": "acct-mm-1",
            "symbol": SYMBOL,
            "ts_ns": TS_NS,
        },
    ),
    (
        "engine.event.v1",
        {
            "type": "OrderRejected",
            "client_order_id": COID,
            "account_id": "acct-mm-1",
            "symbol": SYMBOL,
            "reason": "POST_ONLY_WOULD_CROSS",
            "ts_ns": TS_NS,
        },
    ),
    (
        "engine.event.v1",
        {
            "type": "OrderCancelled",
            "client_order_id": COID,
            "order_id": "O-77",
            "account_id": "acct-mm-1",
            "symbol": SYMBOL,
            "reason": "CANCEL_ALL",
            "ts_ns": TS_NS,
        },
    ),
    (
        "engine.event.v1",
        {
            "type": "PublicTrade",
            "trade_id": "T-123",
            "symbol": SYMBOL,
            "price": "65000.20",
            "size": "0.5",
            "aggressor_side": "SELL",
            "ts_ns": TS_NS,
        },
    ),
    (
        "engine.event.v1",
        {"type": "InstrumentStatus", "symbol": SYMBOL, "status": "HALTED", "ts_ns": TS_NS},
    ),
    (
        "engine.event.v1",
        {
            "type": "FundingPayment",
            "payment_id": "FP-2026010108-acct-mm-1",
            "account_id": "acct-mm-1",
            "symbol": SYMBOL,
            "amount": "-1.23450000",
            "rate": "0.00010000",
            "ts_ns": TS_NS,
        },
    ),
    (
        "mm.state.changed.v1",
        {
            "event_id": "0b7e4e0e-8d1c-4b7a-9d55-6f7c2b1f0a11",
            "symbol": SYMBOL,
            "from_state": "ACTIVE",
            "to_state": "HALTED",
            "action": "halt",
            "actor": "runquoter@host-1",
            "actor_kind": "quoter",
            "reason": "LOSS: day PnL -1200.50 < -1000",
            "occurred_at": "2026-01-01T00:00:00.123456+00:00",
        },
    ),
    (
        "mm.risk.triggered.v1",
        {
            "event_id": "5d4a7c0e-1f0b-4c55-8f3e-0e2a6d9b7c21",
            "symbol": SYMBOL,
            "trigger": "LOSS",
            "detail": "day PnL -1200.50 < -1000",
            "actor": "runquoter@host-1",
            "actor_kind": "quoter",
            "occurred_at": "2026-01-01T00:00:00.123456+00:00",
        },
    ),
    (
        "mm.quote.simulated.v1",
        {
            "event_id": "9c1e2f3a-0000-4000-8000-000000000001",
            "symbol": SYMBOL,
            "participant_id": "3f9a1c2e-7b6d-4e1f-9a0b-1c2d3e4f5a6b",
            "side": "SELL",
            "level": 2,
            "price": "65010.50",
            "size": "0.015",
            "ts_ns": TS_NS,
        },
    ),
]


@pytest.fixture
def producer(schema_registry_url: str) -> AvroCodec:
    return AvroCodec(schema_registry_url)


@pytest.fixture
def consumer(schema_registry_url: str) -> AvroCodec:
    return AvroCodec(schema_registry_url)


def test_the_samples_cover_every_schema_in_contracts(producer: AvroCodec):
    assert {topic for topic, _ in SAMPLES} == set(producer.topics)
    assert len(producer.topics) == 7


@pytest.mark.parametrize(
    ("topic", "record"), SAMPLES, ids=[f"{t}:{r.get('type', '')}" for t, r in SAMPLES]
)
def test_a_record_round_trips_between_two_codecs(
    producer: AvroCodec, consumer: AvroCodec, topic: str, record: dict[str, Any]
):
    data = producer.encode(topic, record)

    assert consumer.decode(topic, data) == record


def test_the_value_is_in_confluent_wire_format(producer: AvroCodec, schema_registry_url: str):
    data = producer.encode("md.mark.v1", SAMPLES[3][1])

    registered = SchemaRegistryClient({"url": schema_registry_url}).get_latest_version(
        "md.mark.v1-value"
    )
    assert data[0] == 0
    assert (
        int.from_bytes(data[1:5], "big") == registered.schema_id == producer.schema_id("md.mark.v1")
    )
    assert json.loads(registered.schema.schema_str) == json.loads(
        (SCHEMA_DIR / "md.mark.v1.avsc").read_text()
    )


def test_confluents_own_serdes_read_and_write_the_same_bytes(
    producer: AvroCodec, consumer: AvroCodec, schema_registry_url: str
):
    client = SchemaRegistryClient({"url": schema_registry_url})
    mark = SAMPLES[3][1]
    fill = {k: v for k, v in SAMPLES[5][1].items() if k != "type"}
    mark_ctx = SerializationContext("md.mark.v1", MessageField.VALUE)
    event_ctx = SerializationContext("engine.event.v1", MessageField.VALUE)

    assert AvroDeserializer(client)(producer.encode("md.mark.v1", mark), mark_ctx) == mark
    assert AvroDeserializer(client, return_record_name=True)(
        producer.encode("engine.event.v1", SAMPLES[5][1]), event_ctx
    ) == ("tradex.engine.Fill", fill)

    mark_text = (SCHEMA_DIR / "md.mark.v1.avsc").read_text()
    event_text = (SCHEMA_DIR / "engine.event.v1.avsc").read_text()
    assert consumer.decode("md.mark.v1", AvroSerializer(client, mark_text)(mark, mark_ctx)) == mark
    confluent_fill = AvroSerializer(client, event_text)(("tradex.engine.Fill", fill), event_ctx)
    assert consumer.decode("engine.event.v1", confluent_fill) == SAMPLES[5][1]


def test_decimal_strings_are_kept_digit_for_digit(producer: AvroCodec, consumer: AvroCodec):
    prices = ["65000.10", "0.00000001", "-0.00975150", "123456789012345678901234567890.123456789"]
    record = {
        "symbol": SYMBOL,
        "seq": 1,
        "bids": [{"price": p, "size": "1.000"} for p in prices],
        "asks": [],
        "reason": "REQUEST",
        "ts_ns": TS_NS,
    }

    decoded = consumer.decode(
        "md.orderbook.snap.v1", producer.encode("md.orderbook.snap.v1", record)
    )

    assert [level["price"] for level in decoded["bids"]] == prices
    assert [Decimal(level["price"]) for level in decoded["bids"]] == [Decimal(p) for p in prices]
    assert decoded["bids"][0]["size"] == "1.000"  # trailing zeros kept: no float on the way


@pytest.fixture
def fill_bytes(producer: AvroCodec) -> bytes:
    return producer.encode("engine.event.v1", SAMPLES[5][1])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: b"", "truncated: 0 bytes"),
        (lambda data: data[:4], "truncated: 4 bytes"),
        (lambda data: data[:-3], "truncated Avro body"),
        (lambda data: data + b"\x00\x00", "2 trailing bytes"),
        (lambda data: b"\x01" + data[1:], "unknown magic byte 1"),
        (lambda data: data[:1] + (2**31 - 7).to_bytes(4, "big") + data[5:], "unknown schema id"),
        (lambda data: data[:5] + b"\x7f" + data[6:], "malformed Avro body"),
    ],
    ids=["empty", "short-header", "short-body", "trailing", "magic", "unknown-id", "bad-branch"],
)
def test_a_damaged_message_is_refused_with_its_reason(
    consumer: AvroCodec, fill_bytes: bytes, damage: Any, reason: str
):
    with pytest.raises(DecodeError) as refused:
        consumer.decode("engine.event.v1", damage(fill_bytes))

    assert refused.value.topic == "engine.event.v1"
    assert reason in refused.value.reason
    assert str(refused.value).startswith("engine.event.v1: ")


def test_every_truncation_of_every_sample_is_refused(producer: AvroCodec, consumer: AvroCodec):
    for topic, record in SAMPLES:
        data = producer.encode(topic, record)
        for cut in range(len(data)):
            with pytest.raises(DecodeError, match="truncated"):
                consumer.decode(topic, data[:cut])


def test_a_message_written_with_another_topics_schema_is_refused(
    producer: AvroCodec, consumer: AvroCodec
):
    mark = producer.encode("md.mark.v1", SAMPLES[3][1])

    with pytest.raises(DecodeError, match=r"tradex\.md\.MarkPrice\) cannot be read"):
        consumer.decode("engine.event.v1", mark)


def test_a_record_that_does_not_fit_is_not_encoded(producer: AvroCodec):
    fill = SAMPLES[5][1]
    with pytest.raises(EncodeError, match="'type' must be one of"):
        producer.encode("engine.event.v1", {k: v for k, v in fill.items() if k != "type"})
    with pytest.raises(EncodeError, match="fee"):
        producer.encode("engine.event.v1", {k: v for k, v in fill.items() if k != "fee"})
    with pytest.raises(EncodeError, match="price"):
        producer.encode("engine.event.v1", {**fill, "price": 65000.1})  # a float, not a string
    with pytest.raises(EncodeError, match="no schema"):
        producer.encode("md.unknown.v1", {})


# ---------------------------------------------------------------- evolution


def evolved_contracts(tmp_path: Path, topic: str, name: str, edit: Any) -> Path:
    """contracts/avro with `topic`'s schema copied to `<name>.avsc` and edited."""
    directory = tmp_path / name
    directory.mkdir(parents=True)
    schema = json.loads((SCHEMA_DIR / f"{topic}.avsc").read_text())
    (directory / f"{name}.avsc").write_text(json.dumps(edit(schema)))
    return directory


def test_a_reader_skips_a_field_a_newer_writer_added(tmp_path: Path, schema_registry_url: str):
    topic = f"md.mark.v1.evolved-{uuid.uuid4().hex[:8]}"

    def add_funding_rate(schema: dict[str, Any]) -> dict[str, Any]:
        field = {"name": "funding_rate", "type": ["null", "string"], "default": None}
        return {**schema, "fields": [*schema["fields"], field]}

    old = evolved_contracts(tmp_path / "old", "md.mark.v1", topic, lambda s: s)
    new = evolved_contracts(tmp_path / "new", "md.mark.v1", topic, add_funding_rate)
    old_codec = AvroCodec(schema_registry_url, schema_dir=old)
    new_codec = AvroCodec(schema_registry_url, schema_dir=new)
    record = SAMPLES[3][1]

    from_new = new_codec.encode(topic, {**record, "funding_rate": "0.0001"})
    from_old = old_codec.encode(topic, record)

    assert new_codec.schema_id(topic) != old_codec.schema_id(topic)
    assert old_codec.decode(topic, from_new) == record
    assert new_codec.decode(topic, from_old) == {**record, "funding_rate": None}


def test_an_event_type_the_reader_does_not_know_is_refused_not_misread(
    tmp_path: Path, schema_registry_url: str
):
    topic = f"engine.event.v1.evolved-{uuid.uuid4().hex[:8]}"

    def add_liquidation(schema: list[Any]) -> list[Any]:
        liquidation = {
            "type": "record",
            "name": "Liquidation",
            "namespace": "tradex.engine",
            "fields": [{"name": "symbol", "type": "string"}, {"name": "ts_ns", "type": "long"}],
        }
        return [*schema, liquidation]

    old = evolved_contracts(tmp_path / "old", "engine.event.v1", topic, lambda s: s)
    new = evolved_contracts(tmp_path / "new", "engine.event.v1", topic, add_liquidation)
    old_codec = AvroCodec(schema_registry_url, schema_dir=old)
    new_codec = AvroCodec(schema_registry_url, schema_dir=new)

    liquidation = new_codec.encode(topic, {"type": "Liquidation", "symbol": SYMBOL, "ts_ns": 1})
    fill = new_codec.encode(topic, SAMPLES[5][1])

    assert old_codec.decode(topic, fill) == SAMPLES[5][1]  # known types still read
    with pytest.raises(DecodeError, match="cannot be read"):
        old_codec.decode(topic, liquidation)


# ------------------------------------------------------------------ caching


def test_a_known_schema_id_decodes_without_the_registry(tmp_path: Path):
    with running_registry() as url:
        producer, consumer = AvroCodec(url), AvroCodec(url)
        data = producer.encode("engine.event.v1", SAMPLES[5][1])
        consumer.decode("engine.event.v1", data)
    # The registry is gone now.

    assert consumer.decode("engine.event.v1", data) == SAMPLES[5][1]
    with pytest.raises(RegistryUnavailableError):
        AvroCodec(url).decode("engine.event.v1", data)  # a new id must be fetched: retry later


def test_ids_follow_the_schema_text_not_the_file(tmp_path: Path, schema_registry_url: str):
    # A copy of contracts/avro gives the same ids: ids follow schema text, not paths.
    copy = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, copy)
    ours, theirs = AvroCodec(schema_registry_url), AvroCodec(schema_registry_url, schema_dir=copy)

    assert ours.register_all() == theirs.register_all()


def test_a_decode_waits_out_a_registry_outage_instead_of_dropping_or_crashing(
    tmp_path: Path,
) -> None:
    """A message whose schema id the worker has not seen arrives while the registry
    is down: the decode waits (retries counted), neither skipped nor raised, and
    returns the record once the registry is back on its port; a worker stopping
    meanwhile gives up with the registry's error (the message is read again)."""
    from quoting_worker.runner.consumer import decode_patiently

    store, port = tmp_path / "registry.json", free_port()
    topic, record = SAMPLES[1]
    with running_registry(store, port=port) as url:
        writer = AvroCodec(url)
        writer.register_all()
        data = writer.encode(topic, record)
    reader = AvroCodec(url)  # knows no schema id yet: it must ask the registry
    stopping = threading.Event()
    retries: list[float] = []
    decoded: list[dict[str, Any]] = []

    def consume() -> None:
        decoded.append(
            decode_patiently(
                reader, topic, data, stopping=stopping, on_retry=lambda exc, s: retries.append(s)
            )
        )

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + 20
    while len(retries) < 2:
        assert thread.is_alive(), decoded
        assert time.monotonic() < deadline, retries
        time.sleep(0.05)
    with running_registry(store, port=port):
        thread.join(timeout=20)
    assert decoded == [record]
    assert retries[:2] == [0.1, 0.2]  # backing off

    stopping.set()
    with pytest.raises(RegistryUnavailableError):
        decode_patiently(AvroCodec(url), topic, data, stopping=stopping)
