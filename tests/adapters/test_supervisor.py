"""runquoter --processes N (quoting_worker/runner/supervisor.py): what each child
gets, and the supervisor's restarts and stops, with real child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from quoting_worker.runner.config import WorkerConfig
from quoting_worker.runner.supervisor import RESTART_FIRST_S, Supervisor, child_config
from tests.adapters.worker_harness import wait_for

BASE = WorkerConfig(
    kafka_brokers="k",
    registry_url="r",
    order_service_url="o",
    metadata_target="m",
    redis_url="redis://",
    group_id="mms-quoter",
    order_rate_per_s=100,
    cancel_reserve=10,
)


@pytest.mark.parametrize(("processes", "rate", "reserve"), [(2, 50, 5), (3, 33, 3), (4, 25, 2)])
def test_the_children_split_one_workers_order_budget(
    processes: int, rate: int, reserve: int
) -> None:
    children = [child_config(BASE, k, processes) for k in range(processes)]
    assert {c.order_rate_per_s for c in children} == {rate}
    assert {c.cancel_reserve for c in children} == {reserve}
    assert sum(c.order_rate_per_s for c in children) <= BASE.order_rate_per_s


def test_each_child_is_a_static_member_and_child_0_alone_carries_out_flattens() -> None:
    children = [child_config(BASE, k, 3) for k in range(3)]
    ids = [c.instance_id for c in children]
    assert len(set(ids)) == 3
    assert all(
        i is not None and i.startswith("mms-quoter-") and i.endswith(f"-{k}")
        for k, i in enumerate(ids)
    )
    assert [c.carries_out_flattens for c in children] == [True, False, False]
    assert BASE.instance_id is None  # a lone worker stays a dynamic member
    assert BASE.carries_out_flattens


def test_a_tiny_budget_keeps_at_least_one_request_and_never_reserves_all_of_it() -> None:
    small = child_config(
        WorkerConfig("k", "r", "o", "m", "redis://", order_rate_per_s=3, cancel_reserve=2), 0, 2
    )
    assert small.order_rate_per_s == 1
    assert small.cancel_reserve == 0


@pytest.mark.parametrize(("child", "processes"), [(2, 2), (-1, 2), (0, 0)])
def test_a_child_outside_its_group_is_refused(child: int, processes: int) -> None:
    with pytest.raises(ValueError, match="expected 0 ≤ child < processes"):
        child_config(BASE, child, processes)


# A child's body that runs until SIGTERM, then exits 0.
STOPS_ON_SIGTERM = """
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.05)
"""


def child_script(tmp_path: Path, body: str) -> list[str]:
    """A child that appends its pid and index to tmp_path/started, then runs `body`."""
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys, time
            index = int(sys.argv[1])
            with open(sys.argv[2], "a") as out:
                out.write(f"{index} {os.getpid()}\\n")
            """
        )
        + textwrap.dedent(body)
    )
    return [sys.executable, str(script)]


def started(tmp_path: Path) -> list[tuple[int, int]]:
    path = tmp_path / "started"
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]  # type: ignore[misc]


def running(supervisor: Supervisor, stop: threading.Event) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(supervisor.run(stop)), daemon=True)
    thread.start()
    return thread, code


def test_a_child_that_dies_is_started_again_and_the_others_are_left_alone(tmp_path: Path) -> None:
    command = child_script(tmp_path, STOPS_ON_SIGTERM)
    supervisor = Supervisor(
        lambda k: [*command, str(k), str(tmp_path / "started")], 2, stop_timeout_s=10
    )
    stop = threading.Event()
    thread, code = running(supervisor, stop)
    wait_for("both children", lambda: len(started(tmp_path)) == 2, timeout=10)
    first = dict(started(tmp_path))
    os.kill(first[1], signal.SIGKILL)
    killed = time.monotonic()
    wait_for("child 1 started again", lambda: len(started(tmp_path)) == 3, timeout=10)
    assert time.monotonic() - killed >= RESTART_FIRST_S * 0.9  # after the back-off
    again = started(tmp_path)[-1]
    assert again[0] == 1
    assert again[1] != first[1]
    assert supervisor.children[0].process is not None
    assert supervisor.children[0].process.pid == first[0]  # never restarted
    assert [c.restarts for c in supervisor.children] == [0, 1]
    stop.set()
    thread.join(15)
    assert code == [0]


def test_a_child_that_will_not_stop_is_killed_and_the_exit_code_says_so(tmp_path: Path) -> None:
    command = child_script(
        tmp_path,
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.05)
        """,
    )
    supervisor = Supervisor(
        lambda k: [*command, str(k), str(tmp_path / "started")], 2, stop_timeout_s=1
    )
    stop = threading.Event()
    thread, code = running(supervisor, stop)
    wait_for("both children", lambda: len(started(tmp_path)) == 2, timeout=10)
    stop.set()
    thread.join(15)
    assert code == [-signal.SIGKILL]
    for _, pid in started(tmp_path):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_children_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    """The supervisor in a process of its own, SIGKILLed: its children get SIGTERM
    (PR_SET_PDEATHSIG) and exit, never run on unsupervised."""
    command = child_script(tmp_path, STOPS_ON_SIGTERM)
    parent = tmp_path / "supervisor.py"
    parent.write_text(
        textwrap.dedent(
            f"""
            import sys, threading
            sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
            from quoting_worker.runner.supervisor import Supervisor
            command = {command!r}
            Supervisor(lambda k: [*command, str(k), {str(tmp_path / "started")!r}], 2,
                       stop_timeout_s=5).run(threading.Event())
            """
        )
    )
    supervisor = subprocess.Popen([sys.executable, str(parent)])  # noqa: S603
    try:
        wait_for("both children", lambda: len(started(tmp_path)) == 2, timeout=15)
    finally:
        supervisor.kill()
        supervisor.wait()

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie (exited, not yet reaped by init) is gone too.
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"

    wait_for(
        "the children to exit", lambda: all(gone(pid) for _, pid in started(tmp_path)), timeout=10
    )


def test_a_supervisor_of_fewer_than_two_is_refused() -> None:
    with pytest.raises(ValueError, match="2 or more processes, not 1"):
        Supervisor(lambda k: ["true"], 1, stop_timeout_s=1)
