"""Figures the fault tests measure (issue 8), for bench/reliability.py.

A test calls `record(row, name=value, ...)` with what it measured. The line is
printed (`pytest -s` shows it) and, when MMS_RELIABILITY_FIGURES names a file,
appended to it as one JSON object, which the bench aggregates over its runs.
The test's own assertions stay the guarantee; this only reports the numbers.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

ENV = "MMS_RELIABILITY_FIGURES"


def record(row: int, **figures: Any) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    print(f"row {row}: {figures}")
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps(
        {"row": row, "test": test, **figures},
        default=lambda v: float(v) if isinstance(v, Decimal) else str(v),
    )
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
