"""The installed-wheel test: build rankgrad's wheel, install it into a virtual environment, and run the
tests there against the installed package, not the source tree.

    python tests/wheel/run.py --venv .venv-wheel            # what `make test-wheel` runs

Steps (each in a fresh temporary folder, removed at the end unless ``--keep``):

1. copy the source tree as a fresh clone would see it (tracked files plus untracked ones that git does
   not ignore, as they are in the working tree) and build the wheel from that copy with
   ``pip wheel --no-deps``: no stale ``build/`` folder or egg-info of the working tree can leak into it;
2. install the wheel with its test extras into ``--venv`` (an existing virtual environment: the Makefile
   creates it and installs torch first), replacing any rankgrad installed there before;
3. copy ``tests/`` (and ``benchmarks/``, ``examples/``, ``docs/``, which some tests read: they are not
   part of the package) into a folder with no ``rankgrad/`` in it and run pytest there (``IGNORED``: the
   tests of the source tree itself), with ``RANKGRAD_WHEEL`` set to the wheel's path for
   tests/wheel/test_installed.py.

Only the standard library is used, so any Python 3.10+ can run it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is installed with: the suites import torch, jax, scipy, hypothesis, pyarrow, matplotlib.
EXTRAS = "test,all"
# The suites run against the installed package; slow experiments are left to the core suite.
SUITES = ["tests/core", "tests/cli", "tests/wheel"]
PYTEST_ARGS = ["-q", "-m", "not slow", "-p", "no:cacheprovider"]
# Folders that tests read besides the package (tests/core/test_naive_reference.py imports benchmarks.naive,
# tests/core/test_sampling.py runs examples/prompt_sampling.py, tests/core/test_mixtures.py runs the
# examples of docs/guides/mixtures.md against the installed package).
COPIED = ["tests", "benchmarks", "examples", "docs"]
# Tests of the source tree rather than of the package: the docs site and the README (test_docs.py), and
# the import graph read from the files under rankgrad/_src of the checkout (test_layering.py).
IGNORED = ["tests/core/test_docs.py", "tests/core/test_layering.py"]
PYTEST_INI = """[pytest]
markers =
    slow: runs an experiment end to end (minutes)
doctest_optionflags = NORMALIZE_WHITESPACE
"""


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def source_files(root: Path) -> list[str]:
    """Paths (relative to ``root``) of the files a fresh clone would have, as in the working tree now:
    tracked and untracked-but-not-ignored files that exist."""
    proc = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root, capture_output=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"{root} is not a git checkout (git ls-files: {proc.stderr.decode().strip()}); "
                         "run the wheel test from a clone of the repository")
    out = proc.stdout.decode()
    return sorted({p for p in out.split("\0") if p and (root / p).is_file()})


def copy_files(root: Path, files: list[str], dest: Path) -> None:
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def build_wheel(root: Path, work: Path) -> Path:
    """Build the wheel from a clean copy of the source tree; return its path."""
    src = work / "src"
    copy_files(root, source_files(root), src)
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
          "-w", dist, src])
    wheels = sorted(dist.glob("rankgrad-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one rankgrad wheel in {dist}, found {[w.name for w in wheels]}")
    return wheels[0]


def install(venv_python: Path, wheel: Path) -> None:
    """Install ``wheel`` with its test extras; the second call replaces a rankgrad of the same version."""
    pip = [venv_python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, f"{wheel}[{EXTRAS}]"])
    _run([*pip, "--no-deps", "--force-reinstall", wheel])


def run_tests(root: Path, venv_python: Path, wheel: Path, work: Path, extra: list[str]) -> int:
    tree = work / "tree"
    files = [f for f in source_files(root) if f.split("/", 1)[0] in COPIED]
    copy_files(root, files, tree)
    (tree / "pytest.ini").write_text(PYTEST_INI)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["RANKGRAD_WHEEL"] = str(wheel)
    ignored = [f"--ignore={path}" for path in IGNORED]
    cmd = [venv_python, "-m", "pytest", *PYTEST_ARGS, *ignored, *SUITES, *extra]
    print("+ (in a copy of tests/)", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=tree, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path, required=True, help="virtual environment to install the wheel into")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)
    venv_python = args.venv.resolve() / "bin" / "python"
    if not venv_python.exists():
        raise SystemExit(f"--venv {args.venv}: no bin/python there; create it first (`make test-wheel` does)")
    work = Path(tempfile.mkdtemp(prefix="rankgrad-wheel-"))
    t0 = time.perf_counter()
    try:
        wheel = build_wheel(ROOT, work)
        t1 = time.perf_counter()
        install(venv_python, wheel)
        t2 = time.perf_counter()
        rc = run_tests(ROOT, venv_python, wheel, work, args.pytest_args)
        t3 = time.perf_counter()
        times = f"build {t1 - t0:.0f} s, install {t2 - t1:.0f} s, tests {t3 - t2:.0f} s"
        print(f"wheel test: {times}", flush=True)
        return rc
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
