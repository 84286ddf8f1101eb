"""The quoting core is plain Python: importing all of it loads no Django."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import quoting_worker.core

ROOT = Path(__file__).resolve().parents[2]


def test_the_core_imports_no_django() -> None:
    modules = [
        f"quoting_worker.core.{m.name}" for m in pkgutil.iter_modules(quoting_worker.core.__path__)
    ]
    assert "quoting_worker.core.engine" in modules
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        + "print(','.join(bad))\n"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.stdout.strip() == ""
