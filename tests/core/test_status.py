"""The live status says what the model quotes: for a known book and known
trades, r, δ, σ, q and the microprice in the status are the Avellaneda-Stoikov
figures worked out here by hand, in price units; and a pool that does not quote
says why."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from quoting_worker.core.types import (
    BookHeartbeat,
    BookSnapshot,
    Command,
    InstrumentStatus,
    MarkPrice,
    PublicTrade,
)
from tests.core.engine_world import BTC, MID, MS, PARAMS, World, fill_of, places

# engine_world's book: best bid MID − 5 and best ask MID + 5 ticks, 500 lots
# each, so the microprice is MID: 60,000.0. Its trades alternate MID ∓ 10 ticks
# one second apart: every increment is ±2.0 USDT over 1 s, so
# σ² = 2.0² × 3600 s/h = 14,400 USDT²/h and σ = 120 USDT/√h.
SIGMA = 120.0
MICRO = 60_000.0
RISK = PARAMS.gamma * SIGMA**2 * PARAMS.tau_hours  # γσ²τ = 1,440 USDT
HALF = RISK / 2 + math.log(1 + PARAMS.gamma / PARAMS.kappa) / PARAMS.gamma


def test_a_flat_pool_quotes_at_the_microprice_with_the_models_half_spread() -> None:
    world = World()
    world.active()
    status = world.engine.status()
    assert status.gate_reason == ""
    assert status.quoting
    assert status.q == 0
    assert status.sigma == pytest.approx(SIGMA, rel=1e-12)
    assert status.microprice == pytest.approx(MICRO, rel=1e-12)
    assert status.reservation_price == pytest.approx(MICRO, rel=1e-12)
    assert status.half_spread == pytest.approx(HALF, rel=1e-12)  # 720.645…, before the clamp
    assert status.mid == Decimal("60000.0")
    # The clamp is what reaches the venue: max_spread_bps (50) bounds the whole
    # spread, 300 USDT at 60,000, rounded outward to ticks.
    assert status.best_bid_quoted is not None
    assert status.best_ask_quoted is not None
    assert status.quoted_spread == status.best_ask_quoted - status.best_bid_quoted
    assert Decimal(300) <= status.quoted_spread <= Decimal("300.2")


def test_inventory_skews_the_reservation_price_by_q_gamma_sigma_squared_tau() -> None:
    world = World()
    bid = next(o for o in places(world.active()) if o.side.value == "BUY" and o.level == 0)
    world.send(fill_of(bid, "f-1", lots=7, ts=world.now()))
    world.tick()  # past the quote interval: a fill re-quotes
    status = world.engine.status()
    q = float(BTC.size(7))  # 0.007 BTC long
    assert status.q == Decimal("0.007")
    assert status.microprice is not None
    assert status.reservation_price == pytest.approx(status.microprice - q * RISK, rel=1e-12)
    # 0.007 × 1,440 = 10.08 USDT below the microprice.
    assert status.microprice - status.reservation_price == pytest.approx(10.08, rel=1e-9)
    assert status.half_spread == pytest.approx(HALF, rel=1e-12)


def test_a_pool_that_does_not_quote_says_why() -> None:
    world = World()
    engine = world.engine
    assert engine.status().gate_reason == "pool PAUSED"
    world.command("enable")
    assert engine.status().gate_reason == "instrument status unknown"
    world.send(InstrumentStatus(halted=False, ts_ns=world.now()))
    assert engine.status().gate_reason == "book not synced"
    world.seq += 1
    world.send(BookSnapshot(world.seq, ((MID - 5, 500),), (), world.now()))
    assert engine.status().gate_reason == "no mark price"
    world.send(MarkPrice(BTC.price(MID), world.now()))
    assert engine.status().gate_reason == "book one-sided"
    world.snapshot()
    for i in range(4):
        world.clock.advance(1000 * MS)
        world.send(BookHeartbeat(world.seq, world.now()))
        world.send(PublicTrade(MID + (10 if i % 2 else -10), 1, world.now()))
    status = engine.status()
    # Four trades are three increments; σ needs vol_min_samples (10).
    assert status.gate_reason == "σ warming up: 3 of 10 price increments"
    assert not status.quoting
    world.clock.advance(PARAMS.staleness_threshold_ms * MS + MS)
    assert engine.status().gate_reason.startswith("book stale: no message for 500")
    world.send(Command("pause", world.now()))
    assert engine.status().gate_reason == "pool PAUSED"


def test_the_average_entry_price_is_shown_to_four_places_below_the_tick() -> None:
    world = World()
    bid = next(o for o in places(world.active()) if o.side.value == "BUY" and o.level == 0)
    world.send(fill_of(bid, "f-1", lots=7, ts=world.now()))
    lower = bid._replace(price_ticks=bid.price_ticks - 1)
    world.send(fill_of(lower, "f-2", lots=2, ts=world.now()))
    (member,) = (m for m in world.engine.status().members if m.position_lots == 9)
    exact = (7 * BTC.price(bid.price_ticks) + 2 * BTC.price(lower.price_ticks)) / 9
    assert member.avg_entry_price == exact.quantize(Decimal("0.00001"))  # tick 0.1, four more
    assert member.avg_entry_price.as_tuple().exponent == -5
