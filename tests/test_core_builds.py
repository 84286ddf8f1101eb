"""The quoting core's two builds (scripts/build_core.py): the one asked for is
the one loaded, and both make the same decisions.

`make test` runs the whole suite with MMS_CORE=compiled and the core's tests
again with MMS_CORE=interpreted; the trace comparison runs in the first."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import quoting_worker.core as core
from quoting_worker.core import engine

ROOT = Path(__file__).resolve().parent.parent
ASKED = os.environ.get("MMS_CORE", "auto")


def test_the_engine_loaded_is_the_build_asked_for() -> None:
    path = Path(engine.__file__ or "")
    is_extension = path.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert ("compiled" if is_extension else "interpreted") == core.BUILD
    if ASKED == "compiled":
        assert is_extension, path
        assert path.parent == core.COMPILED_DIR, path
    elif ASKED == "interpreted":
        assert path == core.HERE / "engine.py", path


def test_a_missing_or_stale_build_is_never_used(tmp_path: Path) -> None:
    """On a copy of the package: MMS_CORE=compiled refuses a missing or stale
    build, naming why; auto runs the interpreted core then (and says so when a
    stale build is there); an unknown mode is named."""
    package = tmp_path / "quoting_worker"
    (package / "core").mkdir(parents=True)
    shutil.copy2(ROOT / "quoting_worker" / "__init__.py", package / "__init__.py")
    for source in core.HERE.glob("*.py"):
        shutil.copy2(source, package / "core" / source.name)
    probe = "\n".join(
        (
            "import quoting_worker.core as c",
            "import quoting_worker.core.engine as e",
            "print(c.BUILD, e.__file__)",
        )
    )

    missing = _python(probe, tmp_path, "compiled")
    assert missing.returncode != 0
    assert "MMS_CORE=compiled: no compiled build in" in missing.stderr
    quiet = _python(probe, tmp_path, "auto")
    assert quiet.stdout.startswith("interpreted ")
    assert quiet.stderr == ""
    unknown = _python(probe, tmp_path, "fast")
    assert "MMS_CORE='fast': expected one of auto, compiled, interpreted" in unknown.stderr

    if core.BUILD == "compiled":
        shutil.copytree(core.COMPILED_DIR, package / "core" / core.COMPILED_DIR.name)
        assert _python(probe, tmp_path, "compiled").stdout.startswith("compiled ")
        with (package / "core" / "engine.py").open("a") as engine_source:
            engine_source.write("# edited after the build\n")
        stale = _python(probe, tmp_path, "compiled")
        assert "the core's sources changed since the compiled build" in stale.stderr
        fallback = _python(probe, tmp_path, "auto")
        assert fallback.stdout.startswith("interpreted ")
        assert "quoting core runs interpreted" in fallback.stderr


def _python(code: str, cwd: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MMS_CORE": mode}
    return subprocess.run(  # noqa: S603 - this interpreter, the test's own code
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.skipif(core.BUILD != "compiled", reason="the compiled core is not built")
def test_both_builds_take_the_same_actions_on_the_invariant_schedules(tmp_path: Path) -> None:
    """The 500 derandomised schedules of test_engine_invariants, step by step:
    each step's event and actions are digested, and the compiled core, the
    interpreted core and the interpreted core re-quoting every slot every time
    (MMS_FULL_REQUOTE=1, no incremental path) must write the same file."""
    traces = {}
    for build, full in (("compiled", "0"), ("interpreted", "0"), ("interpreted", "1")):
        name = f"{build}-full" if full == "1" else build
        trace = tmp_path / f"{name}.trace"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/core/test_engine_invariants.py",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "MMS_CORE": build,
                "MMS_ACTION_TRACE": str(trace),
                "PYTHONHASHSEED": "0",
                "MMS_FULL_REQUOTE": full,
                "HYPOTHESIS_PROFILE": "ci",
            },
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stdout[-3000:]
        traces[name] = trace.read_text().splitlines()
    reference = traces["interpreted-full"]
    assert len(reference) > 10_000  # every schedule ran, not an empty file
    for name in ("compiled", "interpreted"):
        lines = traces[name]
        first = next(
            (i for i, (a, b) in enumerate(zip(lines, reference, strict=False)) if a != b), None
        )
        assert first is None, f"step {first}: {name} {lines[first]} ≠ full {reference[first]}"
        assert len(lines) == len(reference), name
