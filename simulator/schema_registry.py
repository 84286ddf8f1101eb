"""Confluent Schema Registry stand-in: the subset of its REST API that
confluent-kafka's SchemaRegistryClient and Avro serdes use (SPEC Part B.7,
KAFKA.md "Schema registry"). Production points SCHEMA_REGISTRY_URL at a real
Confluent registry instead.

    POST /subjects/{subject}/versions          register -> {"id"}
    POST /subjects/{subject}                   look up -> {"subject", "id", "version", "schema"}
    GET  /subjects                             -> [subject, ...]
    GET  /subjects/{subject}/versions          -> [1, 2, ...]
    GET  /subjects/{subject}/versions/{v}      (v: n | latest | -1) -> same as the look-up
    GET  /schemas/ids/{id}                     -> {"schema"}
    GET  /schemas/ids/{id}/versions            -> [{"subject", "version"}, ...]
    GET  /schemas/ids/{id}/subjects            -> [subject, ...]
    GET  /schemas/types                        -> ["AVRO"]
    GET|PUT /config, /config/{subject}         compatibility level

Schema ids are global: a schema gets one id, whichever subject registers it,
and registering it again returns that id. Two texts are the same schema when
their fastavro-parsed forms (full names resolved), dumped as sorted compact
JSON, are equal, so whitespace, key order and namespace spelling do not
matter; docs and defaults do, as they do in the real registry.

What it leaves out: only AVRO without schema references; compatibility levels
are stored and reported but not enforced (the repository's schemas follow
BACKWARD by review, contracts/avro/README.md); no deletes, modes, contexts or
metadata. Errors are Confluent's: {"error_code": 40401, "message": ...}.

State lives in memory; with --store PATH it is also written to that JSON file
after every change (write to a temporary file, fsync, rename, so a crash never
leaves half a file) and loaded at start, so a restart keeps every id.

Run: python -m simulator.schema_registry --port 8081 [--store registry.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import fastavro
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

COMPATIBILITY_LEVELS = frozenset(
    {
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
        "NONE",
    }
)
DEFAULT_COMPATIBILITY = "BACKWARD"  # the real registry's default too
STORE_FORMAT = 1
MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"

# Confluent's error codes (HTTP status, error_code).
SUBJECT_NOT_FOUND = (404, 40401)
VERSION_NOT_FOUND = (404, 40402)
SCHEMA_NOT_FOUND = (404, 40403)
SUBJECT_CONFIG_NOT_FOUND = (404, 40408)
INVALID_SCHEMA = (422, 42201)
INVALID_VERSION = (422, 42202)
INVALID_COMPATIBILITY = (422, 42203)
BAD_REQUEST = (400, 400)


class RegistryError(Exception):
    def __init__(self, kind: tuple[int, int], message: str) -> None:
        super().__init__(message)
        self.status, self.error_code = kind
        self.message = message


def canonical_schema(text: str) -> str:
    """The identity of an Avro schema text; raises RegistryError(42201) if invalid."""
    try:
        parsed = fastavro.parse_schema(json.loads(text), _write_hint=False)
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise RegistryError(INVALID_SCHEMA, f"Invalid schema: {exc}") from exc
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"))


class SchemaRegistry:
    """The registry's state and rules, independent of HTTP."""

    def __init__(self, store_path: Path | None = None) -> None:
        self._store_path = store_path
        self._texts: dict[int, str] = {}  # id -> the text first registered under it
        self._ids: dict[str, int] = {}  # canonical form -> id
        self._subjects: dict[str, list[int]] = {}  # subject -> schema id per version (1-based)
        self.compatibility = DEFAULT_COMPATIBILITY
        self._subject_compatibility: dict[str, str] = {}
        if store_path is not None and store_path.exists():
            self._load(store_path)

    # ------------------------------------------------------------- schemas

    def register(self, subject: str, text: str) -> int:
        canonical = canonical_schema(text)
        schema_id = self._ids.get(canonical)
        versions = self._subjects.get(subject, [])
        if schema_id is not None and schema_id in versions:
            return schema_id
        if schema_id is None:
            schema_id = max(self._texts, default=0) + 1
            self._texts[schema_id] = text
            self._ids[canonical] = schema_id
        self._subjects[subject] = [*versions, schema_id]
        self._save()
        return schema_id

    def lookup(self, subject: str, text: str) -> dict[str, Any]:
        versions = self._versions(subject)
        schema_id = self._ids.get(canonical_schema(text))
        if schema_id is None or schema_id not in versions:
            raise RegistryError(SCHEMA_NOT_FOUND, f"Schema not found in subject '{subject}'")
        return self._registered(subject, versions.index(schema_id) + 1)

    def schema(self, schema_id: int) -> str:
        try:
            return self._texts[schema_id]
        except KeyError:
            raise RegistryError(SCHEMA_NOT_FOUND, f"Schema {schema_id} not found") from None

    def schema_versions(self, schema_id: int) -> list[dict[str, Any]]:
        self.schema(schema_id)
        return [
            {"subject": subject, "version": versions.index(schema_id) + 1}
            for subject, versions in sorted(self._subjects.items())
            if schema_id in versions
        ]

    # ------------------------------------------------------------ subjects

    def subjects(self) -> list[str]:
        return sorted(self._subjects)

    def versions(self, subject: str) -> list[int]:
        return list(range(1, len(self._versions(subject)) + 1))

    def version(self, subject: str, version: str) -> dict[str, Any]:
        versions = self._versions(subject)
        if version in ("latest", "-1"):
            return self._registered(subject, len(versions))
        try:
            number = int(version)
        except ValueError:
            number = 0
        if not 1 <= number < 2**31:
            raise RegistryError(
                INVALID_VERSION,
                f"The specified version '{version}' is not a valid version id. "
                'Allowed values are between [1, 2^31-1] and the string "latest"',
            )
        if number > len(versions):
            raise RegistryError(VERSION_NOT_FOUND, f"Version {number} not found.")
        return self._registered(subject, number)

    # -------------------------------------------------------------- config

    def set_compatibility(self, level: object, subject: str | None = None) -> str:
        if not isinstance(level, str) or level.upper() not in COMPATIBILITY_LEVELS:
            raise RegistryError(
                INVALID_COMPATIBILITY,
                f"Invalid compatibility level {level!r}: one of {sorted(COMPATIBILITY_LEVELS)}",
            )
        if subject is None:
            self.compatibility = level.upper()
        else:
            self._subject_compatibility[subject] = level.upper()
        self._save()
        return level.upper()

    def subject_compatibility(self, subject: str, *, default_to_global: bool) -> str:
        level = self._subject_compatibility.get(subject)
        if level is not None:
            return level
        if default_to_global:
            return self.compatibility
        raise RegistryError(
            SUBJECT_CONFIG_NOT_FOUND,
            f"Subject '{subject}' does not have subject-level compatibility configured",
        )

    # ------------------------------------------------------------- helpers

    def _versions(self, subject: str) -> list[int]:
        try:
            return self._subjects[subject]
        except KeyError:
            raise RegistryError(SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.") from None

    def _registered(self, subject: str, version: int) -> dict[str, Any]:
        schema_id = self._subjects[subject][version - 1]
        return {
            "subject": subject,
            "version": version,
            "id": schema_id,
            "schema": self._texts[schema_id],
        }

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != STORE_FORMAT:
            raise ValueError(f"{path}: unknown store format {data.get('format')!r}")
        for item in data["schemas"]:
            schema_id, text = int(item["id"]), str(item["schema"])
            self._texts[schema_id] = text
            self._ids[canonical_schema(text)] = schema_id
        self._subjects = {str(k): [int(i) for i in v] for k, v in data["subjects"].items()}
        self.compatibility = str(data["compatibility"])
        self._subject_compatibility = {
            str(k): str(v) for k, v in data["subject_compatibility"].items()
        }

    def _save(self) -> None:
        if self._store_path is None:
            return
        data = {
            "format": STORE_FORMAT,
            "schemas": [{"id": i, "schema": t} for i, t in sorted(self._texts.items())],
            "subjects": self._subjects,
            "compatibility": self.compatibility,
            "subject_compatibility": self._subject_compatibility,
        }
        _write_atomically(self._store_path, json.dumps(data, indent=1))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_app(store_path: Path | None = None) -> Starlette:
    registry = SchemaRegistry(store_path)

    async def register(request: Request) -> JSONResponse:
        body = await _schema_body(request)
        return _ok({"id": registry.register(request.path_params["subject"], body)})

    async def lookup(request: Request) -> JSONResponse:
        body = await _schema_body(request)
        return _ok(registry.lookup(request.path_params["subject"], body))

    async def list_subjects(request: Request) -> JSONResponse:
        return _ok(registry.subjects())

    async def list_versions(request: Request) -> JSONResponse:
        return _ok(registry.versions(request.path_params["subject"]))

    async def get_version(request: Request) -> JSONResponse:
        params = request.path_params
        return _ok(registry.version(params["subject"], params["version"]))

    async def get_schema(request: Request) -> JSONResponse:
        return _ok({"schema": registry.schema(_schema_id(request))})

    async def get_schema_versions(request: Request) -> JSONResponse:
        return _ok(registry.schema_versions(_schema_id(request)))

    async def get_schema_subjects(request: Request) -> JSONResponse:
        versions = registry.schema_versions(_schema_id(request))
        return _ok([item["subject"] for item in versions])

    async def schema_types(request: Request) -> JSONResponse:
        return _ok(["AVRO"])

    async def root(request: Request) -> JSONResponse:
        return _ok({})

    async def config(request: Request) -> JSONResponse:
        subject = request.path_params.get("subject")
        if request.method == "PUT":
            body = await _json_object(request)
            return _ok(
                {"compatibility": registry.set_compatibility(body.get("compatibility"), subject)}
            )
        if subject is None:
            return _ok({"compatibilityLevel": registry.compatibility})
        default_to_global = request.query_params.get("defaultToGlobal", "").lower() == "true"
        level = registry.subject_compatibility(subject, default_to_global=default_to_global)
        return _ok({"compatibilityLevel": level})

    async def registry_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RegistryError):  # registered for RegistryError only
            raise exc
        return JSONResponse(
            {"error_code": exc.error_code, "message": exc.message},
            status_code=exc.status,
            media_type=MEDIA_TYPE,
        )

    return Starlette(
        routes=[
            Route("/", root, methods=["GET"]),
            Route("/subjects", list_subjects, methods=["GET"]),
            Route("/subjects/{subject}", lookup, methods=["POST"]),
            Route("/subjects/{subject}/versions", register, methods=["POST"]),
            Route("/subjects/{subject}/versions", list_versions, methods=["GET"]),
            Route("/subjects/{subject}/versions/{version}", get_version, methods=["GET"]),
            Route("/schemas/types", schema_types, methods=["GET"]),
            Route("/schemas/ids/{schema_id}", get_schema, methods=["GET"]),
            Route("/schemas/ids/{schema_id}/versions", get_schema_versions, methods=["GET"]),
            Route("/schemas/ids/{schema_id}/subjects", get_schema_subjects, methods=["GET"]),
            Route("/config", config, methods=["GET", "PUT"]),
            Route("/config/{subject}", config, methods=["GET", "PUT"]),
        ],
        exception_handlers={RegistryError: registry_error},
    )


def _ok(content: Any) -> JSONResponse:
    return JSONResponse(content, media_type=MEDIA_TYPE)


def _schema_id(request: Request) -> int:
    raw = request.path_params["schema_id"]
    try:
        return int(raw)
    except ValueError:
        raise RegistryError(SCHEMA_NOT_FOUND, f"Schema {raw} not found") from None


async def _json_object(request: Request) -> dict[str, Any]:
    # Either content type (application/vnd.schemaregistry.v1+json or
    # application/json): the body is JSON regardless.
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise RegistryError(BAD_REQUEST, f"Body must be JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RegistryError(BAD_REQUEST, "Body must be a JSON object")
    return body


async def _schema_body(request: Request) -> str:
    """The Avro schema text of a register or look-up request."""
    body = await _json_object(request)
    schema_type = body.get("schemaType", "AVRO")
    if schema_type != "AVRO":
        raise RegistryError(INVALID_SCHEMA, f"Unsupported schemaType {schema_type!r}: AVRO only")
    if body.get("references"):
        raise RegistryError(INVALID_SCHEMA, "Schema references are not supported here")
    text = body.get("schema")
    if not isinstance(text, str):
        raise RegistryError(INVALID_SCHEMA, "Invalid schema: 'schema' must be a string")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description="Confluent Schema Registry stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--store", type=Path, default=None, help="JSON file that keeps the schemas across restarts"
    )
    args = parser.parse_args()
    uvicorn.run(create_app(args.store), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
