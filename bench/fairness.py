"""Fairness bench (SPEC Part B.19, issue 19): each member's share of its pool's
maker volume against its share of the pool's resting size, on the simulator.

The demo pools run in process against TradeX's market and matching engine
(lab/fairness.py), one seed after another, each until `--min-fills` maker
fills; twice: as MMS places orders (the member furthest behind its share of
fills first at each price, core/fairness.py) and, for the baseline, in
enrolment order (the queue order before fair queue position,
lab/fairness.py: `FillShares.in_turn` off). Prints a row per member and
run, and writes bench/results/fairness.json.

    .venv/bin/python bench/fairness.py [--seeds 1 2 3] [--min-fills 10000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from harness import RESULTS
from harness.report import machine, write_json

from lab.fairness import study

SYMBOLS = ("BTCUSDT-PERP", "ETHUSDT-PERP", "PEPEUSDT-PERP")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--min-fills", type=int, default=10_000)
    parser.add_argument("--out", default=str(RESULTS / "fairness.json"))
    args = parser.parse_args()

    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    for scheme in ("deficit order", "enrolment order"):
        for symbol in SYMBOLS:
            for seed in args.seeds:
                result = study(
                    symbol, seed, min_fills=args.min_fills, fair_queue=scheme == "deficit order"
                )
                runs.append(
                    {
                        "scheme": scheme,
                        "symbol": symbol,
                        "seed": seed,
                        "simulated_s": result.simulated_s,
                        "fills": result.fills,
                        "fair": result.fair,
                        "halts": result.halts,
                        "members": result.rows,
                    }
                )

    print(
        f"{'scheme':<16} {'symbol':<14} {'seed':>4} {'fills':>6} {'account':<11} "
        f"{'vol share':>9} {'size share':>10} {'diff':>8} {'tol':>6}"
    )
    for run in runs:
        for row in run["members"]:
            print(
                f"{run['scheme']:<16} {run['symbol']:<14} {run['seed']:>4} {run['fills']:>6} "
                f"{row['account']:<11} {row['volume_share']:>9.4f} {row['size_share']:>10.4f} "
                f"{row['difference']:>+8.4f} {row['tolerance']:>6.4f}"
            )
    for scheme in ("deficit order", "enrolment order"):
        mine = [r for r in runs if r["scheme"] == scheme]
        worst = max(abs(m["difference"]) for r in mine for m in r["members"])
        print(
            f"{scheme}: {sum(r['fair'] for r in mine)} of {len(mine)} runs within tolerance; "
            f"largest |volume share − size share| {worst:.4f}"
        )
    wall = round(time.perf_counter() - started, 1)
    write_json(
        {"machine": machine(), "min_fills": args.min_fills, "runs": runs},
        Path(args.out),
        wall_s=wall,
    )


if __name__ == "__main__":
    main()
