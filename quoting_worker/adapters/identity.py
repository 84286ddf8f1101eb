"""What a worker runs: its build and configuration hashes (RELIABILITY.md: a
worker that does not match its peers refuses to quote — Knight Capital's
eighth server ran old code)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import quoting_worker.core as core

ROOT = Path(__file__).resolve().parents[2]
WORKER_KEY = "mms:quoter:{worker_id}"
WORKER_PATTERN = "mms:quoter:*"


def build_hash(root: Path = ROOT, compiled: Path | None = None) -> str:
    """The quoting code and contracts this process runs (sources, schemas, pins),
    and the compiled core's extensions when it runs them (`compiled`: their
    folder; by default the one this process loaded, if it loaded the build)."""
    if compiled is None and root == ROOT and core.BUILD == "compiled":
        compiled = core.COMPILED_DIR
    digest = hashlib.sha256()
    files = sorted(
        [
            *root.glob("quoting_worker/**/*.py"),
            *root.glob("contracts/**/*"),
            root / "pyproject.toml",
            *(compiled.iterdir() if compiled is not None else ()),
        ]
    )
    for path in files:
        if path.is_file() and "_generated" not in path.parts:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def config_hash(config: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def disagreeing_peers(own: Mapping[str, str], peers: Iterable[Mapping[str, str]]) -> list[str]:
    """The worker ids of live peers whose build or config differs from ours."""
    return sorted(
        str(peer.get("worker_id"))
        for peer in peers
        if peer.get("worker_id") != own["worker_id"]
        and (peer.get("build") != own["build"] or peer.get("config") != own["config"])
    )
