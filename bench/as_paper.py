"""Reproduce the simulation table of Avellaneda & Stoikov (2008) with this
project's `reservation_price` and `optimal_half_spread` (SPEC Appendix).

    .venv/bin/python bench/as_paper.py [--paths N] [--seed S]

Model (paper §4): s₀ = 100, T = 1, σ = 2, dt = 0.005 (200 steps), q₀ = 0,
k = 1.5, A = 140. Each step, in this order:
  1. quote from the current s, q and time left τ = T − t
     inventory strategy: r ± δ with r = s − qγσ²τ, δ = γσ²τ/2 + (1/γ)ln(1 + γ/k)
     symmetric strategy: s ± (average spread)/2, the average spread being
     γσ²T/2 + (2/γ)ln(1 + γ/k) — the time average of the inventory
     strategy's 2δ, so both strategies earn the same spread on average;
  2. each side fills independently (one unit) with probability λ(δ)·dt,
     λ(δ) = A·e^(−kδ), δ = that quote's distance from the mid s (not from r);
  3. the mid moves ±σ√dt with probability ½ each.
Profit at T is cash + q·s. Both strategies of one γ see the same random
numbers (three uniforms per step, always drawn), so they face the same mid
paths and their difference is the strategy, not the luck.

Reproduced (SPEC Appendix): each mean within 2·sd·√(1/1000 + 1/N) of the
published value (sd the published standard deviation; the paper's table is
itself one run of 1,000 paths), each standard deviation within 10%.

The symmetric strategy also has an exact answer to check the simulator
against: its fill odds p = A·e^(−k·spread/2)·dt never change, so
E[profit] = 2·steps·p·spread/2, and with v = 2p(1 − p) the variance of one
step's Δq, Var[final q] = steps·v and
Var[profit] = (spread/2)²·steps·v + v·(steps(steps + 1)/2)·σ²·dt
(spread income plus Σ q·Δs, uncorrelated because each Δs is independent of
the q it multiplies). The table prints these beside the simulation.

What does not reproduce, and why. The simulation matches the exact symmetric
values within sampling noise at any N, and with --paths 20000 every cell of the
published table passes. Two published cells sit 6–7% below the exact value:
std(profit) of the symmetric strategy at γ = 0.1 (12.7 vs 13.46) and
γ = 0.01 (12.8 vs 13.68) — the paper's own 1,000-path sampling error. With
N = 1000 our std has ~3% sampling error too, so those two cells land outside
the 10% band in roughly one run in six (see --repeat); likewise each mean
cell, by construction of the 2-sd rule, fails in about one run in twenty.
A FAIL in one run with N = 1000 is therefore not by itself a model error.
The usual model errors fail clearly instead (inventory strategy,
3,000 paths, mean profit / std(final q); published 65.0/2.9, 68.6/5.1, 31.4/1.7):

    as here                    γ=0.1 65.0/2.9   γ=0.01 68.5/5.2   γ=1 31.6/1.6
    σ where the paper has σ²         67.0/3.5          68.6/6.1       48.1/1.9
    fill odds measured from r        68.1/8.4          68.6/8.7       44.6/5.9
    mid moves before the fills       63.5/2.9          66.8/5.1       30.8/1.7
    half-spread w/o γσ²τ/2 term      64.3/2.9          68.5/5.2      −43.5/1.6

Writes bench/results/as_paper.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from quoting_worker.core.avellaneda import optimal_half_spread, reservation_price

S0 = 100.0
T = 1.0
SIGMA = 2.0
DT = 0.005
STEPS = 200  # T / DT
K = 1.5
A = 140.0
PAPER_PATHS = 1000

RESULTS = Path(__file__).resolve().parent / "results" / "as_paper.json"


@dataclass(frozen=True, slots=True)
class Published:
    gamma: float
    strategy: str
    spread: float
    profit: float
    std_profit: float
    final_q: float
    std_final_q: float


# Avellaneda & Stoikov (2008), Quantitative Finance 8(3), Tables 1–3.
PUBLISHED = (
    Published(0.1, "inventory", 1.49, 65.0, 6.6, 0.08, 2.9),
    Published(0.1, "symmetric", 1.49, 68.4, 12.7, 0.26, 8.4),
    Published(0.01, "inventory", 1.35, 68.6, 8.7, 0.12, 5.1),
    Published(0.01, "symmetric", 1.35, 68.8, 12.8, 0.09, 8.7),
    Published(1.0, "inventory", 3.02, 31.4, 5.0, 0.02, 1.7),
    Published(1.0, "symmetric", 3.02, 44.0, 11.0, 0.00, 5.1),
)


@dataclass(frozen=True, slots=True)
class Result:
    gamma: float
    strategy: str
    paths: int
    spread: float  # average quoted spread ask − bid over all steps and paths
    profit: float
    std_profit: float
    final_q: float
    std_final_q: float


def average_spread(gamma: float) -> float:
    """The paper's "average spread": γσ²T/2 + (2/γ)·ln(1 + γ/k)."""
    return gamma * SIGMA * SIGMA * T / 2.0 + (2.0 / gamma) * math.log1p(gamma / K)


def simulate(gamma: float, strategy: str, paths: int, seed: int) -> Result:
    # A seeded, reproducible stream is the point here; nothing is secret.
    rng = random.Random(seed)
    uniform = rng.random
    exp = math.exp
    move = SIGMA * math.sqrt(DT)
    sym_half = average_spread(gamma) / 2.0
    # The symmetric quotes never move relative to s, so their fill odds are fixed.
    sym_p = A * exp(-K * sym_half) * DT
    inventory = strategy == "inventory"
    profits: list[float] = []
    finals: list[float] = []
    spread_sum = 0.0
    for _ in range(paths):
        s = S0
        q = 0.0
        cash = 0.0
        for n in range(STEPS):
            if inventory:
                tau = (STEPS - n) * DT  # time left, > 0 at every quote
                r = reservation_price(s, q, gamma, SIGMA, tau)
                half = optimal_half_spread(gamma, SIGMA, tau, K)
                bid = r - half
                ask = r + half
                # Distance from the mid s, not from r: the market fills
                # against s. Probabilities above 1 (a quote through the mid)
                # just mean a sure fill.
                p_bid = A * exp(-K * (s - bid)) * DT
                p_ask = A * exp(-K * (ask - s)) * DT
            else:
                bid = s - sym_half
                ask = s + sym_half
                p_bid = p_ask = sym_p
            spread_sum += ask - bid
            u_bid = uniform()
            u_ask = uniform()
            u_mid = uniform()
            if u_bid < p_bid:
                q += 1.0
                cash -= bid
            if u_ask < p_ask:
                q -= 1.0
                cash += ask
            s += move if u_mid < 0.5 else -move
        profits.append(cash + q * s)
        finals.append(q)
    return Result(
        gamma=gamma,
        strategy=strategy,
        paths=paths,
        spread=spread_sum / (paths * STEPS),
        profit=statistics.fmean(profits),
        std_profit=statistics.stdev(profits),
        final_q=statistics.fmean(finals),
        std_final_q=statistics.stdev(finals),
    )


def symmetric_exact(gamma: float) -> dict[str, float]:
    """Exact mean/std of profit and final q for the symmetric strategy."""
    half = average_spread(gamma) / 2.0
    p = A * math.exp(-K * half) * DT
    v = 2.0 * p * (1.0 - p)
    var_profit = half * half * STEPS * v + v * (STEPS * (STEPS + 1) / 2.0) * SIGMA * SIGMA * DT
    return {
        "profit": 2.0 * STEPS * p * half,
        "std_profit": math.sqrt(var_profit),
        "final_q": 0.0,
        "std_final_q": math.sqrt(STEPS * v),
    }


def mean_ok(ours: float, published: float, published_sd: float, paths: int) -> tuple[bool, float]:
    tol = 2.0 * published_sd * math.sqrt(1.0 / PAPER_PATHS + 1.0 / paths)
    return abs(ours - published) <= tol, tol


def std_ok(ours: float, published: float) -> bool:
    return abs(ours - published) <= 0.10 * published


Checks = dict[str, dict[str, float | bool]]
CELLS = ("spread", "profit", "std_profit", "final_q", "std_final_q")


def compare(res: Result, pub: Published) -> Checks:
    out: Checks = {}
    for name, sd_name in (("profit", "std_profit"), ("final_q", "std_final_q")):
        ours = getattr(res, name)
        ok, tol = mean_ok(ours, getattr(pub, name), getattr(pub, sd_name), res.paths)
        out[name] = {"ours": ours, "published": getattr(pub, name), "tolerance": tol, "ok": ok}
        ours_sd = getattr(res, sd_name)
        pub_sd = getattr(pub, sd_name)
        out[sd_name] = {
            "ours": ours_sd,
            "published": pub_sd,
            "tolerance": 0.10 * pub_sd,
            "ok": std_ok(ours_sd, pub_sd),
        }
    # The spread column is a formula of the parameters, so compare it to the
    # paper's two decimals.
    out["spread"] = {
        "ours": average_spread(res.gamma),
        "published": pub.spread,
        "tolerance": 0.005,
        "ok": abs(average_spread(res.gamma) - pub.spread) <= 0.005,
    }
    return out


def cell(check: dict[str, float | bool], fmt: str) -> str:
    mark = "ok" if check["ok"] else "FAIL"
    return f"{check['ours']:{fmt}} vs {check['published']:{fmt}} {mark:<4}"


def run(paths: int, seed: int) -> list[tuple[Result, Published, Checks]]:
    rows = []
    for i, pub in enumerate(PUBLISHED):
        # One seed per γ shared by both strategies: common random numbers.
        res = simulate(pub.gamma, pub.strategy, paths, seed * 1000 + i // 2)
        rows.append((res, pub, compare(res, pub)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--paths", type=int, default=1000, help="simulated paths per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="also rerun with this many seeds (seed, seed+1, ...) and print how often each "
        "cell passes",
    )
    args = parser.parse_args(argv)
    if args.paths < 2:
        parser.error("--paths must be ≥ 2")
    if args.repeat < 1:
        parser.error("--repeat must be ≥ 1")

    started = time.perf_counter()
    rows = run(args.paths, args.seed)
    elapsed = time.perf_counter() - started
    all_ok, exact = print_rows(args, rows, elapsed)
    pass_rates = repeat(args) if args.repeat > 1 else []
    print(
        "\nA FAIL at N=1000 is sampling noise unless it persists across seeds: the paper's "
        "symmetric std(profit)\nat γ=0.1 and 0.01 is 6-7% below the exact value (see the "
        "module docstring); --paths 20000 passes every cell."
    )
    write(args, rows, all_ok, elapsed, exact, pass_rates)
    print(f"wrote {RESULTS}")
    return 0 if all_ok else 1


def print_rows(
    args: argparse.Namespace, rows: list[tuple[Result, Published, Checks]], elapsed: float
) -> tuple[bool, dict[float, dict[str, float]]]:
    """The table of ours vs published; whether every cell passed, and the exact
    symmetric figures."""
    print(
        f"Avellaneda & Stoikov (2008) — {args.paths} paths per row, seed {args.seed}, "
        f"{elapsed:.1f} s; cells are ours vs published"
    )
    header = (
        f"{'γ':>5} {'strategy':<10} {'avg spread':<20} {'profit':<20} {'std(profit)':<20} "
        f"{'final q':<20} {'std(final q)':<20}"
    )
    print(header)
    print("-" * len(header))
    all_ok = True
    for _res, pub, chk in rows:
        all_ok = all_ok and all(bool(c["ok"]) for c in chk.values())
        print(
            f"{pub.gamma:>5g} {pub.strategy:<10} {cell(chk['spread'], '6.2f'):<20} "
            f"{cell(chk['profit'], '6.1f'):<20} {cell(chk['std_profit'], '5.1f'):<20} "
            f"{cell(chk['final_q'], '5.2f'):<20} {cell(chk['std_final_q'], '5.1f'):<20}"
        )
    print()
    exact = {g: symmetric_exact(g) for g in (0.1, 0.01, 1.0)}
    for g, e in exact.items():
        print(
            f"exact symmetric γ={g:g}: profit {e['profit']:.2f}, std {e['std_profit']:.2f}, "
            f"final q 0, std {e['std_final_q']:.2f}"
        )
    for res, pub, chk in rows:
        print(
            f"γ={pub.gamma:g} {pub.strategy}: realised mean quoted spread {res.spread:.3f}; "
            f"tolerance profit ±{chk['profit']['tolerance']:.2f}, "
            f"final q ±{chk['final_q']['tolerance']:.2f}"
        )
    print("\nREPRODUCED" if all_ok else "\nNOT REPRODUCED in this run (see FAIL cells)")
    return all_ok, exact


def repeat(args: argparse.Namespace) -> list[dict[str, float]]:
    """Each cell's pass rate over --repeat seeds (printed)."""
    counts = [dict.fromkeys(CELLS, 0) for _ in PUBLISHED]
    for seed in range(args.seed, args.seed + args.repeat):
        for j, (_res, _pub, chk) in enumerate(run(args.paths, seed)):
            for name in CELLS:
                counts[j][name] += bool(chk[name]["ok"])
    pass_rates = [{k: v / args.repeat for k, v in c.items()} for c in counts]
    print(f"\npass rate per cell over {args.repeat} seeds (from {args.seed}):")
    print(f"{'γ':>5} {'strategy':<10} " + " ".join(f"{n:>12}" for n in CELLS))
    for pub, rates in zip(PUBLISHED, pass_rates, strict=True):
        print(
            f"{pub.gamma:>5g} {pub.strategy:<10} " + " ".join(f"{rates[n]:>12.0%}" for n in CELLS)
        )
    return pass_rates


def write(
    args: argparse.Namespace,
    rows: list[tuple[Result, Published, Checks]],
    all_ok: bool,
    elapsed: float,
    exact: dict[float, dict[str, float]],
    pass_rates: list[dict[str, float]],
) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "paper": "Avellaneda & Stoikov (2008), Quantitative Finance 8(3) 217-224",
                "params": {
                    "s0": S0,
                    "T": T,
                    "sigma": SIGMA,
                    "dt": DT,
                    "k": K,
                    "A": A,
                    "paths": args.paths,
                    "seed": args.seed,
                },
                "rule": "mean within 2*sd*sqrt(1/1000 + 1/N) of published; std within 10%",
                "reproduced": all_ok,
                "elapsed_seconds": round(elapsed, 2),
                "rows": [
                    {"result": asdict(res), "published": asdict(pub), "checks": chk}
                    for res, pub, chk in rows
                ],
                "symmetric_exact": {str(g): e for g, e in exact.items()},
                "pass_rates": (
                    {"seeds": args.repeat, "from_seed": args.seed, "rows": pass_rates}
                    if pass_rates
                    else None
                ),
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    sys.exit(main())
