"""Objectives: finite-K L-statistics as small, typed values.

An objective is J_K = E[Σ_j w_j R_(j:K)] over K i.i.d. rewards. Everywhere in the public API the
weight vector is **top-first**: ``weights[0]`` multiplies the largest of the K rewards, ``weights[-1]``
the smallest. (The formulas in ``docs/math.md`` index ranks low → high; ``Objective.low_first`` gives that
order for internal use.)

Objectives come from one of:

* presets, as strings (``"max@4"``, ``"cvar:0.25@8"``) through :func:`parse`, or as constructors
  (:func:`best_of_k`, :func:`lower_tail`, ...);
* a numeric top-first vector through :meth:`Objective.from_weights`;
* a weight function of the rank quantile through :meth:`Objective.from_function`;
* sums of scaled objectives of any integer K (``0.5 * mean() + 0.5 * best_of_k(8)``, or the string
  ``"0.5*mean + 0.5*max@8"``): one objective at the largest K, each part lifted to it
  (:func:`rankgrad._src.weights.lift`; see "Mixtures across K" in ``docs/math.md``).

The presets are defined once, in :data:`PRESETS` (name, aliases, parameter and range, constructor,
example, one-line help); the parser's dispatch, :data:`PRESET_FORMS`, the names of the objectives the
constructors build, the CLI listing and :func:`presets_markdown` are generated from it.

Fractional K is accepted by ``max@K`` and ``min@K`` only (J = E[max] with K real is Σ r (F^K − F_prev^K));
such objectives have no weight vector and are usable by ``rankgrad.exact`` alone. Every batch
estimator (``rankgrad.value``, ``rankgrad.advantages``) needs an integer K.

Limits, each checked before anything of size K is built: presets and ``from_function`` take
K <= ``MAX_K`` = 10^6 (``from_weights`` takes a vector of any length), ``"lmoment:r@K"`` an order
r <= ``MAX_LMOMENT_ORDER`` = 10, and :func:`parse` a string of at most ``MAX_SPEC_LENGTH`` = 200
characters, read in linear time. Every :class:`Objective` is validated when it is built, however it
is built: bad values raise ``ValueError``, bad types ``InputTypeError``, each naming the argument.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from rankgrad._src.errors import InputTypeError
from rankgrad._src.types import ArrayLike
from rankgrad._src.weights import lift

__all__ = [
    "Objective",
    "ObjectiveLike",
    "as_objective",
    "parse",
    "preset_terms",
    "mean",
    "best_of_k",
    "worst_of_k",
    "rank",
    "top_mean",
    "bottom_mean",
    "upper_tail",
    "lower_tail",
    "quantile",
    "median",
    "trimmed_mean",
    "winsorized_mean",
    "harrell_davis",
    "gini_mean_difference",
    "l_moment",
    "PRESET_FORMS",
    "PRESETS",
    "Preset",
    "PresetParam",
    "presets_markdown",
    "MAX_K",
    "MAX_LMOMENT_ORDER",
    "MAX_SPEC_LENGTH",
]

# Tolerance used when q·K should be an integer but floating point puts it a hair above one.
_INTEGRAL_TOL = 1e-9

# Largest K a preset (string or constructor) or Objective.from_function accepts. Every batch estimator
# needs N >= K samples per group, and 10^6 is the largest group size the benchmarks run (N = 10^6,
# K = 10^4); at the cap a weight vector is 8 MB and every preset builds in about a second or less. The cap
# is checked before anything of size K is allocated. Objective.from_weights takes a vector of any length.
MAX_K = 1_000_000

# Largest L-moment order r for "lmoment:r@K". The weights are an alternating sum whose terms grow like
# C(r−1, s)·C(r−1+s, s); against exact rational weights (K up to 10^6) float64 keeps their relative
# error below 2e-10 up to r = 10, and loses 3e-9 at r = 12, 1e-3 at r = 20, every digit by r = 30.
MAX_LMOMENT_ORDER = 10

# Longest preset string parse() reads (the longest valid preset is a few dozen characters).
MAX_SPEC_LENGTH = 200



@dataclass(frozen=True)
class Objective:
    """A finite-K L-statistic objective J_K = E[Σ_j weights[j] · (j-th largest of K rewards)].

    Attributes:
      k: sample size K (an ``int``; a ``float`` only for fractional ``max@K`` / ``min@K``).
      weights: top-first rank weights, a read-only float64 array of shape ``[K]``; ``None`` for a
        fractional-K objective.
      name: a short label, the preset string where there is one.
      kind: ``"max"`` or ``"min"`` for a fractional-K extreme (the only objectives without weights);
        ignored when ``weights`` is given.
      parts: for a mixture, its terms as ``(coefficient, objective)`` pairs (each objective a
        non-mixture); ``()`` otherwise. For display, logging and schedules: equality and hashing use
        ``k`` and ``weights`` only. :attr:`terms` gives ``((1.0, self),)`` for a non-mixture.

    Mixtures: ``+``, ``-``, unary ``-``, ``*`` and ``/`` by a real scalar combine objectives of any
    integer K into one objective at K = the largest K of the parts, each part lifted to it
    (:func:`rankgrad._src.weights.lift`: the same J and the same U-statistic). Its LR advantages are
    Σ_j c_j (K_j/K) a^{(j)}, so with the usual scale K/N (K the mixture's K) the gradient estimate is
    Σ_j c_j ∇J_{K_j}; they need N >= K + 1 of that K. Parsed strings: ``"0.5*mean + 0.5*max@8"``.

    Raises:
      ValueError: weights that are empty, not 1-D, not finite or not of length ``k``; a ``k`` that is
        not an integer >= 1 while weights are given; ``weights=None`` except for a fractional-K
        ``"max"``/``"min"`` kind with a finite ``k > 0``.
      InputTypeError: a non-numeric ``k`` or ``weights``, or a ``name`` that is not a string.
    """

    k: int | float
    weights: np.ndarray | None = field(repr=False)
    name: str = ""
    kind: str = field(default="weights", repr=False, compare=False)
    parts: tuple[tuple[float, Objective], ...] = field(default=(), repr=False, compare=False)

    # Numpy scalars on the left of ``*`` defer to Objective.__rmul__ instead of building object arrays.
    __array_ufunc__ = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InputTypeError(f"name: expected a string label, got {type(self.name).__name__}.")
        object.__setattr__(self, "parts", _check_parts(self.parts))
        k = _real(self.k, "k")
        if self.weights is None:
            if self.kind not in ("max", "min"):
                raise ValueError(
                    f"weights: required (a top-first vector of length K) for kind={self.kind!r}; only "
                    "a fractional-K max@K or min@K has no weights. Use Objective.from_weights(vector)."
                )
            if not (math.isfinite(k) and k > 0):
                raise ValueError(f"k: expected a finite K > 0 for {self.kind}@K, got {self.k!r}.")
            if k >= 1 and k == math.floor(k):
                fix = "best_of_k" if self.kind == "max" else "worst_of_k"
                raise ValueError(
                    f"weights: an integer K={self.k!r} needs its weight vector; build "
                    f"{self.kind}@K with rankgrad.objectives.{fix}({int(k)})."
                )
            object.__setattr__(self, "k", float(k))
            return
        w = _as_weights(self.weights)
        if not (math.isfinite(k) and k == math.floor(k) and k >= 1):
            raise ValueError(
                f"k: expected an integer K >= 1 (the length of weights) when weights are given, got "
                f"{self.k!r}; fractional K exists only for max@K and min@K (best_of_k, worst_of_k)."
            )
        if w.size != int(k):
            raise ValueError(
                f"weights: expected length k={int(k)} (one weight per rank, top-first), got {w.size}; "
                "pad weights with zeros or fix k (Objective.from_weights infers k from the length)."
            )
        # A read-only view of a private buffer (torch.compile wraps arrays by briefly making them
        # writable, which a view allows and a read-only owner of its memory does not).
        w = w.view()
        w.setflags(write=False)
        object.__setattr__(self, "k", int(k))
        object.__setattr__(self, "weights", w)

    # Equality and hashing by value so objectives can key caches.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Objective):
            return NotImplemented
        if self.k != other.k:
            return False
        a, b = self.weights, other.weights
        if a is None or b is None:
            return a is None and b is None and self.kind == other.kind
        return bool(np.array_equal(a, b))

    def __hash__(self) -> int:
        key = None if self.weights is None else self.weights.tobytes()
        return hash((self.k, key, self.kind if self.weights is None else None))

    def __repr__(self) -> str:
        if self.weights is None:
            return f"Objective({self.name!r}, k={self.k})"
        w = np.array2string(self.weights, precision=4, threshold=8)
        return f"Objective({self.name!r}, k={self.k}, weights(top-first)={w})"

    # ------------------------------------------------------------ arithmetic
    @property
    def terms(self) -> tuple[tuple[float, Objective], ...]:
        """``(coefficient, objective)`` pairs this objective is the sum of: :attr:`parts` for a
        mixture, ``((1.0, self),)`` otherwise."""
        return self.parts or ((1.0, self),)

    def __add__(self, other: object) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return _combine([*self.terms, *other.terms])

    def __radd__(self, other: object) -> Objective:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # sum([...]) starts from 0
        return NotImplemented

    def __sub__(self, other: object) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return _combine([*self.terms, *((-c, o) for c, o in other.terms)])

    def __neg__(self) -> Objective:
        return self * -1.0

    def __mul__(self, c: object) -> Objective:
        c = _coefficient(c, "*")
        return _combine([(c * a, o) for a, o in self.terms])

    __rmul__ = __mul__

    def __truediv__(self, c: object) -> Objective:
        c = _coefficient(c, "/")
        if c == 0.0:
            raise ZeroDivisionError("objective / c: c must be nonzero.")
        return _combine([(a / c, o) for a, o in self.terms])

    # ------------------------------------------------------------------ views
    @property
    def is_integral(self) -> bool:
        """True when K is an integer and the objective has a weight vector."""
        return self.weights is not None

    @property
    def low_first(self) -> np.ndarray:
        """Weights α_j for ranks j = 1..K ordered low → high (``α[K-1]`` is the maximum)."""
        w = self.weights
        if w is None:
            self.require_integral("low_first")  # raises
        assert w is not None
        return w[::-1]

    @property
    def extreme(self) -> str | None:
        """``"max"`` for max@K (weights = top rank only), ``"min"`` for min@K, else None; also for
        fractional K."""
        w = self.weights
        if w is None:
            return self.kind
        if w[0] == 1.0 and not np.any(w[1:]):
            return "max"
        if w[-1] == 1.0 and not np.any(w[:-1]):
            return "min"
        return None

    @property
    def total_weight(self) -> float:
        """Σ_j w_j, exactly: the value shifts by c·Σw when every reward shifts by c.

        The correctly rounded sum of the weights, snapped to the nearest integer when it is within the
        weights' own rounding of one (Σw = 1 for the mean, max@K, CVaR, quantiles...; 0 for the Gini
        difference and L-moments of order >= 2), so a constant group's value is exactly c·Σw."""
        if self.weights is None:
            return 1.0
        w = self.weights.tolist()
        t = math.fsum(w)
        r = round(t)
        if abs(t - r) <= 8 * np.finfo(np.float64).eps * math.fsum(abs(v) for v in w):
            return float(r)
        return t

    def require_integral(self, where: str) -> None:
        if self.weights is None:
            raise ValueError(
                f"{where}: objective {self.name!r} has fractional K={self.k}; batch estimators need "
                "an integer K (fractional K is supported by rankgrad.exact for max@K and min@K only)."
            )

    def weight_function(self) -> Callable[[np.ndarray], np.ndarray]:
        """The rank-quantile weight function of this objective, u ↦ K·α_{⌈uK⌉}.

        ``u`` in [0, 1] runs low → high (u near 1 is the top rank), so that
        J_K ≈ ∫ F^{-1}(u) w(u) du for large K. It is the step function whose cell averages are the
        weights; :meth:`from_function` inverts it exactly.
        """
        alpha = self.low_first.copy()
        k = int(self.k)

        def w(u: np.ndarray) -> np.ndarray:
            u = np.asarray(u, dtype=np.float64)
            j = np.clip(np.ceil(u * k).astype(np.int64), 1, k)
            return k * alpha[j - 1]

        return w

    # ---------------------------------------------------------- constructors
    @classmethod
    def from_weights(
        cls, weights: ArrayLike, *, k: int | None = None, name: str | None = None
    ) -> Objective:
        """An objective from a **top-first** weight vector of length K (``weights[0]`` → maximum).

        Args:
          weights: ``[K]`` rank weights, top-first.
          k: optionally, the K you mean; a vector of another length is then an error.
          name: a label for reports.

        Raises:
          ValueError: if ``weights`` is empty, not 1-D, not finite, or not of length ``k``.
          InputTypeError: if ``weights`` is not numeric (strings, complex numbers).

        Example:
          >>> import rankgrad
          >>> rankgrad.Objective.from_weights([0.5, 0.5, 0, 0]).name  # mean of the top 2 of 4
          'weights@4'
        """
        w = _as_weights(weights)
        if k is not None and w.size != k:
            raise ValueError(
                f"weights: expected length K={k} (one weight per rank, top-first), got {w.size}; "
                "pad with zeros or fix k."
            )
        return cls(k=int(w.size), weights=w, name=name or f"weights@{w.size}")

    @classmethod
    def from_function(
        cls, fn: Callable[[np.ndarray], np.ndarray], k: int, *, name: str | None = None
    ) -> Objective:
        """An objective from a weight function of the rank quantile u ∈ [0, 1] (u = 1 is the top).

        The low-first weight of rank j is the cell integral α_j = ∫_{(j-1)/K}^{j/K} fn(u) du
        (24-point Gauss–Legendre per cell), so ``fn ≡ 1`` gives the mean and J_K → ∫ F⁻¹(u) fn(u) du
        as K grows.
        """
        k = _check_k(k, "k")
        nodes, wts = np.polynomial.legendre.leggauss(24)
        lo = np.arange(k)[:, None] / k
        u = lo + (nodes[None, :] + 1.0) / (2.0 * k)
        vals = np.asarray(fn(u), dtype=np.float64)
        if vals.shape != u.shape:
            vals = np.broadcast_to(vals, u.shape)
        if not np.all(np.isfinite(vals)):
            raise ValueError("fn: the weight function returned NaN or inf on (0, 1).")
        alpha = (vals * wts[None, :]).sum(axis=1) / (2.0 * k)
        return cls(k=k, weights=alpha[::-1], name=name or f"function@{k}")

    @classmethod
    def parse(cls, spec: str) -> Objective:
        """Parse a preset string; see :func:`parse`."""
        return parse(spec)


ObjectiveLike = Objective | str


# --------------------------------------------------------------------- mixtures
def _coefficient(c: object, op: str) -> float:
    """A mixture coefficient: a finite real number (not a bool)."""
    if isinstance(c, bool) or not isinstance(c, numbers.Real):
        raise InputTypeError(
            f"coefficient: objective {op} c needs a real number c, got {type(c).__name__} {c!r:.60}; "
            "combine objectives with +, - and real scalars, e.g. 0.5 * mean() + 0.5 * best_of_k(8)."
        )
    v = _real(c, "coefficient")
    if not math.isfinite(v):
        raise ValueError(f"coefficient: expected a finite number in objective {op} c, got {c!r}.")
    return v


def _check_parts(parts: object) -> tuple[tuple[float, Objective], ...]:
    if not isinstance(parts, tuple) or not all(
        isinstance(t, tuple) and len(t) == 2 and isinstance(t[1], Objective) for t in parts
    ):
        raise InputTypeError(
            "parts: expected a tuple of (coefficient, Objective) pairs; build mixtures with + and * "
            "(e.g. 0.5 * mean() + 0.5 * best_of_k(8)) rather than by hand."
        )
    out = tuple((_coefficient(c, "*"), o) for c, o in parts)
    if any(o.parts for _, o in out):
        raise ValueError("parts: each part is a single objective (a mixture lists its parts' parts).")
    return out


def _coef_text(c: float) -> str:
    """Shortest text that reads back as ``c`` (``2`` rather than ``2.0``)."""
    if c.is_integer() and abs(c) < 1e15:
        return str(int(c))
    return repr(c)


def _mixture_name(terms: list[tuple[float, Objective]]) -> str:
    out = []
    for i, (c, o) in enumerate(terms):
        label = o.name or f"weights@{o.k}"
        mag = abs(c)
        body = label if mag == 1.0 else f"{_coef_text(mag)}*{label}"
        if i == 0:
            out.append(f"-{body}" if c < 0 else body)
        else:
            out.append(f" {'-' if c < 0 else '+'} {body}")
    return "".join(out)


def _combine(terms: list[tuple[float, Objective]]) -> Objective:
    """Σ_j c_j · O_j as one objective at K = max_j K_j, each part's weights lifted to that K.

    Equal parts (by value) are merged, in order of first appearance. A single part with
    coefficient 1 is returned as it is.
    """
    merged: dict[Objective, list] = {}
    for c, o in terms:
        if o.weights is None:
            raise ValueError(
                f"objective: {o.name!r} has fractional K={o.k:g} and cannot be mixed (a mixture lifts "
                "every part to one integer K); use an integer K, or evaluate the fractional objective "
                "alone with rankgrad.exact."
            )
        if o in merged:
            merged[o][0] += c
        else:
            merged[o] = [c, o]
    parts = [(c, o) for c, o in merged.values()]
    for c, o in parts:
        if not math.isfinite(c):
            raise ValueError(f"coefficient: the coefficient of {o.name!r} overflows to {c}.")
    if len(parts) == 1 and parts[0][0] == 1.0:
        return parts[0][1]
    k = max(int(o.k) for _, o in parts)
    low = np.zeros(k)
    for c, o in parts:
        low += c * lift(o.low_first, k)
    if not np.all(np.isfinite(low)):
        raise ValueError("coefficient: the mixture's weights overflow float64; use smaller coefficients.")
    return Objective(k=k, weights=low[::-1], name=_mixture_name(parts), parts=tuple(parts))


# ---------------------------------------------------------------------- helpers
def _real(x: object, arg: str) -> float:
    """``x`` as a float if it is a real number (not a bool), else InputTypeError naming ``arg``."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise InputTypeError(f"{arg}: expected a real number, got {type(x).__name__} {x!r:.60}.")
    try:
        return float(x)
    except OverflowError:  # an int beyond the float range
        return -math.inf if x < 0 else math.inf


def _as_weights(weights: object) -> np.ndarray:
    """A float64 copy of a top-first weight vector: numeric, 1-D, non-empty and finite."""
    try:
        raw = np.asarray(weights)
    except (TypeError, ValueError) as err:
        raise InputTypeError(f"weights: expected a 1-D array of real numbers ({err}).") from None
    numeric: np.ndarray | None = raw
    if raw.dtype.kind == "O":
        try:
            numeric = raw.astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            numeric = None
    if numeric is None or numeric.dtype.kind not in "biuf":
        got = "objects" if numeric is None else f"dtype {raw.dtype}"
        raise InputTypeError(
            f"weights: expected real numbers (float, int or bool), got {got}; pass the real part or "
            "convert the entries to numbers first."
        )
    if numeric.ndim != 1 or numeric.size == 0:
        raise ValueError(
            f"weights: expected a non-empty 1-D top-first vector of length K, got shape {numeric.shape}."
        )
    w = np.array(numeric, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights: every entry must be finite (no NaN or inf).")
    return w


def _check_count(x: object, arg: str, lo: int = 1) -> int:
    """An integer >= ``lo`` (ints, or floats with an integer value), else an error naming ``arg``."""
    v = _real(x, arg)
    if not (math.isfinite(v) and v == math.floor(v) and v >= lo):
        raise ValueError(f"{arg}: expected an integer >= {lo}, got {x!r}.")
    return int(v)


def _check_cap(k: float, arg: str) -> None:
    if k > MAX_K:
        raise ValueError(
            f"{arg}: K={k:.15g} exceeds the preset limit MAX_K = {MAX_K:_} (rankgrad.objectives.MAX_K); "
            "use a smaller K, or build the objective from an explicit top-first vector with "
            "rankgrad.Objective.from_weights(weights), which takes any length."
        )


def _check_k(k: object, arg: str = "k") -> int:
    """A sample size K: an integer in [1, MAX_K], checked before anything of size K exists."""
    v = _real(k, arg)
    if not (math.isfinite(v) and v == math.floor(v) and v >= 1):
        raise ValueError(f"{arg}: expected an integer K >= 1, got {k!r}.")
    _check_cap(v, arg)
    return int(v)


def _check_level(q: float, arg: str, *, lo_open: bool, hi_open: bool = False) -> float:
    q = _real(q, arg)
    ok_lo = q > 0 if lo_open else q >= 0
    ok_hi = q < 1 if hi_open else q <= 1
    if not (math.isfinite(q) and ok_lo and ok_hi):
        lo = "(0" if lo_open else "[0"
        hi = "1)" if hi_open else "1]"
        raise ValueError(f"{arg}: expected a level in {lo}, {hi}, got {q!r}.")
    return q


def _low_first(alpha: np.ndarray, k: int, name: str) -> Objective:
    return Objective(k=k, weights=np.asarray(alpha, dtype=np.float64)[::-1], name=name)


def _tail_count(q: float, k: int) -> int:
    return max(1, math.ceil(q * k - _INTEGRAL_TOL))


# ------------------------------------------------------------------- presets
def mean(k: int = 1) -> Objective:
    """The plain mean: K = 1 (α = [1]); ``mean(k)`` spreads 1/K over K ranks (same value, its LR
    advantage is the K = 1 one divided by K). With K = 1 the LR advantage is exactly RLOO."""
    k = _check_k(k)
    return _low_first(np.full(k, 1.0 / k), k, _label(mean, None if k == 1 else k))


def best_of_k(k: float) -> Objective:
    """max@K: the expected best of K draws (pass@K for 0/1 rewards). K may be fractional
    (exact regime only)."""
    return _extreme("max", k)


def worst_of_k(k: float) -> Objective:
    """min@K: the expected worst of K draws. K may be fractional (exact regime only)."""
    return _extreme("min", k)


def _extreme(kind: str, k: float) -> Objective:
    fn = best_of_k if kind == "max" else worst_of_k
    kf = _real(k, "k")
    if not (math.isfinite(kf) and kf > 0):
        raise ValueError(f"k: expected a finite K > 0 for {kind}@K, got {k!r}.")
    _check_cap(kf, "k")
    if kf == math.floor(kf) and kf >= 1:
        ki = int(kf)
        alpha = np.zeros(ki)
        alpha[-1 if kind == "max" else 0] = 1.0
        return Objective(k=ki, weights=alpha[::-1], name=_label(fn, ki), kind=kind)
    return Objective(k=kf, weights=None, name=_label(fn, f"{kf:.15g}"), kind=kind)


def rank(r: int, k: int) -> Objective:
    """The r-th largest of K (r = 1 is the maximum, r = K the minimum)."""
    k = _check_k(k)
    r = _check_count(r, "r")
    if r > k:
        raise ValueError(f"r: rank must satisfy 1 <= r <= K={k}, got {r}.")
    w = np.zeros(k)
    w[r - 1] = 1.0
    return Objective(k=k, weights=w, name=_label(rank, k, r))


def top_mean(m: int, k: int) -> Objective:
    """Mean of the m largest of K draws."""
    k, m = _check_k(k), _check_count(m, "m")
    if m > k:
        raise ValueError(f"m: expected 1 <= m <= K={k}, got {m}.")
    w = np.zeros(k)
    w[:m] = 1.0 / m
    return Objective(k=k, weights=w, name=_label(top_mean, k, m))


def bottom_mean(m: int, k: int) -> Objective:
    """Mean of the m smallest of K draws."""
    k, m = _check_k(k), _check_count(m, "m")
    if m > k:
        raise ValueError(f"m: expected 1 <= m <= K={k}, got {m}.")
    w = np.zeros(k)
    w[k - m :] = 1.0 / m
    return Objective(k=k, weights=w, name=_label(bottom_mean, k, m))


def upper_tail(q: float, k: int) -> Objective:
    """Mean of the top m = max(1, ⌈qK⌉) ranks of K (a q·K within 1e-9 of an integer is not
    rounded up)."""
    k = _check_k(k)
    q = _check_level(q, "q", lo_open=True)
    obj = top_mean(_tail_count(q, k), k)
    return Objective(k=k, weights=obj.weights, name=_label(upper_tail, k, f"{q:g}"))


def lower_tail(q: float, k: int) -> Objective:
    """CVaR-style lower-tail mean: mean of the bottom m = max(1, ⌈qK⌉) ranks of K (a q·K within
    1e-9 of an integer is not rounded up)."""
    k = _check_k(k)
    q = _check_level(q, "q", lo_open=True)
    obj = bottom_mean(_tail_count(q, k), k)
    return Objective(k=k, weights=obj.weights, name=_label(lower_tail, k, f"{q:g}"))


def quantile(q: float, k: int) -> Objective:
    """The q-quantile (VaR at level q) of K draws, with linear interpolation between order
    statistics (Hyndman–Fan type 7, NumPy's default): h = (K−1)·q, weight 1−(h−⌊h⌋) on the
    ⌊h⌋-th and h−⌊h⌋ on the next order statistic, counting from the smallest (0-based).
    q = 0 is min@K, q = 1 is max@K, q = 0.5 the median."""
    k = _check_k(k)
    q = _check_level(q, "q", lo_open=False)
    h = (k - 1) * q
    lo = math.floor(h + _INTEGRAL_TOL)
    frac = h - lo
    if frac < _INTEGRAL_TOL:
        frac = 0.0
    alpha = np.zeros(k)
    alpha[lo] += 1.0 - frac
    if frac > 0:
        alpha[lo + 1] += frac
    return _low_first(alpha, k, _label(quantile, k, f"{q:g}"))


def median(k: int) -> Objective:
    """The sample median of K draws (mean of the two middle ones for even K)."""
    obj = quantile(0.5, k)
    return Objective(k=obj.k, weights=obj.weights, name=_label(median, obj.k))


def trimmed_mean(m: int, k: int) -> Objective:
    """Mean of the K − 2m middle ranks (m dropped from each end)."""
    k = _check_k(k)
    m = _check_count(m, "m", lo=0)
    if m < 0 or 2 * m >= k:
        raise ValueError(f"m: trimming m from each end needs 0 <= m and 2m < K={k}, got m={m}.")
    alpha = np.zeros(k)
    alpha[m : k - m] = 1.0 / (k - 2 * m)
    return _low_first(alpha, k, _label(trimmed_mean, k, m))


def winsorized_mean(m: int, k: int) -> Objective:
    """Winsorized mean: the m lowest draws replaced by the (m+1)-th lowest, the m highest by the
    (m+1)-th highest, then averaged."""
    k = _check_k(k)
    m = _check_count(m, "m", lo=0)
    if m < 0 or 2 * m >= k:
        raise ValueError(f"m: winsorizing m at each end needs 0 <= m and 2m < K={k}, got m={m}.")
    alpha = np.full(k, 1.0 / k)
    alpha[:m] = 0.0
    alpha[k - m :] = 0.0
    alpha[m] += m / k
    alpha[k - m - 1] += m / k
    return _low_first(alpha, k, _label(winsorized_mean, k, m))


def harrell_davis(q: float, k: int) -> Objective:
    """Harrell–Davis quantile estimator of level q from K draws: the low-first weight of rank j is
    I_{j/K}(a, b) − I_{(j−1)/K}(a, b), with a = q(K+1), b = (1−q)(K+1) and I the regularized
    incomplete beta function."""
    k = _check_k(k)
    q = _check_level(q, "q", lo_open=True, hi_open=True)
    a, b = q * (k + 1), (1 - q) * (k + 1)
    x = np.arange(k + 1) / k
    # Far from the bulk of Beta(a, b), I_x is 0 or 1 to the last bit (its front factor underflows);
    # only the O(√K) points near q·K need the continued fraction.
    with np.errstate(divide="ignore"):
        log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * np.log(x) + b * np.log1p(-x)
    cdf = (x > (a + 1.0) / (a + b + 2.0)).astype(np.float64)
    for j in np.flatnonzero(log_front >= -750.0):
        cdf[j] = _betainc(a, b, j / k)
    cdf[0], cdf[-1] = 0.0, 1.0
    return _low_first(np.diff(cdf), k, _label(harrell_davis, k, f"{q:g}"))


def gini_mean_difference(k: int) -> Objective:
    """Gini mean difference E|X − X'| as an L-statistic of K draws:
    (2 / (K(K−1))) Σ_j (2j − K − 1) X_(j), ranks j low → high (K >= 2)."""
    k = _check_k(k)
    if k < 2:
        raise ValueError(f"k: the Gini mean difference needs K >= 2, got {k}.")
    j = np.arange(1, k + 1)
    return _low_first(2.0 * (2 * j - k - 1) / (k * (k - 1)), k, _label(gini_mean_difference, k))


def l_moment(r: int, k: int) -> Objective:
    """The r-th sample L-moment (Hosking 1990) of K draws, unbiased for λ_r (needs r <= K).

    l_r = Σ_{s=0}^{r-1} (−1)^{r-1-s} C(r-1, s) C(r-1+s, s) b_s, with probability-weighted moments
    b_s = (1/K) Σ_j [C(j-1, s) / C(K-1, s)] X_(j) (ranks low → high). l_1 is the mean, l_2 half the
    Gini mean difference."""
    k = _check_k(k)
    r = _check_count(r, "r")
    if r > k:
        raise ValueError(f"r: the r-th L-moment needs r <= K={k}, got {r}.")
    if r > MAX_LMOMENT_ORDER:
        raise ValueError(
            f"r: L-moments are built up to order r = {MAX_LMOMENT_ORDER} "
            f"(rankgrad.objectives.MAX_LMOMENT_ORDER), got {r}; beyond it float64 weights lose more "
            "than 2e-10 of their size to cancellation. Give exact weights with "
            "rankgrad.Objective.from_weights if you need a higher order."
        )
    jm1 = np.arange(k, dtype=np.float64)  # j − 1 for ranks j = 1..K, low → high
    ratio = np.ones(k)  # C(j−1, s) / C(K−1, s) = Π_{i<s} (j−1−i) / (K−1−i), s = 0 first
    alpha = np.zeros(k)
    for s in range(r):
        if s:
            ratio *= (jm1 - (s - 1)) / (k - s)
        coef = (-1) ** (r - 1 - s) * math.comb(r - 1, s) * math.comb(r - 1 + s, s)
        alpha += (coef / k) * ratio
    return _low_first(alpha, k, _label(l_moment, k, r))


# ------------------------------------------------------------ preset registry
@dataclass(frozen=True)
class PresetParam:
    """The ``:param`` of a preset string.

    Attributes:
      name: its letter in the form (``"q"`` in ``"cvar:q@K"``).
      kind: ``"int"`` (a count or a rank: an integer-valued decimal) or ``"real"`` (a level).
      range: the values it takes, as text (``"0 < q <= 1"``); the builder checks them.
    """

    name: str
    kind: str
    range: str


@dataclass(frozen=True)
class Preset:
    """One objective preset: everything the parser, the error messages, the CLI listing and the docs
    table need, in one place (:data:`PRESETS`).

    Attributes:
      name: the canonical name (``"cvar"``); objectives it builds carry it in their ``name``.
      aliases: other names the parser accepts (``("lower",)``).
      param: the ``:param``, or None for presets without one.
      k: ``"required"`` (``name@K``), ``"optional"`` (``mean``: K = 1 without ``@K``) or
        ``"fractional"`` (required; a real K > 0 is accepted, for ``rankgrad.exact`` only).
      builder: the constructor, called as ``builder(param, K)`` (or ``builder(K)`` without a param).
      example: a valid preset string.
      help: one line: what the objective is.
    """

    name: str
    aliases: tuple[str, ...]
    param: PresetParam | None
    k: str
    builder: Callable[..., Objective] = field(repr=False)
    example: str
    help: str

    @property
    def form(self) -> str:
        """The string form, e.g. ``cvar:q@K`` (``mean`` and ``mean@K`` for an optional K)."""
        return self._form(self.name)

    def _form(self, name: str) -> str:
        head = name if self.param is None else f"{name}:{self.param.name}"
        return f"{head}, {head}@K" if self.k == "optional" else f"{head}@K"

    def describe(self) -> str:
        """The form with its aliases, parameter range and K note: one line of :data:`PRESET_FORMS`."""
        notes = [f"alias {', '.join(self._form(a) for a in self.aliases)}"] if self.aliases else []
        if self.param is not None:
            notes.append(self.param.range)
        if self.k == "fractional":
            notes.append("K may be fractional for rankgrad.exact")
        return self.form + (f" ({'; '.join(notes)})" if notes else "")

    def example_at(self, k: int) -> str:
        """:attr:`example` with its K replaced by ``k`` (``"cvar:0.25@8"`` → ``"cvar:0.25@4"``)."""
        head = self.example.partition("@")[0]
        return f"{head}@{k}"

    def build(self, param: str | None, k_str: str | None) -> Objective:
        """The objective of ``name[:param][@K]`` from the parsed text of its param and K."""
        k: float | int
        if k_str is None:  # the parser lets only an optional K be absent
            k = 1
        elif self.k == "fractional":
            k = float(k_str)
        else:
            k = _k(k_str)
        if self.param is None:
            return self.builder(k)
        if param is None:
            raise ValueError(f"{self.param.name}: {self.name} needs a parameter, as in {self.form}")
        p = float(param) if self.param.kind == "real" else _int_param(param, self.param.name)
        return self.builder(p, k)


def _preset(name: str, builder: Callable[..., Objective], example: str, help: str, *,
            aliases: tuple[str, ...] = (), param: tuple[str, str, str] | None = None,
            k: str = "required") -> Preset:
    return Preset(name, aliases, None if param is None else PresetParam(*param), k, builder, example, help)


_LEVEL_OPEN = "0 < q <= 1"
_M_RANGE = "1 <= m <= K"
_PRESET_LIST = (
    _preset("mean", mean, "mean", "the mean (K = 1; its advantage is RLOO); mean@K spreads 1/K over K ranks",
            k="optional"),
    _preset("max", best_of_k, "max@4", "the best of K draws; pass@K for 0/1 rewards", aliases=("pass",),
            k="fractional"),
    _preset("min", worst_of_k, "min@4", "the worst of K draws", k="fractional"),
    _preset("median", median, "median@5", "the sample median of K (mean of the two middle ones for even K)"),
    _preset("rank", rank, "rank:2@5", "the r-th largest of K (r = 1 is the top)",
            param=("r", "int", "1 <= r <= K")),
    _preset("top", top_mean, "top:2@5", "mean of the m largest of K", param=("m", "int", _M_RANGE)),
    _preset("bottom", bottom_mean, "bottom:2@5", "mean of the m smallest of K", param=("m", "int", _M_RANGE)),
    _preset("upper", upper_tail, "upper:0.25@8", "mean of the top max(1, ceil(qK)) of K",
            param=("q", "real", _LEVEL_OPEN)),
    _preset("cvar", lower_tail, "cvar:0.25@8",
            "CVaR-style lower tail: mean of the bottom max(1, ceil(qK)) of K", aliases=("lower",),
            param=("q", "real", _LEVEL_OPEN)),
    _preset("quantile", quantile, "quantile:0.9@8",
            "q-quantile of K, linear interpolation as np.quantile (q = 0.5: median)", aliases=("var",),
            param=("q", "real", "0 <= q <= 1")),
    _preset("trim", trimmed_mean, "trim:1@5", "mean after dropping the m lowest and m highest of K",
            param=("m", "int", "0 <= m, 2m < K")),
    _preset("winsor", winsorized_mean, "winsor:1@5",
            "winsorized mean: the m lowest and m highest of K clipped", param=("m", "int", "0 <= m, 2m < K")),
    _preset("hd", harrell_davis, "hd:0.5@5", "Harrell-Davis quantile estimator at level q",
            param=("q", "real", "0 < q < 1")),
    _preset("gini", gini_mean_difference, "gini@4", "Gini mean difference E|X - X'| (K >= 2)"),
    _preset("lmoment", l_moment, "lmoment:2@4", "r-th sample L-moment (Hosking); r = 2 is half the Gini",
            param=("r", "int", f"1 <= r <= K, r <= {MAX_LMOMENT_ORDER}")),
)

# The registry: canonical name → Preset, read-only, in listing order.
PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in _PRESET_LIST})

# Every name the parser accepts (canonical names and aliases) → its preset.
_BY_NAME: dict[str, Preset] = {n: p for p in _PRESET_LIST for n in (p.name, *p.aliases)}

# The constructor of each preset → its canonical name, for the names of the objectives it builds.
_NAME_OF: dict[Callable[..., Objective], str] = {p.builder: p.name for p in _PRESET_LIST}

# One line per preset (public name kept): what parse errors list.
PRESET_FORMS: tuple[str, ...] = tuple(p.describe() for p in _PRESET_LIST)


def _label(builder: Callable[..., Objective], k: object = None, param: object = None) -> str:
    """``name[:param][@K]`` with the canonical name of ``builder``'s preset."""
    head = _NAME_OF[builder] if param is None else f"{_NAME_OF[builder]}:{param}"
    return head if k is None else f"{head}@{k}"


def presets_markdown() -> str:
    """The presets as a Markdown table (form, aliases, parameter, example, meaning), from :data:`PRESETS`.

    Example:
      >>> print(presets_markdown().splitlines()[0])
      | preset | aliases | parameter | example | meaning |
    """
    rows = ["| preset | aliases | parameter | example | meaning |", "|---|---|---|---|---|"]
    for p in _PRESET_LIST:
        aliases = ", ".join(f"`{a}`" for a in p.aliases) or "-"
        param = "-" if p.param is None else p.param.range
        if p.k == "fractional":
            param = "real K > 0 in `rankgrad.exact`" if param == "-" else param
        form = " ".join(f"`{f.strip()}`" for f in p.form.split(","))
        meaning = p.help.replace("|", "\\|")  # a literal bar would end the cell
        rows.append(f"| {form} | {aliases} | {param} | `{p.example}` | {meaning} |")
    return "\n".join(rows) + "\n"


# ------------------------------------------------------ incomplete beta (HD)
def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    if log_front < -750.0:  # exp(log_front) is exactly 0.0 in float64: skip the continued fraction
        return 0.0
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for numer in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numer * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numer / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return math.exp(log_front) * h / a


# -------------------------------------------------------------------- parser
# A number: digits with an optional fraction, or a bare fraction, then an optional exponent. Each piece
# has one way to match, so the pattern runs in linear time.
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_NAME = re.compile(r"[a-z_]+")


def _shown(spec: str) -> str:
    return repr(spec) if len(spec) <= 80 else f"{spec[:60]!r}... ({len(spec)} characters)"


def _parse_error(spec: str, why: str) -> ValueError:
    forms = "\n  ".join(PRESET_FORMS)
    return ValueError(
        f"objective: cannot parse {_shown(spec)} ({why}). Valid forms:\n  {forms}\n"
        "or a mixture of them, e.g. '0.5*mean + 0.5*max@8' (terms c*preset joined by + and -),\n"
        "or an Objective, e.g. rankgrad.Objective.from_weights([1, 0, 0, 0]) (top-first)."
    )


def _type_error(objective: object) -> InputTypeError:
    hint = "; decode it first, e.g. spec.decode()" if isinstance(objective, (bytes, bytearray)) else ""
    return InputTypeError(
        f"objective: expected a preset string (e.g. 'max@4') or rankgrad.Objective, got "
        f"{type(objective).__name__}{hint}."
    )


class _Why(ValueError):
    """Why one preset term does not parse (turned into the full parse error by the caller)."""


def _split_preset(text: str) -> tuple[str, str | None, str | None]:
    s = text.strip().lower()
    head, at, k_str = s.partition("@")
    name, colon, param = head.partition(":")
    if "@" in k_str:
        raise _Why("more than one '@'")
    if ":" in param or ":" in k_str:
        raise _Why("more than one ':' or a ':' after '@'")
    if _NAME.fullmatch(name) is None:
        raise _Why("not of the form name[:param]@K, name in letters and '_'")
    if colon and _NUMBER.fullmatch(param) is None:
        raise _Why(f"the parameter {param!r} is not a plain decimal number")
    if at and _NUMBER.fullmatch(k_str) is None:
        raise _Why(f"K={k_str!r} is not a plain decimal number")
    return name, (param if colon else None), (k_str if at else None)


def _tokens(spec: str) -> tuple[str, str | None, str | None]:
    """``name[:param][@K]`` → (name, param or None, K or None), by splitting (no backtracking)."""
    try:
        return _split_preset(spec)
    except _Why as why:
        raise _parse_error(spec, str(why)) from None


def _build_preset(text: str) -> Objective:
    """One preset term ``name[:param][@K]``; errors are :class:`_Why`."""
    name, param, k_str = _split_preset(text)
    preset = _BY_NAME.get(name)
    if preset is None:
        raise _Why(f"unknown objective {name!r}")
    if preset.param is not None and param is None:
        raise _Why(f"{name!r} needs a parameter, as in {name}:{preset.param.name}@K")
    if preset.param is None and param is not None:
        raise _Why(f"{name!r} takes no ':' parameter")
    if preset.k != "optional" and k_str is None:
        raise _Why(f"{name!r} needs a sample size, as in {name}@K")
    try:
        return preset.build(param, k_str)
    except ValueError as err:
        raise _Why(str(err)) from None


def _split_terms(spec: str) -> list[tuple[float, int, str]]:
    """A mixture string → [(sign, index of the term, term text)], in one pass.

    ``+`` and ``-`` separate terms, except right after a digit (or ``.``) and ``e``/``E``, where they
    are an exponent's sign (``1e-3*max@4``). A leading sign applies to the first term.
    """
    terms: list[tuple[float, int, str]] = []
    sign, start = 1.0, 0
    for i, ch in enumerate(spec):
        if ch not in "+-":
            continue
        if i >= 2 and spec[i - 1] in "eE" and (spec[i - 2].isdigit() or spec[i - 2] == "."):
            continue
        text = spec[start:i]
        if text.strip():
            terms.append((sign, start, text))
        elif terms or spec[:i].strip():  # only the first term may be empty: a leading sign
            raise _parse_error(spec, f"an empty term before the {ch!r} at index {i}")
        sign, start = (1.0 if ch == "+" else -1.0), i + 1
    text = spec[start:]
    if not text.strip():
        raise _parse_error(spec, f"an empty term at the end (index {start})")
    terms.append((sign, start, text))
    return terms


def _mixture_term(spec: str, sign: float, start: int, text: str) -> tuple[float, Objective]:
    at = start + len(text) - len(text.lstrip())
    where = f"term {text.strip()!r} at index {at}"
    coef_text, star, preset = text.partition("*")
    if not star:
        coef_text, preset = "1", text
    elif "*" in preset:
        raise _parse_error(spec, f"{where}: more than one '*'; write a term as c*preset")
    coef_text = coef_text.strip()
    if _NUMBER.fullmatch(coef_text) is None:
        if _NUMBER.fullmatch(preset.strip()) is not None:
            raise _parse_error(spec, f"{where}: write the coefficient first, as in {preset.strip()}*preset")
        raise _parse_error(spec, f"{where}: the coefficient {coef_text!r} is not a plain decimal number")
    coef = float(coef_text)
    if not math.isfinite(coef):
        raise _parse_error(spec, f"{where}: the coefficient {coef_text} is not a finite float64")
    try:
        return sign * coef, _build_preset(preset)
    except _Why as why:
        raise _parse_error(spec, f"{where}: {why}") from None


def preset_terms(spec: str) -> list[str]:
    """The preset text of each term of a preset or mixture string, coefficients and signs dropped
    (``"0.5*mean + 0.5*max@8"`` → ``["mean", "max@8"]``), without building anything: for callers that
    need every term's K first (a mixture's K is the largest). Terms are not checked here; :func:`parse`
    checks them.

    Raises:
      ValueError: the parse error for a string too long, an empty term or more than one ``*``.
    """
    if not isinstance(spec, str):
        raise _type_error(spec)
    if len(spec) > MAX_SPEC_LENGTH:
        raise _parse_error(
            spec, f"longer than {MAX_SPEC_LENGTH} characters (rankgrad.objectives.MAX_SPEC_LENGTH)"
        )
    out = []
    for _, start, text in _split_terms(spec):
        coef, star, preset = text.partition("*")
        if "*" in preset:
            raise _parse_error(spec, f"term {text.strip()!r} at index {start}: more than one '*'")
        out.append((preset if star else text).strip())
    return out


def parse(spec: str) -> Objective:
    """Parse a preset string such as ``"max@4"``, ``"cvar:0.25@8"`` or ``"rank:2@5"``, or a mixture of
    presets such as ``"0.5*mean + 0.5*max@8"``.

    A preset is ``name[:param][@K]`` (case and surrounding spaces ignored); numbers are plain decimals
    (``4``, ``0.25``, ``1e3``) and K is at most ``MAX_K`` = 1,000,000 (``Objective.from_weights``
    takes longer vectors). A mixture is ``[-] term (+|- term)*`` with each term ``preset`` or
    ``c*preset``, c a plain unsigned decimal (spaces optional; the coefficient comes first): it is
    the sum of the scaled presets, an objective at K = the largest K of its terms (see
    :class:`Objective`; ``"mean + 0.25*cvar:0.25@8"``, ``"max@4 - 0.1*min@4"``). The whole string is at
    most ``MAX_SPEC_LENGTH`` = 200 characters and is read in linear time.

    Raises:
      ValueError: for an unknown name, an ill-formed string or an out-of-range number, naming the bad
        term and its index in a mixture and listing the valid forms.
      InputTypeError: if ``spec`` is not a string.

    Example:
      >>> import rankgrad
      >>> obj = rankgrad.parse("0.5*mean + 0.5*max@2")
      >>> obj.k, obj.weights.tolist()  # mean lifted to K = 2 is (1/2, 1/2); max@2 is (1, 0)
      (2, [0.75, 0.25])
    """
    if not isinstance(spec, str):
        raise _type_error(spec)
    hit = _PARSED.get(spec)
    if hit is not None:
        return hit
    obj = _parse(spec)
    if obj.weights is None or obj.k <= _PARSED_MAX_K:
        if len(_PARSED) >= _PARSED_SIZE:
            _PARSED.clear()
        _PARSED[spec] = obj
    return obj


# Parsed presets, memoised (objectives are immutable, and estimators given a preset string parse it on
# every call); at most _PARSED_SIZE entries of K <= _PARSED_MAX_K, so a few MB at most.
_PARSED: dict[str, Objective] = {}
_PARSED_SIZE = 256
_PARSED_MAX_K = 4096


def _parse(spec: str) -> Objective:
    if len(spec) > MAX_SPEC_LENGTH:
        raise _parse_error(
            spec, f"longer than {MAX_SPEC_LENGTH} characters (rankgrad.objectives.MAX_SPEC_LENGTH)"
        )
    terms = _split_terms(spec)
    if len(terms) == 1 and terms[0][0] > 0 and "*" not in spec:  # one preset
        try:
            return _build_preset(terms[0][2])
        except _Why as why:
            raise _parse_error(spec, str(why)) from None
    parts = [_mixture_term(spec, *t) for t in terms]
    try:
        return _combine(parts)
    except ValueError as err:
        raise _parse_error(spec, str(err)) from None


def _int_param(p: str, what: str) -> int:
    v = float(p)
    if not (math.isfinite(v) and v == math.floor(v)):
        raise ValueError(f"{what}: expected an integer, got {p}")
    return int(v)


def _k(k_str: str) -> int:
    return _check_k(float(k_str), "K")




def as_objective(objective: ObjectiveLike) -> Objective:
    """Return ``objective`` as an :class:`Objective` (parsing strings).

    Raises:
      InputTypeError: if ``objective`` is neither a string nor an :class:`Objective`.
      ValueError: if the string does not parse (see :func:`parse`).
    """
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str):
        return parse(objective)
    raise _type_error(objective)
