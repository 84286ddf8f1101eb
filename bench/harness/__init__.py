"""What the benchmarks that run MMS's stack share: each bench is a scenario of a
few hundred lines on top of it.

    stack        the stack's processes (a Kafka node, the stand-ins), started with
                 readiness checks and stopped cleanly; the QuoterWorker in a thread
    database     a throwaway PostgreSQL database (created, migrated, dropped) and a
                 Redis database flushed at exit
    desk         the desk's calls (emergency_kill, pool_resume) in a process of
                 their own
    market       the synthetic order book the benches publish, the warm-up every
                 pool needs, a market in a child process, the bench pools
    probes       the hooks the benches install in the worker: its consumer's
                 receipt stamp and pause, the broker's append stamp, the lag tap,
                 the worker's structures; wrapping undone
    latency      the latency probes built on them (a delta's way to its first
                 order request)
    tradex_probe TradeX with the benches' stamps and shaker (run as its launcher)
    sampling     CPU and resident memory of processes and of the machine
    report       percentiles and other statistics, table cells, the JSON written
                 with the machine's description

The benches run as scripts (`python bench/X.py`): bench/ is on sys.path, and
importing this package puts the repository's root there too, for the project's
own packages.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
