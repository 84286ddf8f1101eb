"""The runquoter's settings and clock."""

from __future__ import annotations

import gc
import os
import socket
import time
from dataclasses import dataclass, field

from messaging.kafka import DEFAULT_SESSION_TIMEOUT_MS


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


@dataclass
class WorkerConfig:
    kafka_brokers: str
    registry_url: str
    order_service_url: str
    metadata_target: str
    redis_url: str
    group_id: str = "mms-quoter"
    partitions: int = 12
    shadow: bool = False
    # messaging/topics.py: a prefix for the broker's topic names ("" in production).
    topic_namespace: str = ""
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    status_interval_s: float = 1.0
    reread_interval_s: float = 5.0
    timer_interval_s: float = 0.05
    reconcile_interval_s: float = 10.0
    # Each member account's position compared with the venue's this often (a
    # request per member: less often than the open orders).
    position_check_interval_s: float = 30.0
    # The Order Service request budget of this process (a token bucket of one
    # second's burst); `cancel_reserve` tokens are kept for cancels and renewals.
    order_rate_per_s: int = 100
    cancel_reserve: int = 10
    # A child of `runquoter --processes N` (runner/supervisor.py): its static
    # group membership (Kafka's group.instance.id; None: a dynamic member), and
    # whether it carries out flatten requests (child 0 and a lone worker do).
    instance_id: str | None = None
    carries_out_flattens: bool = True


# Python's default (700, 10, 10) ran a full collection every 2 s at 200 pools,
# each 300-450 ms with every thread stopped: 28 % of the worker's time went to
# the collector, and its pauses were the event lag's tail (bench/load.py's GC
# figures). A young collection every 50,000 net allocations lets what a
# request or a batch holds die by reference count before it is promoted.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_garbage_collector() -> None:
    """For a process that hosts a worker, before it starts: what is alive now
    (modules, settings, the ORM's models) is moved out of the collector's way
    for good (`gc.freeze`), and young collections come less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
