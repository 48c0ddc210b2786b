"""Shared plumbing for the command line: errors and exit codes, objective/option parsing, lazy optional
imports, progress bars. No maths lives here."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from types import ModuleType
from typing import Any

import rankgrad

# Exit codes of every command.
EXIT_OK = 0
EXIT_DATA = 1  # bad data (rows, files' content) or a failed self-check
EXIT_USAGE = 2  # bad arguments (argparse uses 2 too)


class CliError(Exception):
    """An error the command line reports as ``rankgrad: error: <message>`` and exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional dependency or fail with the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise CliError(
            f"{what} needs {module.split('.')[0]}, which is not installed ({err}); "
            f"install it with: pip install 'rankgrad[{extra}]'"
        ) from None


def objective_arg(spec: str, k: int | None = None) -> rankgrad.Objective:
    """Resolve ``--objective`` and ``--k`` to one objective.

    Rule: an ``@K`` suffix in the spec and ``--k`` must agree when both are given; a spec without
    ``@K`` takes ``--k`` (``cvar:0.2`` + ``--k 16`` = ``cvar:0.2@16``); ``mean`` without either is
    K = 1.
    """
    spec = spec.strip()
    has_k = "@" in spec
    try:
        if has_k or k is None:
            obj = rankgrad.parse(spec)
        else:
            obj = rankgrad.parse(f"{spec}@{k}")
    except ValueError as err:
        hint = "" if (has_k or k is not None) else "\nGive K with an @K suffix or with --k."
        raise CliError(f"{err}{hint}") from None
    if has_k and k is not None and obj.k != k:
        raise CliError(
            f"--objective {spec!r} has K={obj.k:g} but --k {k} was given; drop one or make them agree."
        )
    if not obj.is_integral:
        raise CliError(f"--objective: {obj.name!r} has fractional K; the command line needs an integer K.")
    return obj


def noise_arg(text: str) -> tuple[float | None, float]:
    """``RHO0,RHO1`` → (rho0, rho1); ``unknown,RHO1`` → (None, rho1) (an argparse ``type=``)."""
    parts = re.split(r"[,\s]+", text.strip())
    try:
        if len(parts) != 2:
            raise ValueError
        rho0 = None if parts[0].lower() in ("unknown", "none", "?") else float(parts[0])
        rho1 = float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected RHO0,RHO1 (false-positive and false-negative rates), e.g. 0.05,0.2, or unknown,RHO1 "
            f"(forward correction of the mean); got {text!r}"
        ) from None
    if not (0 <= (rho0 or 0.0) < 1 and 0 <= rho1 < 1 and (rho0 or 0.0) + rho1 < 1):
        raise argparse.ArgumentTypeError(f"expected 0 <= rho < 1 and rho0 + rho1 < 1, got {text!r}")
    return rho0, rho1


def fmt_noise(noise: tuple[float | None, float]) -> str:
    """``0.05,0.2`` or ``unknown,0.2``."""
    rho0 = "unknown" if noise[0] is None else f"{noise[0]:g}"
    return f"{rho0},{noise[1]:g}"


def require_folder(path: str, what: str) -> None:
    """Fail before any work if the folder an output file goes into does not exist."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"{what} {path!r}: folder {folder!r} does not exist.")


def positive_int(text: str) -> int:
    """An argparse ``type=`` for integers >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return v


def estimator_name(name: str) -> str:
    """Canonical estimator name (aliases such as ``maxpo`` resolved) or a usage error listing them."""
    from rankgrad._src.estimators import _estimator_name  # the library's own alias table

    try:
        return _estimator_name(name)
    except ValueError as err:
        raise CliError(f"--estimator: {err}") from None


class Progress:
    """A tqdm bar on stderr when enabled and tqdm is installed; otherwise nothing."""

    def __init__(self, enabled: bool, total: float | None, desc: str, unit: str = "it",
                 unit_scale: bool = False) -> None:
        self._bar: Any = None
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:  # progress is optional: `pip install 'rankgrad[cli]'` brings tqdm
            return
        self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=sys.stderr,
                         leave=False, dynamic_ncols=True)

    def update(self, n: float) -> None:
        if self._bar is not None and n:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_enabled(quiet: bool) -> bool:
    """Progress bars only for a human: not with --quiet, not when stderr is not a terminal."""
    return not quiet and sys.stderr.isatty()


def fmt_count(n: int) -> str:
    return f"{n:,}"


def fmt_seconds(t: float) -> str:
    return f"{t:.2f} s" if t < 100 else f"{t / 60:.1f} min"
