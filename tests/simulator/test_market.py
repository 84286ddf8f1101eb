"""The background market on the real matching engine: seeded and repeatable, prices
near their start and on the grid, a two-sided ladder, takers whose fill intensity
decays with distance as A·e^(−kδ), volatile regimes and jumps, funding at each
interval with the premium's sign, and the accelerated clock."""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import time
from decimal import Decimal
from typing import TypeVar

import pytest

from simulator.exchange import Exchange
from simulator.market import PROFILES, Market, SimClock, SymbolProfile
from simulator.model import (
    INSTRUMENTS,
    ExchangeEvent,
    Filled,
    FundingPaid,
    LevelChanged,
    MarkChanged,
    OrderAccepted,
    Side,
    Traded,
)

BTC = "BTCUSDT-PERP"
ETH = "ETHUSDT-PERP"
PEPE = "PEPEUSDT-PERP"
RULES = {rules.symbol: rules for rules in INSTRUMENTS}
S = 1_000_000_000  # ns per second
HOUR = 3600 * S
START = 1_700_000_000 * S  # not on a funding boundary: 2023-11-14 22:13:20 UTC
D = Decimal
QUOTES: tuple[tuple[Side, int], ...] = (("BUY", -1), ("SELL", 1))  # a side, its sign from fair
E = TypeVar("E", bound=ExchangeEvent)


class Run:
    """An exchange with every instrument, the market on it, and every event recorded."""

    def __init__(
        self,
        profiles: tuple[SymbolProfile, ...] = tuple(PROFILES.values()),
        *,
        seed: int = 1,
        start_ns: int = START,
        step_s: float = 0.1,
        funding_interval_s: float = 8 * 3600,
    ) -> None:
        self.events: list[ExchangeEvent] = []
        self.exchange = Exchange(INSTRUMENTS, on_event=self.events.append)
        self.market = Market(
            self.exchange,
            profiles,
            seed=seed,
            start_ns=start_ns,
            step_s=step_s,
            funding_interval_s=funding_interval_s,
        )

    def fair_path(self, symbol: str, *, seconds: int, every_s: int = 1) -> list[Decimal]:
        path = []
        for _ in range(0, seconds, every_s):
            self.market.advance(self.market.now_ns + every_s * S)
            path.append(self.market.fair(symbol))
        return path

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]


def log_returns(path: list[float]) -> list[float]:
    return [math.log(b / a) for a, b in itertools.pairwise(path)]


# ---------------------------------------------------------------- determinism


def test_the_same_seed_gives_the_same_events_and_another_seed_does_not() -> None:
    runs = [Run(seed=seed) for seed in (7, 7, 8)]
    for run in runs:
        run.market.advance(START + 600 * S)
    same, again, other = (run.events for run in runs)
    assert len(same) > 1000
    assert same == again
    assert same != other


def test_how_advance_splits_the_time_changes_nothing() -> None:
    whole, pieces = Run(seed=3), Run(seed=3)
    whole.market.advance(START + 300 * S)
    ts = START
    for gap_ms in [1, 99, 100, 250, 1_000, 3_333, 50] * 100:
        ts += gap_ms * 1_000_000
        pieces.market.advance(min(ts, START + 300 * S))
    pieces.market.advance(START + 300 * S)
    assert pieces.events == whole.events
    assert pieces.market.now_ns == whole.market.now_ns == START + 300 * S


def test_the_fair_value_path_ignores_outside_orders_and_other_symbols() -> None:
    alone = Run((PROFILES[BTC],), seed=5)
    busy = Run(tuple(PROFILES.values()), seed=5)
    quiet_path = alone.fair_path(BTC, seconds=600)
    busy_path = []
    for second in range(600):
        if second % 10 == 0:  # an outside account trading against the ladder
            side: Side = "BUY" if second % 20 else "SELL"
            busy.exchange.take(
                account_id="outsider",
                symbol=BTC,
                side=side,
                size=D("0.5"),
                limit_price=None,
                ts_ns=busy.market.now_ns,
            )
        busy.market.advance(busy.market.now_ns + S)
        busy_path.append(busy.market.fair(BTC))
    assert busy_path == quiet_path
    assert len(set(quiet_path)) > 100  # it does move


# ---------------------------------------------------------------- prices, grid, book


def test_prices_stay_near_their_start_on_the_grid_and_positive_for_an_hour() -> None:
    run = Run(seed=11)
    run.market.advance(START + HOUR)
    for symbol, profile in PROFILES.items():
        drift = float(run.market.fair(symbol) / profile.start_price)
        assert 0.9 < drift < 1.1, symbol
    priced = [e for e in run.events if isinstance(e, LevelChanged | Filled | Traded)]
    assert {e.symbol for e in priced} == set(PROFILES)
    for event in priced:
        rules = RULES[event.symbol]
        assert event.price > 0
        assert event.price % rules.tick_size == 0, event
        assert event.size % rules.lot_size == 0, event
    for order in run.exchange.open_orders("bg-maker-" + PEPE):
        assert order.size >= RULES[PEPE].min_size
        assert order.price * order.size >= RULES[PEPE].min_notional
    marks = run.of(MarkChanged)
    assert all(e.mark_price > 0 and e.index_price > 0 for e in marks)


def test_the_ladder_rests_on_both_sides_around_fair_value_and_the_book_never_crosses() -> None:
    run = Run(seed=2)
    spreads: dict[str, list[float]] = {symbol: [] for symbol in PROFILES}
    for _ in range(1800):
        run.market.advance(run.market.now_ns + S)
        for symbol, profile in PROFILES.items():
            bid, ask = run.exchange.best_bid(symbol), run.exchange.best_ask(symbol)
            assert bid is not None
            assert ask is not None
            assert bid < run.market.mark(symbol) < ask
            spreads[symbol].append(float((ask - bid) / run.market.fair(symbol)) * 1e4)
            resting = run.exchange.open_orders(f"bg-maker-{symbol}", symbol)
            for side in ("BUY", "SELL"):
                levels = {o.price for o in resting if o.side == side}
                assert len(levels) >= profile.maker_levels - 2, (symbol, side)
    for symbol, profile in PROFILES.items():
        # The nearest slots are half a spread out plus up to a slot (±¼ of hysteresis).
        least = 2 * profile.maker_half_spread_bps - profile.maker_spacing_bps / 2
        most = 2 * profile.maker_half_spread_bps + 2.5 * profile.maker_spacing_bps
        assert least < statistics.median(spreads[symbol]) < most, symbol


def test_a_halted_symbol_gets_no_background_orders_and_keeps_its_path() -> None:
    halted, free = Run((PROFILES[ETH],), seed=4), Run((PROFILES[ETH],), seed=4)
    halted.market.advance(START + 60 * S)
    halted.exchange.set_halted(ETH, True, halted.market.now_ns)
    free.market.advance(START + 60 * S)
    seen = len(halted.events)
    assert halted.fair_path(ETH, seconds=600) == free.fair_path(ETH, seconds=600)
    during = halted.events[seen:]
    assert not [e for e in during if isinstance(e, OrderAccepted | Filled)]
    assert [e for e in during if isinstance(e, MarkChanged)]  # the market outside moves on
    halted.exchange.set_halted(ETH, False, halted.market.now_ns)
    seen = len(halted.events)
    halted.market.advance(halted.market.now_ns + 60 * S)
    assert [e for e in halted.events[seen:] if isinstance(e, Traded)]
    assert len(halted.exchange.depth(ETH, "BUY")) >= PROFILES[ETH].maker_levels


def test_a_move_on_demand_jumps_the_mark_at_once_and_stale_bids_are_picked_off() -> None:
    run = Run((PROFILES[ETH],), seed=5)
    run.market.advance(START + 10 * S)
    before = run.market.mark(ETH)
    # Someone's bid left where the market was: after the move it stands 3% above F.
    stale = run.exchange.best_bid(ETH)
    assert stale is not None
    run.exchange.place(
        account_id="mm-x",
        client_order_id="stale-bid",
        symbol=ETH,
        side="BUY",
        price=stale,
        size=Decimal("1"),
        ts_ns=run.market.now_ns,
    )
    seen = len(run.events)
    mark = run.market.move(ETH, -300)
    assert mark == run.market.mark(ETH)
    assert float(mark / before) == pytest.approx(0.97, rel=1e-9)
    assert [e.mark_price for e in run.events[seen:] if isinstance(e, MarkChanged)] == [mark]
    run.market.advance(run.market.now_ns + 30 * S)
    bought = sum((e.size for e in run.of(Filled) if e.account_id == "mm-x"), start=Decimal(0))
    assert bought > 0  # the takers sell into the stale bid at the new fair value
    bid, ask = run.exchange.best_bid(ETH), run.exchange.best_ask(ETH)
    assert bid is not None
    assert ask is not None
    assert bid < run.market.mark(ETH) < ask
    with pytest.raises(ValueError, match="no market"):
        run.market.move(BTC, 1)
    with pytest.raises(ValueError, match="bps"):
        run.market.move(ETH, -10_000)
    with pytest.raises(ValueError, match="bps"):
        run.market.move(ETH, math.nan)


# ---------------------------------------------------------------- takers


@pytest.mark.parametrize("reach_bps", [1.0, 5.0, 10.0])
def test_a_resting_order_is_reached_at_rate_a_times_e_to_the_minus_k_delta(
    reach_bps: float,
) -> None:
    """No other makers: an order δ bps from fair value, placed again each step, is
    filled in a step with probability 1 − e^(−λ·dt), λ = A·e^(−kδ)."""
    a, k, dt = 2.0, 0.2, 0.1
    profile = dataclasses.replace(
        PROFILES[BTC], maker_levels=0, taker_rate_per_s=a, taker_decay_per_bps=k, jumps_per_day=0
    )
    run = Run((profile,), seed=9)
    lot, tick = RULES[BTC].lot_size, RULES[BTC].tick_size
    steps = fills = 0
    for step in range(10_000):
        fair = float(run.market.fair(BTC))
        for side, sign in QUOTES:
            ticks = fair * (1 + sign * reach_bps * 1e-4) / float(tick)
            price = D(math.floor(ticks) if side == "BUY" else math.ceil(ticks)) * tick
            outcome = run.exchange.place(
                account_id="mm",
                client_order_id=f"mm-{step}-{side}",
                symbol=BTC,
                side=side,
                price=price,
                size=lot,
                ts_ns=run.market.now_ns,
            )
            assert outcome.code == "", outcome.reason
        seen = len(run.events)
        run.market.advance(run.market.now_ns + round(dt * S))
        steps += 2
        fills += sum(1 for e in run.events[seen:] if isinstance(e, Filled) and e.account_id == "mm")
        run.exchange.cancel_all(account_id="mm", symbol=BTC, ts_ns=run.market.now_ns)
    measured = -math.log(1 - fills / steps) / dt
    expected = a * math.exp(-k * reach_bps)
    assert measured == pytest.approx(expected, rel=0.1)


def test_takers_fill_an_order_near_mid_far_more_often_than_one_far_away() -> None:
    """With the other makers' ladder in front: quotes 2 bps from fair value are
    filled over a thousand times an hour, quotes 30 bps away (behind the ladder) all but never."""
    run = Run((PROFILES[BTC],), seed=6)
    run.market.advance(START + 10 * S)
    tick = RULES[BTC].tick_size
    placed = 0
    for _ in range(3600):
        fair = run.market.fair(BTC)
        for account, bps in (("near", 2), ("far", 30)):
            run.exchange.cancel_all(account_id=account, symbol=BTC, ts_ns=run.market.now_ns)
            for side, sign in QUOTES:
                price = (fair * (1 + sign * D(bps) / 10_000) / tick).to_integral_value() * tick
                placed += 1
                run.exchange.place(
                    account_id=account,
                    client_order_id=f"{account}-{placed}",
                    symbol=BTC,
                    side=side,
                    price=price,
                    size=D("0.001"),
                    ts_ns=run.market.now_ns,
                )
        run.market.advance(run.market.now_ns + S)
    fills = {"near": 0, "far": 0}
    for event in run.of(Filled):
        if event.account_id in fills:
            fills[event.account_id] += 1
    assert fills["near"] > 1000
    assert fills["far"] * 20 < fills["near"]


# ---------------------------------------------------------------- regimes and jumps


def test_the_volatile_regime_comes_and_goes_with_about_three_times_the_volatility() -> None:
    profile = dataclasses.replace(
        PROFILES[BTC], jumps_per_day=0, maker_levels=0, taker_rate_per_s=0
    )
    run = Run((profile,), seed=21, step_s=10.0)
    regimes, path = [], [float(run.market.fair(BTC))]
    for _ in range(3 * 8640):  # three days of 10 s steps
        run.market.advance(run.market.now_ns + 10 * S)
        regimes.append(run.market.volatile(BTC))
        path.append(float(run.market.fair(BTC)))
    returns = log_returns(path)
    calm = [r for r, volatile in zip(returns, regimes, strict=True) if not volatile]
    wild = [r for r, volatile in zip(returns, regimes, strict=True) if volatile]
    switches = sum(1 for a, b in itertools.pairwise(regimes) if a != b)
    assert switches >= 4  # it comes and it goes
    assert 0.02 < len(wild) / len(regimes) < 0.5
    ratio = statistics.pstdev(wild) / statistics.pstdev(calm)
    assert 2.5 < ratio < 3.5  # volatile_multiplier = 3
    calm_sigma = profile.annual_vol * math.sqrt(10 / (365 * 24 * 3600))
    assert statistics.pstdev(calm) == pytest.approx(calm_sigma, rel=0.1)


@pytest.mark.parametrize(("jumps_per_day", "at_least", "at_most"), [(24.0, 12, 40), (0.0, 0, 0)])
def test_jumps_arrive_at_their_rate(jumps_per_day: float, at_least: int, at_most: int) -> None:
    profile = dataclasses.replace(
        PROFILES[BTC],
        calm_to_volatile_per_hour=0,
        jumps_per_day=jumps_per_day,
        jump_sd=0.02,
        maker_levels=0,
        taker_rate_per_s=0,
    )
    run = Run((profile,), seed=13, step_s=10.0)
    path = [float(run.market.fair(BTC))]
    for _ in range(8640):  # one day of 10 s steps
        run.market.advance(run.market.now_ns + 10 * S)
        path.append(float(run.market.fair(BTC)))
    step_sigma = profile.annual_vol * math.sqrt(10 / (365 * 24 * 3600))
    jumps = sum(1 for r in log_returns(path) if abs(r) > 10 * step_sigma)
    assert at_least <= jumps <= at_most


# ---------------------------------------------------------------- funding and marks


def test_funding_is_paid_every_8_hours_of_an_accelerated_day_with_the_premiums_sign() -> None:
    wall = [0.0]
    clock = SimClock(speed=3600, start_ns=0, wall=lambda: wall[0])  # an hour a second
    # Few orders and 5 s steps: a day in about a second of test time.
    quiet = tuple(
        dataclasses.replace(PROFILES[symbol], taker_rate_per_s=0.05, maker_levels=4)
        for symbol in (BTC, ETH)
    )
    run = Run(quiet, seed=17, start_ns=clock.now_ns(), step_s=5.0)
    run.market.advance(10 * S)
    positions: tuple[tuple[str, Side], ...] = (("long", "BUY"), ("short", "SELL"))
    for account, side in positions:
        fills = run.exchange.take(
            account_id=account,
            symbol=BTC,
            side=side,
            size=D("0.05"),
            limit_price=None,
            ts_ns=run.market.now_ns,
        )
        assert sum(f.size for f in fills) == D("0.05")
    for _ in range(24):  # 24 "wall seconds"
        wall[0] += 1
        run.market.advance(clock.now_ns())
    assert run.market.now_ns == 24 * HOUR

    boundaries = [8 * HOUR, 16 * HOUR, 24 * HOUR]
    payments = run.of(FundingPaid)
    assert sorted({p.ts_ns for p in payments}) == boundaries
    for boundary in boundaries:
        for symbol in (BTC, ETH):
            paid = [p for p in payments if p.ts_ns == boundary and p.symbol == symbol]
            assert isinstance(paid[0], FundingPaid)
            # The mark it used is published at the same instant, just before.
            mark = run.events[run.events.index(paid[0]) - 1]
            assert isinstance(mark, MarkChanged)
            assert (mark.symbol, mark.ts_ns) == (symbol, boundary)
            premium = (mark.mark_price - mark.index_price) / mark.index_price
            rate = paid[0].rate
            assert rate == premium.quantize(D("0.00000001"))  # well inside the cap
            accounts = {p.account_id: p.amount for p in paid}
            # the background makers and takers hold positions too
            assert {f"bg-maker-{symbol}", f"bg-taker-{symbol}"} <= accounts.keys()
            if symbol == BTC:
                mark_price = mark.mark_price
                expected = (-D("0.05") * mark_price * rate).quantize(D("0.00000001"))
                assert accounts["long"] == expected
                assert accounts["short"] == -expected
                # longs pay when the perp is above the index
                assert (accounts["long"] < 0) == (mark_price > mark.index_price)
    assert len(payments) == len({p.payment_id for p in payments})


def test_the_funding_rate_is_capped() -> None:
    rich = dataclasses.replace(PROFILES[ETH], basis_mean_bps=200.0, basis_sd_bps=1.0)
    run = Run((rich,), seed=1, start_ns=0, step_s=1.0, funding_interval_s=3600)
    run.market.advance(10 * S)
    run.exchange.take(
        account_id="long", symbol=ETH, side="BUY", size=D(1), limit_price=None, ts_ns=10 * S
    )
    run.market.advance(3 * HOUR)
    rates = [p.rate for p in run.of(FundingPaid) if p.account_id == "long"]
    assert rates == [D("0.0075")] * 3
    amounts = [p.amount for p in run.of(FundingPaid) if p.account_id == "long"]
    assert all(amount < 0 for amount in amounts)


def test_marks_are_published_at_most_once_a_second_and_only_when_they_change() -> None:
    run = Run(seed=3)
    run.market.advance(START + 600 * S)
    for symbol in PROFILES:
        marks = [e for e in run.of(MarkChanged) if e.symbol == symbol]
        times = [e.ts_ns for e in marks]
        assert len(marks) > 300
        assert all(b - a >= S for a, b in itertools.pairwise(times))
        pairs = [(e.mark_price, e.index_price) for e in marks]
        assert all(a != b for a, b in itertools.pairwise(pairs))
        last = marks[-1]
        assert isinstance(last, MarkChanged)
        assert last.mark_price == run.market.mark(symbol)
        assert last.index_price == run.market.index(symbol)
        # the index sits around basis_mean_bps below the mark
        basis = float((last.mark_price - last.index_price) / last.index_price) * 1e4
        assert -10 < basis < 12


# ---------------------------------------------------------------- the clock and the set-up


def test_the_sim_clock_runs_at_its_speed() -> None:
    wall = [100.0]
    clock = SimClock(speed=60, start_ns=5 * S, wall=lambda: wall[0])
    assert clock.now_ns() == 5 * S
    wall[0] += 2.5
    assert clock.now_ns() == 5 * S + 150 * S  # 2.5 s of wall time is 150 s simulated
    assert abs(SimClock().now_ns() - time.time_ns()) < 5 * S  # from now, by default
    with pytest.raises(ValueError, match="speed"):
        SimClock(speed=0)


def test_bad_profiles_and_set_ups_are_refused() -> None:
    exchange = Exchange(INSTRUMENTS)
    with pytest.raises(ValueError, match="> 0"):
        dataclasses.replace(PROFILES[BTC], taker_decay_per_bps=0)
    with pytest.raises(ValueError, match="≥ 0"):
        dataclasses.replace(PROFILES[BTC], annual_vol=-0.1)
    with pytest.raises(ValueError, match="lists no"):
        Market(exchange, [dataclasses.replace(PROFILES[BTC], symbol="XYZ")], seed=1, start_ns=0)
    with pytest.raises(ValueError, match="two profiles"):
        Market(exchange, [PROFILES[BTC], PROFILES[BTC]], seed=1, start_ns=0)
    with pytest.raises(ValueError, match="step_s"):
        Market(exchange, [PROFILES[BTC]], seed=1, start_ns=0, step_s=0)
