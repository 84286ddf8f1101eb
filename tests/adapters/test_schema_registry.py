"""The Schema Registry stand-in answers confluent-kafka's real client over HTTP
the way a Confluent registry does: global, stable ids, Confluent error codes,
and ids that survive a restart when it keeps a store."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.adapters.conftest import running_registry

SR_JSON = "application/vnd.schemaregistry.v1+json"


def avro_record(name: str, *fields: str) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "namespace": "test.sr",
            "fields": [{"name": field, "type": "string"} for field in fields],
        }
    )


def unique(base: str) -> str:
    return f"{base}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(schema_registry_url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry_url})


@pytest.fixture
def http(schema_registry_url: str) -> httpx.Client:
    return httpx.Client(base_url=schema_registry_url, timeout=5)


def test_register_then_read_back_through_the_confluent_client(client: SchemaRegistryClient):
    subject = unique("md.mark.v1") + "-value"
    text = avro_record(unique("Mark"), "symbol", "mark_price")

    schema_id = client.register_schema(subject, Schema(text, "AVRO"))

    assert client.get_schema(schema_id).schema_str == text
    found = client.lookup_schema(subject, Schema(text, "AVRO"))
    assert (found.subject, found.schema_id, found.version) == (subject, schema_id, 1)
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version, latest.schema.schema_str) == (schema_id, 1, text)
    assert subject in client.get_subjects()
    assert client.get_versions(subject) == [1]


def test_registering_the_same_schema_again_returns_the_same_id(schema_registry_url: str):
    subject = unique("engine.event.v1") + "-value"
    text = avro_record(unique("Fill"), "fill_id")
    # Separate clients: the client's own cache must not be what answers.
    first = SchemaRegistryClient({"url": schema_registry_url})
    second = SchemaRegistryClient({"url": schema_registry_url})

    schema_id = first.register_schema(subject, Schema(text, "AVRO"))

    assert second.register_schema(subject, Schema(text, "AVRO")) == schema_id
    assert second.get_versions(subject) == [1]


def test_the_same_schema_in_two_subjects_has_one_global_id(schema_registry_url: str):
    text = avro_record(unique("Shared"), "symbol")
    one, two = unique("a") + "-value", unique("b") + "-value"
    client = SchemaRegistryClient({"url": schema_registry_url})

    id_one = client.register_schema(one, Schema(text, "AVRO"))
    id_two = SchemaRegistryClient({"url": schema_registry_url}).register_schema(
        two, Schema(text, "AVRO")
    )

    assert id_one == id_two
    versions = {(v.subject, v.version) for v in client.get_schema_versions(id_one)}
    assert versions == {(one, 1), (two, 1)}


def test_formatting_does_not_make_a_new_schema_but_a_new_field_does(http: httpx.Client):
    subject = unique("fmt") + "-value"
    name = unique("Fmt")
    compact = avro_record(name, "a")
    spaced = json.dumps(json.loads(compact), indent=4, sort_keys=True)
    grown = avro_record(name, "a", "b")

    ids = [
        http.post(f"/subjects/{subject}/versions", json={"schema": text}).json()["id"]
        for text in (compact, spaced, grown)
    ]

    assert ids[0] == ids[1] != ids[2]
    assert http.get(f"/subjects/{subject}/versions").json() == [1, 2]
    latest = http.get(f"/subjects/{subject}/versions/latest").json()
    assert (latest["id"], latest["version"]) == (ids[2], 2)
    first = http.get(f"/subjects/{subject}/versions/1").json()
    assert (first["id"], first["schema"]) == (ids[0], compact)


def test_both_content_types_are_accepted(http: httpx.Client):
    text = avro_record(unique("Ct"), "a")
    body = json.dumps({"schema": text})

    with_sr = http.post(
        f"/subjects/{unique('ct')}/versions", content=body, headers={"Content-Type": SR_JSON}
    )
    with_json = http.post(
        f"/subjects/{unique('ct')}/versions",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert with_sr.status_code == with_json.status_code == 200
    assert with_sr.json()["id"] == with_json.json()["id"]


def error(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["error_code"]


def test_errors_have_confluent_codes(http: httpx.Client):
    subject = unique("err") + "-value"
    known = avro_record(unique("Known"), "a")
    http.post(f"/subjects/{subject}/versions", json={"schema": known}).raise_for_status()
    other = {"schema": avro_record(unique("Other"), "a")}

    assert error(http.get(f"/subjects/{unique('none')}/versions")) == (404, 40401)
    assert error(http.get(f"/subjects/{unique('none')}/versions/latest")) == (404, 40401)
    assert error(http.post(f"/subjects/{unique('none')}", json=other)) == (404, 40401)
    assert error(http.get(f"/subjects/{subject}/versions/7")) == (404, 40402)
    assert error(http.get(f"/subjects/{subject}/versions/zero")) == (422, 42202)
    assert error(http.post(f"/subjects/{subject}", json=other)) == (404, 40403)
    assert error(http.get("/schemas/ids/987654321")) == (404, 40403)
    assert error(http.get("/schemas/ids/987654321/versions")) == (404, 40403)
    undefined = avro_record("R", "a").replace('"string"', '"NoSuchType"')
    for bad in ("{not json", '{"type": "nosuchtype"}', undefined):
        assert error(http.post(f"/subjects/{subject}/versions", json={"schema": bad})) == (
            422,
            42201,
        )
    response = http.get(f"/subjects/{unique('none')}/versions")
    assert "not found" in response.json()["message"]


def test_the_client_raises_registry_errors_with_those_codes(client: SchemaRegistryClient):
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_schema(987654321)
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema(unique("bad"), Schema('{"type": "nosuchtype"}', "AVRO"))
    assert invalid.value.error_code == 42201


def test_compatibility_levels_are_stored_globally_and_per_subject(
    client: SchemaRegistryClient, http: httpx.Client
):
    subject = unique("cfg") + "-value"
    assert http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert error(http.get(f"/config/{subject}")) == (404, 40408)
    assert http.get(f"/config/{subject}", params={"defaultToGlobal": "true"}).json() == {
        "compatibilityLevel": "BACKWARD"
    }

    assert client.set_compatibility(subject_name=subject, level="full") == {"compatibility": "FULL"}

    assert client.get_compatibility(subject) == "FULL"
    assert client.get_compatibility() == "BACKWARD"
    assert error(http.put(f"/config/{subject}", json={"compatibility": "SOMETIMES"})) == (
        422,
        42203,
    )


def test_a_store_keeps_the_ids_across_a_restart(tmp_path: Path):
    store = tmp_path / "registry.json"
    texts = [avro_record(f"Kept{i}", "a") for i in range(3)]

    with running_registry(store) as url:
        client = SchemaRegistryClient({"url": url})
        ids = [
            client.register_schema("one-value", Schema(texts[0], "AVRO")),
            client.register_schema("one-value", Schema(texts[1], "AVRO")),
            client.register_schema("two-value", Schema(texts[1], "AVRO")),
        ]
        client.set_compatibility(subject_name="two-value", level="NONE")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry.json"]  # no temp files left

    with running_registry(store) as url:
        client = SchemaRegistryClient({"url": url})
        assert client.get_schema(ids[0]).schema_str == texts[0]
        assert client.lookup_schema("one-value", Schema(texts[1], "AVRO")).schema_id == ids[1]
        assert client.get_latest_version("two-value").schema_id == ids[2] == ids[1]
        assert client.get_compatibility("two-value") == "NONE"
        # A new schema gets a new id, never one already handed out.
        new_id = client.register_schema("one-value", Schema(texts[2], "AVRO"))
        assert new_id not in ids
        assert client.get_versions("one-value") == [1, 2, 3]
