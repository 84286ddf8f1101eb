"""The TradeX simulator in one process: matching engine, market, feed and Order Service.

    python -m simulator --brokers 127.0.0.1:9092 --registry http://127.0.0.1:8081 \
        [--port 3000] [--seed 7] [--speed 1] [--symbol BTCUSDT-PERP ...]

One asyncio loop owns everything, so the exchange needs no locks: the Order
Service's HTTP routes (`simulator.order_service`) and the market's steps
(`simulator.market`) both call the matching engine (`simulator.exchange`),
whose events go to the Kafka feed (`simulator.feed`). Every venue request and
every market step ends with a feed flush, so one call's book changes are one
delta. The engine topic carries the venue's clients' own events (orders,
fills, funding) and everyone's public trades and statuses; the house accounts'
(the other makers and the takers, `bg-…`) private events stay inside.

Time is the simulator's clock (`SimClock`): `--speed 60` runs an hour a
minute, funding intervals included; market data, fills and funding carry it.

Admin routes beside the Order Service's own (`/admin/faults`, `/admin/halt`, ...):

    POST /admin/feed      {"action": "pause"|"resume"|"skip"|"snapshot", "symbol": …}
    GET  /admin/ledger    ?account_id=…  position, cash, fees, funding per symbol
    GET  /admin/market    simulated time, fair value, mark, index, best bid/ask
    POST /admin/market    {"symbol": …, "move_bps": -300}  fair value and mark jump now
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from messaging.avro import AvroCodec
from messaging.topics import Topics
from simulator.exchange import Exchange
from simulator.feed import Feed, FeedProducer, make_producer
from simulator.market import PROFILES, Market, SimClock, SymbolProfile
from simulator.model import (
    INSTRUMENTS,
    ExchangeEvent,
    Filled,
    FundingPaid,
    InstrumentRules,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    is_house_account,
)
from simulator.order_service import Venue, create_app
from telemetry import logs

logger = logging.getLogger("tradex")

PRIVATE_EVENTS = (Filled, FundingPaid, OrderAccepted, OrderCancelled, OrderRejected)


class TradeX:
    """The venue's state and its moving parts, driven by one event loop."""

    def __init__(
        self,
        *,
        producer: FeedProducer,
        codec: AvroCodec,
        instruments: Iterable[InstrumentRules] = INSTRUMENTS,
        profiles: Iterable[SymbolProfile] | None = None,
        seed: int = 7,
        speed: float = 1.0,
        step_s: float = 0.1,
        funding_interval_s: float = 8 * 3600,
        heartbeat_s: float = 0.5,
        snapshot_interval_s: float = 30.0,
        topics: Topics | None = None,
    ) -> None:
        self.instruments = tuple(instruments)
        symbols = {rules.symbol for rules in self.instruments}
        self.clock = SimClock(speed=speed)
        run = f"{time.time_ns() // 1_000_000:x}"
        self.exchange = Exchange(
            self.instruments,
            on_event=self._on_event,
            forget_finished=is_house_account,
            # Unique across restarts of the venue (`make run` keeps its database).
            order_id_prefix=f"sim-{run}-",
            trade_id_prefix=f"{run}-",
        )
        self.feed = Feed(
            producer, codec, clock_ns=self.clock.now_ns, heartbeat_s=heartbeat_s, topics=topics
        )
        chosen = [p for p in (profiles or PROFILES.values()) if p.symbol in symbols]
        self.market = Market(
            self.exchange,
            chosen,
            seed=seed,
            start_ns=self.clock.now_ns(),
            funding_interval_s=funding_interval_s,
            step_s=step_s,
        )
        self.venue = Venue(
            self.instruments, exchange=self.exchange, on_snapshot_request=self._requested
        )
        self.step_s = step_s
        self.speed = speed
        self.snapshot_interval_s = snapshot_interval_s
        self.steps = 0

    def _on_event(self, event: ExchangeEvent) -> None:
        if isinstance(event, PRIVATE_EVENTS) and is_house_account(event.account_id):
            return
        self.feed.on_event(event)

    def _requested(self, symbol: str) -> None:
        self.feed.snapshot(symbol, "REQUEST")

    def start(self) -> None:
        """The opening market (one step) and a START snapshot per symbol."""
        self.market.advance(self.clock.now_ns() + round(self.step_s * 1e9))
        self.feed.flush()
        for rules in self.instruments:
            self.feed.snapshot(rules.symbol, "START")

    async def run(self) -> None:
        """Steps the market in (simulated) time, flushing the feed after each
        round; heartbeats for quiet books; a periodic snapshot per symbol."""
        loop = asyncio.get_running_loop()
        wall_step = self.step_s / self.speed
        next_snapshot = loop.time() + self.snapshot_interval_s
        while True:
            started = loop.time()
            self.market.advance(self.clock.now_ns())
            self.feed.flush()
            self.feed.heartbeat_due()
            if started >= next_snapshot:
                for rules in self.instruments:
                    self.feed.snapshot(rules.symbol, "PERIODIC")
                next_snapshot = started + self.snapshot_interval_s
            self.steps += 1
            await asyncio.sleep(max(0.0, started + max(wall_step, 0.01) - loop.time()))

    # ------------------------------------------------------------------ admin

    def routes(self) -> list[Route]:
        return [
            Route("/admin/feed", self._feed_control, methods=["POST"]),
            Route("/admin/ledger", self._ledger, methods=["GET"]),
            Route("/admin/market", self._market_state, methods=["GET"]),
            Route("/admin/market", self._market_move, methods=["POST"]),
        ]

    async def _feed_control(self, request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        action, symbol = body.get("action"), body.get("symbol")
        if symbol is not None and symbol not in self.exchange.instruments:
            return _error(f"no instrument {symbol!r}")
        if action == "pause":
            self.feed.pause(symbol)
        elif action == "resume":
            self.feed.resume(symbol)
        elif action in ("skip", "snapshot"):
            if symbol is None:
                return _error(f"{action} needs a symbol")
            self.feed.flush()
            if action == "skip":
                self.feed.skip_sequence(symbol)
            else:
                self.feed.snapshot(symbol, "REQUEST")
        else:
            return _error("action must be pause, resume, skip or snapshot")
        return JSONResponse({"action": action, "symbol": symbol})

    async def _market_move(self, request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        symbol, bps = body.get("symbol"), body.get("move_bps")
        if symbol not in self.market.symbols:
            return _error(f"no market for symbol {symbol!r}")
        if isinstance(bps, bool) or not isinstance(bps, int | float):
            return _error("move_bps must be a number")
        try:
            mark = self.market.move(symbol, float(bps))
        except ValueError as exc:
            return _error(str(exc))
        self.feed.flush()
        return JSONResponse({"symbol": symbol, "move_bps": bps, "mark": _text(mark)})

    async def _ledger(self, request: Request) -> Response:
        account_id = request.query_params.get("account_id")
        if not account_id:
            return _error("query parameter account_id is required")
        account = self.exchange.accounts.get(account_id)
        if account is None:
            return JSONResponse({"account_id": account_id, "known": False}, status_code=404)
        return JSONResponse(
            {
                "account_id": account_id,
                "known": True,
                "cash": _text(account.cash),
                "fees": _text(account.fees),
                "funding": _text(account.funding),
                "positions": {s: _text(v) for s, v in account.positions.items()},
                "volume": {s: _text(v) for s, v in account.volume.items()},
                "trades": dict(account.trades),
            }
        )

    async def _market_state(self, request: Request) -> Response:
        symbols: dict[str, Any] = {}
        for symbol in self.market.symbols:
            bid, ask = self.exchange.best_bid(symbol), self.exchange.best_ask(symbol)
            symbols[symbol] = {
                "fair": _text(self.market.fair(symbol)),
                "mark": _text(self.market.mark(symbol)),
                "index": _text(self.market.index(symbol)),
                "volatile": self.market.volatile(symbol),
                "best_bid": None if bid is None else _text(bid),
                "best_ask": None if ask is None else _text(ask),
                "halted": self.exchange.halted(symbol),
                "feed_paused": self.feed.is_paused(symbol),
            }
        return JSONResponse(
            {"sim_time_ns": self.clock.now_ns(), "speed": self.speed, "symbols": symbols}
        )


def _text(value: Decimal) -> str:
    return format(value, "f")


async def _json_object(request: Request) -> dict[str, Any] | Response:
    """The request's body as a JSON object, or the 400 that says why it is not one."""
    try:
        body = await request.json()
    except ValueError:
        return _error("body must be JSON")
    if not isinstance(body, dict):
        return _error("body must be a JSON object")
    return body


def _error(reason: str) -> JSONResponse:
    return JSONResponse({"code": "BAD_REQUEST", "reason": reason}, status_code=400)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The TradeX simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000, help="the Order Service")
    parser.add_argument("--brokers", required=True, help="Kafka bootstrap host:port")
    parser.add_argument("--registry", required=True, help="the schema registry URL")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speed", type=float, default=1.0, help="simulated s per wall s")
    parser.add_argument("--symbol", action="append", help="only these symbols (repeatable)")
    parser.add_argument("--funding-interval-s", type=float, default=8 * 3600)
    parser.add_argument("--snapshot-interval-s", type=float, default=30.0)
    parser.add_argument(
        "--topic-namespace",
        default=os.environ.get("KAFKA_TOPIC_NAMESPACE", ""),
        help="prefix of the broker's topic names (messaging/topics.py; default none)",
    )
    args = parser.parse_args(argv)
    instruments = [r for r in INSTRUMENTS if not args.symbol or r.symbol in args.symbol]
    if args.symbol and len(instruments) != len(set(args.symbol)):
        parser.error(f"known symbols: {', '.join(r.symbol for r in INSTRUMENTS)}")
    # The same structured lines as MMS's processes (LOG_FORMAT json or console).
    logs.setup(os.environ.get("LOG_FORMAT", "json"), os.environ.get("LOG_LEVEL", "INFO"))
    producer = make_producer(args.brokers)
    tradex = TradeX(
        producer=producer,
        codec=AvroCodec(args.registry),
        instruments=instruments,
        seed=args.seed,
        speed=args.speed,
        funding_interval_s=args.funding_interval_s,
        snapshot_interval_s=args.snapshot_interval_s,
        topics=Topics(args.topic_namespace),
    )
    tradex.start()
    app = create_app(
        venue=tradex.venue,
        clock_ns=tradex.clock.now_ns,
        after_request=tradex.feed.flush,
        extra_routes=tradex.routes(),
        background=[tradex.run],
    )
    logger.info(
        "TradeX on %s:%s, %s, seed %s, speed %s×",
        args.host,
        args.port,
        ", ".join(r.symbol for r in instruments),
        args.seed,
        args.speed,
    )
    started = time.monotonic()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", log_config=None)
    finally:
        tradex.feed.close()
        logger.info("stopped after %.0f s", time.monotonic() - started)
