"""`runquoter --processes N`: N worker processes under one supervisor.

One Python process has one core for its engines (the GIL). The supervisor
starts N children (`runquoter --child K`); each is a full worker and a member
of the consumer group with a static identity (`group.instance.id`
GROUP-HOST-K, issue 20), so the partitions, hence the symbols, are shared
between them and a child that dies is given back its own partitions when it
returns, without a rebalance of the others:

- a child that exits (a crash, SIGKILL, an OOM kill) is started again after a
  back-off (RESTART_FIRST_S, doubling to RESTART_MAX_S; back to the first once
  a child has run RESTART_RESET_S). Its pools come back PAUSED (the takeover
  rule: its orders went with it, the venue's dead-man's switch cancels them);
  the other children's pools never notice, as long as the child is back within
  the session timeout (KAFKA_SESSION_TIMEOUT), after which the group gives its
  partitions to the others (and they take those pools over, PAUSED);
- SIGTERM / SIGINT reach every child, which releases its pools as a single
  worker does; a child still running `stop_timeout_s` later is killed;
- each child gets PR_SET_PDEATHSIG: if the supervisor itself is killed, its
  children get SIGTERM, never outlive it as unsupervised workers.

What is split between the children and what each has (the runquoter command
applies it, `child_config`): the Order Service request budget (each child 1/N
of ORDER_RATE_PER_S and of the cancel reserve, so N children never send more
than one worker would), the metrics port (child K serves METRICS_PORT + K),
flatten requests (child 0 alone carries them out: cancel-all for every member
account on every symbol, once; the kill that comes with a flatten reaches
every child's engines through the pool change notices). Each child has its own
database connections (two: the ORM thread and the order journal), Redis
connection, Kafka consumer and decoding thread: decoding stays beside each
child's event loop, so its GIL contention is one child's traffic, not all of
it. One symbol is always one child's: a hot symbol still has one core.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from quoting_worker.runner.config import WorkerConfig

logger = logging.getLogger("mms.quoter.supervisor")

RESTART_FIRST_S = 0.5
RESTART_MAX_S = 10.0
RESTART_RESET_S = 30.0
POLL_S = 0.1
PR_SET_PDEATHSIG = 1


def child_config(config: WorkerConfig, child: int, processes: int) -> WorkerConfig:
    """Child `child` of `processes`: a static group member with its share of the
    Order Service budget; child 0 carries out flatten requests."""
    if processes < 1 or not 0 <= child < processes:
        raise ValueError(f"child {child} of {processes} processes: expected 0 ≤ child < processes")
    rate = max(1, config.order_rate_per_s // processes)
    reserve = min(max(1, config.cancel_reserve // processes), rate - 1) if rate > 1 else 0
    return replace(
        config,
        instance_id=f"{config.group_id}-{socket.gethostname()}-{child}",
        order_rate_per_s=rate,
        cancel_reserve=reserve,
        carries_out_flattens=child == 0,
    )


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (Linux)."""
    # Not Linux: no prctl, and a child may outlive a killed supervisor.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = RESTART_FIRST_S
    due: float = 0.0  # when a dead child is started again
    restarts: int = 0


class Supervisor:
    """Starts, watches and stops the children; `argv(k)` is child k's command."""

    def __init__(
        self,
        argv: Callable[[int], Sequence[str]],
        processes: int,
        *,
        stop_timeout_s: float,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if processes < 2:
            raise ValueError(f"a supervisor runs 2 or more processes, not {processes}")
        self.argv = argv
        self.env = dict(env) if env is not None else None
        self.stop_timeout_s = stop_timeout_s
        self.clock = clock
        self.children = [Child(k) for k in range(processes)]

    def run(self, stop: threading.Event) -> int:
        """Until `stop` is set; then every child is stopped. The exit code: 0 when
        every child stopped cleanly, else the first non-zero one."""
        for child in self.children:
            self._start(child)
        while not stop.wait(POLL_S):
            for child in self.children:
                self._watch(child)
        return self._stop_all()

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(  # noqa: S603 - our own command line
            list(self.argv(child.index)), env=self.env, preexec_fn=_die_with_parent
        )
        child.started = self.clock()
        logger.info("child %d started (pid %d)", child.index, child.process.pid)

    def _watch(self, child: Child) -> None:
        process = child.process
        now = self.clock()
        if process is not None:
            code = process.poll()
            if code is None:
                return
            ran = now - child.started
            if ran >= RESTART_RESET_S:
                child.delay = RESTART_FIRST_S
            logger.error(
                "child %d (pid %d) exited with %s after %.1f s; started again in %.1f s",
                child.index,
                process.pid,
                code,
                ran,
                child.delay,
            )
            child.process = None
            child.due = now + child.delay
            child.delay = min(child.delay * 2, RESTART_MAX_S)
            return
        if now >= child.due:
            child.restarts += 1
            self._start(child)

    def _stop_all(self) -> int:
        running = [c.process for c in self.children if c.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = self.clock() + self.stop_timeout_s
        code = 0
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                logger.error("child pid %d still running: killed", process.pid)
                process.kill()
                process.wait()
            if process.returncode and not code:
                code = process.returncode
        return code
