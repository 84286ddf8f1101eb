"""The quoting core: plain Python, no Django, no I/O.

Everything here is deterministic given its inputs and a clock, so a run can be
replayed from recorded events. Adapters (quoting_worker/adapters) connect it
to Kafka, the Order Service, the ORM and Redis; the runner's per-symbol actor
(quoting_worker/runner/actor.py) is the one owner of each PoolEngine.

Its rooms:
- engine: PoolEngine, one symbol's pool as a state machine (events in, actions
  out): dispatch, market data, the gate, commands, risk trips, when to quote;
- orders: what the engine knows of its orders at the venue and the venue's
  answers about them (owner map, own size per price, cancels, unknown
  outcomes, queries, reconciliation);
- membership: the pool's members, their weights and limits, q;
- quoting: from a ladder to per-member targets and the cancels and placements
  that reach them; allocation: the pro-rata split; avellaneda: the A-S ladder;
- book, volatility, member (one member's orders, position and PnL), risk
  (guards and the pre-trade check), ids, types, ports;
- status: the live status snapshot; restart: the engine rebuilt from storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

# The compiled build (scripts/build_core.py, run by `make core`): the same
# modules as extensions, in a folder put ahead of this one on the package's
# path, so `quoting_worker.core.engine` is the extension whatever sys.path says.
# It is used only while its manifest names the sources as they are now.
# MMS_CORE: "auto" (the compiled build when it is current), "compiled" (it must
# be; an ImportError names what is wrong) or "interpreted" (the .py files).
HERE = Path(__file__).resolve().parent
COMPILED_DIR = HERE / "_compiled"
MANIFEST = "MANIFEST.json"
MODES = ("auto", "compiled", "interpreted")


def core_sources() -> list[Path]:
    """The modules the build compiles: every core module but this one."""
    return sorted(p for p in HERE.glob("*.py") if p.name != "__init__.py")


def sources_digest(sources: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _compiled_build_problem() -> str:
    """Why the compiled build cannot be used ("" when it can)."""
    try:
        manifest = json.loads((COMPILED_DIR / MANIFEST).read_text())
    except FileNotFoundError:
        return f"no compiled build in {COMPILED_DIR} (run `make core`)"
    except ValueError as exc:
        return f"{COMPILED_DIR / MANIFEST} is not JSON ({exc}); rebuild with `make core`"
    if manifest.get("python") != sys.implementation.cache_tag:
        return (
            f"the compiled build is for {manifest.get('python')}, this interpreter is "
            f"{sys.implementation.cache_tag}; rebuild with `make core`"
        )
    if manifest.get("sources") != sources_digest(core_sources()):
        return "the core's sources changed since the compiled build; rebuild with `make core`"
    return ""


def _select_build() -> str:
    mode = os.environ.get("MMS_CORE", "auto") or "auto"
    if mode not in MODES:
        raise ImportError(f"MMS_CORE={mode!r}: expected one of {', '.join(MODES)}")
    if mode == "interpreted":
        return "interpreted"
    problem = _compiled_build_problem()
    if problem:
        if mode == "compiled":
            raise ImportError(f"MMS_CORE=compiled: {problem}")
        if COMPILED_DIR.exists():  # built once, now stale: say so; never built: quiet
            warnings.warn(f"quoting core runs interpreted: {problem}", stacklevel=2)
        return "interpreted"
    __path__.insert(0, str(COMPILED_DIR))
    return "compiled"


# "compiled" or "interpreted": which build of the core this process runs.
BUILD = _select_build()
