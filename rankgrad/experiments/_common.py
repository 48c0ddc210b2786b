"""Shared plumbing for the experiments: arguments, seeds, output files, progress bars.

Every experiment module (``rankgrad.experiments.<name>`` for the studies ``rankgrad demo`` runs, the
top-level ``experiments.<name>`` of a checkout for the research ones) has the same shape (read it top to
bottom):

* ``Config`` — a dataclass of every knob, with a ``quick()`` variant used by the smoke tests;
* ``run(config, out_dir, progress=True) -> dict`` — trains / measures, writes ``<name>.png`` and
  ``<name>.json`` into ``out_dir`` and returns the same numbers it wrote;
* ``main(argv=None)`` — ``python -m <module> [--quick] [--seed S] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import platform
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

DEFAULT_OUT = "experiment_results"


def parser(description: str) -> argparse.ArgumentParser:
    """An ``argparse`` parser with the options every experiment takes."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a reduced run (seconds) used by the smoke tests")
    p.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for the PNG and JSON (default {DEFAULT_OUT}/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def seed_everything(seed: int) -> np.random.Generator:
    """Seed numpy (returned Generator) and torch when it is installed."""
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is an experiments dependency
        pass
    return np.random.default_rng(seed)


def progress(items: Iterable[T], *, desc: str, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """``tqdm`` over ``items`` when it is installed and ``enabled``; the plain iterable otherwise."""
    if enabled:
        try:
            from tqdm.auto import tqdm

            yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)
            return
        except ImportError:
            pass
    yield from items


def _jsonable(x: Any) -> Any:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def machine() -> dict[str, Any]:
    """A short description of where the numbers were measured."""
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}


def write_outputs(out_dir: str | os.PathLike, name: str, results: dict[str, Any], fig: Any = None) -> dict:
    """Write ``<name>.json`` (results + machine + timestamp) and ``<name>.png`` (if ``fig``) to ``out_dir``.

    Returns the results with ``"files"`` added (the paths written).
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / f"{name}.json")}
    if fig is not None:
        files["png"] = str(out / f"{name}.png")
        fig.savefig(files["png"], dpi=120, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
    results = dict(results, files=files)
    payload = dict(results, machine=machine(), written=time.strftime("%Y-%m-%d %H:%M:%S"))
    with open(files["json"], "w") as f:
        json.dump(_jsonable(payload), f, indent=2)
    return results


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (numpy, max-shifted)."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def mean_spread(xs: Iterable[float]) -> tuple[float, float]:
    """Mean and standard error (0 for one value) of a few per-seed numbers."""
    a = np.asarray(list(xs), dtype=float)
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0
    return float(a.mean()), se
