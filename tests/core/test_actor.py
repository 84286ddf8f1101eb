"""run_engine: one task per symbol drains its queue in order and hands each
event's actions to the sink before looking at the next event."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from quoting_worker.core.engine import run_engine
from quoting_worker.core.types import Action, Command, Event, PlaceOrder
from tests.core.engine_world import World


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[Action]]] = []

    async def execute(self, symbol: str, actions: Sequence[Action]) -> None:
        self.batches.append((symbol, list(actions)))


def test_the_actor_applies_events_in_order_and_stops_on_none() -> None:
    world = World()
    sink = RecordingSink()

    async def scenario() -> None:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        task = asyncio.create_task(run_engine(world.engine, queue, sink))
        world.warm()  # straight into the engine: no actions while PAUSED
        await queue.put(Command("enable", world.now()))
        await queue.put(Command("pause", world.now()))
        await queue.put(None)
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(scenario())
    assert [symbol for symbol, _ in sink.batches] == ["BTCUSDT-PERP", "BTCUSDT-PERP"]
    enable, pause = (actions for _, actions in sink.batches)
    assert all(isinstance(a, PlaceOrder) for a in enable)
    placed = {a.client_order_id for a in enable if isinstance(a, PlaceOrder)}
    cancelled = {getattr(a, "client_order_id", None) for a in pause} - {None}
    assert cancelled == placed


def test_a_failing_event_goes_to_the_error_handler_and_the_actor_carries_on() -> None:
    world = World()
    sink = RecordingSink()
    seen: list[str] = []

    def on_error(event: Event, exc: Exception) -> list[Action]:
        seen.append(type(exc).__name__)
        return []

    async def scenario() -> None:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        task = asyncio.create_task(run_engine(world.engine, queue, sink, on_error=on_error))
        await queue.put(Command("no-such-command", world.now()))
        await queue.put(Command("pause", world.now()))
        await queue.put(None)
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(scenario())
    assert seen == ["ValueError"]
    assert world.engine.mode == "PAUSED"
