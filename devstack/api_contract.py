"""The API contract check (issue 19, item 9): Schemathesis, with the committed
`schemathesis.toml`, against a throwaway MMS stack.

    with contract_stack(redis_url=..., logs=folder) as stack:
        run = run_schemathesis(stack, max_examples=25, report=folder / "report.json")
        assert run.failures == 0

The stack is MMS as `make run` serves it, on free ports, with its own data:

- a scratch PostgreSQL database `<database>_contract_<pid>` on the server of
  POSTGRES_URL, migrated, seeded by the project's own commands and dropped at
  exit: `seed_demo` (three pools, four participants, their memberships) and
  `simulate_month --settle` for the last whole UTC month (fills, funding,
  Q-score rows and settlements, so the performance, settlement, statement and
  payout routes answer with data);
- the Auth Service stand-in, which issues one token with the ops, finance and
  viewer roles, so every operation is reachable;
- the API under gunicorn with DJANGO_DEBUG off: the production error handlers,
  not Django's debug pages.

Schemathesis runs as its CLI (`python -m schemathesis.cli`), so what is checked
here is what the command in the README checks; its JSON report is read back
into a `ContractRun`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from devstack import standins
from devstack.standins import ROOT, StandIn, free_port, launch, wait_http

CONFIG = ROOT / "schemathesis.toml"
PHASES = ("examples", "coverage", "fuzzing", "stateful")
SEED = 20260101
ROLES = ("ops", "finance", "viewer")
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/mms"


@dataclass(frozen=True)
class ContractStack:
    """A running stack: the API's base URL and a bearer token for every role but lp."""

    url: str
    token: str
    database: str
    month: str

    @property
    def schema_url(self) -> str:
        return f"{self.url}/v1/schema"


@dataclass(frozen=True)
class ContractRun:
    """What one Schemathesis run found, from its JSON report."""

    command: list[str]
    exit_code: int
    seconds: float
    operations: int
    test_cases: int
    failures: int  # unique failures
    by_check: list[dict[str, Any]] = field(default_factory=list)  # code, title, count, operations
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        """One line per failing check, then the totals."""
        lines = [f"{'check':<46} {'failures':>8}  operations"]
        if not self.by_check:
            lines.append(f"{'(every check of --checks all passed)':<46} {0:>8}")
        for row in self.by_check:
            ops = ", ".join(row["operations"][:3]) + (" …" if len(row["operations"]) > 3 else "")
            lines.append(f"{row['code'] + ' ' + row['title']:<46} {row['count']:>8}  {ops}")
        lines.append(
            f"{'total':<46} {self.failures:>8}  ({self.operations} operations, "
            f"{self.test_cases} test cases, {self.seconds:.0f} s, exit {self.exit_code})"
        )
        return "\n".join(lines)


def last_month(today: dt.date | None = None) -> str:
    """The last whole UTC month, YYYY-MM."""
    today = today or dt.datetime.now(dt.UTC).date()
    return (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


@contextlib.contextmanager
def scratch_database(postgres_url: str, suffix: str) -> Iterator[str]:
    """Creates `<database of postgres_url>_<suffix>` on that server; yields its URL;
    drops it at exit (connections forced off), whatever happened."""
    parts = urlsplit(postgres_url)
    name = f"{parts.path.lstrip('/') or 'mms'}_{suffix}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _manage(env: Mapping[str, str], log: Path, *args: str) -> None:
    with log.open("ab") as out:
        subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )


def _issue_token(auth: StandIn) -> str:
    body = {"sub": "contract-check", "roles": list(ROLES), "ttl_seconds": 6 * 3600}
    response = httpx.post(f"{auth.url}/v1/tokens", json=body, timeout=5)
    response.raise_for_status()
    return str(response.json()["token"])


@contextlib.contextmanager
def contract_stack(
    *, redis_url: str, logs: Path, postgres_url: str | None = None, workers: int = 2
) -> Iterator[ContractStack]:
    """The throwaway stack (module docstring); every process's output under `logs`."""
    logs.mkdir(parents=True, exist_ok=True)
    postgres_url = postgres_url or os.environ.get("POSTGRES_URL", DEFAULT_POSTGRES_URL)
    month = last_month()
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(
            scratch_database(postgres_url, f"contract_{os.getpid()}")
        )
        auth = stack.enter_context(
            standins.auth_service(secret=secrets.token_hex(32), log=logs / "auth.log")
        )
        port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mms.settings.base",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "POSTGRES_URL": database_url,
            "REDIS_URL": redis_url,
            "SCHEMA_REGISTRY_URL": "mock://contract",
            "AUTH_SERVICE_URL": auth.url,
            "HTTP_PORT": str(port),
            "ADMIN_PORT": str(free_port()),  # never bound: every request here is the API's
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "DISABLE_AUTH": "false",
        }
        env.pop("OPENOBSERVE_OTLP_ENDPOINT", None)
        setup_log = logs / "setup.log"
        started = time.monotonic()
        _manage(env, setup_log, "migrate", "--no-input", "-v", "0")
        _manage(env, setup_log, "seed_demo")
        _manage(
            env,
            setup_log,
            "simulate_month",
            month,
            "--settle",
            "--trades-per-day",
            "6",
            "--sample-minutes",
            "120",
        )
        print(f"contract stack seeded in {time.monotonic() - started:.1f} s", flush=True)
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "mms.wsgi",
            "--config",
            "mms/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "4",
        ]
        api = stack.enter_context(
            launch(
                "api",
                command,
                lambda s: wait_http(f"{s.url}/healthz", s.proc),
                port=port,
                log=logs / "api.log",
                env=env,
            )
        )
        yield ContractStack(
            url=api.url, token=_issue_token(auth), database=database_url, month=month
        )


def schemathesis_command(
    schema_url: str,
    *,
    token: str,
    max_examples: int,
    seed: int = SEED,
    phases: Sequence[str] = PHASES,
    workers: int = 1,
    report: Path | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The CLI call of the README, with this run's size."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        schema_url,
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--phases",
        ",".join(phases),
        "--seed",
        str(seed),
        "-n",
        str(max_examples),
        "--workers",
        str(workers),
        *extra,
    ]
    if report is not None:
        command += ["--report", "json", "--report-json-path", str(report)]
    return command


def run_schemathesis(
    stack: ContractStack,
    *,
    max_examples: int,
    report: Path,
    seed: int = SEED,
    phases: Sequence[str] = PHASES,
    workers: int = 1,
    output: Path | None = None,
    timeout: float | None = None,
    extra: Sequence[str] = (),
) -> ContractRun:
    """Runs the CLI against `stack` (its console output to `output`) and reads its report."""
    command = schemathesis_command(
        stack.schema_url,
        token=stack.token,
        max_examples=max_examples,
        seed=seed,
        phases=phases,
        workers=workers,
        report=report,
        extra=extra,
    )
    started = time.monotonic()
    with contextlib.ExitStack() as files:
        out = files.enter_context(output.open("wb")) if output is not None else subprocess.DEVNULL
        completed = subprocess.run(  # noqa: S603
            command,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
    seconds = time.monotonic() - started
    data = json.loads(report.read_text())
    shown = [
        part if not part.startswith("Authorization:") else "Authorization: …" for part in command
    ]
    return ContractRun(
        command=shown,
        exit_code=completed.returncode,
        seconds=seconds,
        operations=int(data["operations"]["tested"]),
        test_cases=int(data["test_cases"]["generated"]),
        failures=int(data["test_cases"]["unique_failures"]),
        by_check=[
            {
                "code": f["code"],
                "title": f["title"],
                "count": f["count"],
                "operations": f["operations"],
            }
            for f in data.get("failures", [])
        ],
        errors=list(data.get("errors", [])),
        warnings={k: v for k, v in data.get("warnings", {}).items() if v},
    )
