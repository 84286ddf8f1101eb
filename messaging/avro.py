"""Avro values of MMS's Kafka topics in the Confluent wire format.

A value is byte 0 (magic), the writer schema's registry id (4 bytes, big
endian), then the Avro binary encoding of the record: what Confluent's
AvroSerializer writes and its AvroDeserializer reads, so producers and
consumers in other languages interoperate. The schemas are the files in
contracts/avro/ (one per topic, `<topic>.avsc`), registered under the subject
`<topic>-value` (TopicNameStrategy); the README there lists topics and units.

Encoding and decoding use fastavro directly, with the registry client for
ids only: a producer registers its topic's schema once (the registry returns
the existing id for a schema it knows); a consumer fetches an unknown writer
schema by id once and keeps a reader per (topic, id), so decoding a message
costs one dict look-up plus fastavro. The consumer reads with its own schema
from contracts/avro, so writers may add fields with defaults (BACKWARD).

Values are plain dicts with decimal strings, enum symbols as strings and
integer nanosecond timestamps. A topic whose schema is a union of records
(engine.event.v1, md.orderbook.delta.v1) carries the record's short name in
an extra key `"type"` (e.g. "Fill", "BookHeartbeat"): `encode` needs it to
pick the union branch and `decode` adds it, so decode(encode(x)) == x.

A message that cannot be decoded raises DecodeError, naming topic and reason,
for the consumer to count and skip: bad magic byte, truncated or trailing
bytes, a schema id the registry does not know, a writer schema that does not
resolve to the topic's (e.g. a new union branch this reader lacks). A
registry that cannot be reached is not the message's fault: that raises
RegistryUnavailableError, and the message should be retried, not skipped.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.read import SchemaResolutionError

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "contracts" / "avro"
MAGIC_BYTE = 0
HEADER_SIZE = 5  # magic byte + 4-byte schema id
TYPE_KEY = "type"


class DecodeError(ValueError):
    """A message value that is not a readable record of its topic."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"{topic}: {reason}")
        self.topic = topic
        self.reason = reason


class EncodeError(ValueError):
    """A record that does not fit its topic's schema."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"{topic}: {reason}")
        self.topic = topic
        self.reason = reason


class RegistryUnavailableError(RuntimeError):
    """The schema registry could not answer; retry the message later."""


def subject_for(topic: str) -> str:
    return f"{topic}-value"


def load_schemas(directory: Path = SCHEMA_DIR) -> dict[str, str]:
    """{topic: schema text} for every `<topic>.avsc` in `directory`."""
    return {path.name.removesuffix(".avsc"): path.read_text() for path in directory.glob("*.avsc")}


def _canonical(parsed: Any) -> str:
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _TopicSchema:
    text: str
    parsed: Any  # fastavro's parsed form
    canonical: str
    # For a union of records: {full name: short name, short name: full name}.
    names: dict[str, str] | None
    label: str  # the record name, or the union's names joined by "|"


@dataclass(frozen=True, slots=True)
class _Reader:
    writer: Any
    reader: Any  # None when the writer's schema is the topic's own
    names: dict[str, str] | None
    writer_label: str  # the writer's record name(s), for error messages


def _topic_schema(text: str) -> _TopicSchema:
    raw = json.loads(text)
    plain = fastavro.parse_schema(raw, _write_hint=False)  # full names, no fastavro hints
    names = None
    if isinstance(plain, list):
        names = {}
        for branch in plain:
            full = branch["name"] if isinstance(branch, dict) else str(branch)
            short = full.rsplit(".", 1)[-1]
            names[full] = short
            names[short] = full
        label = "|".join(name for name in names if "." in name)
    else:
        label = str(plain.get("name", plain.get("type"))) if isinstance(plain, dict) else plain
    return _TopicSchema(
        text=text,
        parsed=fastavro.parse_schema(raw),
        canonical=_canonical(plain),
        names=names,
        label=label,
    )


class AvroCodec:
    """Encodes and decodes the values of MMS's topics (see the module docstring).

    `registry_url` is the Schema Registry (SCHEMA_REGISTRY_URL); "mock://name"
    gives confluent-kafka's in-process registry, for single-process tests.
    """

    def __init__(self, registry_url: str, *, schema_dir: Path = SCHEMA_DIR) -> None:
        self._client = SchemaRegistryClient.new_client({"url": registry_url})
        self._schemas = {
            topic: _topic_schema(text) for topic, text in load_schemas(schema_dir).items()
        }
        self._headers: dict[str, bytes] = {}  # topic -> magic byte + own schema id
        self._readers: dict[tuple[str, int], _Reader] = {}

    @property
    def topics(self) -> list[str]:
        return sorted(self._schemas)

    def schema_id(self, topic: str) -> int:
        """The registry id of `topic`'s schema, registering it the first time."""
        return int.from_bytes(self._header(topic)[1:], "big")

    def register_all(self) -> dict[str, int]:
        """Registers every topic's schema (a producer's start-up check)."""
        return {topic: self.schema_id(topic) for topic in self.topics}

    # --------------------------------------------------------------- encode

    def encode(self, topic: str, record: Mapping[str, Any]) -> bytes:
        schema = self._schemas.get(topic)
        if schema is None:
            raise EncodeError(topic, "no schema for this topic in contracts/avro")
        datum: Any = record
        if schema.names is not None:
            short = record.get(TYPE_KEY)
            full = schema.names.get(short) if isinstance(short, str) else None
            if full is None or "." not in full:
                known = sorted(name for name in schema.names if "." not in name)
                raise EncodeError(topic, f"'{TYPE_KEY}' must be one of {known}, got {short!r}")
            datum = (full, {k: v for k, v in record.items() if k != TYPE_KEY})
        buffer = io.BytesIO()
        buffer.write(self._header(topic))
        try:
            fastavro.schemaless_writer(buffer, schema.parsed, datum, strict_allow_default=True)
        except Exception as exc:  # fastavro raises ValueError, TypeError, AttributeError...
            raise EncodeError(topic, f"record does not fit the schema: {exc!r}") from exc
        return buffer.getvalue()

    def _header(self, topic: str) -> bytes:
        header = self._headers.get(topic)
        if header is None:
            schema = self._schemas.get(topic)
            if schema is None:
                raise EncodeError(topic, "no schema for this topic in contracts/avro")
            try:
                schema_id = self._client.register_schema(
                    subject_for(topic), Schema(schema.text, "AVRO")
                )
            except SchemaRegistryError as exc:
                if exc.http_status_code >= 500 or exc.http_status_code < 0:
                    raise RegistryUnavailableError(str(exc)) from exc
                raise EncodeError(topic, f"registry refused the schema: {exc}") from exc
            except Exception as exc:  # connection errors from the HTTP client
                raise RegistryUnavailableError(f"schema registry: {exc!r}") from exc
            header = bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")
            self._headers[topic] = header
        return header

    # --------------------------------------------------------------- decode

    def decode(self, topic: str, data: bytes) -> dict[str, Any]:
        if len(data) < HEADER_SIZE:
            raise DecodeError(topic, f"truncated: {len(data)} bytes, the header alone is 5")
        if data[0] != MAGIC_BYTE:
            raise DecodeError(topic, f"unknown magic byte {data[0]} (Confluent format has 0)")
        schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
        reader = self._readers.get((topic, schema_id)) or self._reader(topic, schema_id)
        stream = io.BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            value: Any = fastavro.schemaless_reader(
                stream,
                reader.writer,
                reader.reader,
                return_record_name=reader.names is not None,
                return_record_name_override=True,
            )
        except SchemaResolutionError as exc:
            # fastavro's message prints both schemas in full: name the writer instead.
            raise DecodeError(
                topic,
                f"schema id {schema_id} ({reader.writer_label}) cannot be read"
                " with the topic's schema (another topic's, or a record type this reader lacks)",
            ) from exc
        except Exception as exc:  # corrupt bytes surface as several exception types
            # Ran out of bytes (EOFError, or IndexError inside a varint): truncated.
            if isinstance(exc, EOFError) or stream.tell() >= len(data):
                raise DecodeError(topic, f"truncated Avro body (schema id {schema_id})") from exc
            raise DecodeError(
                topic, f"malformed Avro body (schema id {schema_id}): {exc!r:.200}"
            ) from exc
        if stream.tell() != len(data):
            raise DecodeError(topic, f"{len(data) - stream.tell()} trailing bytes after the record")
        if reader.names is None:
            return value
        name, body = value  # fastavro's (record name, record) for a union
        body[TYPE_KEY] = reader.names.get(name, name.rsplit(".", 1)[-1])
        return body

    def _reader(self, topic: str, schema_id: int) -> _Reader:
        own = self._schemas.get(topic)
        if own is None:
            raise DecodeError(topic, "no schema for this topic in contracts/avro")
        try:
            registered = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise DecodeError(
                    topic, f"unknown schema id {schema_id} (not in the registry)"
                ) from exc
            raise RegistryUnavailableError(str(exc)) from exc
        except Exception as exc:  # connection errors from the HTTP client
            raise RegistryUnavailableError(f"schema registry: {exc!r}") from exc
        if registered.schema_type not in (None, "AVRO") or registered.schema_str is None:
            raise DecodeError(topic, f"schema id {schema_id} is not an Avro schema")
        try:
            writer = _topic_schema(registered.schema_str)
        except Exception as exc:  # a registry may hold anything
            raise DecodeError(topic, f"schema id {schema_id} is not valid Avro: {exc}") from exc
        same = writer.canonical == own.canonical
        reader = _Reader(
            writer=writer.parsed,
            reader=None if same else own.parsed,
            names=own.names,
            writer_label=writer.label,
        )
        self._readers[(topic, schema_id)] = reader
        return reader
