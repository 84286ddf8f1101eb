# mypy: ignore-errors
# (wraps the simulator's internals at run time, in TradeX's own process)
"""TradeX with bench/e2e.py's stamps: run as the launcher of the TradeX stand-in
(its source goes to `python -c`, then simulator.tradex's own `main` runs with
the command line), it wraps, at run time and in its own process only, five
methods and adds two routes; no simulator code is changed:

- `Feed._produce`: for every BookDelta, (symbol, seq, wall time just after the
  producer took it, what caused it: "market" = a market step, "shaker" = see
  below, "client" = an Order Service request; the cause is set on entering
  `Market.advance`, `Venue.place`, `Venue.cancel`, `Venue.cancel_all` and the
  shaker, all on TradeX's one event loop);
- `Venue.place` / `Venue.cancel`: per client order id, the wall time the
  request reached the venue and the time the exchange had accepted (or
  cancelled) it, and the reject code;
- GET /bench/log returns those logs; POST /bench/shake starts a "shaker": a
  house account (bg-bench-shaker, like the other makers) that every
  interval_ms alternately joins and leaves the other makers' best bid with
  that level's size, then flushes the feed: one delta that moves the
  microprice (net of MMS's orders) by about a sixth of the makers' spread,
  tens of ticks, so every order of the pool is replaced. The market's own
  flow (one step every 100 ms, takers, ladder moves) goes on beside it.
"""

import asyncio
import sys
import time

from starlette.responses import JSONResponse
from starlette.routing import Route

from messaging.topics import DELTA
from simulator import tradex as tradex_module
from simulator.feed import Feed
from simulator.market import Market
from simulator.model import is_house_account
from simulator.order_service import Venue

SHAKER = "bg-bench-shaker"
now = time.time_ns
source = ["start"]
deltas, places, cancels = [], [], []
state = {"tradex": None, "shaker": None}


def wrap(cls, name, make):
    setattr(cls, name, make(getattr(cls, name)))


def stamped_produce(produce):
    def bench_produce(self, topic, symbol, record):
        produce(self, topic, symbol, record)
        if topic == DELTA and record.get("type") == "BookDelta":
            deltas.append((symbol, record["seq"], now(), source[0]))

    return bench_produce


def caused_by(cause):
    def make(method):
        def bench_method(self, *args, **kwargs):
            source[0] = cause
            return method(self, *args, **kwargs)

        return bench_method

    return make


def stamped_place(place):
    def bench_place(self, body, *, now_ns, force_reject):
        source[0] = "client"
        t_in = now()
        outcome = place(self, body, now_ns=now_ns, force_reject=force_reject)
        order = outcome.order
        if order is not None and not is_house_account(order.account_id):
            code = outcome.code or ("REPLAYED" if outcome.replayed else "")
            places.append((order.client_order_id, t_in, now(), code))
        return outcome

    return bench_place


def stamped_cancel(cancel):
    def bench_cancel(self, account_id, client_order_id, symbol, *, now_ns):
        source[0] = "client"
        t_in = now()
        order = cancel(self, account_id, client_order_id, symbol, now_ns=now_ns)
        cancels.append((client_order_id, t_in, now(), order is not None))
        return order

    return bench_cancel


def shake_once(tradex, symbol, resting, n):
    """Leaves the best bid if the shaker rests there, else joins it: (its order, n)."""
    exchange, market = tradex.exchange, tradex.market
    ts = tradex.clock.now_ns()
    if resting is not None and resting.live:
        exchange.cancel(account_id=SHAKER, client_order_id=resting.client_order_id, ts_ns=ts)
        return None, n
    bids = [o for o in market._symbols[symbol].bids.values() if o.live]
    if not bids:
        return resting, n
    top = max(bids, key=lambda o: o.price)
    n += 1
    outcome = exchange.place(
        account_id=SHAKER,
        client_order_id=f"shake-{n}",
        symbol=symbol,
        side="BUY",
        price=top.price,
        size=top.remaining,
        ts_ns=ts,
    )
    return (None if outcome.code else outcome.order), n


async def shake(tradex, symbol, interval_s):
    loop = asyncio.get_running_loop()
    resting, n, due = None, 0, loop.time()
    while True:
        due = max(due + interval_s, loop.time())
        await asyncio.sleep(due - loop.time())
        source[0] = "shaker"
        resting, n = shake_once(tradex, symbol, resting, n)
        tradex.feed.flush()


async def bench_log(request):
    return JSONResponse({"deltas": deltas, "places": places, "cancels": cancels, "now_ns": now()})


async def bench_shake(request):
    body = await request.json()
    task = state["shaker"]
    if task is not None:
        task.cancel()
        state["shaker"] = None
    if body.get("interval_ms"):
        state["shaker"] = asyncio.create_task(
            shake(state["tradex"], body["symbol"], body["interval_ms"] / 1000)
        )
    return JSONResponse({"shaking": state["shaker"] is not None})


def with_bench_routes(routes):
    def bench_routes(self):
        state["tradex"] = self
        return [
            *routes(self),
            Route("/bench/log", bench_log, methods=["GET"]),
            Route("/bench/shake", bench_shake, methods=["POST"]),
        ]

    return bench_routes


if __name__ == "__main__":
    wrap(Feed, "_produce", stamped_produce)
    wrap(Market, "advance", caused_by("market"))
    wrap(Venue, "place", stamped_place)
    wrap(Venue, "cancel", stamped_cancel)
    wrap(Venue, "cancel_all", caused_by("client"))
    wrap(tradex_module.TradeX, "routes", with_bench_routes)
    tradex_module.main(sys.argv[1:])
