"""A soak of `make run`: the demo stack as a newcomer starts it, watched through
its public API for an hour (issue 17).

    .venv/bin/python bench/soak.py [--minutes 60] [--window 5] [--out PATH]

It starts `make run` from an empty database (PostgreSQL database `mms_soak`,
dropped and created again), a new Kafka node (var/soak/kafka) and Redis
database 11, with the demo's pool settings unchanged (staleness check on,
3,000 ms). `make run` resumes the three demo pools itself; the soak does
nothing to them but read:

- every second, GET /v1/pools/status (a viewer token from the Auth stand-in):
  which pools are ACTIVE, and every time one leaves ACTIVE (on its own: nobody
  else acts on the stack) with the state and reason it went to;
- every second, /proc of each process of the stack (found by its command
  line): CPU time and resident memory; the Kafka node's JVM included;
- each window, the quoter's metrics (METRICS_PORT) over the window: the event
  lag (mm_pool_event_lag_seconds: now − the event's own time when the engine
  applies it; the simulator stamps events with its 100 ms market step's
  time), the consumer's wait (mm_kafka_consume_wait_seconds: now − the
  broker's append time when the consumer thread takes a batch: the broker's
  and the consumer's share), and the largest consumer lag in messages.
  Quantiles come from the histograms' buckets (interpolated within one).

One row per window (default 5 minutes). The verdict: no pool left ACTIVE on
its own, and broker CPU, event lag p99 and every process's RSS flat: the last
window at most 1.25 × the second (the first is the start-up). Prints the
table and writes JSON (default bench/results/soak.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
DB = "mms_soak"
KAFKA_HOME = ROOT / "var" / "soak" / "kafka"
FLAT_RATIO = 1.25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# A process of the stack: its name in the table, and what its command line holds.
PROCESSES = {
    "kafka": ("kafka.Kafka",),
    "quoter": ("manage.py", "runquoter"),
    "tradex": ("-m", "simulator", "--brokers"),
    "relay": ("manage.py", "runoutboxrelay"),
    "web": ("gunicorn", "mms.wsgi"),
    "celery": ("celery", "worker"),
    "beat": ("celery", "beat"),
}
RSS_SHOWN = ("kafka", "quoter", "tradex", "web", "relay")
ENV = {
    "POSTGRES_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
    "MMS_DB_NAME": DB,
    "REDIS_URL": "redis://127.0.0.1:6379/11",
    "KAFKA_HOME": str(KAFKA_HOME),
}


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children[ppid].append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def find_processes(root: int, kafka_pid: int | None) -> dict[str, list[int]]:
    """{name: pids} of the stack under `root` (gunicorn and celery have several)."""
    found: dict[str, list[int]] = defaultdict(list)
    pids = _descendants(root)
    if kafka_pid is not None:
        pids.append(kafka_pid)  # started in a session of its own: not a descendant
    for pid in pids:
        args = _cmdline(pid)
        for name, markers in PROCESSES.items():
            if all(any(marker in arg for arg in args) for marker in markers):
                found[name].append(pid)
                break
    return dict(found)


def cpu_and_rss(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds used so far, resident MB now), summed over `pids`."""
    cpu, rss = 0.0, 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            statm = Path(f"/proc/{pid}/statm").read_text().split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        rss += int(statm[1]) * PAGE_KB / 1024
    return cpu, rss


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {labels: value}} from a Prometheus endpoint."""
    text = httpx.get(url, timeout=5).text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return dict(out)


def histogram_quantile(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile (seconds) of a window's bucket counts {upper bound: cumulative},
    interpolated inside its bucket as Prometheus does; None without observations."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


def buckets(metrics: dict[str, Any], histogram: str) -> dict[float, float]:
    """A histogram's cumulative buckets, summed over its other labels."""
    out: Counter[float] = Counter()
    for labels, value in metrics.get(f"{histogram}_bucket", {}).items():
        out[float(dict(labels)["le"])] += value
    return dict(out)


# The engine's event lag: now − the event's own time (the simulator stamps an
# event with its market step's time, up to a step, 100 ms, before it publishes).
EVENT_LAG = "mm_pool_event_lag_seconds"
# The consumer's wait: now − the broker's append time of the oldest message of a
# batch the consumer thread takes (the broker and the consumer's share).
CONSUME_WAIT = "mm_kafka_consume_wait_seconds"


@dataclass
class Window:
    start: float
    end: float = 0.0
    pools_active_min: int = 99
    pools_active_last: int = 0
    left_active: list[dict[str, Any]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core
    rss_mb: dict[str, float] = field(default_factory=dict)  # at the window's end
    event_lag_p50_ms: float | None = None
    event_lag_p99_ms: float | None = None
    consume_wait_p99_ms: float | None = None
    events: int = 0
    lag_messages_max: float = 0.0


def _status(http: httpx.Client) -> dict[str, dict[str, Any]]:
    response = http.get("/v1/pools/status")
    response.raise_for_status()
    return {row["symbol"]: row for row in response.json()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, **ENV}
    http_port, metrics_port = int(env.get("HTTP_PORT", 8095)), int(env.get("METRICS_PORT", 9090))
    auth_port = int(env.get("AUTH_PORT", 8096))

    def sh(*command: str) -> None:
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)  # noqa: S603

    sh("bash", "scripts/services.sh")
    sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {DB}")
    sh("createdb", "-h", "127.0.0.1", "-U", "postgres", DB)
    sh("redis-cli", "-n", "11", "flushdb")
    shutil.rmtree(KAFKA_HOME, ignore_errors=True)
    log_path = ROOT / "var" / "soak" / "make-run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started_wall = time.time()
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "run"],  # noqa: S607
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return _watch(args, make, http_port, metrics_port, auth_port, started_wall, log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
        subprocess.run(  # noqa: S603  (a node left behind by a failed stop)
            [sys.executable, "-m", "devstack.kafka", "stop", "--home", str(KAFKA_HOME)],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )


def _viewer(
    make: subprocess.Popen[bytes], ports: tuple[int, int], deadline: float, log_path: Path
) -> httpx.Client:
    """A client of the stack's API (ports: its own, the Auth stand-in's) with a viewer
    token, once the Auth stand-in issues one."""
    http_port, auth_port = ports
    token = None
    while token is None:
        if make.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"make run exited or did not start; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            token = httpx.post(
                f"http://127.0.0.1:{auth_port}/v1/tokens",
                json={"sub": "soak-viewer", "roles": ["viewer"], "ttl_seconds": 86400},
                timeout=2,
            ).json()["token"]
        time.sleep(1)
    return httpx.Client(
        base_url=f"http://127.0.0.1:{http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def _all_active(
    http: httpx.Client, make: subprocess.Popen[bytes], deadline: float, log_path: Path
) -> dict[str, dict[str, Any]]:
    """Waits until every demo pool is ACTIVE (make run resumes them once the quoter
    hosts them); their status rows."""
    states: dict[str, dict[str, Any]] = {}
    while not states or any(row["state"] != "ACTIVE" for row in states.values()):
        if make.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the demo pools did not all become ACTIVE; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            states = _status(http)
        time.sleep(1)
    return states


class _Watch:
    """The stack watched second by second, one Window at a time."""

    def __init__(self, make: subprocess.Popen[bytes], metrics_url: str, began: float) -> None:
        self.make = make
        self.metrics_url = metrics_url
        self.began = began
        self.kafka_pid = int((KAFKA_HOME / "kafka.pid").read_text())
        self.window = Window(start=began)
        self.windows: list[Window] = []
        procs = find_processes(make.pid, self.kafka_pid)
        self.cpu_start = {name: cpu_and_rss(pids)[0] for name, pids in procs.items()}
        self.lag_start = self._lags()
        self.last_state: dict[str, str] = {}

    def _lags(self) -> dict[str, dict[float, float]]:
        metrics = scrape(self.metrics_url)
        return {name: buckets(metrics, name) for name in (EVENT_LAG, CONSUME_WAIT)}

    def status(self, rows: dict[str, dict[str, Any]]) -> None:
        """The pools' states now: any that left ACTIVE is recorded and told."""
        window, active = self.window, 0
        for symbol, row in rows.items():
            state = row["state"]
            active += state == "ACTIVE"
            if self.last_state.get(symbol) == "ACTIVE" and state != "ACTIVE":
                event = {
                    "at_s": round(time.monotonic() - self.began),
                    "symbol": symbol,
                    "state": state,
                    "reason": row["state_reason"],
                }
                window.left_active.append(event)
                print(f"soak: {symbol} left ACTIVE: {state} {row['state_reason']}", flush=True)
            self.last_state[symbol] = state
        window.pools_active_min = min(window.pools_active_min, active)
        window.pools_active_last = active
        with contextlib.suppress(httpx.HTTPError):
            backlog = scrape(self.metrics_url).get("mm_kafka_consumer_lag_messages", {})
            window.lag_messages_max = max([window.lag_messages_max, *backlog.values()])

    def close_window(self, now: float) -> None:
        """The window's CPU, memory and lag figures; its row printed; a new window."""
        window = self.window
        window.end = now
        elapsed = window.end - window.start
        for name, pids in find_processes(self.make.pid, self.kafka_pid).items():
            cpu, rss = cpu_and_rss(pids)
            window.cpu[name] = (cpu - self.cpu_start.get(name, cpu)) / elapsed
            window.rss_mb[name] = rss
            self.cpu_start[name] = cpu
        lag_now = self._lags()
        delta = {
            name: {b: n - self.lag_start[name].get(b, 0) for b, n in counts.items()}
            for name, counts in lag_now.items()
        }
        window.event_lag_p50_ms = ms(histogram_quantile(delta[EVENT_LAG], 0.5))
        window.event_lag_p99_ms = ms(histogram_quantile(delta[EVENT_LAG], 0.99))
        window.consume_wait_p99_ms = ms(histogram_quantile(delta[CONSUME_WAIT], 0.99))
        window.events = int(delta[EVENT_LAG].get(float("inf"), 0))
        self.lag_start = lag_now
        self.windows.append(window)
        print_row(len(self.windows), window, self.began)
        self.window = Window(start=now)


def _watch(
    args: argparse.Namespace,
    make: subprocess.Popen[bytes],
    http_port: int,
    metrics_port: int,
    auth_port: int,
    started_wall: float,
    log_path: Path,
) -> dict[str, Any]:
    deadline = time.monotonic() + 600  # for the stack to start and every pool to be ACTIVE
    http = _viewer(make, (http_port, auth_port), deadline, log_path)
    states = _all_active(http, make, deadline, log_path)
    ready_s = time.time() - started_wall
    print(f"soak: {len(states)} pools ACTIVE {ready_s:.0f} s after `make run`", flush=True)
    began = time.monotonic()
    end = began + args.minutes * 60
    watch = _Watch(make, f"http://127.0.0.1:{metrics_port}/metrics", began)
    watch.last_state = {symbol: row["state"] for symbol, row in states.items()}
    while time.monotonic() < end:
        if make.poll() is not None:
            raise SystemExit(f"make run exited with {make.returncode}; see {log_path}")
        time.sleep(1)
        try:
            rows = _status(http)
        except httpx.HTTPError as exc:
            print(f"soak: status unavailable: {exc}", flush=True)
            continue
        watch.status(rows)
        now = time.monotonic()
        if now - watch.window.start >= args.window * 60 or now >= end:
            watch.close_window(now)
    return report(args, watch.windows, ready_s)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def print_row(index: int, w: Window, began: float) -> None:
    if index == 1:
        print(
            f"{'window':>8} {'active':>6} {'left':>4} {'kafka cpu':>9} {'quoter cpu':>10}"
            f" {'lag p50':>8} {'lag p99':>8} {'kafka p99':>9} {'backlog':>7}"
            f"  rss MB ({'/'.join(RSS_SHOWN)})",
            flush=True,
        )
    rss = "/".join(
        f"{w.rss_mb.get(n, 0):.0f}" for n in ("kafka", "quoter", "tradex", "web", "relay")
    )
    print(
        f"{(w.end - began) / 60:>6.0f}m {w.pools_active_min:>6} {len(w.left_active):>4}"
        f" {w.cpu.get('kafka', 0):>9.1%} {w.cpu.get('quoter', 0):>10.1%}"
        f" {_fmt(w.event_lag_p50_ms, 'ms'):>8} {_fmt(w.event_lag_p99_ms, 'ms'):>8}"
        f" {_fmt(w.consume_wait_p99_ms, 'ms'):>9}"
        f" {w.lag_messages_max:>7.0f}  {rss}",
        flush=True,
    )


def report(args: argparse.Namespace, windows: list[Window], ready_s: float) -> dict[str, Any]:
    left = [event for w in windows for event in w.left_active]
    checks: dict[str, Any] = {"no_pool_left_active": not left}
    if len(windows) >= 3:
        second, last = windows[1], windows[-1]

        def flat(a: float | None, b: float | None, floor: float) -> bool:
            # Tiny figures (a few ms, a few % of a core) are flat if both stay under `floor`.
            if a is None or b is None:
                return False
            return b <= max(FLAT_RATIO * a, floor)

        checks["kafka_cpu_flat"] = flat(second.cpu.get("kafka"), last.cpu.get("kafka"), 0.02)
        checks["event_lag_p99_flat"] = flat(second.event_lag_p99_ms, last.event_lag_p99_ms, 5.0)
        checks["rss_flat"] = {
            name: flat(second.rss_mb.get(name), last.rss_mb.get(name), 0.0) for name in last.rss_mb
        }
    result = {
        "bench": "soak",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({os.cpu_count()} cores), load {os.getloadavg()}",
        "minutes": args.minutes,
        "window_minutes": args.window,
        "ready_s": round(ready_s),
        "windows": [
            {
                "end_min": round((w.end - windows[0].start) / 60, 1),
                "pools_active_min": w.pools_active_min,
                "left_active": w.left_active,
                "cpu": {k: round(v, 4) for k, v in w.cpu.items()},
                "rss_mb": {k: round(v, 1) for k, v in w.rss_mb.items()},
                "event_lag_p50_ms": w.event_lag_p50_ms,
                "event_lag_p99_ms": w.event_lag_p99_ms,
                "consume_wait_p99_ms": w.consume_wait_p99_ms,
                "events": w.events,
                "consumer_lag_messages_max": w.lag_messages_max,
            }
            for w in windows
        ],
        "checks": checks,
        "flat_rule": f"last window <= {FLAT_RATIO} x the second",
    }
    print(json.dumps(checks), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=5.0, help="minutes per row")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args()
    # A SIGTERM ends the soak as Ctrl-C does: `make run` is stopped with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"soak: written {args.out}")


if __name__ == "__main__":
    main()
