"""What processes and the machine use, from /proc (psutil is not installed): CPU
seconds of a process or of the whole machine, a process's resident memory, the
garbage collector's pauses, and other test processes sharing the machine."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from harness.report import quantiles_s

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def machine_busy(a: tuple[int, int], b: tuple[int, int]) -> float:
    """The machine's busy share between two `machine_cpu` readings."""
    return (b[0] - a[0]) / max(1, b[1] - a[1])


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat); NaN when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int | str = "self") -> float | None:
    """A process's resident set (VmRSS), MB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_mb() -> float:
    """This process's resident set (a worker in a thread runs in it), MB."""
    rss = proc_rss_mb()
    if rss is None:
        raise RuntimeError("no VmRSS in /proc/self/status")
    return rss


def other_test_processes() -> int:
    """pytest processes on the machine not started by this script (another helper's)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes().split(b"\0")
            if any(arg.endswith(b"pytest") for arg in args):
                count += 1
    return count


class CpuShares:
    """Cores each named process used between `start` and `shares` (its CPU seconds
    over the wall seconds)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def shares(self, seconds: float) -> dict[str, float]:
        return {
            name: round((cpu_seconds(pid) - self.before[name]) / seconds, 3)
            for name, pid in self.pids.items()
        }


class GcPauses:
    """Every cyclic garbage collection in this process (the worker's threads hold
    the GIL it runs under: a collection stops them all), timed by generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].append(time.perf_counter() - self.started)

    def figures(self) -> dict[str, dict[str, Any]]:
        return {
            str(gen): {**quantiles_s(times), "total_s": round(sum(times), 2)}
            for gen, times in self.by_generation.items()
        }
