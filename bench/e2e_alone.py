"""Part (1) of bench/e2e.py: the simulator alone, in this process, no I/O (the
exchange's events go to a counting sink instead of the Kafka feed).

(a) `simulator.exchange.Exchange` on BTCUSDT-PERP, a seeded mix over a book of
    400 orders: 50% post-only placements (a few % priced to cross, so
    refused), 38% cancels of a random order placed before (some already
    filled: a miss), 12% IOC takes. Each call timed alone (p50/p99 per kind);
    ops/s from a second, untimed replay of the same calls on a fresh exchange.
(b) `simulator.market.Market` + the exchange stepping --market-hours of
    simulated time (BTC's profile, 0.1 s steps, as TradeX runs it): each step
    timed; simulated seconds per wall second and exchange calls per second.
"""

from __future__ import annotations

import gc
import random
import time
from array import array
from collections import Counter
from decimal import Decimal
from typing import Any, Literal

from harness.report import stats_us

MID = 600_000  # ticks: 60,000.0
MAKERS = [f"acct-{i}" for i in range(10)]
Side = Literal["BUY", "SELL"]


class ExchangeMix:
    """The seeded mix of (a): each call made and timed, and kept for the replay."""

    def __init__(self, seed: int) -> None:
        from simulator.model import INSTRUMENTS

        self.seed = seed
        self.rules = INSTRUMENTS[0]
        self.symbol, self.tick, self.lot = (
            self.rules.symbol,
            self.rules.tick_size,
            self.rules.lot_size,
        )
        self.rng = random.Random(seed + 1)
        self.live: list[tuple[str, str]] = [(MAKERS[i % 10], f"seed-{i}") for i in range(400)]
        self.plan: list[tuple[str, dict[str, Any]]] = []
        self.samples: dict[str, array[int]] = {}
        self.fills = 0

    def fresh(self) -> tuple[Any, list[int]]:
        """An exchange with the seeded book of 400 orders; its events counted."""
        from simulator.exchange import Exchange

        events = [0]

        def sink(event: Any) -> None:
            events[0] += 1

        exchange = Exchange([self.rules], on_event=sink)
        rng = random.Random(self.seed)
        for i in range(400):
            side: Side = "BUY" if i % 2 else "SELL"
            away = 1 + rng.randrange(200)
            exchange.place(
                account_id=MAKERS[i % 10],
                client_order_id=f"seed-{i}",
                symbol=self.symbol,
                side=side,
                price=Decimal(MID - away if side == "BUY" else MID + away) * self.tick,
                size=rng.randint(1, 500) * self.lot,
                ts_ns=i,
            )
        return exchange, events

    def _ticks(self, price: Decimal | None, default: int) -> int:
        return default if price is None else int(price / self.tick)

    def call(self, exchange: Any, i: int) -> None:
        """The i-th call of the mix, timed."""
        ts = 10_000 + i
        r = self.rng.random()
        bid = self._ticks(exchange.best_bid(self.symbol), MID - 1)
        ask = self._ticks(exchange.best_ask(self.symbol), MID + 1)
        if r < 0.50 or not self.live:
            name, kwargs = "place", self._place_args(i, ts, bid, ask)
        elif r < 0.88:
            name, kwargs = "cancel", self._cancel_args(ts)
        else:
            name, kwargs = "take", self._take_args(ts, bid, ask)
        fn, perf = getattr(exchange, name), time.perf_counter_ns
        t = perf()
        got = fn(**kwargs)
        dt = perf() - t
        if name == "place":
            kind = "place_refused" if got.code else "place"
            if not got.code:
                self.live.append((kwargs["account_id"], f"o-{i}"))
        elif name == "cancel":
            kind = "cancel" if got is not None else "cancel_miss"
        else:
            self.fills += len(got)
            kind = "take" if got else "take_no_fill"
        self.plan.append((name, kwargs))
        self.samples.setdefault(kind, array("q")).append(dt)

    def _place_args(self, i: int, ts: int, bid: int, ask: int) -> dict[str, Any]:
        rng = self.rng
        side = "BUY" if rng.random() < 0.5 else "SELL"
        behind = 0 if rng.random() < 0.04 else 1 + int(rng.expovariate(0.1))
        price = ask - behind if side == "BUY" else bid + behind
        account = MAKERS[rng.randrange(10)]
        return {
            "account_id": account,
            "client_order_id": f"o-{i}",
            "symbol": self.symbol,
            "side": side,
            "price": Decimal(max(1, price)) * self.tick,
            "size": rng.randint(1, 500) * self.lot,
            "ts_ns": ts,
        }

    def _cancel_args(self, ts: int) -> dict[str, Any]:
        live = self.live
        k = self.rng.randrange(len(live))
        live[k], live[-1] = live[-1], live[k]
        account, coid = live.pop()
        return {"account_id": account, "client_order_id": coid, "ts_ns": ts}

    def _take_args(self, ts: int, bid: int, ask: int) -> dict[str, Any]:
        rng = self.rng
        side = "BUY" if rng.random() < 0.5 else "SELL"
        reach = rng.randint(0, 10)
        limit = None
        if rng.random() > 0.1:
            limit = Decimal(ask + reach if side == "BUY" else max(1, bid - reach)) * self.tick
        return {
            "account_id": "taker",
            "symbol": self.symbol,
            "side": side,
            "size": rng.randint(1, 300) * self.lot,
            "limit_price": limit,
            "ts_ns": ts,
        }


def bench_exchange(n_ops: int, seed: int) -> dict[str, Any]:
    mix = ExchangeMix(seed)
    exchange, events = mix.fresh()
    gc.collect()
    for i in range(n_ops):
        mix.call(exchange, i)
    timed_events = events[0]
    order_count, live_count = exchange.order_count(), exchange.live_count()

    # The same calls, untimed, on a fresh exchange: the throughput.
    replay, _ = mix.fresh()
    calls = [(getattr(replay, name), kwargs) for name, kwargs in mix.plan]
    gc.collect()
    t = time.perf_counter()
    for fn, kwargs in calls:
        fn(**kwargs)
    elapsed = time.perf_counter() - t
    if (replay.order_count(), replay.live_count()) != (order_count, live_count):
        raise RuntimeError("the replay did not reproduce the timed run's book")
    every: array[int] = array("q")
    for values in mix.samples.values():
        every.extend(values)
    samples = sorted(mix.samples.items())
    return {
        "symbol": mix.symbol,
        "ops": n_ops,
        "seed": seed,
        "mix": {kind: len(values) for kind, values in samples},
        "ops_per_s": n_ops / elapsed,
        "us_per_op": elapsed / n_ops * 1e6,
        "all_timed": stats_us(every),
        "per_kind": {kind: stats_us(values) for kind, values in samples},
        "taker_fills": mix.fills,
        "events": timed_events,
        "live_orders_at_end": live_count,
        "event_sink": "a counting function (TradeX's is the Kafka feed)",
    }


def _counting(exchange: Any, calls: Counter[str]) -> None:
    """The exchange's place, cancel and take, each call counted by name."""
    for name in ("place", "cancel", "take"):
        method = getattr(exchange, name)

        def counted(_method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _method(**kwargs)

        setattr(exchange, name, counted)


def bench_market(hours: float, seed: int) -> dict[str, Any]:
    from simulator.exchange import Exchange
    from simulator.market import PROFILES, Market
    from simulator.model import INSTRUMENTS, is_house_account

    events: Counter[str] = Counter()

    def sink(event: Any) -> None:
        events[type(event).__name__] += 1

    exchange = Exchange(INSTRUMENTS[:1], on_event=sink, forget_finished=is_house_account)
    calls: Counter[str] = Counter()
    _counting(exchange, calls)
    start = 1_700_000_000 * 10**9
    step_ns = 100_000_000
    market = Market(exchange, [PROFILES["BTCUSDT-PERP"]], seed=seed, start_ns=start, step_s=0.1)
    steps = round(hours * 3600 * 1e9 / step_ns)
    samples = array("q", bytes(8 * steps))
    perf = time.perf_counter_ns
    advance = market.advance
    gc.collect()
    t0 = time.perf_counter()
    for k in range(steps):
        t = perf()
        advance(start + (k + 1) * step_ns)
        samples[k] = perf() - t
    elapsed = time.perf_counter() - t0
    ops = sum(calls.values())
    return {
        "symbol": "BTCUSDT-PERP",
        "simulated_hours": hours,
        "steps": steps,
        "wall_s": elapsed,
        "simulated_s_per_wall_s": hours * 3600 / elapsed,
        "steps_per_s": steps / elapsed,
        "step": stats_us(samples),
        "exchange_calls": dict(calls),
        "exchange_calls_per_s": ops / elapsed,
        "us_per_exchange_call": elapsed / max(1, ops) * 1e6,
        "events": dict(events),
        "events_per_s": sum(events.values()) / elapsed,
        "orders_kept": exchange.order_count(),
    }
