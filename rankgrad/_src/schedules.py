"""Schedules over training steps: numbers (K, mixture weights) and the objectives built from them.

A step is the number of optimiser steps already taken (0 during the first one). Every number schedule
is monotone from ``start`` (step 0) to ``end`` (step ``steps`` and after), with exact endpoints:

* constant:  x(t) = value;
* linear:    x(t) = start + (end − start) · t / steps;
* cosine:    x(t) = end + (start − end) · (1 + cos(π · t / steps)) / 2   (flat at both ends).

Integer schedules (K) round x(t) to the nearest integer, halves up: exact for linear (integer
arithmetic), and for cosine a float rounding of a monotone curve, clamped to [min, max](start, end).
Objective schedules format a preset template such as ``"max@{k}"`` with the fields' values at a step and
parse it with :func:`rankgrad.parse`; a mixture blends two objectives, (1 − λ)·first + λ·second, by
:class:`~rankgrad.Objective` arithmetic: both are lifted to the larger of their two K and their weight
vectors blended there (the L-value is linear in the weights, so the blend's value is the same blend of
the two values; its LR gradient, at scale K/N with K the larger one, estimates the same blend of the two
gradients).
"""

from __future__ import annotations

import functools
import math
import numbers
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankgrad._src.errors import InputTypeError
from rankgrad._src.objectives import Objective, parse

__all__ = [
    "KINDS",
    "Mixture",
    "ObjectiveSchedule",
    "ObjectiveScheduleBase",
    "Schedule",
    "as_objective_schedule",
    "check_step",
    "constant",
    "constant_weight",
    "cosine",
    "cosine_weight",
    "from_config",
    "linear",
    "linear_weight",
    "mixture",
    "objective",
]

KINDS = ("constant", "linear", "cosine")


# ----------------------------------------------------------------------------- checks
def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def check_step(step: Any, arg: str = "step") -> int:
    """``step`` as a Python int >= 0 (optimiser steps already taken), else a clear error."""
    if not _is_int(step):
        raise InputTypeError(
            f"{arg}: expected an integer number of optimiser steps already taken (0 at the first step), "
            f"got {type(step).__name__} {step!r:.60}."
        )
    if step < 0:
        raise ValueError(f"{arg}: expected a step >= 0 (0 at the first optimiser step), got {step}.")
    return int(step)


def _check_steps(steps: Any, arg: str) -> int:
    if not _is_int(steps):
        raise InputTypeError(
            f"{arg}: expected a positive integer number of steps to go from start to end, got "
            f"{type(steps).__name__} {steps!r:.60}."
        )
    if steps <= 0:
        raise ValueError(
            f"{arg}: expected steps >= 1 (the step at which the value reaches end), got {steps}."
        )
    return int(steps)


def _check_k(k: Any, arg: str) -> int:
    if not _is_int(k):
        raise InputTypeError(
            f"{arg}: expected an integer K >= 1 (a subset size), got {type(k).__name__} {k!r:.60}; "
            "for a real-valued quantity such as a mixture weight use the *_weight schedules."
        )
    if k < 1:
        raise ValueError(f"{arg}: expected K >= 1, got {k}.")
    return int(k)


def _check_real(x: Any, arg: str) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise InputTypeError(f"{arg}: expected a real number, got {type(x).__name__} {x!r:.60}.")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{arg}: expected a finite number, got {x!r}.")
    return v


# ---------------------------------------------------------------------- number schedules
@dataclass(frozen=True)
class Schedule:
    """A monotone number schedule over optimiser steps (see the module docstring for the formulas).

    Build one with :func:`constant`, :func:`linear`, :func:`cosine` (integers: K) or
    :func:`constant_weight`, :func:`linear_weight`, :func:`cosine_weight` (floats: mixture weights).
    Calling it with a step (an int >= 0) gives the value in force at that step.

    Attributes:
      kind: ``"constant"``, ``"linear"`` or ``"cosine"``.
      start: the value at step 0.
      end: the value from step ``steps`` on (equal to ``start`` for a constant).
      steps: the step at which ``end`` is reached (1 for a constant).
      integer: True for K schedules (values are ints), False for weights (floats).
    """

    kind: str
    start: int | float
    end: int | float
    steps: int
    integer: bool

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {list(KINDS)}, got {self.kind!r}.")
        check = _check_k if self.integer else _check_real
        object.__setattr__(self, "start", check(self.start, "start"))
        object.__setattr__(self, "end", check(self.end, "end"))
        object.__setattr__(self, "steps", _check_steps(self.steps, "steps"))
        if self.kind == "constant" and self.start != self.end:
            raise ValueError(f"end: a constant schedule has end == start, got {self.start!r}, {self.end!r}.")

    @property
    def horizon(self) -> int:
        """The first step from which the value no longer changes (0 for a constant)."""
        return 0 if self.kind == "constant" else self.steps

    @property
    def bounds(self) -> tuple[int | float, int | float]:
        """(smallest, largest) value over all steps: the endpoints, as the schedule is monotone."""
        return min(self.start, self.end), max(self.start, self.end)

    def progress(self, step: int) -> float:
        """p(t) in [0, 1]: 0 at step 0, 1 from step ``steps`` on (linear: t/steps; cosine:
        (1 − cos(π·t/steps))/2); monotone."""
        t = check_step(step)
        if self.kind == "constant" or t >= self.steps:
            return 0.0 if self.kind == "constant" else 1.0
        if self.kind == "linear":
            return t / self.steps
        return (1.0 - math.cos(math.pi * t / self.steps)) / 2.0

    def __call__(self, step: int) -> int | float:
        t = check_step(step)
        if self.kind == "constant" or t == 0:
            return self.start
        if t >= self.steps:
            return self.end
        lo, hi = self.bounds
        if self.integer and self.kind == "linear":  # exact: start + floor(d·t/steps + 1/2)
            return self.start + (2 * (self.end - self.start) * t + self.steps) // (2 * self.steps)
        x = self.start + self.progress(t) * (self.end - self.start)
        if self.integer:
            x = math.floor(x + 0.5)
        return min(max(x, lo), hi)

    def describe(self) -> str:
        """A short text form, e.g. ``"linear 8→2 over 100 steps"``."""
        if self.kind == "constant":
            return f"constant {self.start}"
        return f"{self.kind} {self.start}→{self.end} over {self.steps} steps"


def constant(k: int) -> Schedule:
    """K = ``k`` at every step.

    Example:
      >>> from rankgrad import schedules
      >>> schedules.constant(4)(1000)
      4
    """
    return Schedule("constant", k, k, 1, True)


def linear(start: int, end: int, steps: int) -> Schedule:
    """Integer K from ``start`` to ``end`` linearly over ``steps`` optimiser steps, rounded (halves up).

    Example:
      >>> from rankgrad import schedules
      >>> s = schedules.linear(8, 2, 12)
      >>> [s(t) for t in (0, 1, 2, 6, 11, 12, 50)]
      [8, 8, 7, 5, 3, 2, 2]
    """
    return Schedule("linear", start, end, steps, True)


def cosine(start: int, end: int, steps: int) -> Schedule:
    """Integer K from ``start`` to ``end`` on a half cosine over ``steps`` optimiser steps, rounded.

    Example:
      >>> from rankgrad import schedules
      >>> s = schedules.cosine(8, 2, 100)
      >>> [s(t) for t in (0, 10, 50, 90, 100)]
      [8, 8, 5, 2, 2]
    """
    return Schedule("cosine", start, end, steps, True)


def constant_weight(w: float) -> Schedule:
    """A real number (a mixture weight) equal to ``w`` at every step."""
    return Schedule("constant", w, w, 1, False)


def linear_weight(start: float, end: float, steps: int) -> Schedule:
    """A real number from ``start`` to ``end`` linearly over ``steps`` optimiser steps.

    Example:
      >>> from rankgrad import schedules
      >>> s = schedules.linear_weight(0.0, 0.5, 10)
      >>> [s(t) for t in (0, 4, 10, 11)]
      [0.0, 0.2, 0.5, 0.5]
    """
    return Schedule("linear", start, end, steps, False)


def cosine_weight(start: float, end: float, steps: int) -> Schedule:
    """A real number from ``start`` to ``end`` on a half cosine over ``steps`` optimiser steps."""
    return Schedule("cosine", start, end, steps, False)


_CONFIG_KEYS = ("kind", "start", "end", "steps", "value")


def from_config(spec: Any, *, integer: bool = True, arg: str = "schedule") -> Schedule:
    """A :class:`Schedule` from a config value: a number (constant) or a mapping
    ``{kind: linear|cosine, start, end, steps}`` / ``{kind: constant, value}``.

    Args:
      spec: the config value (a plain dict, an OmegaConf node or anything with ``keys``/``get``).
      integer: True for K (integers >= 1), False for weights (finite reals).
      arg: the config key, for error messages.

    Raises:
      ValueError: unknown kinds or keys, missing keys, values out of range (named ``arg.key``).
      InputTypeError: non-numeric values, non-integers for K.

    Example:
      >>> from rankgrad.schedules import from_config
      >>> from_config({"kind": "linear", "start": 8, "end": 2, "steps": 100}).describe()
      'linear 8→2 over 100 steps'
    """
    if isinstance(spec, Schedule):
        if spec.integer != integer:
            want = "an integer (K)" if integer else "a real-valued (weight)"
            raise ValueError(
                f"{arg}: expected {want} schedule, got {spec.describe()} (integer={spec.integer})."
            )
        return spec
    if _is_int(spec) or (not integer and isinstance(spec, numbers.Real) and not isinstance(spec, bool)):
        try:
            return constant(spec) if integer else constant_weight(spec)
        except ValueError as err:
            raise type(err)(f"{arg}: {err}") from None
    if not (hasattr(spec, "keys") and hasattr(spec, "get")):
        a, b = ("8", "2") if integer else ("0.0", "0.5")
        example = f"{{kind: linear, start: {a}, end: {b}, steps: 100}}"
        raise InputTypeError(f"{arg}: expected a number or a mapping such as {example}, got {spec!r:.80}.")
    keys = set(spec.keys())
    unknown = sorted(str(k) for k in keys - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{arg}: unknown key(s) {unknown}; expected some of {list(_CONFIG_KEYS)}.")
    kind = spec.get("kind", None)
    if kind not in KINDS:
        raise ValueError(f"{arg}.kind: expected one of {list(KINDS)}, got {kind!r}.")
    need = ("value",) if kind == "constant" else ("start", "end", "steps")
    missing = [k for k in need if spec.get(k, None) is None]
    extra = sorted(keys - {"kind", *need})
    if missing or extra:
        raise ValueError(
            f"{arg}: kind {kind!r} takes exactly the keys {['kind', *need]}; "
            f"missing {missing}, not used {extra}."
        )
    try:
        if kind == "constant":
            return constant(spec.get("value")) if integer else constant_weight(spec.get("value"))
        return Schedule(kind, spec.get("start"), spec.get("end"), spec.get("steps"), integer)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{arg}.{err}") from None


# ------------------------------------------------------------------- objective schedules
@functools.lru_cache(maxsize=256)
def _parse(spec: str) -> Objective:
    return parse(spec)


def _template_fields(template: str, arg: str) -> tuple[str, ...]:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"{arg}: not a valid template ({err}): {template!r}.") from None
    names = []
    for _, name, spec, conv in parts:
        if name is None:
            continue
        if not name.isidentifier() or spec or conv:
            raise ValueError(
                f"{arg}: template fields are plain names such as {{k}}, got {{{name}}} in {template!r}."
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def _format_value(v: int | float) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


class ObjectiveScheduleBase:
    """What the adapters need from an objective schedule: call it with a step to get the
    :class:`~rankgrad.Objective` in force, ``values(step)`` for the scheduled numbers to log, and
    ``horizon``, the first step from which nothing changes (objectives there and at step 0 bound K)."""

    horizon: int = 0

    def __call__(self, step: int) -> Objective:  # pragma: no cover - interface
        raise NotImplementedError

    def values(self, step: int) -> dict[str, float]:
        """The scheduled numbers at ``step``, by name (for logging)."""
        return {}

    def k_range(self) -> tuple[int, int]:
        """(smallest, largest) K over the run, from the objectives at step 0 and at ``horizon`` (every
        schedule here is monotone, so K's extremes are there when K is a scheduled field)."""
        ks = [self(0).k, self(self.horizon).k]
        return int(min(ks)), int(max(ks))


@dataclass(frozen=True, eq=False)
class _Fixed(ObjectiveScheduleBase):
    objective: Objective

    def __call__(self, step: int) -> Objective:
        check_step(step)
        return self.objective


@dataclass(frozen=True, eq=False)
class ObjectiveSchedule(ObjectiveScheduleBase):
    """A preset template and a schedule per field: at step t, ``parse(template.format(**values(t)))``.

    Build with :func:`objective`. Attributes: ``template`` (e.g. ``"max@{k}"``), ``fields`` (name →
    :class:`Schedule`).
    """

    template: str
    fields: tuple[tuple[str, Schedule], ...]

    @property
    def horizon(self) -> int:  # type: ignore[override]
        return max((s.horizon for _, s in self.fields), default=0)

    def values(self, step: int) -> dict[str, float]:
        t = check_step(step)
        return {name: s(t) for name, s in self.fields}

    def spec(self, step: int) -> str:
        """The preset string at ``step``."""
        return self.template.format(**{k: _format_value(v) for k, v in self.values(step).items()})

    def __call__(self, step: int) -> Objective:
        text = self.spec(step)
        try:
            return _parse(text)
        except ValueError as err:
            raise ValueError(f"objective schedule {self.template!r} at step {step}: {err}") from None


def objective(template: str, **fields: Schedule | int | float) -> ObjectiveSchedule:
    """An objective schedule from a preset template and one schedule (or constant) per field.

    Args:
      template: a preset string with ``{name}`` fields, e.g. ``"max@{k}"``, ``"cvar:{q}@8"``.
      **fields: one per field: a :class:`Schedule`, or a number for a constant (an int is a K-type
        constant, a float a real constant).

    Raises:
      ValueError: fields missing or not in the template; a template that does not parse at the first
        or last step (checked here, so a typo fails before training).

    Example:
      >>> from rankgrad import schedules
      >>> s = schedules.objective("max@{k}", k=schedules.linear(8, 2, 100))
      >>> s(0).name, s(50).name, s(100).name
      ('max@8', 'max@5', 'max@2')
    """
    if not isinstance(template, str):
        raise InputTypeError(f"template: expected a preset string such as 'max@{{k}}', got {template!r:.60}.")
    names = _template_fields(template, "template")
    missing = [n for n in names if n not in fields]
    unused = [n for n in fields if n not in names]
    if missing or unused:
        raise ValueError(
            f"template: {template!r} has fields {list(names)}; missing schedules for {missing}, "
            f"schedules for fields it does not have: {unused}."
        )
    checked = []
    for name in names:
        f = fields[name]
        if not isinstance(f, Schedule):
            f = from_config(f, integer=_is_int(f), arg=name)
        checked.append((name, f))
    out = ObjectiveSchedule(template, tuple(checked))
    out(0), out(out.horizon)  # fail early on a template that does not parse
    return out


@dataclass(frozen=True, eq=False)
class Mixture(ObjectiveScheduleBase):
    """(1 − λ(t))·first(t) + λ(t)·second(t), as :class:`~rankgrad.Objective` arithmetic: at K = the
    larger of the two K at that step (``first`` alone where λ = 0, ``second`` alone where λ = 1).

    Build with :func:`mixture`.
    """

    first: ObjectiveScheduleBase
    second: ObjectiveScheduleBase
    weight: Schedule

    @property
    def horizon(self) -> int:  # type: ignore[override]
        return max(self.first.horizon, self.second.horizon, self.weight.horizon)

    def values(self, step: int) -> dict[str, float]:
        out = dict(self.first.values(step))
        for k, v in self.second.values(step).items():
            out[k if k not in out else f"second_{k}"] = v
        out["mix_weight"] = self.weight(step)
        return out

    def k_range(self) -> tuple[int, int]:
        """Bounds on K over the run. K at a step is first's K where λ = 0, second's where λ = 1 and the
        larger of the two in between; so K is at most the largest K of a part that weighs at some step,
        and at least the smallest K of a part alone (λ = 0 or 1) or the larger of the two parts'
        smallest K (0 < λ < 1). The upper bound is what adapters check group sizes against."""
        (a_lo, a_hi), (b_lo, b_hi) = self.first.k_range(), self.second.k_range()
        lo_w, hi_w = self.weight.bounds
        ends = [self(0).k, self(self.horizon).k]
        his = [*ends, *([a_hi] if lo_w < 1.0 else []), *([b_hi] if hi_w > 0.0 else [])]
        los = [*ends, *([a_lo] if lo_w == 0.0 else []), *([b_lo] if hi_w == 1.0 else [])]
        if lo_w < 1.0 and hi_w > 0.0:
            los.append(max(a_lo, b_lo))
        return int(min(los)), int(max(his))

    def __call__(self, step: int) -> Objective:
        a, b, lam = self.first(step), self.second(step), self.weight(step)
        if lam == 0.0:
            return a
        if lam == 1.0:
            return b
        return _blend(a, b, lam)


@functools.lru_cache(maxsize=256)
def _blend(a: Objective, b: Objective, lam: float) -> Objective:
    return (1.0 - lam) * a + lam * b


def mixture(first: Any, second: Any, weight: Schedule | float) -> Mixture:
    """Blend two objectives (or objective schedules), of the same or of different K:
    (1 − λ)·first + λ·second.

    The blend at a step is ``(1 - λ) * first + λ * second`` in :class:`~rankgrad.Objective` arithmetic:
    an objective at K = the larger of the two K, the other lifted to it (same J, same U-statistic).
    Advantages then use the usual gradient scale K/N with that K, and estimate
    (1 − λ)·∇J_first + λ·∇J_second; groups need N >= K + 1 of that K.

    Args:
      first, second: preset strings (mixture strings too), :class:`~rankgrad.Objective` or objective
        schedules.
      weight: λ, a weight schedule (:func:`linear_weight`...) or a number, within [0, 1] at every step.

    Raises:
      ValueError: λ outside [0, 1]; either part not valid at the first or last step.

    Example:
      >>> from rankgrad import schedules
      >>> s = schedules.mixture("max@4", "mean", schedules.linear_weight(0.0, 0.5, 10))
      >>> s(0).name, s(10).name, s(10).k
      ('max@4', '0.5*max@4 + 0.5*mean', 4)
      >>> [float(w) for w in s(10).weights]  # 0.5·(1, 0, 0, 0) + 0.5·(mean lifted to K = 4)
      [0.625, 0.125, 0.125, 0.125]
    """
    a = as_objective_schedule(first, arg="first")
    b = as_objective_schedule(second, arg="second")
    w = weight if isinstance(weight, Schedule) else from_config(weight, integer=False, arg="weight")
    if w.integer:
        raise ValueError(f"weight: expected a real-valued schedule (linear_weight...), got {w.describe()}.")
    lo, hi = w.bounds
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"weight: the mixture weight must stay within [0, 1], got {w.describe()}.")
    out = Mixture(a, b, w)
    out(0), out(out.horizon)
    return out


@dataclass(frozen=True, eq=False)
class _FromCallable(ObjectiveScheduleBase):
    fn: Callable[[int], Any]

    def __call__(self, step: int) -> Objective:
        got = self.fn(check_step(step))
        if isinstance(got, str):
            try:
                got = _parse(got)
            except ValueError as err:
                raise ValueError(f"objective: the schedule returned {got!r} at step {step}: {err}") from None
        if not isinstance(got, Objective):
            raise InputTypeError(
                f"objective: a schedule callable must return a preset string or a rankgrad.Objective, got "
                f"{type(got).__name__} {got!r:.60} at step {step}."
            )
        if not got.is_integral:
            raise ValueError(
                f"objective: advantages need an integer K, the schedule gave {got!r} at step {step}."
            )
        return got

    def k_range(self) -> tuple[int, int]:
        k = int(self(0).k)
        return k, k


def as_objective_schedule(objective: Any, *, arg: str = "objective") -> ObjectiveScheduleBase:
    """Anything the adapters accept as ``objective``, as an objective schedule.

    A preset string or :class:`~rankgrad.Objective` is constant; an objective schedule is returned as
    it is; any other callable ``step -> str | Objective`` is wrapped (its K range is known only at
    step 0). A string with ``{...}`` fields needs its schedules: use :func:`objective`.

    Raises:
      ValueError: a template string without schedules, a string that does not parse, an objective with
        a fractional K (advantages need an integer K).
      InputTypeError: anything else.
    """
    if isinstance(objective, ObjectiveScheduleBase):
        return objective
    if isinstance(objective, str):
        if _template_fields(objective, arg):
            raise ValueError(
                f"{arg}: {objective!r} is a template; give its fields schedules with "
                f"rankgrad.schedules.objective({objective!r}, k=rankgrad.schedules.linear(8, 2, 100)) (or, "
                "in verl, algorithm.rankgrad.k_schedule)."
            )
        objective = _parse(objective)
    if isinstance(objective, Objective):
        if not objective.is_integral:
            raise ValueError(f"{arg}: advantages need an integer K, got {objective!r}.")
        return _Fixed(objective)
    if callable(objective):
        return _FromCallable(objective)
    raise InputTypeError(
        f"{arg}: expected a preset string ('max@4'), a rankgrad.Objective or a schedule "
        f"(rankgrad.schedules.objective('max@{{k}}', k=...)), got {type(objective).__name__}."
    )
