# mypy: ignore-errors
# (hooks wrapped around the worker's internals at run time)
"""The latency probes: timestamps of a market delta's way through the worker,
from the consumer call that returned it to the Order Service request it caused.
Installed on the worker's event loop (engines are only touched there), undone
by `uninstall`.

- `LatencyProbe` (bench/quoter_throughput.py): per delta (symbol, seq), the
  receipt, the decode, engine.handle (or the drain's release that quoted it),
  the write-ahead journal and the first request entering the HTTP transport
  (the first placement too); a waiter per delta is set once it is answered.
- `StackProbe` (bench/e2e.py): per delta, the placements its re-quote decided,
  and per client order id when the sender took its batch, client.place (or
  cancel_outcome) was called, the journal wrote it and the request went out and
  was answered; e2e's correlation joins these to TradeX's own stamps.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from harness.probes import Hold, Patches, stamp_appends
from messaging.topics import DELTA

Key = tuple[str, int]  # (symbol, seq)


def _each_engine(worker: Any) -> list[Any]:
    return [actor.engine for actor in worker.hosted.values()]


class LatencyProbe:
    """Timestamps of one delta's way through the worker, keyed by (symbol, seq)."""

    def __init__(self, worker: Any, hold: Hold) -> None:
        self.worker = worker
        self.hold = hold
        self.taken: dict[Key, tuple[int, int, int, int | None]] = {}
        self.records: dict[Key, dict[str, Any]] = {}
        self.waiters: dict[Key, threading.Event] = {}
        self.current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
            "bench_delta", default=None
        )
        self.by_action: dict[int, dict[str, Any]] = {}
        # Per symbol, the delta whose re-quote waits for the drain's release.
        self.held: dict[str, dict[str, Any]] = {}
        self.patches = Patches()

    def install(self) -> None:
        w, p = self.worker, self.patches
        p.wrap(w.intake.codec, "decode", self._decode)
        p.wrap(w.journal, "record", self._journal)
        for actor in w.hosted.values():
            p.wrap(actor, "_send", self._send)
            engine = actor.engine
            p.wrap_engine(
                actor,
                {
                    "handle": lambda handle, e=engine: self._handle(e, handle),
                    "release": lambda release, e=engine: self._release(e, release),
                },
            )
        p.wrap(w.client, "_exchange", self._exchange)
        stamp_appends(w, self.hold, p)

    def uninstall(self) -> None:
        self.patches.undo()

    def _wake(self, rec: dict[str, Any]) -> None:
        waiter = self.waiters.get(rec["key"])
        if waiter is not None:
            waiter.set()

    def _decode(self, decode: Callable[..., Any]) -> Callable[..., Any]:
        taken, hold, now = self.taken, self.hold, time.time_ns

        def probe_decode(topic: str, data: bytes) -> dict[str, Any]:
            record = decode(topic, data)
            if topic == DELTA and record.get("type") == "BookDelta":
                # t0: when poll()/consume() handed the message (its batch) to the worker.
                taken[(record["symbol"], record["seq"])] = (
                    hold.received_ns,
                    record["ts_ns"],
                    now(),
                    hold.append_ns,
                )
            return record

        return probe_decode

    def _journal(self, record: Callable[..., Any]) -> Callable[..., Any]:
        current = self.current

        async def probe_journal(**kwargs: Any) -> Any:
            rec = current.get()
            if rec is None:
                return await record(**kwargs)
            rec["j_start"] = time.time_ns()
            try:
                return await record(**kwargs)
            finally:
                rec["j_end"] = time.time_ns()

        return probe_journal

    def _decided(self, rec: dict[str, Any], actions: list[Any]) -> None:
        rec["actions"] = Counter(type(a).__name__ for a in actions)
        self.current.set(rec if actions else None)
        for action in actions:  # the sender task finds its delta by them
            self.by_action[id(action)] = rec
        if not actions:
            self._wake(rec)

    def _handle(self, engine: Any, handle: Callable[..., Any]) -> Callable[..., Any]:
        from quoting_worker.core.types import BookDelta

        symbol, current, now = engine.symbol, self.current, time.time_ns

        def probe_handle(event: Any) -> Any:
            if type(event) is not BookDelta:
                current.set(None)
                return handle(event)
            t1 = now()
            actions = handle(event)
            t2 = now()
            key = (symbol, event.seq)
            got = self.taken.pop(key, None)
            if got is None:
                current.set(None)
                return actions
            rec = {"key": key, "t0": got[0], "produced": got[1], "decoded": got[2]}
            rec.update(appended=got[3], t1=t1, t2=t2)
            self.records[key] = rec
            if engine.holding and not actions:
                self.held[symbol] = rec  # quoted when the hold is released
                current.set(None)
            else:
                self._decided(rec, actions)
            return actions

        return probe_handle

    def _release(self, engine: Any, release: Callable[..., Any]) -> Callable[..., Any]:
        # The drain applies its events under the engine's hold and quotes once in
        # `release`: a delta's actions come from there (its newest delta's).
        symbol = engine.symbol

        def probe_release() -> Any:
            rec = self.held.pop(symbol, None)
            actions = release()
            if rec is not None:
                rec["t2"] = time.time_ns()  # the quote decided: release ends
                self._decided(rec, actions)
            return actions

        return probe_release

    def _send(self, send: Callable[..., Any]) -> Callable[..., Any]:
        current, by_action = self.current, self.by_action

        async def probe_send(actions: list[Any]) -> Any:
            # Runs in the sender's batch task: carry the delta's record into it.
            found = [by_action.pop(id(a), None) for a in actions]
            rec = next((r for r in found if r is not None), None)
            current.set(rec)
            if rec is not None:
                rec["t_sender"] = time.time_ns()
            return await send(actions)

        return probe_send

    def _exchange(self, exchange: Callable[..., Any]) -> Callable[..., Any]:
        current = self.current

        async def probe_exchange(method: str, url: str, **options: Any) -> Any:
            rec = current.get()
            if rec is not None:
                t = time.time_ns()
                if "t_req" not in rec:
                    rec["t_req"] = t
                    rec["first"] = method
                if method == "POST" and "t_place" not in rec:
                    rec["t_place"] = t
                    self._wake(rec)
            return await exchange(method, url, **options)

        return probe_exchange


class StackProbe:
    """The worker's side of every delta and order, by (symbol, seq) and client order
    id. Installed on the worker's event loop (engines are only touched there)."""

    def __init__(self, worker: Any, hold: Hold) -> None:
        self.worker = worker
        self.hold = hold
        self.taken: dict[Key, tuple[int, int, int | None]] = {}
        self.deltas: dict[Key, dict[str, Any]] = {}
        self.placed: list[tuple[int, str, int]] = []  # (when, trigger event type, placements)
        self.handled: Counter[str] = Counter()  # events by type
        self.handle_ns: Counter[str] = Counter()  # time in engine.handle by event type
        self.batches: dict[str, int] = {}  # coid → the sender took its batch
        self.journal: dict[str, tuple[int, int]] = {}
        self.calls: dict[str, int] = {}  # coid → client.place / cancel_outcome called
        self.requests: dict[tuple[str, str], tuple[int, int, int]] = {}
        self.patches = Patches()

    def frozen(self) -> StackProbe:
        """A copy to read from another thread (call it on the worker's loop)."""
        copy = StackProbe(self.worker, self.hold)
        copy.deltas = dict(self.deltas)
        copy.placed = list(self.placed)
        copy.batches = dict(self.batches)
        copy.journal = dict(self.journal)
        copy.calls = dict(self.calls)
        copy.requests = dict(self.requests)
        return copy

    def install(self) -> None:
        w, p = self.worker, self.patches
        p.wrap(w.intake.codec, "decode", self._decode)
        for actor in w.hosted.values():
            p.wrap(actor, "_send", self._send)
            _EngineStamps(self, actor).install(p)
        p.wrap(w.journal, "record", self._journal)
        p.wrap(w.client, "place", self._call)
        p.wrap(w.client, "cancel_outcome", self._call)
        p.wrap(w.client, "_exchange", self._exchange)
        stamp_appends(w, self.hold, p)

    def _decode(self, decode: Callable[..., Any]) -> Callable[..., Any]:
        taken, hold, now = self.taken, self.hold, time.time_ns

        def probe_decode(topic: str, data: bytes) -> dict[str, Any]:
            record = decode(topic, data)
            if topic == DELTA and record.get("type") == "BookDelta":
                taken[(record["symbol"], record["seq"])] = (hold.received_ns, now(), hold.append_ns)
            return record

        return probe_decode

    def _send(self, send: Callable[..., Any]) -> Callable[..., Any]:
        async def probe_send(actions: list[Any]) -> Any:
            t = time.time_ns()
            for action in actions:
                coid = getattr(action, "client_order_id", None)
                if coid is not None:
                    self.batches.setdefault(coid, t)
            return await send(actions)

        return probe_send

    def _journal(self, record: Callable[..., Any]) -> Callable[..., Any]:
        async def probe_record(**kwargs: Any) -> Any:
            t = time.time_ns()
            try:
                return await record(**kwargs)
            finally:
                end = time.time_ns()
                for order in kwargs["placed"]:
                    self.journal[order.client_order_id] = (t, end)

        return probe_record

    def _call(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """client.place(order, ...) or client.cancel_outcome(client_order_id, ...)."""

        async def probe_call(first: Any, **kwargs: Any) -> Any:
            coid = first if isinstance(first, str) else first.client_order_id
            self.calls.setdefault(coid, time.time_ns())
            return await call(first, **kwargs)

        return probe_call

    def _exchange(self, exchange: Callable[..., Any]) -> Callable[..., Any]:
        requests = self.requests

        async def probe_exchange(method: str, url: str, **options: Any) -> Any:
            t = time.time_ns()
            coid = None
            if method == "POST" and url == "/v1/orders":
                coid = options["json"]["client_order_id"]
            elif method == "DELETE" and url.startswith("/v1/orders/"):
                coid = unquote(url.rsplit("/", 1)[1])
            reply = await exchange(method, url, **options)
            if coid is not None:
                requests.setdefault((method, coid), (t, time.time_ns(), reply.status_code))
            return reply

        return probe_exchange


class _EngineStamps:
    """One engine's handle and release, timed; a delta's record gets the placements
    its re-quote decided. Under the drain's hold the quote comes from `release`,
    off the newest state: its actions belong to the last event handled in the hold."""

    def __init__(self, probe: StackProbe, actor: Any) -> None:
        self.probe = probe
        self.actor = actor
        self.symbol = actor.engine.symbol
        self.last: dict[str, Any] = {}

    def install(self, patches: Patches) -> None:
        patches.wrap_engine(self.actor, {"handle": self._handle, "release": self._release})

    def account(self, kind: str, key: Any, t2: int, actions: list[Any]) -> None:
        from quoting_worker.core.types import CancelOrder, PlaceOrder

        places = [a.client_order_id for a in actions if type(a) is PlaceOrder]
        if places:
            self.probe.placed.append((t2, kind, len(places)))
        entry = self.probe.deltas.get(key) if key is not None else None
        if entry is not None:
            entry["t2"] = t2
            entry["places"] += places
            entry["cancels"] += sum(type(a) is CancelOrder for a in actions)

    def _delta_key(self, event: Any, t1: int, t2: int) -> Key | None:
        got = self.probe.taken.pop((self.symbol, event.seq), None)
        if got is None:
            return None
        key = (self.symbol, event.seq)
        self.probe.deltas[key] = {"t0": got[0], "decoded": got[1], "appended": got[2]}
        self.probe.deltas[key].update(t1=t1, t2=t2, places=[], cancels=0)
        return key

    def _handle(self, handle: Callable[..., Any]) -> Callable[..., Any]:
        from quoting_worker.core.types import BookDelta

        probe, last, now = self.probe, self.last, time.time_ns

        def probe_handle(event: Any) -> Any:
            t1 = now()
            actions = handle(event)
            t2 = now()
            kind = type(event).__name__
            probe.handled[kind] += 1
            probe.handle_ns[kind] += t2 - t1
            key = self._delta_key(event, t1, t2) if type(event) is BookDelta else None
            last["kind"] = kind
            if key is not None:
                last["key"] = key  # the newest delta of the hold
            self.account(kind, key, t2, actions)
            return actions

        return probe_handle

    def _release(self, release: Callable[..., Any]) -> Callable[..., Any]:
        probe, last, now = self.probe, self.last, time.time_ns

        def probe_release() -> Any:
            t1 = now()
            actions = release()
            t2 = now()
            probe.handle_ns["release"] += t2 - t1
            if actions:
                self.account(last.get("kind", "release"), last.get("key"), t2, actions)
            last.pop("key", None)
            return actions

        return probe_release
