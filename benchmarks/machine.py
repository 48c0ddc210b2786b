"""A description of the machine and software a benchmark ran on."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["describe_machine", "cpu_model"]

_REPO = Path(__file__).resolve().parent.parent


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The first ``model name`` in /proc/cpuinfo, or ``platform.processor()``."""
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _threads() -> dict[str, int | None]:
    out: dict[str, int | None] = {"torch_threads": None}
    if "torch" in sys.modules:
        out["torch_threads"] = sys.modules["torch"].get_num_threads()
    return out


def describe_machine(command: str) -> dict[str, object]:
    """CPU, cores, memory, library versions, git state, date and the command line."""
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = None
    dirty = _git("status", "--porcelain", "--", "rankgrad")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(mem_gb, 1) if mem_gb else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "scipy": _version("scipy"),
        "rankgrad": _version("rankgrad"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "rankgrad_worktree": "modified (uncommitted changes in rankgrad/)" if dirty else "clean",
        **_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }
