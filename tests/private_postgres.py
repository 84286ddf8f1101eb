"""A PostgreSQL server of a test's own, to stop and start at will (the machine's
shared server is never restarted). PostgreSQL refuses to run as root, so the
server runs as the `postgres` user when the tests run as root."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.conftest import free_port

BIN = Path(
    subprocess.run(
        ["pg_config", "--bindir"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin")) or [Path("/usr/bin")]))
)


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.log = root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        subprocess.run(_as_postgres(list(argv)), check=True, capture_output=True)  # noqa: S603

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown: sessions are cut off, as in a server restart."""
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def copy_from(self, url: str, database: str) -> str:
        """Creates `database` here as a copy of the database at `url`; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        dump = subprocess.run(  # noqa: S603
            [str(BIN / "pg_dump"), "--no-owner", "--no-privileges", url],
            check=True,
            capture_output=True,
        )
        subprocess.run(  # noqa: S603
            [str(BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", self.url(database)],
            input=dump.stdout,
            check=True,
            capture_output=True,
        )
        return self.url(database)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="mms-pg-"))
    server = PrivatePostgres(root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
