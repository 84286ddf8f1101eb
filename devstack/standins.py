"""The stand-ins of MMS's neighbours (simulator/), each started as a process of
its own on 127.0.0.1 and handed back once it answers: the Schema Registry, the
Metadata Service (gRPC), the Order Service, TradeX (`python -m simulator`) and
the Auth Service. The test fixtures and the benchmarks start them here, one way.

"Answers" means what a client needs: an HTTP reply (any status) from the
stand-in's health route, or, for the Metadata Service, a gRPC channel that is
ready. A stand-in that exits while it starts is reported at once, not after
the timeout.

    with standins.schema_registry() as registry:
        codec = AvroCodec(registry.url)
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_S) -> None:
    """Polls `url` until it answers, the process dies, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} at start")
            try:
                client.get(url, timeout=0.5)
                return
            except httpx.HTTPError:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.05)  # a short pause that also notices an early exit
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def wait_grpc(target: str, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_S) -> None:
    """Waits until a gRPC channel to `target` is ready, the process dies, or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        ready = grpc.channel_ready_future(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} at start")
            try:
                ready.result(timeout=0.2)
                return
            except grpc.FutureTimeoutError:
                continue
    raise RuntimeError(f"metadata simulator at {target} not serving within {timeout} s")


@dataclass
class StandIn:
    """One running stand-in: its process and port (and its log file, when it has one).
    As a context manager it is stopped at exit."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def target(self) -> str:
        """host:port, as a gRPC client names it."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def terminate(self) -> None:
        """SIGTERM, without waiting (`wait` next): several stand-ins stop at once."""
        if self.proc.poll() is None:
            self.proc.terminate()

    def wait(self, timeout: float) -> None:
        """Waits for the exit; SIGKILL after `timeout` s."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        finally:
            if self.log is not None:
                self.log.close()

    def stop(self, timeout: float = 10.0) -> None:
        self.terminate()
        self.wait(timeout)

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(
    name: str,
    command: Sequence[str],
    ready: Callable[[StandIn], None],
    *,
    port: int,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> StandIn:
    """Starts `command` (from the repository's root; its output to `log`, else
    inherited) and returns once `ready` passes; stopped if it does not."""
    out = log.open("wb") if log is not None else None
    proc = subprocess.Popen(  # noqa: S603
        list(command),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT if out is not None else None,
        env=dict(env) if env is not None else None,
    )
    standin = StandIn(name, proc, port, out)
    try:
        ready(standin)
    except BaseException:
        standin.stop()
        raise
    return standin


def _module(module: str, port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", module, "--port", str(port), *args]


def _instruments(specs: Iterable[str]) -> list[str]:
    """SYMBOL:TICK:LOT:MIN_NOTIONAL specs as the stand-ins' `--instrument` options."""
    return [arg for spec in specs for arg in ("--instrument", spec)]


def schema_registry(
    port: int | None = None, *, store: Path | None = None, log: Path | None = None
) -> StandIn:
    """`python -m simulator.schema_registry` (its subjects in `store`, when given)."""
    port = port or free_port()
    extra = ["--store", str(store)] if store is not None else []
    command = _module("simulator.schema_registry", port, *extra)
    return launch(
        "schema-registry",
        command,
        lambda s: wait_http(f"{s.url}/subjects", s.proc),
        port=port,
        log=log,
    )


def metadata_service(
    port: int | None = None, *, instruments: Iterable[str] = (), log: Path | None = None
) -> StandIn:
    """`python -m simulator.metadata_service`, serving `instruments` (SYMBOL:TICK:LOT:
    MIN_NOTIONAL) instead of its built-in three when given."""
    port = port or free_port()
    command = _module("simulator.metadata_service", port, *_instruments(instruments))
    return launch("metadata", command, lambda s: wait_grpc(s.target, s.proc), port=port, log=log)


def order_service(
    port: int | None = None, *, instruments: Iterable[str] = (), log: Path | None = None
) -> StandIn:
    """`python -m simulator.order_service` (the Order Service alone, no market)."""
    port = port or free_port()
    command = _module("simulator.order_service", port, *_instruments(instruments))
    return launch(
        "order-service",
        command,
        lambda s: wait_http(f"{s.url}/healthz", s.proc),
        port=port,
        log=log,
    )


def tradex(
    *args: str, port: int | None = None, log: Path | None = None, launcher: str | None = None
) -> StandIn:
    """TradeX: `python -m simulator --port PORT *args` (args: --brokers and
    --registry at least). `launcher`: Python source run instead (`python -c`)
    that ends in simulator.tradex's `main`, for a benchmark that wraps it."""
    port = port or free_port()
    head = (
        [sys.executable, "-m", "simulator"]
        if launcher is None
        else [sys.executable, "-c", launcher]
    )
    command = [*head, "--port", str(port), *args]
    return launch(
        "tradex", command, lambda s: wait_http(f"{s.url}/healthz", s.proc), port=port, log=log
    )


def auth_service(port: int | None = None, *, secret: str, log: Path | None = None) -> StandIn:
    """`python -m simulator.auth_service`, signing with `secret` (SIM_AUTH_SECRET)."""
    port = port or free_port()
    command = _module("simulator.auth_service", port)
    env = {**os.environ, "SIM_AUTH_SECRET": secret}
    return launch(
        "auth",
        command,
        lambda s: wait_http(f"{s.url}/healthz", s.proc),
        port=port,
        log=log,
        env=env,
    )
