"""Compiles the quoting core (quoting_worker/core/*.py but __init__) with mypyc
into quoting_worker/core/_compiled/, beside a manifest of the sources it was
built from. quoting_worker/core/__init__.py loads those extensions only while
the manifest matches the sources (MMS_CORE picks: auto, compiled, interpreted).

    .venv/bin/python scripts/build_core.py          # what `make core` runs

The sources are compiled as they are: mypyc reads their annotations and checks
them at run time. Setuptools only drives the compiler here; the extensions are
written straight into the package, nothing is installed.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quoting_worker.core import COMPILED_DIR, MANIFEST, core_sources, sources_digest  # noqa: E402

# mypy's configuration for the build alone: pyproject's [tool.mypy] loads the
# Django plugins, which the core (no Django) neither needs nor may import.
MYPY_CONFIG = """\
[mypy]
python_version = 3.11
ignore_missing_imports = True
"""


def compiler_pin() -> str:
    """The mypy version build-system.requires names (the one pin of the compiler)."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    return next(r.split("==", 1)[1] for r in requires if r.startswith("mypy=="))


def main() -> int:
    import mypy.version
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    pinned = compiler_pin()
    if mypy.version.__version__ != pinned:
        print(
            f"build_core: mypyc {mypy.version.__version__} is installed, pyproject.toml's "
            f"build-system pins mypy=={pinned}; run `make venv`",
            file=sys.stderr,
        )
        return 1
    started = time.monotonic()
    sources = core_sources()
    with tempfile.TemporaryDirectory(prefix="mms-core-") as tmp:
        work = Path(tmp)
        config = work / "mypy.ini"
        config.write_text(MYPY_CONFIG)
        relative = [str(p.relative_to(ROOT)) for p in sources]
        extensions = mypycify(
            [f"--config-file={config}", *relative],
            group_name="quoting_worker.core._native",
            target_dir=str(work / "c"),
            opt_level="3",
        )
        setup(
            name="mms-core",
            ext_modules=extensions,
            script_args=[
                "--quiet",
                "build_ext",
                "--build-lib",
                str(work / "lib"),
                "--build-temp",
                str(work / "tmp"),
            ],
        )
        built = work / "lib" / "quoting_worker" / "core"
        staged = COMPILED_DIR.with_name(COMPILED_DIR.name + ".new")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        for extension in sorted(built.glob("*.so")):
            shutil.copy2(extension, staged / extension.name)
        (staged / MANIFEST).write_text(
            json.dumps(
                {
                    "sources": sources_digest(sources),
                    "mypy": mypy.version.__version__,
                    "python": sys.implementation.cache_tag,
                },
                indent=2,
            )
            + "\n"
        )
        # The old build is replaced whole, never left half-written.
        old = COMPILED_DIR.with_name(COMPILED_DIR.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if COMPILED_DIR.exists():
            COMPILED_DIR.rename(old)
        staged.rename(COMPILED_DIR)
        shutil.rmtree(old, ignore_errors=True)
    count = len(list(COMPILED_DIR.glob("*.so")))
    print(
        f"build_core: {len(sources)} modules compiled with mypyc {mypy.version.__version__} "
        f"into {COMPILED_DIR.relative_to(ROOT)} ({count} extensions, "
        f"{time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
