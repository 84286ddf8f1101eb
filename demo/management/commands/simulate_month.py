"""`manage.py simulate_month 2026-10 [--seed 7] [--settle]`: a month of trading for
the pools' members, fed through the runquoter's own ingestion path, so the
revenue side (Q-score rollups, settlements, statements, the admin's review
pages) has a month to show and to check by hand.

Seeded and repeatable: per symbol, a mid price path (geometric Brownian motion
per minute at the simulator's volatility for the symbol); per member, maker
fills arriving as a Poisson process (`--trades-per-day`, scaled by its capital
weight) at the mid ± a few ticks, leaning against the member's inventory so
positions stay bounded, each paying the maker rebate (−1 bp); funding every
8 h on the member's position. Each fill's realised PnL is booked by the
quoting core's own ledger (`MemberRuntime`), and fills and funding are stored
by `quoting_worker.adapters.store` exactly as the runquoter stores them, under
a fencing-token lease of the symbol. Performance snapshots are written every
`--sample-minutes` (the member quotes at its own steadiness), and every day of
the month is rolled up by the same job as the nightly schedule. With
`--settle`, the month's settlements are created.

Every id is derived from the seed, so a second run stores nothing new. It
refuses to run while a runquoter hosts one of the pools (its lease would be
taken away).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from common.actors import Actor, ActorKind
from performance.jobs import rollup_day
from performance.models import PerformanceSnapshot
from pools.leases import lease_acquire, lease_release
from pools.models import PoolConfig, PoolMember
from pools.selectors import live_status_get
from quoting_worker.adapters import store
from quoting_worker.core.member import MemberRuntime
from quoting_worker.core.types import Fill, FundingPayment, Instrument, Side
from settlements.calculation import bounds
from settlements.services import settlements_create_month
from simulator.market import PROFILES
from simulator.model import INSTRUMENTS

OWNER = "simulate-month"
USDT = Decimal("0.00000001")
REBATE = Decimal("-0.0001")  # maker: −1 bp of the notional
NS = 1_000_000_000
MINUTE_NS = 60 * NS
FUNDING_EVERY_NS = 8 * 3600 * NS
# How steadily each member (in enrolment order) quotes: its share of quoting samples.
STEADINESS = (0.98, 0.93, 0.85, 0.75)


@dataclass
class Member:
    participant_id: str
    account_id: str
    weight: Decimal
    steadiness: float
    runtime: MemberRuntime
    rng: random.Random
    fills: int = 0
    stored: int = 0


class Command(BaseCommand):
    help = "Feed a seeded month of fills, funding and performance samples for the pools' members."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("month", help="an ended UTC month, YYYY-MM")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--trades-per-day", type=float, default=120.0)
        parser.add_argument("--sample-minutes", type=int, default=5)
        parser.add_argument("--settle", action="store_true", help="create the settlements too")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            first = dt.date.fromisoformat(f"{options['month']}-01")
        except ValueError:
            raise CommandError(f"month must be YYYY-MM, not {options['month']!r}") from None
        start, end = bounds(first)
        if end > timezone.now():
            raise CommandError(f"the month of {first:%Y-%m} has not ended")
        if options["trades_per_day"] <= 0 or options["sample_minutes"] < 1:
            raise CommandError("--trades-per-day must be > 0 and --sample-minutes ≥ 1")
        pools = [
            p for p in PoolConfig.objects.filter(archived_at__isnull=True) if p.members.exists()
        ]
        if not pools:
            raise CommandError("no pool has members: run `manage.py seed_demo` first")
        hosted = [
            s for s, live in live_status_get(symbols=[p.symbol for p in pools]).items() if live
        ]
        if hosted:
            raise CommandError(f"a runquoter hosts {', '.join(hosted)}: stop it first")
        rules = {r.symbol: r for r in INSTRUMENTS}
        for pool in pools:
            if pool.symbol not in rules:
                raise CommandError(f"no simulator instrument for {pool.symbol}")
            fills, payments = self._symbol(pool, rules[pool.symbol], start, end, options)
            self.stdout.write(
                f"{pool.symbol}: {fills} fills and {payments} funding payments stored (new)"
            )
        day = first
        while day < end.date():
            rollup_day(day)
            day += dt.timedelta(days=1)
        self.stdout.write(f"rolled up {first:%Y-%m}")
        if options["settle"]:
            created = settlements_create_month(
                first=first, actor=Actor("simulate-month", ActorKind.SYSTEM)
            )
            self.stdout.write(f"{len(created)} settlements created")

    # ------------------------------------------------------------------ one symbol

    def _symbol(
        self, pool: PoolConfig, rules: Any, start: dt.datetime, end: dt.datetime, options: Any
    ) -> tuple[int, int]:
        symbol = pool.symbol
        instrument = Instrument(
            symbol,
            rules.tick_size,
            rules.lot_size,
            max(1, int(rules.min_size / rules.lot_size)),
            rules.min_notional,
        )
        seed = f"{options['seed']}/{symbol}"
        rows = PoolMember.objects.filter(pool=pool).select_related("participant").order_by("id")
        members = [
            Member(
                participant_id=str(m.participant_id),
                account_id=m.participant.account_id,
                weight=m.weight,
                steadiness=STEADINESS[i % len(STEADINESS)],
                runtime=MemberRuntime(str(m.participant_id), instrument),
                rng=random.Random(f"{seed}/{m.participant_id}"),  # noqa: S311 - a simulation
            )
            for i, m in enumerate(rows)
        ]
        mean_weight = sum((m.weight for m in members), Decimal(0)) / len(members)
        path = list(self._path(symbol, start, end, random.Random(f"{seed}/path")))  # noqa: S311
        token, _ = lease_acquire(symbol=symbol, owner=OWNER)
        payments = 0
        try:
            for member in members:
                payments += self._trade(
                    member, symbol, instrument, path, start, token, options, mean_weight
                )
            self._snapshots(members, symbol, path, start, options["sample_minutes"])
        finally:
            lease_release(symbol=symbol, owner=OWNER, token=token)
        return sum(m.stored for m in members), payments

    @staticmethod
    def _path(
        symbol: str, start: dt.datetime, end: dt.datetime, rng: random.Random
    ) -> Iterator[float]:
        """The mid at every minute of the month."""
        profile = PROFILES[symbol]
        sigma = profile.annual_vol * math.sqrt(60 / (365 * 24 * 3600))
        log_mid = math.log(float(profile.start_price))
        for _ in range(int((end - start).total_seconds() // 60)):
            yield math.exp(log_mid)
            log_mid += sigma * rng.gauss(0.0, 1.0) - sigma * sigma / 2

    def _trade(
        self,
        member: Member,
        symbol: str,
        instrument: Instrument,
        path: list[float],
        start: dt.datetime,
        token: int,
        options: Any,
        mean_weight: Decimal,
    ) -> int:
        """The member's fills, and funding at every 8 h boundary on its position
        then; returns the number of funding payments stored (new)."""
        rng, runtime = member.rng, member.runtime
        funding_rng = random.Random(f"{symbol}/{member.participant_id}/funding")  # noqa: S311
        minutes = len(path)
        rate = options["trades_per_day"] * float(member.weight / mean_weight) / 1440
        limit = 50_000.0 * float(member.weight / mean_weight)
        t0 = int(start.timestamp()) * NS
        minute = 0.0
        next_funding = FUNDING_EVERY_NS
        fills: list[tuple[str, Fill]] = []
        realised: dict[str, Decimal] = {}
        payments: list[tuple[str, FundingPayment]] = []

        def pay_funding_until(ns: int) -> None:
            nonlocal next_funding
            while next_funding <= ns and next_funding < minutes * MINUTE_NS:
                rate = Decimal(str(round(funding_rng.gauss(0.0001, 0.0002), 6)))
                mark = Decimal(str(path[next_funding // MINUTE_NS]))
                position = instrument.size(runtime.position_lots)
                amount = (-position * mark * rate).quantize(USDT, rounding=ROUND_HALF_EVEN)
                if amount:
                    runtime.apply_funding(amount)
                    payments.append(
                        (
                            member.participant_id,
                            FundingPayment(
                                # Absolute times: ids never repeat from one month
                                # to the next (a repeat is dropped as a duplicate).
                                payment_id=(
                                    f"sim-funding-{symbol}-{member.participant_id[:8]}-"
                                    f"{(t0 + next_funding) // NS}"
                                ),
                                account_id=member.account_id,
                                amount=amount,
                                ts_ns=t0 + next_funding,
                            ),
                        )
                    )
                next_funding += FUNDING_EVERY_NS

        while True:
            minute += rng.expovariate(rate)
            if minute >= minutes:
                break
            offset = int(minute * MINUTE_NS)
            pay_funding_until(offset)
            fill = self._fill(member, symbol, instrument, path[int(minute)], limit, t0 + offset)
            realised[fill.fill_id] = runtime.realised_by(fill)
            runtime.apply_fill(fill)
            fills.append((member.participant_id, fill))
        pay_funding_until(minutes * MINUTE_NS)
        for i in range(0, len(fills), 1000):
            chunk = fills[i : i + 1000]
            member.stored += store.fills_record(
                symbol=symbol,
                token=token,
                instrument=instrument,
                fills=chunk,
                realised={f.fill_id: realised[f.fill_id] for _, f in chunk},
            )
        return store.funding_record(symbol=symbol, token=token, payments=payments)

    @staticmethod
    def _fill(
        member: Member, symbol: str, instrument: Instrument, mid: float, limit: float, ts_ns: int
    ) -> Fill:
        """A maker fill a few ticks from `mid`, leaning against the member's
        inventory (so positions stay bounded), paying the maker rebate."""
        rng = member.rng
        exposure = float(instrument.size(member.runtime.position_lots)) * mid / limit
        lean = max(-0.4, min(0.4, exposure))
        side = Side.BUY if rng.random() < 0.5 - lean else Side.SELL
        away = rng.randint(1, 4)
        mid_ticks = int(mid / float(instrument.tick_size))
        price_ticks = mid_ticks - away if side is Side.BUY else mid_ticks + 1 + away
        usdt = rng.lognormvariate(math.log(400), 0.6)
        lots = max(instrument.min_lots, int(usdt / (mid * float(instrument.lot_size))))
        while instrument.notional(price_ticks, lots) < instrument.min_notional:
            lots += 1
        notional = instrument.notional(price_ticks, lots)
        member.fills += 1
        return Fill(
            fill_id=f"sim-{symbol}-{member.participant_id[:8]}-{ts_ns}-{member.fills}",
            client_order_id=f"sim-{member.participant_id[:8]}-{ts_ns}-{member.fills}",
            side=side,
            price_ticks=price_ticks,
            size_lots=lots,
            fee=(notional * REBATE).quantize(USDT, rounding=ROUND_HALF_EVEN),
            ts_ns=ts_ns,
        )

    @staticmethod
    def _snapshots(
        members: list[Member],
        symbol: str,
        path: list[float],
        start: dt.datetime,
        every_minutes: int,
    ) -> None:
        rows = []
        rng = random.Random(f"{symbol}/samples")  # noqa: S311
        for minute in range(0, len(path), every_minutes):
            taken_at = start + dt.timedelta(minutes=minute)
            for member in members:
                quoting = rng.random() < member.steadiness
                depth = Decimal(int(float(member.weight) * rng.uniform(4_000, 8_000)))
                liquidity = depth * Decimal(str(round(rng.uniform(0.6, 0.9), 4)))
                rows.append(
                    PerformanceSnapshot(
                        taken_at=taken_at,
                        symbol=symbol,
                        participant_id=member.participant_id,
                        pool_active=True,
                        quoting=quoting,
                        spread_bps=Decimal(str(round(rng.uniform(4, 9), 2))) if quoting else None,
                        bid_depth_usdt=depth if quoting else Decimal(0),
                        ask_depth_usdt=depth if quoting else Decimal(0),
                        liquidity=liquidity if quoting else Decimal(0),
                        trades=0,
                        volume_usdt=Decimal(0),
                    )
                )
        PerformanceSnapshot.objects.bulk_create(rows, batch_size=5000, ignore_conflicts=True)
