"""Shared plumbing for the experiments: arguments, seeds, output files, progress bars.

Every experiment module (``rankgrad.experiments.<name>`` for the studies ``rankgrad demo`` runs, the
top-level ``experiments.<name>`` of a checkout for the research ones) has the same shape (read it top to
bottom):

* ``Config`` — a dataclass of every knob, with a ``quick()`` variant used by the smoke tests;
* ``run(config, out_dir, progress=True) -> dict`` — trains / measures, writes ``<name>.png`` and
  ``<name>.json`` into ``out_dir`` and returns the same numbers it wrote;
* ``plot(results) -> Figure`` — the figure, drawn from the results *as stored in the JSON* (``run`` draws
  it from the same JSON-ready form), so that a stored run can be redrawn without running it again;
* ``main(argv=None)`` — ``python -m <module> [--quick] [--seed S] [--out DIR]``, or
  ``python -m <module> --replot RESULTS.json`` (redraws the PNG next to the JSON, numbers untouched).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import pathlib
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

DEFAULT_OUT = "experiment_results"


def parser(description: str, *, replot: bool = False) -> argparse.ArgumentParser:
    """An ``argparse`` parser with the options every experiment takes (and ``--replot`` for those whose
    ``main`` handles it)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a reduced run (seconds) used by the smoke tests")
    p.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for the PNG and JSON (default {DEFAULT_OUT}/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if replot:
        p.add_argument("--replot", metavar="RESULTS.json", default=None,
                       help="redraw the PNG of a stored run from its JSON (written next to it) and exit; "
                            "nothing is re-run and the JSON is not changed")
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


def save_figure(fig: Any, path: str | os.PathLike) -> str:
    """Save ``fig`` as a PNG (120 dpi, tight bounding box, legends outside the axes included) and close it."""
    fig.savefig(path, dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return str(path)


def write_outputs(out_dir: str | os.PathLike, name: str, results: dict[str, Any], fig: Any = None,
                  plot: Callable[[dict[str, Any]], Any] | None = None) -> dict:
    """Write ``<name>.json`` (results + machine + timestamp) and ``<name>.png`` to ``out_dir``.

    The PNG is ``fig`` if given, else ``plot(payload)`` with the payload exactly as the JSON stores it
    (so ``--replot`` of the JSON draws the same figure); no PNG when neither is given.
    Returns the results with ``"files"`` added (the paths written).
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / f"{name}.json")}
    if fig is not None or plot is not None:
        files["png"] = str(out / f"{name}.png")
    results = dict(results, files=files)
    payload = _jsonable(dict(results, machine=machine(), written=time.strftime("%Y-%m-%d %H:%M:%S")))
    if fig is None and plot is not None:
        fig = plot(payload)
    if fig is not None:
        save_figure(fig, files["png"])
    with open(files["json"], "w") as f:
        json.dump(payload, f, indent=2)
    return results


def run_command_line(
    argv: list[str] | None,
    *,
    doc: str,
    name: str,
    config: Any,
    run: Callable[..., dict[str, Any]],
    plot: Callable[[dict[str, Any]], Any],
) -> dict[str, Any]:
    """The ``main`` of an experiment with the common options: ``--replot RESULTS.json`` redraws a stored
    run (returns ``{"png": path}``); otherwise ``run(config.quick(seed) if --quick else config(seed=seed),
    out, progress=...)``. ``doc``'s first line is the command's description."""
    args = parser(doc.splitlines()[0], replot=True).parse_args(argv)
    if args.replot:
        return {"png": replot(args.replot, plot, name)}
    cfg = config.quick(args.seed) if args.quick else config(seed=args.seed)
    return run(cfg, args.out, progress=not args.no_progress)


def replot(path: str | os.PathLike, plot: Callable[[dict[str, Any]], Any], name: str | None = None) -> str:
    """Redraw a stored run: ``plot(json.load(path))`` saved as ``<path without .json>.png``.

    ``name``, if given, must match the JSON's ``"experiment"`` (or ``"name"``) field, so that one
    experiment's plot is not drawn from another's numbers. The JSON is only read. Returns the PNG's path.
    """
    src = pathlib.Path(path)
    if src.suffix != ".json" or not src.is_file():
        raise ValueError(f"replot: expected an existing results .json file, got {str(path)!r}.")
    with open(src) as f:
        results = json.load(f)
    stored = results.get("experiment", results.get("name"))
    if name is not None and stored != name:
        raise ValueError(f"replot: {str(path)!r} holds the results of {stored!r}, not {name!r}; pass a "
                         f"{name}.json written by this experiment.")
    png = src.with_suffix(".png")
    save_figure(plot(results), png)
    print(f"wrote {png}")
    return str(png)


LEGEND_FONT = 8.5  # points: the smallest text in a figure
# text sizes of the experiments' figures (dense multi-panel plots): nothing below LEGEND_FONT points
STYLE = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": LEGEND_FONT,
         "xtick.labelsize": 9, "ytick.labelsize": 9}


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def styled(plot: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: draw the figure under :data:`STYLE` (matplotlib's settings are restored afterwards)."""

    @functools.wraps(plot)
    def draw(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return plot(*args, **kwargs)

    return draw


def legend_below(fig: Any, handles: list[Any], labels: list[str], ncol: int, y: float = 0.0) -> Any:
    """One legend for the whole figure, under the axes (nothing drawn over the data)."""
    return fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, y), ncol=ncol,
                      frameon=False, fontsize=LEGEND_FONT)


def fmt_spread(mean: float, se: float, n: int, digits: int = 3) -> str:
    """``"m ± se"`` over ``n`` seeds; the number alone when ``n == 1`` (one seed has no spread: say so in the
    table's heading, e.g. with :func:`seeds_text`)."""
    if n <= 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def seeds_text(n: int) -> str:
    """``"1 seed"`` / ``"n seeds"``."""
    return f"{n} seed{'' if n == 1 else 's'}"


def mean_spread(xs: Iterable[float]) -> tuple[float, float]:
    """Mean and standard error (0 for one value) of a few per-seed numbers."""
    a = np.asarray(list(xs), dtype=float)
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0
    return float(a.mean()), se
