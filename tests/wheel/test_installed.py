"""The installed wheel: what it contains, its metadata, and that the suite imports it (not the source tree).

Run by tests/wheel/run.py (``make test-wheel``), which builds the wheel, installs it into a virtual
environment and sets ``RANKGRAD_WHEEL`` to its path; elsewhere this module is not collected.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import rankgrad

WHEEL = Path(os.environ.get("RANKGRAD_WHEEL", "missing.whl"))

# The demo and the studies it runs ship with the package (`rankgrad demo`, `python -m
# rankgrad.experiments.risk`, `python -m rankgrad.experiments.passk_study`).
SHIPPED = [
    "rankgrad/py.typed",
    "rankgrad/_version.py",
    "rankgrad/_src/__init__.py",
    "rankgrad/_src/types.py",
    "rankgrad/noisy.py",
    "rankgrad/experiments/__init__.py",
    "rankgrad/experiments/_common.py",
    "rankgrad/experiments/demo.py",
    "rankgrad/experiments/risk.py",
    "rankgrad/experiments/bestofk.py",
    "rankgrad/experiments/passk_study.py",
]
# Research-only studies live in the top-level experiments/ folder, outside the package.
NOT_SHIPPED = [
    "rankgrad/experiments/accuracy.py",
    "rankgrad/experiments/variance.py",
    "rankgrad/experiments/pathwise.py",
    "rankgrad/experiments/noisy.py",
]
URLS = {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}


@pytest.fixture(scope="module")
def names() -> list[str]:
    with zipfile.ZipFile(WHEEL) as zf:
        return zf.namelist()


def test_suite_imports_the_installed_package():
    purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
    path = Path(rankgrad.__file__).resolve()
    assert path.is_relative_to(purelib), f"rankgrad imported from {path}, not from {purelib}"
    assert "site-packages" in path.parts


def test_version_is_the_distribution_version():
    from rankgrad._version import __version__

    assert rankgrad.__version__ == __version__ == md.version("rankgrad")
    assert WHEEL.name.startswith(f"rankgrad-{__version__}-")


def test_py_typed_is_installed():
    assert (Path(rankgrad.__file__).parent / "py.typed").is_file()


def test_wheel_ships_the_package_and_its_demo(names):
    missing = [n for n in SHIPPED if n not in names]
    assert not missing, f"missing from the wheel: {missing}"


def test_wheel_leaves_out_research_experiments_tests_and_docs(names):
    shipped = [n for n in NOT_SHIPPED if n in names]
    assert not shipped, f"research-only experiments in the wheel: {shipped}"
    top = {n.split("/", 1)[0] for n in names}
    dist_info = f"rankgrad-{rankgrad.__version__}.dist-info"
    extra = sorted(top - {"rankgrad", dist_info})
    assert not extra, f"unexpected top-level entries in the wheel: {extra}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_license_is_spdx_and_shipped(names):
    meta = md.metadata("rankgrad")
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    dist_info = f"rankgrad-{rankgrad.__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert not [c for c in meta.get_all("Classifier") if c.startswith("License ::")]


def test_metadata_urls_classifiers_and_extras():
    meta = md.metadata("rankgrad")
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) == URLS
    assert all(u.startswith("https://github.com/rankgrad/rankgrad") for u in urls.values())
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert {f"Programming Language :: Python :: 3.{m}" for m in (10, 11, 12, 13)} <= set(classifiers)
    assert meta["Requires-Python"] == ">=3.10"
    extras = set(meta.get_all("Provides-Extra"))
    assert {"torch", "jax", "cli", "parquet", "experiments", "all", "docs", "test"} <= extras
    assert "dev" not in extras  # a dependency group: development tools are not published as an extra
    requires = md.requires("rankgrad")
    assert not [r for r in requires if r.startswith(("ruff", "mypy"))]
    assert "numpy>=1.24" in requires
    # `all` is composed of the other extras (one requirement on rankgrad itself, extras in any order)
    (all_req,) = [r for r in requires if r.endswith('extra == "all"')]
    name, rest = all_req.split("[", 1)
    assert name == "rankgrad"
    assert set(rest.split("]", 1)[0].split(",")) == {"torch", "jax", "cli", "experiments", "parquet"}


def test_entry_points():
    (script,) = md.entry_points(group="console_scripts", name="rankgrad")
    assert script.value == "rankgrad.cli:main"
    (plugin,) = md.entry_points(group="verl.plugins", name="rankgrad")
    assert plugin.value == "rankgrad.integrations.verl:register"
    exe = Path(sys.executable).parent / "rankgrad"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in out
