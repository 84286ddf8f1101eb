"""What observability costs on the quoting path, A/B in one process.

    .venv/bin/python bench/observability.py [--iterations N]

Rows (each timed with perf_counter_ns around the call, interleaved A/B so the
machine's drift hits both alike):

  re-quote (bench/quote_path.py's (b0): σ, A-S, ladder, allocation across
  10 members × 5 levels, the diff) with
    - no hook (the core alone),
    - the runquoter's metrics hook (two histogram observations per quote);
  a delta without re-quote (quote_path's (a)): the hook is not reached;
  the per-event tracing guard with tracing OFF (what every Kafka message and
  order batch pays when OPENOBSERVE_OTLP_ENDPOINT is unset);
  a span with tracing ON (SDK, batch processor, a no-op exporter), for scale,
  and what a consumed message costs with tracing ON (its span deferred:
  started only if the message causes orders);
  one JSON log line (structlog formatter into a null stream).

Prints a table and writes bench/results/observability.json.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402
from quote_path import MID, MS, build, percentiles  # noqa: E402  (bench/ is on sys.path when run as a script)

from quoting_worker.adapters.metrics import QuoterMetrics  # noqa: E402
from quoting_worker.core.types import BookDelta, Timer  # noqa: E402
from telemetry import logs, tracing  # noqa: E402


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def requote_ab(iterations: int) -> tuple[dict[str, float], dict[str, float]]:
    """(b0) re-quotes, alternately without and with the metrics hook."""
    plain, _, _ = build()
    hooked, _, _ = build()
    metrics = QuoterMetrics()
    hooked.quoter.on_quote = lambda c, a: metrics.quote_timed("BTCUSDT-PERP", c, a)
    samples: dict[str, list[int]] = {"off": [], "on": []}
    perf = time.perf_counter_ns
    for _ in range(iterations):
        for key, engine in (("off", plain), ("on", hooked)):
            engine.clock.advance(2 * MS)  # type: ignore[attr-defined]
            engine.quoter.invalidate()
            timer = Timer(engine.clock.now_ns())
            start = perf()
            out = engine.handle(timer)
            samples[key].append(perf() - start)
            if out:
                raise SystemExit(f"an unchanged re-quote sent {len(out)} actions")
    count = metrics.registry.get_sample_value(
        "mm_pool_quote_compute_latency_seconds_count", {"symbol": "BTCUSDT-PERP"}
    )
    if count != iterations:
        raise SystemExit(f"the hook saw {count} quotes of {iterations}")
    return percentiles(samples["off"]), percentiles(samples["on"])


def delta_with_hook(iterations: int) -> dict[str, float]:
    engine, clock, _ = build()
    metrics = QuoterMetrics()
    engine.quoter.on_quote = lambda c, a: metrics.quote_timed("BTCUSDT-PERP", c, a)
    samples = []
    perf = time.perf_counter_ns
    for i in range(iterations):
        delta = BookDelta(2 + i, ((MID - 5 - 10 * (10 + i % 30), 300 + i % 200),), (), 0)
        clock.advance(2 * MS)
        start = perf()
        engine.handle(delta)
        samples.append(perf() - start)
    return percentiles(samples)


def timed(fn: Callable[[], object], iterations: int) -> dict[str, float]:
    samples = []
    perf = time.perf_counter_ns
    for _ in range(iterations):
        start = perf()
        fn()
        samples.append(perf() - start)
    return percentiles(samples)


def guarded_span() -> None:
    """What the worker does per Kafka message and per order batch."""
    if tracing.enabled:
        with tracing.span("kafka.consume"):
            pass


def a_deferred() -> None:
    """What the consumer does per message with tracing on: the span is deferred."""
    tracing.Deferred(
        "kafka.consume mm.book.delta.v1",
        parent=tracing.context_from_headers([]),
        kind=SpanKind.CONSUMER,
        attributes={"mms.symbol": "BTCUSDT-PERP", "messaging.kafka.offset": 1},
        start_ns=time.time_ns(),
    )


def a_span() -> None:
    with tracing.span("orders.send", attributes={"mms.symbol": "BTCUSDT-PERP"}):
        pass


def json_logger() -> logging.Logger:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logs.formatter("json"))
    logger = logging.getLogger("bench.observability")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5_000)
    args = parser.parse_args()
    n = args.iterations
    gc.freeze()
    requote_off, requote_on = requote_ab(n)
    delta = delta_with_hook(n * 10)
    if tracing.enabled:
        raise SystemExit("tracing must start off")
    guard_off = timed(guarded_span, n * 10)
    tracing.configure("bench", None, exporter=_Discard())
    span_on = timed(a_span, n)
    deferred_on = timed(a_deferred, n * 10)
    tracing.shutdown()
    logger = json_logger()
    log_line = timed(lambda: logger.info("%s: sending %s", "BTCUSDT-PERP", {"place": 3}), n)
    rows = [
        ("re-quote (b0), no hook", requote_off),
        ("re-quote (b0), metrics hook", requote_on),
        ("delta, no re-quote, hook set", delta),
        ("tracing OFF: per-event guard", guard_off),
        ("tracing ON: one span (SDK)", span_on),
        ("tracing ON: a message, span deferred", deferred_on),
        ("one JSON log line", log_line),
    ]
    print(f"Observability on the quoting path (Python {platform.python_version()}, one core)")
    print(f"{'path':<34}{'p50 µs':>9}{'p99 µs':>9}{'mean µs':>9}")
    for name, stats in rows:
        print(f"{name:<34}{stats['p50_us']:>9.2f}{stats['p99_us']:>9.2f}{stats['mean_us']:>9.2f}")
    hook_cost = requote_on["mean_us"] - requote_off["mean_us"]
    print(
        f"metrics hook: {hook_cost:+.2f} µs mean per re-quote "
        f"({100 * hook_cost / requote_off['mean_us']:+.1f} %)"
    )
    out = ROOT / "bench" / "results" / "observability.json"
    out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "iterations": n,
                "rows": dict(rows),
                "metrics_hook_mean_us_per_requote": hook_cost,
            },
            indent=2,
        )
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
