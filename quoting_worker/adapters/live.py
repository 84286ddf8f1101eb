"""Live status out to Redis, pool changes in from the database (SPEC Part B.9, B.10).

Status: the engine's status as the record messaging/live_status.py places on
Redis, versioned, with the worker's id and a timestamp. Changes: the database
row is the authority; when told a symbol changed (or periodically) the worker
reads the row again and `commands_for` turns the difference between the row
and the engine into the engine's commands.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any

from quoting_worker.adapters.store import PoolSetup
from quoting_worker.core.engine import PoolEngine
from quoting_worker.core.status import EngineStatus
from quoting_worker.core.types import Command, PoolMode


def status_record(
    status: EngineStatus, *, worker_id: str, version: int, now_ns: int
) -> dict[str, Any]:
    record = _jsonable(asdict(status))
    record.update({"version": version, "worker_id": worker_id, "published_at_ns": now_ns})
    return record


def commands_for(setup: PoolSetup, engine: PoolEngine, *, now_ns: int) -> list[Command]:
    """What the engine must be told so that it applies what the database says.
    (A resume decided from a row read before the gate last closed is dropped by
    the runquoter as it is applied: PoolActor._stale_opening.)"""
    commands: list[Command] = []
    if setup.params != engine.params:
        commands.append(Command("config", now_ns, params=setup.params))
    current = {m.spec.participant_id: m.spec for m in engine.members.values()}
    wanted = {m.participant_id: m for m in setup.members}
    if current != wanted:
        commands.append(Command("members", now_ns, members=setup.members))
    if setup.mode is not engine.mode:
        kind = {
            PoolMode.ACTIVE: "resume",
            PoolMode.PAUSED: "pause",
            PoolMode.HALTED: "kill",
            PoolMode.UNWINDING: "unwind",
        }[setup.mode]
        commands.append(Command(kind, now_ns, reason="database state"))
    return commands


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")  # plain notation: a PEPE spread is 0.000000004, not 4E-9
    if isinstance(value, PoolMode):
        return value.value
    return value
