"""The desk's calls (`emergency_kill`, `pool_resume`) through the ORM in a process
of their own, as the API's would be: not competing with a worker thread for the
bench process's GIL (in one process a 200-pool kill took 8-12 s of GIL waits).

The process reads one command a line ("kill N", "resume N") and answers each
with a JSON line: the call's wall times t0 and t1 and how many pools it touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import ROOT

DESK_SERVER = """
import json, sys, time
import django
django.setup()
from common.actors import Actor
from pools import services
from pools.models import PoolConfig
ops = Actor("load-bench-ops")  # a person: resuming a HALTED pool needs one
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    verb, n = line.split()
    t0 = time.time()
    if verb == "kill":
        done = len(services.emergency_kill(actor=ops, reason=f"load bench kill {n}"))
    elif verb == "resume":
        done = 0
        for pool in PoolConfig.objects.filter(state="HALTED", archived_at__isnull=True):
            services.pool_resume(pool=pool, actor=ops, note=f"load bench: resume {n}")
            done += 1
    else:
        break
    print(json.dumps({"t0": t0, "t1": time.time(), "n": done}), flush=True)
"""


class Desk:
    """The desk process (module docstring); its errors go to `ops.log` in `logdir`."""

    def __init__(self, logdir: Path) -> None:
        self.log = (logdir / "ops.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", DESK_SERVER],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=os.environ.copy(),
        )
        if json.loads(self._line()).get("ready") is not True:
            raise RuntimeError("the ops process did not start")

    def _line(self) -> str:
        line = self.proc.stdout.readline() if self.proc.stdout is not None else ""
        if not line:
            raise RuntimeError(f"the ops process exited ({self.proc.poll()}): see ops.log")
        return line

    def send(self, verb: str, n: int) -> None:
        """Starts a call; `result` returns its answer (wall times t0, t1; count n)."""
        if self.proc.stdin is None:
            raise RuntimeError("the ops process has no stdin")
        self.proc.stdin.write(f"{verb} {n}\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        return dict(json.loads(self._line()))

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
