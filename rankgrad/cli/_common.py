"""Shared plumbing for the command line: errors and exit codes, objective/option parsing, lazy optional
imports, progress bars. No maths lives here."""

from __future__ import annotations

import argparse
import importlib
import math
import re
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import rankgrad
from rankgrad.objectives import MAX_K, preset_terms

# Exit codes of every command.
EXIT_OK = 0
EXIT_DATA = 1  # bad data (rows, files' content) or a failed self-check
EXIT_USAGE = 2  # bad arguments (argparse uses 2 too)
EXIT_INTERNAL = 70  # an unexpected exception: a bug to report (EX_SOFTWARE of sysexits.h)

# Largest group size N of `rankgrad weights` and `rankgrad check` (tables, plots, Monte-Carlo groups).
N_MAX = 100_000


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


def objective_name(spec: str, k: int | None) -> str:
    """The objective's label before it is built: the spec, with ``@K`` from ``--k`` when it has none."""
    spec = spec.strip()
    if "@" in spec:
        base, _, raw = spec.rpartition("@")
        try:
            return f"{base}@{int(float(raw))}"  # max@1e7 -> max@10000000
        except (ValueError, OverflowError):
            return spec
    return spec if k is None else f"{spec}@{k}"


def objective_k(spec: str, k: int | None) -> int:
    """K of ``--objective`` / ``--k`` without building the objective (whose tables grow with K), so that
    K can be checked against the data or a limit first. Same rules as :func:`objective_arg`; a spec
    this cannot read is left to the library's parser (through :func:`objective_arg`)."""
    text = spec.strip()
    try:
        terms = preset_terms(text)
    except ValueError as err:
        raise CliError(str(err)) from None
    if len(terms) > 1 or "*" in text or text.startswith("-"):  # a mixture: K is its largest term's K
        return max(objective_k(term, k) for term in terms)
    if "@" not in text:
        if k is not None:
            return k
        if text.lower() == "mean":
            return 1
        return int(objective_arg(spec, k).k)
    raw = text.rsplit("@", 1)[1].strip()
    if not re.fullmatch(r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?", raw):
        return int(objective_arg(spec, k).k)
    kf = float(raw)
    if not (math.isfinite(kf) and kf >= 1):
        raise CliError(f"--objective {spec!r}: K = {raw} is not an integer >= 1 that a float can hold.")
    if kf != math.floor(kf):
        raise CliError(f"--objective: {text!r} has fractional K; the command line needs an integer K.")
    if k is not None and int(kf) != k:
        raise CliError(
            f"--objective {text!r} has K={kf:g} but --k {k} was given; drop one or make them agree."
        )
    if kf > MAX_K:
        raise CliError(f"--objective: K = {int(kf):,} is above the presets' limit (at most {MAX_K:,}).")
    return int(kf)


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
    except (ValueError, OverflowError) as err:
        hint = "" if (has_k or k is not None) else "\nGive K with an @K suffix or with --k."
        msg = str(err) if isinstance(err, ValueError) else \
            f"--objective {spec!r}: a number is too large ({err})"
        raise CliError(f"{msg}{hint}") from None
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


def _int_at_least(lo: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {v}")
        return v

    parse.__doc__ = f"An argparse ``type=`` for {what}."
    return parse


positive_int = _int_at_least(1, "integers >= 1")
nonneg_int = _int_at_least(0, "integers >= 0")


def seed_arg(text: str) -> int:
    """An argparse ``type=`` for random seeds: integers 0 <= S < 2**64."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= v < 2**64:
        raise argparse.ArgumentTypeError(f"expected a seed 0 <= S < 2**64, got {v}")
    return v


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def positive_float(text: str) -> float:
    """An argparse ``type=`` for finite numbers > 0 (not NaN, not inf)."""
    v = _float(text)
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    """An argparse ``type=`` for finite numbers >= 0 (not NaN, not inf)."""
    v = _float(text)
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


def estimator_names() -> str:
    """The accepted estimator names for help texts, from the library's registry (aliases included)."""
    from rankgrad._src.estimators import estimator_names as names

    return names()


def estimator_name(name: str) -> str:
    """Canonical estimator name (aliases such as ``maxpo`` resolved) or a usage error listing them."""
    try:
        return rankgrad.estimator_info(name).name
    except ValueError as err:
        raise CliError(f"--{err}") from None


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
