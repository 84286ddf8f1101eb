"""The API contract at length (issue 19, item 9): Schemathesis with every check
and its examples, coverage, fuzzing and stateful phases, the committed
schemathesis.toml, against a seeded throwaway stack (devstack/api_contract.py:
a scratch database seeded by seed_demo and simulate_month, the Auth Service
stand-in, gunicorn with DEBUG off).

    .venv/bin/python bench/api_contract.py [--max-examples 100] [--seed 20260101]
        [--workers 1] [--rounds 1] [--keep-logs] [--out FILE]

Each round runs on a stack of its own (the stateful phase kills, flattens and
archives, so a round leaves the data changed) with seed + round. Prints a
table of failures per check for each round and writes
bench/results/api_contract.json. `make test` runs the same at -n 5
(tests/test_api_contract.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import RESULTS
from harness.report import machine, write_json

from devstack.api_contract import SEED, contract_stack, run_schemathesis


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=100, help="schemathesis -n")
    parser.add_argument("--seed", type=int, default=SEED)
    # One worker: with two threads, CPython 3.11.7's ast module (which Hypothesis uses
    # to describe its strategies) raised a spurious SystemError inside the tool
    # (python/cpython#106905), a run error that says nothing about the API.
    parser.add_argument("--workers", type=int, default=1, help="schemathesis --workers")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")
    )
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "api_contract.json")
    args = parser.parse_args()

    started = time.monotonic()
    rounds: list[dict[str, Any]] = []
    logs = Path(tempfile.mkdtemp(prefix="api-contract-"))
    print(f"logs in {logs}", flush=True)
    failed = False
    try:
        for number in range(args.rounds):
            folder = logs / f"round-{number + 1}"
            seed = args.seed + number
            with contract_stack(redis_url=args.redis_url, logs=folder) as stack:
                run = run_schemathesis(
                    stack,
                    max_examples=args.max_examples,
                    seed=seed,
                    workers=args.workers,
                    report=folder / "report.json",
                    output=folder / "schemathesis.txt",
                )
            print(f"\nround {number + 1}, seed {seed}: {' '.join(run.command)}")
            print(run.table(), flush=True)
            failed = failed or run.failures > 0 or run.exit_code != 0
            rounds.append(
                {
                    "seed": seed,
                    "command": " ".join(run.command),
                    "exit_code": run.exit_code,
                    "seconds": round(run.seconds, 1),
                    "operations": run.operations,
                    "test_cases": run.test_cases,
                    "unique_failures": run.failures,
                    "failures_by_check": run.by_check,
                    "errors": run.errors,
                    "warnings": run.warnings,
                }
            )
    finally:
        if failed or args.keep_logs:
            print(f"logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)
    result = {
        "bench": "api_contract",
        "machine": machine(),
        "max_examples": args.max_examples,
        "workers": args.workers,
        "rounds": rounds,
        "operations": max((r["operations"] for r in rounds), default=0),
        "test_cases": sum(r["test_cases"] for r in rounds),
        "unique_failures": sum(r["unique_failures"] for r in rounds),
    }
    write_json(result, args.out, wall_s=round(time.monotonic() - started, 1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
