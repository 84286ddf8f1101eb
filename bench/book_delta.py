"""How long one market-data delta costs the quoter: OrderBook.apply_delta, and
apply plus the reads the quoter makes after it (best bid, best ask, microprice
net of MMS's own orders).

    .venv/bin/python bench/book_delta.py [--deltas N] [--seed S]

The book holds 50 levels a side (a depth-50 feed). The deltas are generated
beforehand (not timed) by a model of that feed, each touching one or two
levels, mostly near the top:
  - 60% a size change at an existing level (index drawn from a geometric
    distribution, so the best levels change most);
  - 12% a level cancelled; the feed then shows the next level behind the 50th;
  - 12% a new level, inside the spread or in a hole; the feed drops its 51st;
  - 6% a trade through the best: that level gone, the next one smaller;
  - 10% one size change on each side.
MMS's own orders (for the net microprice) rest at the best and the third
level of each side, refreshed every 500 deltas; one refresh in five has them
fill the whole best level, so the microprice must walk to the next one.

Each delta is timed alone with time.perf_counter_ns (the timer's own cost,
measured and printed, is included in the figures). Throughput is measured
separately, with no timer inside the loop. The final book is checked against
the generator's model, so the figures are for a book that stayed right.

Writes bench/results/book_delta.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from quoting_worker.core.book import OrderBook
from quoting_worker.core.types import BookDelta, BookSnapshot, Level, Side

RESULTS = Path(__file__).resolve().parent / "results" / "book_delta.json"
DEPTH = 50
MID = 1_000_000  # ticks
OWN_REFRESH = 500


@dataclass(frozen=True, slots=True)
class Workload:
    snapshot: BookSnapshot
    deltas: list[BookDelta]
    own_bids: list[dict[int, int]]  # per delta: MMS's resting bids then
    own_asks: list[dict[int, int]]
    final_bids: list[Level]
    final_asks: list[Level]
    two_level_share: float


class FeedModel:
    """A depth-limited L2 feed: both sides as dicts, kept uncrossed and 50 deep."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.bids = {MID - 1 - i: rng.randint(1, 500) for i in range(DEPTH)}
        self.asks = {MID + 1 + i: rng.randint(1, 500) for i in range(DEPTH)}

    def side(self, buy: bool) -> dict[int, int]:
        return self.bids if buy else self.asks

    def ranked(self, buy: bool) -> list[int]:
        return sorted(self.side(buy), reverse=buy)

    def top_index(self, n: int) -> int:
        # Geometric: the best level is touched most, the 10th rarely, the 50th almost never.
        return min(int(self.rng.expovariate(0.35)), n - 1)

    def set(self, buy: bool, price: int, size: int) -> Level:
        book = self.side(buy)
        if size > 0:
            book[price] = size
        else:
            book.pop(price, None)
        return price, size

    def resize(self, buy: bool) -> Level:
        prices = self.ranked(buy)
        price = prices[self.top_index(len(prices))]
        return self.set(buy, price, max(1, self.side(buy)[price] + self.rng.randint(-60, 60)))

    def cancel(self, buy: bool) -> list[Level]:
        prices = self.ranked(buy)
        out = [self.set(buy, prices[self.top_index(len(prices))], 0)]
        # The feed now shows one level more at the back.
        step = -1 if buy else 1
        back = self.ranked(buy)[-1] + step * self.rng.randint(1, 3)
        out.append(self.set(buy, back, self.rng.randint(1, 500)))
        return out

    def insert(self, buy: bool) -> list[Level]:
        best_bid, best_ask = max(self.bids), min(self.asks)
        prices = self.ranked(buy)
        if best_ask - best_bid > 1 and self.rng.random() < 0.5:
            price = self.rng.randint(best_bid + 1, best_ask - 1)  # improves the best
        else:
            near = range(prices[0], prices[min(10, len(prices) - 1)], -1 if buy else 1)
            free = [p for p in near if p not in self.side(buy)]
            if not free:
                return [self.resize(buy)]
            price = self.rng.choice(free)
        out = [self.set(buy, price, self.rng.randint(1, 300))]
        if len(self.side(buy)) > DEPTH:
            out.append(self.set(buy, self.ranked(buy)[-1], 0))  # falls off the feed
        return out

    def trade_through(self, buy: bool) -> list[Level]:
        # The side is briefly 49 deep; the next insert on it refills the 50th level.
        prices = self.ranked(buy)
        nxt = prices[1]
        return [
            self.set(buy, prices[0], 0),
            self.set(buy, nxt, max(1, self.side(buy)[nxt] - self.rng.randint(1, 50))),
        ]

    def own_orders(self, whole_best: bool) -> tuple[dict[int, int], dict[int, int]]:
        own: list[dict[int, int]] = []
        for buy in (True, False):
            book, prices = self.side(buy), self.ranked(buy)
            best = book[prices[0]] if whole_best else max(1, book[prices[0]] // 2)
            own.append({prices[0]: best, prices[2]: max(1, book[prices[2]] // 3)})
        return own[0], own[1]


def generate(n: int, seed: int) -> Workload:
    rng = random.Random(seed)
    model = FeedModel(rng)
    snapshot = BookSnapshot(
        seq=1,
        bids=tuple(sorted(model.bids.items(), reverse=True)),
        asks=tuple(sorted(model.asks.items())),
        ts_ns=0,
    )
    deltas: list[BookDelta] = []
    own_bids: list[dict[int, int]] = []
    own_asks: list[dict[int, int]] = []
    own_bid: dict[int, int] = {}
    own_ask: dict[int, int] = {}
    two_level = 0
    for i in range(n):
        if i % OWN_REFRESH == 0:
            own_bid, own_ask = model.own_orders(whole_best=(i // OWN_REFRESH) % 5 == 4)
        buy = rng.random() < 0.5
        kind = rng.random()
        bids: list[Level] = []
        asks: list[Level] = []
        if kind < 0.60:
            (bids if buy else asks).append(model.resize(buy))
        elif kind < 0.72:
            (bids if buy else asks).extend(model.cancel(buy))
        elif kind < 0.84:
            (bids if buy else asks).extend(model.insert(buy))
        elif kind < 0.90:
            (bids if buy else asks).extend(model.trade_through(buy))
        else:
            bids.append(model.resize(True))
            asks.append(model.resize(False))
        two_level += len(bids) + len(asks) > 1
        deltas.append(BookDelta(seq=i + 2, bids=tuple(bids), asks=tuple(asks), ts_ns=i + 1))
        own_bids.append(own_bid)
        own_asks.append(own_ask)
    return Workload(
        snapshot=snapshot,
        deltas=deltas,
        own_bids=own_bids,
        own_asks=own_asks,
        final_bids=sorted(model.bids.items(), reverse=True),
        final_asks=sorted(model.asks.items()),
        two_level_share=two_level / n,
    )


def percentile(sorted_ns: list[int], q: float) -> int:
    """Nearest-rank percentile."""
    rank = max(1, -(-len(sorted_ns) * q // 1))
    return sorted_ns[int(rank) - 1]


def summarise(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    mean_ns = sum(ordered) / len(ordered)
    return {
        "p50_us": percentile(ordered, 0.50) / 1000,
        "p99_us": percentile(ordered, 0.99) / 1000,
        "p99_9_us": percentile(ordered, 0.999) / 1000,
        "max_us": ordered[-1] / 1000,
        "mean_us": mean_ns / 1000,
    }


def timer_overhead_ns() -> int:
    clock = time.perf_counter_ns
    gaps = []
    for _ in range(100_000):
        t0 = clock()
        gaps.append(clock() - t0)
    gaps.sort()
    return gaps[len(gaps) // 2]


def timed_run(work: Workload) -> tuple[list[int], list[int], OrderBook]:
    book = OrderBook("BENCH")
    book.apply_snapshot(work.snapshot)
    n = len(work.deltas)
    apply_ns = [0] * n
    total_ns = [0] * n
    clock = time.perf_counter_ns
    apply = book.apply_delta
    best_bid, best_ask, microprice = book.best_bid, book.best_ask, book.microprice
    own_bids, own_asks = work.own_bids, work.own_asks
    for i, delta in enumerate(work.deltas):
        t0 = clock()
        apply(delta)
        t1 = clock()
        best_bid()
        best_ask()
        microprice(own_bids[i], own_asks[i])
        t2 = clock()
        apply_ns[i] = t1 - t0
        total_ns[i] = t2 - t0
    return apply_ns, total_ns, book


def throughput(work: Workload, with_reads: bool) -> float:
    book = OrderBook("BENCH")
    book.apply_snapshot(work.snapshot)
    apply = book.apply_delta
    best_bid, best_ask, microprice = book.best_bid, book.best_ask, book.microprice
    own_bids, own_asks = work.own_bids, work.own_asks
    started = time.perf_counter_ns()
    if with_reads:
        for i, delta in enumerate(work.deltas):
            apply(delta)
            best_bid()
            best_ask()
            microprice(own_bids[i], own_asks[i])
    else:
        for delta in work.deltas:
            apply(delta)
    elapsed = time.perf_counter_ns() - started
    return len(work.deltas) / (elapsed / 1e9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deltas", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.deltas < 1_000:
        parser.error("--deltas must be ≥ 1000")

    work = generate(args.deltas, args.seed)
    overhead = timer_overhead_ns()
    # Warm the interpreter's specialised bytecode on a short run first.
    throughput(work, with_reads=True)
    gc.collect()
    apply_ns, total_ns, book = timed_run(work)
    ok = (
        book.synced
        and book.seq == args.deltas + 1
        and book.levels(Side.BUY) == work.final_bids
        and book.levels(Side.SELL) == work.final_asks
    )
    rate_apply = throughput(work, with_reads=False)
    rate_total = throughput(work, with_reads=True)
    rows = {
        "apply_delta": {**summarise(apply_ns), "deltas_per_s": rate_apply},
        "apply_delta + best bid/ask + microprice": {
            **summarise(total_ns),
            "deltas_per_s": rate_total,
        },
    }

    print(
        f"OrderBook deltas — {args.deltas:,} deltas, {DEPTH} levels a side, "
        f"{work.two_level_share:.0%} touch two levels, seed {args.seed}; "
        f"Python {platform.python_version()}"
    )
    header = f"{'':<42} {'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>8} {'deltas/s':>11}"
    print(header + "\n" + "-" * len(header))
    for name, row in rows.items():
        print(
            f"{name:<42} {row['p50_us']:>7.2f} {row['p99_us']:>7.2f} {row['p99_9_us']:>7.2f} "
            f"{row['max_us']:>8.1f} {row['deltas_per_s']:>11,.0f}"
        )
    print(
        f"(µs per delta; includes the timer's own ~{overhead / 1000:.2f} µs; "
        "deltas/s from a separate run with no timer in the loop)"
    )
    print("final book matches the feed model" if ok else "FINAL BOOK DIFFERS FROM THE MODEL")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "OrderBook.apply_delta",
                "deltas": args.deltas,
                "levels_per_side": DEPTH,
                "two_level_share": round(work.two_level_share, 4),
                "seed": args.seed,
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
                "machine": platform.machine(),
                "timer_overhead_ns": overhead,
                "rows": rows,
                "book_correct": ok,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
