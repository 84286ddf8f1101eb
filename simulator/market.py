"""TradeX's background market: seeded order flow that makes a believable
perpetuals market on the simulator's matching engine (`simulator.exchange`).

Per symbol, in fixed steps of simulated time (`step_s`, default 0.1 s):

- **Fair value** F follows a geometric Brownian motion in log price,
  d ln F = σ dW − σ²/2 dt (so E[F] stays put), with σ = `annual_vol` per
  √year in the calm regime and `volatile_multiplier` × that in the volatile
  one. The regime is a two-state Markov chain (intensities
  `calm_to_volatile_per_hour`, `volatile_to_calm_per_hour`). Jumps arrive as a
  Poisson process (`jumps_per_day`), each adding N(0, `jump_sd`²) to ln F.
- **Index and mark.** The index (the spot price) is F·e^(−b), with the basis b
  (the perp's premium, in bps) an Ornstein–Uhlenbeck process around
  `basis_mean_bps` with stationary sd `basis_sd_bps` and half-life
  `basis_half_life_s`. The mark is F. Both are published (a `MarkChanged`)
  with four more decimals than the tick, at most once per `mark_interval_s`
  and only when one of them changed.
- **Other makers** (account ``bg-maker-<symbol>``) rest `maker_levels`
  post-only orders a side on a fixed grid of slots `maker_spacing_bps` apart
  (in whole ticks, at least one), the nearest bid the first slot below
  F·(1 − h), the nearest ask the first above F·(1 + h), h =
  `maker_half_spread_bps`; they move only once F has gone a quarter slot past
  a boundary, so noise around one does not churn orders. Level i (0 =
  nearest) holds about `maker_size_usdt`·(1 + i/2), ±30%. Because the slots
  are fixed in price, a move of F by one spacing cancels one level and places
  one per side instead of re-quoting the whole ladder; a level that
  is filled is placed again the next time the ladder is checked (every step
  after one of the background takers traded, on a slot change, and every
  second). A level that would cross what others rest is skipped (never sent),
  so the ladder never fights the book.
- **Takers** (account ``bg-taker-<symbol>``) arrive on each side as a Poisson
  process of rate A = `taker_rate_per_s` per simulated second. Each one
  reaches δ bps past F, δ ~ Exponential(k = `taker_decay_per_bps`), and sends
  an immediate-or-cancel `take` with limit F·(1 ± δ/10⁴) (buys rounded down to
  the tick, sells up) and a lognormal size of mean `taker_size_usdt`. A
  resting order δ bps from F is therefore reached at rate λ(δ) = A·e^(−kδ),
  Avellaneda–Stoikov's fill intensity (SPEC, Appendix), unless the orders
  ahead of it (better priced, or earlier at its price) absorb the taker
  first. After a jump the takers' limits move with F, so stale quotes are
  picked off.
- **Funding** is paid at every multiple of `funding_interval_s` since the epoch
  (simulated time; 8 h by default, like 00:00/08:00/16:00 UTC): first a
  `MarkChanged` at that instant, then `Exchange.pay_funding` at that instant
  with rate = clamp((mark − index)/index, ±`funding_cap`), rounded to 1e-8, so
  longs pay shorts when the perp trades above the index.
- **Moves on demand** (`Market.move`): F jumps by a given number of bps at
  once, for tests that need the market against a position.
- **Halts** (`Exchange.set_halted`) stop the background orders of that symbol;
  F, the index and the mark move on, and funding is still paid.

Units: prices in USDT, sizes in base units, both sent to the exchange as exact
Decimals on the instrument's grid (sizes at least the minimum size and
notional); the random draws are floats; times are integer ns.

Determinism: every symbol has its own random generators, derived from the seed
and the symbol (adding a symbol changes no other symbol's path): one for F,
the basis and the regime, one for the takers, one for the makers' sizes. So
the fair-value path and the takers' arrivals, reaches and sizes depend only on
the seed, the profile and `step_s`; what the takers fill depends on the book.
The same seed, the same steps and the same outside orders at the same moments
give the same events. Steps sit on a fixed grid (`start_ns` + n·`step_s`), so
how `advance` calls split the time changes nothing.

Events go out through the exchange's `on_event`: the engine's own events as it
emits them, and the market's `MarkChanged`s in the same stream, in order.

`SimClock` is simulated time for a runner: `speed` 60 runs an hour a minute, and
funding intervals with it (they are simulated time). A runner calls
``market.advance(clock.now_ns())`` every few wall milliseconds.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from simulator.exchange import Exchange, Order
from simulator.model import InstrumentRules, MarkChanged, Side

SECONDS_PER_YEAR = 365 * 24 * 3600
BPS = 1e-4
RATE_QUANTUM = Decimal("0.00000001")
MARK_EXTRA_DIGITS = 4  # mark and index carry this many more decimals than the tick
TAKER_SIZE_LOG_SD = 0.8  # σ of ln(taker size)
MAKER_SIZE_JITTER = 0.3  # a level's size is its target × U(1 − j, 1 + j)
SIDES: tuple[Side, Side] = ("BUY", "SELL")
LADDER_CHECK_S = 1.0  # the ladder is checked at least this often (simulated seconds)
SLOT_HYSTERESIS = 0.25  # of a slot: how far past a boundary F goes before the ladder moves


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    """How one symbol's background market behaves (see the module docstring)."""

    symbol: str
    start_price: Decimal
    annual_vol: float  # σ of ln F per √year, calm regime
    volatile_multiplier: float = 3.0
    calm_to_volatile_per_hour: float = 0.1
    volatile_to_calm_per_hour: float = 0.75
    jumps_per_day: float = 2.0
    jump_sd: float = 0.005  # σ of one jump in ln F
    basis_mean_bps: float = 1.0  # the perp over the index, in bps of the index
    basis_sd_bps: float = 2.0
    basis_half_life_s: float = 1800.0
    maker_levels: int = 10  # per side
    maker_half_spread_bps: float = 2.0
    maker_spacing_bps: float = 2.0
    maker_size_usdt: Decimal = Decimal(20_000)  # the nearest level; level i has (1 + i/2)×
    taker_rate_per_s: float = 0.5  # A: arrivals per side per simulated second
    taker_decay_per_bps: float = 0.25  # k: P(a taker reaches δ bps past F) = e^(−kδ)
    taker_size_usdt: Decimal = Decimal(2_000)  # mean of a lognormal

    def __post_init__(self) -> None:
        rates = (
            self.annual_vol,
            self.calm_to_volatile_per_hour,
            self.volatile_to_calm_per_hour,
            self.jumps_per_day,
            self.jump_sd,
            self.basis_sd_bps,
            self.maker_half_spread_bps,
            self.taker_rate_per_s,
        )
        if not all(math.isfinite(r) and r >= 0 for r in rates) or self.maker_levels < 0:
            raise ValueError(f"{self.symbol}: rates, volatilities and levels must be ≥ 0")
        if not (
            self.start_price > 0
            and self.volatile_multiplier > 0
            and self.basis_half_life_s > 0
            and self.maker_spacing_bps > 0
            and self.taker_decay_per_bps > 0
            and self.maker_size_usdt > 0
            and self.taker_size_usdt > 0
        ):
            raise ValueError(
                f"{self.symbol}: price, multiplier, half-life, spacing, decay and sizes must be > 0"
            )


PROFILES: dict[str, SymbolProfile] = {
    profile.symbol: profile
    for profile in (
        # Deep and busy: the other makers ±1 bp, a taker every ~0.5 s a side.
        SymbolProfile(
            "BTCUSDT-PERP",
            Decimal(60_000),
            annual_vol=0.5,
            maker_half_spread_bps=1.0,
            maker_spacing_bps=1.0,
            maker_size_usdt=Decimal(20_000),
            taker_rate_per_s=2.0,
            taker_decay_per_bps=0.5,
            taker_size_usdt=Decimal(3_000),
        ),
        SymbolProfile(
            "ETHUSDT-PERP",
            Decimal(3_000),
            annual_vol=0.65,
            jumps_per_day=3.0,
            jump_sd=0.007,
            maker_half_spread_bps=1.5,
            maker_spacing_bps=1.5,
            maker_size_usdt=Decimal(15_000),
            taker_rate_per_s=1.5,
            taker_decay_per_bps=0.4,
            taker_size_usdt=Decimal(2_000),
        ),
        # A small cap: wider, thinner and jumpier.
        SymbolProfile(
            "PEPEUSDT-PERP",
            Decimal("0.00001"),
            annual_vol=1.2,
            jumps_per_day=6.0,
            jump_sd=0.02,
            basis_sd_bps=4.0,
            maker_half_spread_bps=3.0,
            maker_spacing_bps=2.0,
            maker_size_usdt=Decimal(5_000),
            taker_rate_per_s=1.0,
            taker_decay_per_bps=0.2,
            taker_size_usdt=Decimal(800),
        ),
    )
}


class SimClock:
    """Simulated time: `start_ns` plus the wall time elapsed since construction
    × `speed` (1.0 = real time; 60 = an hour a minute)."""

    def __init__(
        self,
        *,
        speed: float = 1.0,
        start_ns: int | None = None,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError("speed must be a positive number")
        self.speed = speed
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self._wall = wall
        self._wall_start = wall()

    def now_ns(self) -> int:
        return self.start_ns + int((self._wall() - self._wall_start) * self.speed * 1e9)


@dataclass(slots=True)
class _Symbol:
    """One symbol's state and its per-step constants."""

    profile: SymbolProfile
    rules: InstrumentRules
    path_rng: random.Random  # regime, diffusion, jumps, basis
    taker_rng: random.Random
    maker_rng: random.Random
    maker_account: str
    taker_account: str
    log_fair: float
    basis_bps: float
    tick: float
    lot: float
    min_lots: int  # the minimum size in lots
    mark_quantum: Decimal
    slot_ticks: int  # the makers' slot width
    # per step:
    sigma_calm: float
    sigma_volatile: float
    p_to_volatile: float
    p_to_calm: float
    p_jump: float
    basis_keep: float  # OU: the share of the basis's deviation kept over one step
    basis_noise: float  # OU: sd of the step's innovation, bps
    taker_mean: float  # expected arrivals per side per step
    taker_mu: float  # μ of ln(size in USDT)
    maker_usdt: float
    volatile: bool = False
    orders_sent: int = 0
    slots: tuple[int, int] = (0, 0)  # the nearest bid and ask slots last quoted
    check: bool = True
    bids: dict[int, Order] = field(default_factory=dict)  # slot → the maker's order
    asks: dict[int, Order] = field(default_factory=dict)
    last_mark: tuple[Decimal, Decimal] | None = None

    @property
    def fair(self) -> float:
        return math.exp(self.log_fair)


class Market:
    """The background market on `exchange` for the `profiles`' symbols (see the
    module docstring). Not thread-safe: drive it from the thread that drives the
    exchange."""

    def __init__(
        self,
        exchange: Exchange,
        profiles: Iterable[SymbolProfile],
        *,
        seed: int,
        start_ns: int,
        funding_interval_s: float = 8 * 3600,
        funding_cap: Decimal = Decimal("0.0075"),
        step_s: float = 0.1,
        mark_interval_s: float = 1.0,
    ) -> None:
        if not (step_s > 0 and funding_interval_s > 0 and mark_interval_s > 0):
            raise ValueError("step_s, funding_interval_s and mark_interval_s must be > 0")
        if funding_cap < 0:
            raise ValueError("funding_cap must be ≥ 0")
        self.exchange = exchange
        self.funding_cap = funding_cap
        self.step_s = step_s
        self._step_ns = round(step_s * 1e9)
        if self._step_ns < 1:
            raise ValueError("step_s must be at least 1 ns")
        self._funding_ns = round(funding_interval_s * 1e9)
        self._next_funding_ns = (start_ns // self._funding_ns + 1) * self._funding_ns
        self._mark_steps = max(1, round(mark_interval_s / step_s))
        self._check_steps = max(1, round(LADDER_CHECK_S / step_s))
        self._now_ns = start_ns
        self._step_no = 0
        self._symbols: dict[str, _Symbol] = {}
        for profile in profiles:
            if profile.symbol in self._symbols:
                raise ValueError(f"two profiles for {profile.symbol}")
            rules = exchange.instruments.get(profile.symbol)
            if rules is None:
                raise ValueError(f"the exchange lists no {profile.symbol}")
            self._symbols[profile.symbol] = self._new_symbol(profile, rules, seed)

    # -------------------------------------------------------------- queries

    @property
    def now_ns(self) -> int:
        """The simulated time of the last step."""
        return self._now_ns

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._symbols)

    def fair(self, symbol: str) -> Decimal:
        """Fair value, to the nearest tick."""
        state = self._symbols[symbol]
        return Decimal(max(1, round(state.fair / state.tick))) * state.rules.tick_size

    def mark(self, symbol: str) -> Decimal:
        """The mark price (fair value, four decimals finer than the tick)."""
        return self._mark_and_index(self._symbols[symbol])[0]

    def index(self, symbol: str) -> Decimal:
        """The index (spot) price, four decimals finer than the tick."""
        return self._mark_and_index(self._symbols[symbol])[1]

    def volatile(self, symbol: str) -> bool:
        """Whether the symbol is in its volatile regime."""
        return self._symbols[symbol].volatile

    # -------------------------------------------------------------- control

    def move(self, symbol: str, bps: float) -> Decimal:
        """Moves `symbol`'s fair value (and so its mark) by `bps` at once, as a
        jump would, for tests and demos that need the market to go against a
        position. The new mark is published now and the other makers re-ladder
        at the next step. Returns the new mark."""
        state = self._symbols.get(symbol)
        if state is None:
            raise ValueError(f"no market for {symbol!r}")
        if not (math.isfinite(bps) and bps > -10_000):
            raise ValueError(f"bps must be a finite number above -10000, not {bps!r}")
        state.log_fair += math.log1p(bps * BPS)
        state.check = True
        return self._publish_mark(state, self._now_ns, force=True)[0]

    # -------------------------------------------------------------- time

    def advance(self, ts_ns: int) -> None:
        """Runs every step due up to `ts_ns` (steps fall on start_ns + n·step_s);
        an earlier `ts_ns` does nothing."""
        while self._now_ns + self._step_ns <= ts_ns:
            self._step(self._now_ns + self._step_ns)

    def _step(self, now: int) -> None:
        self._now_ns = now
        self._step_no += 1
        # Funding first, from the state as it was at the boundary (the last step
        # before it), so events stay in time order.
        while self._next_funding_ns <= now:
            for state in self._symbols.values():
                self._pay_funding(state, self._next_funding_ns)
            self._next_funding_ns += self._funding_ns
        publish_mark = self._step_no % self._mark_steps == 0
        check_ladder = self._step_no % self._check_steps == 0
        for state in self._symbols.values():
            self._evolve(state)
            if publish_mark:
                self._publish_mark(state, now)
            halted = self.exchange.halted(state.profile.symbol)
            if not halted:
                self._quote(state, now, check=check_ladder)
            self._takers(state, now, halted=halted)

    # -------------------------------------------------------------- the model

    def _new_symbol(self, profile: SymbolProfile, rules: InstrumentRules, seed: int) -> _Symbol:
        dt = self.step_s
        start = float(profile.start_price)
        tick = float(rules.tick_size)
        lot = float(rules.lot_size)
        sigma = profile.annual_vol * math.sqrt(dt / SECONDS_PER_YEAR)
        keep = math.exp(-math.log(2) * dt / profile.basis_half_life_s)
        taker_usdt = float(profile.taker_size_usdt)
        return _Symbol(
            profile=profile,
            rules=rules,
            path_rng=random.Random(f"{seed}/{profile.symbol}/path"),  # noqa: S311 - a simulation
            taker_rng=random.Random(f"{seed}/{profile.symbol}/takers"),  # noqa: S311
            maker_rng=random.Random(f"{seed}/{profile.symbol}/makers"),  # noqa: S311
            maker_account=f"bg-maker-{profile.symbol}",
            taker_account=f"bg-taker-{profile.symbol}",
            log_fair=math.log(start),
            basis_bps=profile.basis_mean_bps,
            tick=tick,
            lot=lot,
            min_lots=max(1, math.ceil(rules.min_size / rules.lot_size)),
            mark_quantum=rules.tick_size.scaleb(-MARK_EXTRA_DIGITS),
            slot_ticks=max(1, round(start * profile.maker_spacing_bps * BPS / tick)),
            sigma_calm=sigma,
            sigma_volatile=sigma * profile.volatile_multiplier,
            p_to_volatile=-math.expm1(-profile.calm_to_volatile_per_hour * dt / 3600),
            p_to_calm=-math.expm1(-profile.volatile_to_calm_per_hour * dt / 3600),
            p_jump=-math.expm1(-profile.jumps_per_day * dt / 86_400),
            basis_keep=keep,
            basis_noise=profile.basis_sd_bps * math.sqrt(1 - keep * keep),
            taker_mean=profile.taker_rate_per_s * dt,
            taker_mu=math.log(taker_usdt) - TAKER_SIZE_LOG_SD**2 / 2,
            maker_usdt=float(profile.maker_size_usdt),
        )

    @staticmethod
    def _evolve(state: _Symbol) -> None:
        rng, profile = state.path_rng, state.profile
        # The same draws every step, whatever the regime, so a path never shifts.
        switch, jump = rng.random(), rng.random()
        if switch < (state.p_to_calm if state.volatile else state.p_to_volatile):
            state.volatile = not state.volatile
        sigma = state.sigma_volatile if state.volatile else state.sigma_calm
        step = sigma * rng.gauss(0.0, 1.0) - sigma * sigma / 2
        if jump < state.p_jump:
            step += rng.gauss(0.0, profile.jump_sd)
        state.log_fair += step
        mean = profile.basis_mean_bps
        state.basis_bps = (
            mean
            + (state.basis_bps - mean) * state.basis_keep
            + state.basis_noise * rng.gauss(0.0, 1.0)
        )

    def _mark_and_index(self, state: _Symbol) -> tuple[Decimal, Decimal]:
        fair = state.fair
        index = fair * math.exp(-state.basis_bps * BPS)
        quantum = state.mark_quantum
        return (
            Decimal(fair).quantize(quantum, rounding=ROUND_HALF_EVEN),
            Decimal(index).quantize(quantum, rounding=ROUND_HALF_EVEN),
        )

    def _publish_mark(
        self, state: _Symbol, now: int, *, force: bool = False
    ) -> tuple[Decimal, Decimal]:
        marks = self._mark_and_index(state)
        if force or marks != state.last_mark:
            state.last_mark = marks
            self._emit(MarkChanged(state.profile.symbol, marks[0], marks[1], now))
        return marks

    def _pay_funding(self, state: _Symbol, boundary: int) -> None:
        mark, index = self._publish_mark(state, boundary, force=True)
        cap = self.funding_cap
        premium = (mark - index) / index
        rate = max(-cap, min(cap, premium)).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)
        self.exchange.pay_funding(state.profile.symbol, rate=rate, mark=mark, ts_ns=boundary)

    # -------------------------------------------------------------- the other makers

    def _quote(self, state: _Symbol, now: int, *, check: bool) -> None:
        """Keeps the ladder on its slots (see the module docstring)."""
        profile = state.profile
        levels = profile.maker_levels
        if levels == 0:
            return
        fair, width = state.fair, state.slot_ticks * state.tick
        half = profile.maker_half_spread_bps * BPS
        # In slot units: the nearest bid and ask slots move only once F has gone a
        # quarter slot past a boundary, so noise around one does not churn orders.
        bid_at, ask_at = fair * (1 - half) / width, fair * (1 + half) / width
        top_bid, top_ask = state.slots
        if not top_bid - SLOT_HYSTERESIS <= bid_at < top_bid + 1 + SLOT_HYSTERESIS:
            top_bid = math.floor(bid_at)
        if not top_ask - 1 - SLOT_HYSTERESIS < ask_at <= top_ask + SLOT_HYSTERESIS:
            top_ask = math.ceil(ask_at)
        if top_bid >= top_ask:  # a half-spread under the hysteresis: no crossed ladder
            top_bid, top_ask = math.floor(bid_at), math.ceil(ask_at)
            top_bid -= top_bid == top_ask
        if (top_bid, top_ask) == state.slots and not (check or state.check):
            return
        state.slots, state.check = (top_bid, top_ask), False
        bid_slots = range(top_bid, max(0, top_bid - levels), -1)  # nearest first
        ask_slots = range(top_ask, top_ask + levels)
        exchange = self.exchange
        # Cancels first, both sides: after a jump the makers' own stale asks would
        # otherwise block their new bids.
        for ladder, wanted in ((state.bids, bid_slots), (state.asks, ask_slots)):
            stale = [slot for slot, order in ladder.items() if not (order.live and slot in wanted)]
            for slot in stale:
                order = ladder.pop(slot)
                if order.live:
                    exchange.cancel(
                        account_id=order.account_id,
                        client_order_id=order.client_order_id,
                        ts_ns=now,
                    )
        self._fill_ladder(state, "BUY", state.bids, bid_slots, now)
        self._fill_ladder(state, "SELL", state.asks, ask_slots, now)

    def _fill_ladder(
        self, state: _Symbol, side: Side, ladder: dict[int, Order], slots: range, now: int
    ) -> None:
        """Places the missing levels of one side; `slots` nearest first."""
        missing = [slot for slot in slots if slot not in ladder]
        if not missing:
            return
        exchange, rules = self.exchange, state.rules
        symbol = rules.symbol
        opposite = exchange.best_ask(symbol) if side == "BUY" else exchange.best_bid(symbol)
        for slot in missing:
            price = Decimal(slot * state.slot_ticks) * rules.tick_size
            if opposite is not None and (price >= opposite if side == "BUY" else price <= opposite):
                continue  # someone rests better: leave the slot empty this time
            jitter = 1 + MAKER_SIZE_JITTER * (2 * state.maker_rng.random() - 1)
            usdt = state.maker_usdt * (1 + abs(slot - slots[0]) / 2) * jitter
            state.orders_sent += 1
            outcome = exchange.place(
                account_id=state.maker_account,
                client_order_id=f"bg-{symbol}-{state.orders_sent}",
                symbol=symbol,
                side=side,
                price=price,
                size=self._size(state, usdt, price),
                ts_ns=now,
            )
            if outcome.code == "" and outcome.order is not None:
                ladder[slot] = outcome.order

    @staticmethod
    def _size(state: _Symbol, usdt: float, price: Decimal) -> Decimal:
        """`usdt` worth at `price`, on the lot grid, at least the minimum size and notional."""
        rules = state.rules
        lots = max(state.min_lots, int(usdt / (float(price) * state.lot)))
        size = Decimal(lots) * rules.lot_size
        if size * price < rules.min_notional:  # a float rounding at the edge, or a tiny clip
            lots = math.ceil(rules.min_notional / (price * rules.lot_size))
            size = Decimal(lots) * rules.lot_size
        return size

    # -------------------------------------------------------------- the takers

    def _takers(self, state: _Symbol, now: int, *, halted: bool) -> None:
        rng, profile = state.taker_rng, state.profile
        mean = state.taker_mean
        if mean == 0:
            return
        rules = state.rules
        fair = state.fair
        for side in SIDES:
            for _ in range(_poisson(rng, mean)):
                # Drawn even while halted, so a halt does not shift later arrivals.
                reach = rng.expovariate(profile.taker_decay_per_bps) * BPS
                usdt = rng.lognormvariate(state.taker_mu, TAKER_SIZE_LOG_SD)
                if halted:
                    continue
                if side == "BUY":
                    limit_ticks = math.floor(fair * (1 + reach) / state.tick)
                else:
                    limit_ticks = max(1, math.ceil(fair * (1 - reach) / state.tick))
                lots = max(state.min_lots, int(usdt / (fair * state.lot)))
                fills = self.exchange.take(
                    account_id=state.taker_account,
                    symbol=rules.symbol,
                    side=side,
                    size=Decimal(lots) * rules.lot_size,
                    limit_price=Decimal(limit_ticks) * rules.tick_size,
                    ts_ns=now,
                )
                if fills:
                    state.check = True  # a level may be gone: refill it next step

    def _emit(self, event: MarkChanged) -> None:
        if self.exchange.on_event is not None:
            self.exchange.on_event(event)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson(mean) draw by inversion: one uniform, a few multiplications (mean
    is small: arrivals in one step)."""
    u = rng.random()
    term = cumulative = math.exp(-mean)
    n = 0
    while u > cumulative and term > 0:
        n += 1
        term *= mean / n
        cumulative += term
    return n
