"""The benches' figures and output: percentiles of samples (ns to ms or µs, or
seconds), a constant-memory histogram for long runs, quantiles from Prometheus
buckets, a least-squares slope, table cells, and the JSON a bench writes with a
description of the machine it ran on."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness import ROOT


def _at(ordered: Sequence[float], q: float) -> float:
    """The sample at rank q·n (the benches' percentile: no interpolation)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _stats(
    samples_ns: Iterable[int], unit: str, per_ns: float, ranks: Sequence[int]
) -> dict[str, float]:
    """The percentiles `ranks`, max and mean of samples in ns, in `unit` (`per_ns` ns each)."""
    ordered = sorted(samples_ns)
    if not ordered:
        return {"n": 0}
    stats = {f"p{rank}_{unit}": _at(ordered, rank / 100) / per_ns for rank in ranks}
    stats[f"max_{unit}"] = ordered[-1] / per_ns
    stats[f"mean_{unit}"] = statistics.fmean(ordered) / per_ns
    stats["n"] = len(ordered)
    return stats


def stats_ms(samples_ns: Iterable[int]) -> dict[str, float]:
    """p50/p90/p99/max/mean in ms of samples in ns."""
    return _stats(samples_ns, "ms", 1e6, (50, 90, 99))


def stats_us(samples_ns: Iterable[int]) -> dict[str, float]:
    """p50/p99/max/mean in µs of samples in ns."""
    return _stats(samples_ns, "us", 1e3, (50, 99))


def quantiles_s(values: Iterable[float]) -> dict[str, Any]:
    """p50/p99/max/mean of values in seconds (the nearest-rank percentile), 4 places."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 4)

    return {
        "n": len(ordered),
        "p50_s": at(0.50),
        "p99_s": at(0.99),
        "max_s": round(ordered[-1], 4),
        "mean_s": round(statistics.fmean(ordered), 4),
    }


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if not den:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 60


class LagHistogram:
    """Counts in logarithmic buckets 2 % wide from 10 µs to ~1000 s: constant memory
    however long the run (a list of samples would itself grow the RSS)."""

    LOW = 1e-5
    BASE = 1.02
    SIZE = int(math.log(1e8) / math.log(1.02)) + 2

    def __init__(self) -> None:
        self.counts = [0] * self.SIZE
        self.n = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        if seconds <= self.LOW:
            i = 0
        else:
            i = min(self.SIZE - 1, int(math.log(seconds / self.LOW) / math.log(self.BASE)) + 1)
        self.counts[i] += 1
        self.n += 1
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: LagHistogram) -> None:
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.n += other.n
        self.max = max(self.max, other.max)

    def subtract(self, other: LagHistogram) -> None:
        """Removes `other`'s counts (a part of these); the max stays."""
        for i, c in enumerate(other.counts):
            self.counts[i] -= c
        self.n -= other.n

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bucket holding the q-quantile (at most 2 % high)."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(self.max, self.LOW * self.BASE**i)
        return self.max

    def summary(self) -> dict[str, Any]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 3)

        return {
            "n": self.n,
            "p50_ms": ms(self.quantile(0.50)),
            "p90_ms": ms(self.quantile(0.90)),
            "p99_ms": ms(self.quantile(0.99)),
            "p999_ms": ms(self.quantile(0.999)),
            "max_ms": ms(self.max if self.n else None),
        }


def prometheus_buckets(registry: Any, name: str) -> dict[float, float]:
    """Histogram `name`: cumulative count per bucket edge, summed over its labels."""
    out: Counter[float] = Counter()
    for metric in registry.collect():
        if metric.name != name:
            continue
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                out[float(sample.labels["le"])] += sample.value
    return dict(out)


def prometheus_totals(registry: Any, name: str, label: str) -> dict[str, float]:
    """Counter `name`'s totals by one of its labels, summed over the others."""
    out: Counter[str] = Counter()
    for metric in registry.collect():
        if metric.name == name:
            for sample in metric.samples:
                if sample.name == f"{name}_total":
                    out[sample.labels[label]] += sample.value
    return dict(out)


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> Any:
    """The q-quantile from cumulative bucket counts (the bucket's upper edge)."""
    edges = sorted(after)
    diff = [after[e] - before.get(e, 0.0) for e in edges]
    total = diff[-1] if diff else 0
    if not total:
        return None
    for edge, cumulative in zip(edges, diff, strict=True):
        if cumulative >= q * total:
            return "+Inf" if math.isinf(edge) else edge
    return "+Inf"


def counter_diff(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    """What changed between two snapshots of a Counter, without the zeros."""
    changed = Counter(after)
    changed.subtract(before)
    return {k: v for k, v in changed.items() if v}


def trio(d: dict[str, Any], *keys: str) -> str:
    """A table cell: the figures `keys` of a summary, "a / b / c" ("-" without samples)."""
    if not d.get("n"):
        return "-"
    return " / ".join(str(d.get(k)) for k in keys)


def machine() -> dict[str, str]:
    """The interpreter and the machine, as every result file names them."""
    return {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }


def write_json(result: dict[str, Any], out: Path, *, wall_s: float | None = None) -> None:
    """Writes `result` to `out` and says so (with the run's wall time when given)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    where = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"wrote {where}" + ("" if wall_s is None else f" (wall time {wall_s} s)"))
