"""Batch estimators: L-values, include-one / leave-one-out values, LR advantages, and the reference
advantage estimators, on numpy, torch and jax through one implementation.

Conventions: a group is the last axis ``[..., N]`` (or flat ``[B]`` + ``group_ids``); every function
returns arrays of the caller's backend and float dtype. Rank weights come from ``weights.py``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from rankgrad._src import noisy
from rankgrad._src import types as T
from rankgrad._src import weights as W
from rankgrad._src.errors import InputTypeError
from rankgrad._src.layout import Grouped, bucketed, to_groups
from rankgrad._src.objectives import Objective, ObjectiveLike, as_objective, best_of_k, parse
from rankgrad._src.ops import Ops, get_ops
from rankgrad._src.types import ArrayLike

Array = Any

__all__ = [
    "advantages",
    "value",
    "include_one",
    "leave_one_out",
    "order_statistics",
    "ESTIMATORS",
    "EstimatorInfo",
    "estimator_info",
    "group_std",
]


# ----------------------------------------------------------------- the registry
@dataclass(frozen=True)
class EstimatorInfo:
    """What an advantage estimator is, stated so that tests can check it.

    Attributes:
      name: the ``estimator=`` string.
      unbiased: whether ``gradient_scale(N, K) · Σ_i a_i ∇log p(x_i)`` is unbiased for ∇J_K.
      centred: whether Σ_i a_i = 0 in every group.
      gradient_scale: the factor c(N, K) in the unbiased gradient (for biased estimators, the
        factor that makes it unbiased in the mean case, or None).
      objectives: which objectives it accepts.
      summary: one line for documentation.
    """

    name: str
    unbiased: bool
    centred: bool
    gradient_scale: Callable[[int, int], float] | None
    objectives: str
    summary: str


_REGISTRY: dict[str, EstimatorInfo] = {
    e.name: e
    for e in (
        EstimatorInfo(
            "ordergrad", True, True, lambda n, k: k / n, "any",
            "q_i − v_i: include-one minus leave-one-out U-statistic (OrderGrad; MaxPO for max@K).",
        ),
        EstimatorInfo(
            "rloo", True, True, lambda n, k: 1.0 / n, "mean",
            "r_i − mean of the other rewards (REINFORCE leave-one-out); = ordergrad with 'mean'.",
        ),
        EstimatorInfo(
            "dr_grpo", True, True, lambda n, k: 1.0 / (n - 1), "mean",
            "r_i − group mean (Dr. GRPO); = (N−1)/N · RLOO.",
        ),
        EstimatorInfo(
            "grpo", False, True, None, "mean",
            "(r_i − mean) / (std + eps), std with N−1 (GRPO); the std division biases it.",
        ),
        EstimatorInfo(
            "pkpo_s", True, False, lambda n, k: 1.0, "any",
            "PKPO's s_i = (K/N)·q_i: unbiased, no baseline (arXiv 2505.15201, Eq. 19).",
        ),
        EstimatorInfo(
            "pkpo_sloo", True, False, lambda n, k: 1.0, "any",
            "PKPO's s_i^(loo) = s_i − mean_{j≠i} s_j(batch without i) = (K/N)q_i − K·v_i/(N−1).",
        ),
        EstimatorInfo(
            "pkpo_sloo1", True, False, lambda n, k: 1.0, "max@K, K >= 2",
            "PKPO's s_i^(loo−1): s_i minus (K/N)·(max@(K−1) value of the others).",
        ),
        EstimatorInfo(
            "chen_passk", False, True, None, "max@K on 0/1 rewards",
            "Chen et al.'s analytic pass@K advantage (q_i − V)/σ, σ = sqrt(V(1−V)); biased by σ.",
        ),
        EstimatorInfo(
            "gopo", False, True, None, "mean: midrank form; other: L-statistic of the midrank CDF",
            "Rank (CDF) advantage, tie-correct: (2/(N−1)) Σ_{j≠i} sign(r_i − r_j) (GOPO, arXiv "
            "2602.03876); with another objective, ordergrad on u_i = (1 + that sum/(N−1))/2.",
        ),
    )
}
ESTIMATORS: Mapping[str, EstimatorInfo] = MappingProxyType(_REGISTRY)
"""Every advantage estimator by canonical name (read-only); :func:`estimator_info` also takes aliases."""

_ALIASES: Mapping[str, str] = MappingProxyType({
    "maxpo": "ordergrad",
    "drgrpo": "dr_grpo",
    "pkpo": "pkpo_s",
    "pkpo_loo": "pkpo_sloo",
    "pkpo_sloo_1": "pkpo_sloo1",
    "pkpo_loo1": "pkpo_sloo1",
    "pkpo_sloo_minus_one": "pkpo_sloo1",
    "chen": "chen_passk",
    "passk_analytic": "chen_passk",
    "midrank": "gopo",
})
# Objective names with an estimator of their own meaning: an ``estimator=`` that says one gets it.
_OBJECTIVE_HINTS: Mapping[str, str] = MappingProxyType({
    "rank": "the rank (midrank CDF) advantage is estimator='gopo' (or 'midrank')",
})


def _names_an_objective(key: str) -> bool:
    """Whether ``key`` is the name of an objective preset (bare, or with a parameter and K)."""
    for spec in (key, f"{key}@2", f"{key}:0.5@2", f"{key}:1@2"):
        try:
            parse(spec)
        except ValueError:
            continue
        return True
    return False


def estimator_names() -> str:
    """The accepted ``estimator=`` names for messages and help: canonical names, then aliases."""
    return ", ".join(ESTIMATORS) + " (aliases: " + ", ".join(
        f"{a}={c}" for a, c in sorted(_ALIASES.items())) + ")"


def estimator_info(name: str) -> EstimatorInfo:
    """The :class:`EstimatorInfo` of an ``estimator=`` name, aliases resolved.

    Names are matched case-insensitively, with ``-`` and ``.`` read as ``_`` (``"Dr-GRPO"`` is
    ``"dr_grpo"``).

    Raises:
      InputTypeError: ``name`` is not a string.
      ValueError: an unknown name (the message lists every accepted one), or an objective's name.

    Example:
      >>> import rankgrad
      >>> rankgrad.estimator_info("maxpo").name
      'ordergrad'
    """
    if not isinstance(name, str):
        raise InputTypeError(
            f"estimator: expected a name such as 'ordergrad' (a string), got {type(name).__name__}."
        )
    key = name.strip().lower().replace("-", "_").replace(".", "_")
    key = _ALIASES.get(key, key)
    if key in ESTIMATORS:
        return ESTIMATORS[key]
    if key in _OBJECTIVE_HINTS or _names_an_objective(name.strip()) or _names_an_objective(key):
        fix = _OBJECTIVE_HINTS.get(key, f"pass it as the objective; the estimators are {estimator_names()}")
        raise ValueError(f"estimator: {name!r} names an objective, not an estimator; {fix}.")
    raise ValueError(f"estimator: unknown {name!r}; expected one of {estimator_names()}.")


# ------------------------------------------------------------------- validation
def _validate(g: Grouped, rewards_arg: str = "rewards") -> float | None:
    """Reject NaN/inf rewards; return max |reward| as a host float (None under a trace).

    One reduction and one host transfer give both finiteness (NaN and inf propagate through a max)
    and the magnitude that decides the overflow-safe scaling (:func:`_scaling`). Masked-out entries
    are already 0 here (:func:`_prepare`).
    """
    ops = g.ops
    if ops.is_traced(g.values):
        return None
    m = ops.abs_max(g.values)
    if not math.isfinite(m):
        bad = ~np.isfinite(ops.to_host(g.values))
        raise ValueError(
            f"{rewards_arg}: found {int(bad.sum())} NaN or inf reward(s) (first in group "
            f"{int(np.argwhere(bad)[0][0])}); drop those samples with mask=... (they then get "
            "advantage 0) or give them a finite score."
        )
    return m


def _check_eps(eps: Any) -> float:
    """``eps`` as a finite float >= 0, else a clear error naming it."""
    if isinstance(eps, (str, bytes, bool, np.bool_)):
        raise InputTypeError(f"eps: expected a number >= 0 (e.g. eps=1e-6), got {eps!r}.")
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise InputTypeError(
            f"eps: expected a Python number >= 0 (e.g. eps=1e-6), got {type(eps).__name__}."
        ) from None
    if not (math.isfinite(e) and e >= 0):
        raise ValueError(
            f"eps: expected a finite number >= 0 (GRPO adds it to each group's standard deviation), "
            f"got {e!r}; the default is 1e-6."
        )
    return e


def _require_sizes(g: Grouped, minimum: float, why: str) -> None:
    """Eagerly reject non-empty groups smaller than ``minimum`` (empty groups give 0)."""
    if g.sizes is None:  # traced: too-small groups come out NaN (documented)
        return
    if g.valid is None:  # every group has `width` samples: a check on Python ints (no graph break)
        if 0 < g.width < minimum:
            raise ValueError(
                f"rewards: {why} needs groups of at least {minimum} samples, but the groups have "
                f"{g.width}. Sample more per group or lower K."
            )
        return
    bad = np.flatnonzero((g.sizes > 0) & (g.sizes < minimum))
    if bad.size:
        first = int(bad[0])
        raise ValueError(
            f"rewards: {why} needs groups of at least {minimum} samples, but group {first} has "
            f"{int(g.sizes[first])} ({bad.size} group(s) too small). Sample more per group, "
            "lower K, or mask those groups out."
        )


# -------------------------------------------------------- sort, centre, tables
@dataclass
class _Sorted:
    ys: Array  # sorted values, padding → 0, [G, W]
    yc: Array  # centred sorted values, padding → 0 (None when not centred)
    c: Array  # centre per group [G, 1] (None when not centred)
    idx: Array  # sort permutation [G, W]
    in_range: Array | None  # [G, W] position < size
    key: Array  # sorted values with padding at +inf: tie blocks never merge samples with padding


def _sort_centre(g: Grouped, *, centre: bool = True) -> _Sorted:
    ops, x = g.ops, g.values
    if g.valid is None:
        ys, idx = ops.sort(x)
        c, yc = _centre(g, ys, None) if centre else (None, None)
        return _Sorted(ys=ys, yc=yc, c=c, idx=idx, in_range=None, key=ys)
    # Padding sorts last: its key is +inf (finite rewards are checked eagerly).
    key, idx = ops.sort(ops.where(g.valid, x, float("inf")))
    in_range = ops.arange(g.width, like=x)[None, :] < _sizes_backend(g)[:, None]
    ys = ops.where(in_range, key, 0.0)
    c, yc = _centre(g, ys, in_range) if centre else (None, None)
    return _Sorted(ys=ys, yc=yc, c=c, idx=idx, in_range=in_range, key=key)


def _centre(g: Grouped, ys: Array, in_range: Array | None) -> tuple[Array, Array]:
    """Centre sorted groups on their middle element (advantages are shift-invariant; this keeps
    float32 accurate for offset rewards and makes a constant group exactly 0). Returns (c [G, 1],
    ys − c with padding → 0)."""
    ops = g.ops
    if in_range is None:
        mid = (g.width - 1) // 2
        c = ys[:, mid : mid + 1]
        return c, ys - c
    sizes = _sizes_backend(g)
    c = ops.take(ys, ops.where(sizes > 0, (sizes - 1) // 2, 0)[:, None])
    return c, ops.where(in_range, ys - c, 0.0)


def _sizes_backend(g: Grouped) -> Array:
    if g.sizes_traced is not None:
        return g.sizes_traced
    return g.ops.asarray(g.sizes, g.values, cast=False)


def _rows(g: Grouped, alpha: np.ndarray, *fields: str) -> tuple[Array, ...]:
    """Per-position weights for every group, one per field: [1, W] when all groups are full, else
    [G, W]. One host call for all fields (each host call is a graph break under torch.compile)."""
    ops = g.ops
    if g.valid is None:
        return ops.host(_full_rows, ops, g.width, alpha, fields, g.values)
    if g.sizes is None:  # traced: a row for every possible size 0..W
        tables = ops.host(_size_tables, ops, tuple(range(g.width + 1)), g.width, alpha, fields, g.values)
        return tuple(t[g.sizes_traced] for t in tables)
    distinct, index = np.unique(g.sizes, return_inverse=True)
    tables = ops.host(_size_tables, ops, tuple(distinct.tolist()), g.width, alpha, fields, g.values)
    if len(distinct) == 1:
        return tuple(t[0][None, :] for t in tables)
    rows = ops.asarray(index.reshape(-1), g.values, cast=False)
    return tuple(t[rows] for t in tables)


def _full_rows(ops: Ops, width: int, alpha: np.ndarray, fields: tuple, like: Array) -> tuple:
    tables = W.rank_tables(width, alpha)
    return tuple(ops.table(getattr(tables, f), like)[None, :] for f in fields)


def _size_tables(ops: Ops, sizes: tuple, width: int, alpha: np.ndarray, fields: tuple, like: Array) -> tuple:
    return tuple(ops.table(W.stacked_tables(sizes, width, alpha, f), like) for f in fields)


def _scan(y: Array, g: Grouped, kind: str, obj: Objective) -> Array:
    """Σ_{m<t} y_m lo(m) + y_t self(t) + Σ_{m>t} y_m hi(m) for sorted ``y`` [G, W] (usually the
    centred values), as cumsum(y·lo) + revcumsum(y·hi) + y·mid (two scans; suffix sums by a
    reversed scan)."""
    ops, a = g.ops, obj.low_first
    lo, mid, hi = _rows(g, a, f"{kind}_lo", f"{kind}_mid", f"{kind}_hi")
    return ops.cumsum(y * lo) + ops.rev_cumsum(y * hi) + y * mid


# --------------------------------------------------------- overflow-safe scaling
@dataclass(frozen=True)
class _Scale:
    """Exact power-of-two scaling of the groups whose rewards are too large to compute with.

    Every quantity here is linear in the rewards (GRPO's is scale-free), so a group with
    max |r| > ``_scale_limit`` is computed on r·down, with down = 2^−e putting its max |r| in [2, 4),
    and linear results are multiplied back by up = 2^e: no rounding, no overflow in between.
    ``up``/``down`` are [G, 1] (1 for groups that are not scaled), or None when no group is (the
    common case: no extra work). ``check``: the results may not fit the output dtype, so they are
    checked after the cast (one host transfer, only then).
    """

    up: Array | None
    down: Array | None
    check: bool
    m: float | None  # max |reward| of the batch, when known


_NO_SCALE = _Scale(up=None, down=None, check=False, m=None)


def _scale_limit(ops: Ops, dtype: Any) -> float:
    """2^(emax/2 − 16) of the compute dtype (≈ 2.8e14 in float32, 2e149 in float64): below it no
    intermediate overflows (products, sums over N < 2^30 samples, GRPO's squares)."""
    return math.ldexp(1.0, math.frexp(ops.finfo_max(dtype))[1] // 2 - 16)


def _scaling(g: Grouped, m: float | None, bound: float, extra: float = 0.0) -> tuple[Grouped, _Scale]:
    """Scale the groups that need it (see :class:`_Scale`).

    ``m`` is the batch's max |reward| from :func:`_validate`, None under a trace, where nothing can
    be checked: under ``jax.jit`` every group's scale is then computed in the graph (a few fused
    operations); under ``torch.compile`` nothing is scaled (each extra operation there costs a graph
    segment), so rewards must stay below ``_scale_limit`` (≈ 2.8e14 in float32, 2e149 in float64).
    Traced results that do not fit the output dtype cannot be reported.
    ``bound``: results are at most ``bound``·m + ``extra`` in magnitude; when that exceeds the output
    dtype's range the results are checked after the cast.
    """
    ops = g.ops
    if m is None and not ops.scales_traced:
        return g, _NO_SCALE
    limit = _scale_limit(ops, g.values.dtype)
    check = m is not None and bound * m + extra > ops.finfo_max(g.out_dtype)
    if m is not None and m <= limit:
        return g, (_Scale(None, None, True, m) if check else _NO_SCALE)
    rowmax = ops.row_abs_max(ops.stop_gradient(g.values))[:, None]
    big = rowmax > limit
    p = ops.where(big, ops.floor_pow2(rowmax), 1.0)  # exact powers of two, p <= 2^(emax − 1)
    up = ops.where(big, p * 0.5, 1.0)
    down = ops.where(big, 2.0 / p, 1.0)  # >= 2^(2 − emax): a normal number, so x·down is exact
    return replace(g, values=g.values * down), _Scale(up, down, check, m)


def _unscale(x: Array, sc: _Scale) -> Array:
    """Linear results [G, W] (or [G, 1]) back to the caller's scale (an overflow here is a result
    that does not fit: :func:`_cast` reports it)."""
    if sc.up is None:
        return x
    if not isinstance(x, np.ndarray):
        return x * sc.up
    with np.errstate(over="ignore"):
        return x * sc.up


def _linear_bound(obj: Objective) -> float:
    """|result| <= this · max |r| for every linear quantity here: values, q_i, v_i (<= Σ|w|·max|r|,
    averages of L-statistics), their differences and PKPO's combinations (<= 2·Σ|w|·max|r|); with a
    factor 2 of margin."""
    w = obj.weights
    return 4.0 * max(1.0, float(np.abs(w).sum())) if w is not None else math.nan


@dataclass(frozen=True)
class _Info:
    """Host-side numbers of one call, computed outside any trace (numpy work on the weights would
    break a torch.compile graph)."""

    total: float  # Σ_j w_j, exactly (``Objective.total_weight``)
    bound: float  # :func:`_linear_bound`
    m: float | None  # max |reward| of the batch (None under a trace)


def _parse(objective: ObjectiveLike) -> tuple[Objective, float, float]:
    obj = as_objective(objective)
    if not obj.is_integral:  # rejected by require_integral next
        return obj, math.nan, math.nan
    return (obj, *_facts(obj))


@functools.lru_cache(maxsize=256)
def _facts(obj: Objective) -> tuple[float, float]:
    return obj.total_weight, _linear_bound(obj)


def _finish(
    g: Grouped, s: _Sorted, sorted_vals: Array, sc: _Scale = _NO_SCALE, *, ties: bool = True
) -> Array:
    """Tied rewards share one value; back to the caller's scale and order, padding → 0, caller's
    dtype. Ties are read from the sort key (padding at +inf), so padding never joins a tie block."""
    ops = g.ops
    sorted_vals = _unscale(sorted_vals, sc)
    if ties:
        sorted_vals = ops.tie_fix(sorted_vals, s.key)
    out = ops.unsort(sorted_vals, s.idx)
    if g.valid is not None:
        out = ops.where(g.valid, out, 0.0)
    return _cast(g, g.restore(out), sc)


def _cast(g: Grouped, a: Array, sc: _Scale = _NO_SCALE, what: str = "advantages") -> Array:
    """``a`` in the output dtype; when ``sc.check``, an error if a result does not fit it."""
    ops = g.ops
    if not sc.check:
        return ops.cast(a, g.out_dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # numpy: an overflow is reported below
        out = ops.cast(a, g.out_dtype)
        fits = ops.all_finite(out)
    if not fits:
        raise ValueError(
            f"rewards: the {what} do not fit {g.out_dtype} (largest |reward| {sc.m:.4g}; the "
            f"largest finite {g.out_dtype} is {ops.finfo_max(g.out_dtype):.4g}); pass the rewards "
            "as float32/float64, or rescale them (e.g. divide by a power of two: every estimator "
            "but grpo/gopo/chen_passk is linear in the rewards)."
        )
    return out


def _prepare(
    rewards: Array, objective: ObjectiveLike, group_ids: Any, mask: Any, *, detach: bool
) -> tuple[Grouped, Objective, _Info]:
    """Parse, group and validate. Masked-out entries are set to 0 here, so that no arithmetic ever
    reads them (a NaN or inf there cannot leak into a result)."""
    ops = get_ops(rewards)
    obj, total, bound = ops.host(_parse, objective)
    if detach and ops.differentiable:
        rewards = ops.stop_gradient(rewards)
    g = to_groups(ops, rewards, group_ids=group_ids, mask=mask)
    if g.valid is not None:
        g = replace(g, values=ops.where(g.valid, g.values, 0.0))
    return g, obj, _Info(total=total, bound=bound, m=_validate(g))


# --------------------------------------------------------------- public: values
def value(
    rewards: ArrayLike,
    objective: ObjectiveLike,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    noise: tuple[float, float] | None = None,
) -> T.Array:
    """Batch L-value per group: the U-statistic V = mean over K-subsets of Σ_j w_j R_(j:K).

    V = Σ_m y_(m) P^α_{N,K}(m) over the sorted group, unbiased for J_K (docs/math.md). Differentiable in
    torch and jax (the pathwise / reparameterised estimator): ∇V = Σ_m P(m) ∇y_(m), with the weights
    of tied rewards averaged over their tie block so tied samples get equal gradients.

    Args:
      rewards: ``[..., N]`` (groups on the last axis) or flat ``[B]`` with ``group_ids``.
      objective: a preset string (``"max@4"``) or :class:`rankgrad.Objective` (integer K <= N).
      group_ids: ``[B]`` group labels (ints or strings) for flat rewards.
      mask: bool, shape of ``rewards``: False entries are left out of their group (their values are
        never read, so they may be NaN).
      noise: ``(rho0, rho1)`` verifier flip rates for 0/1 rewards: the noise-corrected value, unbiased
        for J_K of the true labels (``rankgrad.noisy.value``; both rates are needed here).

    Returns:
      ``[...]`` (one per group) or ``[G]`` (one per distinct id, in order of first appearance), in
      the backend and float dtype of ``rewards``. A fully masked group gives 0.

    Raises:
      ValueError: NaN/inf rewards, groups smaller than K, a value too large for the float dtype of
        ``rewards`` (e.g. float16), bad shapes, unknown names, bad ``noise`` rates.

    Example:
      >>> import numpy as np, rankgrad
      >>> float(rankgrad.value(np.array([0.0, 1.0, 0.0, 0.0]), "max@2"))  # P(1 in a 2-subset)
      0.5
    """
    if noise is not None:
        rho0, rho1 = noisy.parse_noise(noise)
        if rho0 is None:
            raise ValueError(
                "noise: the corrected value needs the false-positive rate too (rho0=None is the forward "
                "correction, which fixes only the gradient's direction); pass rho0=0 if the verifier "
                "never passes a wrong answer."
            )
        return noisy_value(rewards, objective, rho0, rho1, group_ids=group_ids, mask=mask)
    return _value(rewards, objective, group_ids=group_ids, mask=mask)


# Flat input (``group_ids``) with groups of very different sizes runs bucket by bucket, so memory stays
# O(B) whatever the mix (``layout.bucketed``); dense input and near-uniform batches are one call.
# ``value`` and ``order_statistics`` reach the bucketing through ``_value``.
@functools.partial(bucketed, per="group")
def _value(
    rewards: Array, objective: ObjectiveLike, *, group_ids: Any, mask: Any, offset: float = 0.0
) -> Array:
    """:func:`value` plus a constant ``offset`` for every non-empty group (a fully masked group
    gives 0, offset included)."""
    g, obj, info = _prepare(rewards, objective, group_ids, mask, detach=False)
    obj.require_integral("value")
    _require_sizes(g, obj.k, f"value with K={obj.k}")
    g, sc = _scaling(g, info.m, info.bound, abs(offset))
    ops = g.ops
    s = _sort_centre(g)
    (p,) = _rows(g, obj.low_first, "value")
    if ops.differentiable:
        p = _tie_average(g, s, p)
    v = _value_sorted(g, s, p, info.total)
    if sc.up is not None:
        v = _unscale(v[:, None], sc)[:, 0]
    if offset:
        v = v + offset
    if g.valid is not None:
        v = ops.where(_sizes_backend(g) > 0, v, 0.0)
    return _cast(g, g.restore_groups(v), sc, "values")


def _value_sorted(g: Grouped, s: _Sorted, p: Array, total: float) -> Array:
    """V = Σ_t y_t P(t) per group, computed on centred values: Σ (y − c) P + c·Σw (Σ_t P(t) = Σw
    exactly, so a constant group gives exactly its value, e.g. 0 for a zero-sum objective)."""
    return g.ops.sum(s.yc * p) + s.c[:, 0] * total


def _tie_average(g: Grouped, s: _Sorted, p: Array) -> Array:
    """Replace each weight by the mean weight of its tie block (same total, equal per tied item).
    Blocks come from the sort key, where padding is +inf: a sample is never tied with padding."""
    ops = g.ops
    p = p + 0 * s.ys  # broadcast to [G, W]
    p = ops.stop_gradient(p)
    key = ops.stop_gradient(s.key)
    start, end = ops.tie_starts(key), ops.tie_ends(key)
    cs = ops.cumsum(p)
    total = ops.take(cs, end) - ops.take(ops.shift_right(cs), start)
    return total / (end - start + 1)


@functools.partial(bucketed, per="sample")
def include_one(
    rewards: ArrayLike,
    objective: ObjectiveLike,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> T.Array:
    """Include-one values q_i: the mean L-statistic over the K-subsets that contain sample i.

    Same layouts and return shape as :func:`advantages`. PKPO's s_i equals (K/N)·q_i; mean_i q_i = V.
    """
    g, obj, info = _prepare(rewards, objective, group_ids, mask, detach=True)
    obj.require_integral("include_one")
    _require_sizes(g, obj.k + 1, f"include-one values with K={obj.k}")
    g, sc = _scaling(g, info.m, info.bound)
    s = _sort_centre(g)
    return _finish(g, s, _q_sorted(g, s, obj, info.total), sc)


@functools.partial(bucketed, per="sample")
def leave_one_out(
    rewards: ArrayLike,
    objective: ObjectiveLike,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> T.Array:
    """Leave-one-out values v_i: the batch L-value of the group without sample i (needs K <= N−1).

    v_i does not depend on sample i, which is why it is a valid baseline; mean_i v_i = V.
    """
    g, obj, info = _prepare(rewards, objective, group_ids, mask, detach=True)
    obj.require_integral("leave_one_out")
    _require_sizes(g, obj.k + 1, f"leave-one-out values with K={obj.k}")
    g, sc = _scaling(g, info.m, info.bound)
    s = _sort_centre(g)
    return _finish(g, s, _v_sorted(g, s, obj, info.total), sc)


def _q_sorted(g: Grouped, s: _Sorted, obj: Objective, total: float) -> Array:
    return _scan(s.yc, g, "inc", obj) + s.c * total


def _v_sorted(g: Grouped, s: _Sorted, obj: Objective, total: float) -> Array:
    return _scan(s.yc, g, "loo", obj) + s.c * total


def order_statistics(
    rewards: ArrayLike, k: int, *, group_ids: ArrayLike | None = None, mask: ArrayLike | None = None
) -> T.Array:
    """Expected order statistics of a uniformly drawn K-subset of each group, **top-first**.

    Returns ``[..., K]`` (or ``[G, K]`` with ``group_ids``): entry r−1 is the batch U-statistic for
    E[r-th largest of K]. Cost O(N·K) per group (it outputs K values per group, each a dot product).

    Raises:
      ValueError: ``k`` not an integer >= 1, or larger than the groups; as :func:`value` otherwise.
    """
    from rankgrad._src.objectives import rank

    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise InputTypeError(f"k: expected an integer subset size K >= 1, got {k!r}.")
    k = int(k)
    if k < 1:
        raise ValueError(f"k: expected a subset size K >= 1, got k={k}.")
    shape = getattr(rewards, "shape", None)
    if shape is None:
        shape = np.shape(rewards)
    most = (shape[0] if group_ids is not None else shape[-1]) if len(shape) else 0
    if k > most:
        raise ValueError(
            f"k: a K-subset needs K <= the group size, got k={k} for groups of at most {most} samples."
        )
    cols = [value(rewards, rank(r, k), group_ids=group_ids, mask=mask) for r in range(1, k + 1)]
    return get_ops(rewards).stack(cols)


# ----------------------------------------------------------- public: advantages
@functools.partial(bucketed, per="sample")
def advantages(
    rewards: ArrayLike,
    objective: ObjectiveLike,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    estimator: str = "ordergrad",
    eps: float = 1e-6,
    noise: tuple[float | None, float] | None = None,
) -> T.Array:
    """Per-sample advantages for the finite-K objective, batched over groups.

    For ``estimator="ordergrad"`` (the default) a_i = q_i − v_i exactly: the include-one value minus
    the leave-one-out value (no K/N factor, no std normalisation). Then Σ_i a_i = 0 in every group,
    tied rewards get identical advantages, a constant group gets exactly 0, and

        ĝ = (K/N) · Σ_i a_i ∇log p(x_i)

    is unbiased for ∇J_K when the N samples of a group are i.i.d. from the current policy. For
    max@K it is MaxPO's leave-two-out advantage; with ``"mean"`` (K = 1) it is RLOO.

    Other estimators: every name of ``rankgrad.ESTIMATORS``, which states each one's unbiasedness,
    centring, gradient scale, accepted objectives and source (``rankgrad estimators`` prints it);
    aliases are resolved by :func:`estimator_info`.

    Rewards of any finite magnitude are safe: a group whose largest |reward| is huge (beyond ~1e149
    in float64, ~3e14 in float32) is computed scaled by an exact power of two and scaled back.

    Args:
      rewards: ``[..., N]`` groups on the last axis, or flat ``[B]`` with ``group_ids``. numpy,
        torch (CPU/CUDA) or jax; ints and bools are read as floats.
      objective: preset string or :class:`rankgrad.Objective` with integer K <= N − 1.
      group_ids: ``[B]`` labels (ints or strings) for flat rewards; groups may differ in size.
      mask: bool, shape of ``rewards``; False entries are excluded and get advantage 0 (their values
        are never read, so they may be NaN).
      estimator: which advantage to compute (default ``"ordergrad"``): a name or alias of
        ``rankgrad.ESTIMATORS``.
      eps: added to the standard deviation by ``"grpo"``; a finite number >= 0.
      noise: ``(rho0, rho1)``, a verifier's false-positive and false-negative rates, for 0/1
        rewards: the objective is replaced by its noise-corrected form (``rankgrad.noisy``), so the
        advantages target J_K of the true labels (``estimator="ordergrad"`` only). ``(None, rho1)``:
        the false-positive rate is unknown, so the mean objective gets the forward correction
        (``rankgrad.noisy.forward_advantages``: RLOO / (1 − rho1), the clean direction, exact if
        rho0 = 0); other objectives raise.

    Returns:
      Same shape, backend and float dtype as ``rewards`` (gradients never flow through it).

    Raises:
      ValueError: NaN/inf rewards, groups smaller than K + 1 (or 2), advantages too large for the
        float dtype of ``rewards`` (e.g. float16 rewards near its limit), bad shapes, unknown names,
        a bad ``eps`` or ``noise``.

    Example:
      >>> import numpy as np, rankgrad
      >>> a = rankgrad.advantages(np.array([[1., 0., 0., 1., 0., 0., 1., 0.]]), "max@4")
      >>> np.round(a * 35, 6)  # 3 of 8 correct: +5/35 for a correct sample, −3/35 for a wrong one
      array([[ 5., -3., -3.,  5., -3., -3.,  5., -3.]])
    """
    name = estimator_info(estimator).name
    eps = _check_eps(eps)
    if noise is not None:
        if name != "ordergrad":
            raise ValueError(f"noise: only estimator='ordergrad' has a noise correction, got {name!r}.")
        rho0, rho1 = noisy.parse_noise(noise)
        return noisy_advantages(rewards, objective, rho0, rho1, group_ids=group_ids, mask=mask)
    g, obj, info = _prepare(rewards, objective, group_ids, mask, detach=True)
    obj.require_integral("advantages")
    return _ADVANTAGE_FNS[name](g, obj, eps, info)


def noisy_advantages(
    rewards: ArrayLike,
    objective: ObjectiveLike,
    rho0: float | None,
    rho1: float,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> T.Array:
    """Noise-corrected ``ordergrad`` advantages of 0/1 rewards, rates already checked
    (:func:`rankgrad._src.noisy.check_rates`): the advantages of the corrected objective
    (``noisy.corrected_objective``), or with ``rho0=None`` the forward correction of the mean, the
    ordinary advantages / (1 − rho1). Layouts and return as :func:`advantages`."""
    if rho0 is None:
        obj = as_objective(objective)
        noisy.require_forward(obj)
        noisy.require_binary(rewards, mask)
        return advantages(rewards, obj, group_ids=group_ids, mask=mask) * (1.0 / (1.0 - rho1))
    noisy.require_binary(rewards, mask)
    obj, _ = noisy.corrected_objective(objective, rho0, rho1)
    return advantages(rewards, obj, group_ids=group_ids, mask=mask)


def noisy_value(
    rewards: ArrayLike,
    objective: ObjectiveLike,
    rho0: float,
    rho1: float,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> T.Array:
    """Noise-corrected batch value of 0/1 rewards, rates already checked: the value of the corrected
    weights plus their constant h̃(0) for every group with a sample (0 for a fully masked group).
    Layouts and return as :func:`value`."""
    noisy.require_binary(rewards, mask)
    obj, offset = noisy.corrected_objective(objective, rho0, rho1)
    return _value(rewards, obj, group_ids=group_ids, mask=mask, offset=offset)


def _ordergrad(g: Grouped, obj: Objective, eps: float, info: _Info) -> Array:
    _require_sizes(g, max(obj.k + 1, 2), f"leave-one-out advantages with K={obj.k} (K <= N−1)")
    g, sc = _scaling(g, info.m, info.bound)
    s = _sort_centre(g)
    return _finish(g, s, _scan(s.yc, g, "adv", obj), sc)


def _require_mean(obj: Objective, name: str) -> None:
    if not noisy.is_mean(obj):
        raise ValueError(
            f"objective: estimator={name!r} optimises the mean reward; pass objective='mean', or "
            f"estimator='ordergrad' for {obj.name!r}."
        )


def _group_moments(g: Grouped) -> tuple[Array, Array]:
    """Per-group count [G, 1] and values minus the group mean (padding → 0) [G, W].

    Two passes (the corrected two-pass algorithm): d = x − mean(x) is exact up to the rounding of
    the first mean, which the mean of d then removes, so float32 keeps its accuracy for rewards with
    a large common offset, and a constant group gives exactly 0.
    """
    ops, x = g.ops, g.values  # masked-out entries are 0 (_prepare)
    n = _n_col(g)
    d = x - ops.sum(x)[:, None] / n
    if g.valid is not None:
        d = ops.where(g.valid, d, 0.0)
    d = d - ops.sum(d)[:, None] / n
    if g.valid is not None:
        d = ops.where(g.valid, d, 0.0)
    return n, d


def _mean_family(kind: str) -> Callable[[Grouped, Objective, float, _Info], Array]:
    def fn(g: Grouped, obj: Objective, eps: float, info: _Info) -> Array:
        _require_mean(obj, kind)
        _require_sizes(g, 2, f"estimator={kind!r}")
        if kind == "grpo":  # scale-free: |a_i| < sqrt(N) whatever the rewards
            g, sc = _scaling(g, info.m, 0.0, math.sqrt(g.width))
        else:
            g, sc = _scaling(g, info.m, 4.0)
        ops = g.ops
        n, d = _group_moments(g)
        nm1 = ops.where(n > 1, n - 1, 1.0)
        if kind == "rloo":
            out = _unscale(d * (n / nm1), sc)
        elif kind == "dr_grpo":
            out = _unscale(d, sc)
        else:  # grpo
            den = _std(ops, n, d) + (eps if sc.down is None else eps * sc.down)
            out = ops.where(den > 0, d / ops.where(den > 0, den, 1.0), 0.0)
        if g.valid is not None:
            out = ops.where(g.valid, out, 0.0)
        return _cast(g, g.restore(out), sc)

    return fn


def _std(ops: Ops, n: Array, d: Array) -> Array:
    """Per-group standard deviation (ddof=1) [G, 1] from the count ``n`` [G, 1] and the deviations
    ``d`` [G, W] of :func:`_group_moments`, computed on d / max|d| (no overflow or underflow in the
    squares); 0 for a constant group or one of a single sample."""
    nm1 = ops.where(n > 1, n - 1, 1.0)
    dmax = ops.row_abs_max(d)[:, None]
    unit = ops.where(dmax > 0, dmax, 1.0)
    return unit * (ops.sum((d / unit) ** 2)[:, None] / nm1) ** 0.5


def group_std(
    rewards: ArrayLike, *, group_ids: ArrayLike | None = None, mask: ArrayLike | None = None
) -> T.Array:
    """GRPO's normaliser: for every sample, the standard deviation (ddof=1) of its group's rewards.

    The same computation as ``estimator="grpo"`` (two-pass deviations, squares of d / max|d|, exact
    power-of-two scaling of huge rewards). Layouts as :func:`advantages`; returns the shape, backend
    and float dtype of ``rewards``, 0 at masked-out entries and for a group of one sample. Gradients
    never flow through it.
    """
    return _group_std(rewards, "mean", group_ids=group_ids, mask=mask)


@functools.partial(bucketed, per="sample")
def _group_std(rewards: Array, objective: ObjectiveLike, *, group_ids: Any, mask: Any) -> Array:
    g, _, info = _prepare(rewards, objective, group_ids, mask, detach=True)
    g, sc = _scaling(g, info.m, 4.0)
    ops = g.ops
    n, d = _group_moments(g)
    out = _unscale(_std(ops, n, d) + 0 * d, sc)
    if g.valid is not None:
        out = ops.where(g.valid, out, 0.0)
    return _cast(g, g.restore(out), sc, "standard deviations")


def _pkpo(kind: str) -> Callable[[Grouped, Objective, float, _Info], Array]:
    def fn(g: Grouped, obj: Objective, eps: float, info: _Info) -> Array:
        k = obj.k
        _require_sizes(g, k + 1, f"estimator={kind!r} with K={k} (K <= N−1)")
        if kind == "pkpo_sloo1" and (obj.extreme != "max" or k < 2):
            raise ValueError(
                f"objective: estimator='pkpo_sloo1' is defined for max@K with K >= 2 (its "
                f"baseline is the max@(K−1) value), got {obj.name!r}."
            )
        g, sc = _scaling(g, info.m, info.bound)
        ops = g.ops
        s = _sort_centre(g)
        n = _n_col(g)
        tw = info.total
        # On centred values, the centre's share (c times a coefficient) added once at the end.
        if kind == "pkpo_s":
            out = (k / n) * _scan(s.yc, g, "inc", obj) + s.c * ((k * tw) / n)
        elif kind == "pkpo_sloo":
            nm1 = ops.where(n > 1, n - 1, 1.0)
            inc, loo = _scan(s.yc, g, "inc", obj), _scan(s.yc, g, "loo", obj)
            out = (k / n) * inc - (k / nm1) * loo - s.c * ((k * tw) / (n * nm1))
        else:  # q − v(max@(K−1)): both carry the centre c with total weight 1, which cancels
            out = (k / n) * (_scan(s.yc, g, "inc", obj) - _scan(s.yc, g, "loo", best_of_k(k - 1)))
        return _finish(g, s, out, sc)

    return fn


def _n_col(g: Grouped) -> Array:
    """Group sizes as a float column [G, 1] of the compute dtype (0 → 1 to keep divisions safe)."""
    x = g.values  # finite, masked-out entries 0 (_prepare): x·0 is 0
    if g.valid is None:
        return x[:, :1] * 0 + float(g.width)
    n = _sizes_backend(g)[:, None] + x[:, :1] * 0
    return g.ops.where(n > 0, n, 1.0)


def _chen(g: Grouped, obj: Objective, eps: float, info: _Info) -> Array:
    if obj.extreme != "max":
        raise ValueError(
            f"objective: estimator='chen_passk' is the analytic pass@K advantage for 0/1 rewards; "
            f"it needs max@K, got {obj.name!r}."
        )
    ops = g.ops
    if not ops.is_traced(g.values):
        xn = ops.to_host(g.values)  # masked-out entries are 0 (_prepare)
        if not np.all((xn == 0) | (xn == 1)):
            raise ValueError(
                "rewards: estimator='chen_passk' needs binary 0/1 rewards (pass/fail); use "
                "estimator='ordergrad' for real-valued rewards."
            )
    _require_sizes(g, obj.k + 1, f"estimator='chen_passk' with K={obj.k} (K <= N−1)")
    # Pass and fail sides separately, each a sum of non-negative terms (max@K's tables are >= 0 and
    # exactly 0 where a position cannot be the maximum): V = P(pass@K), u = 1 − V, q_i and
    # w_i = 1 − q_i. So V(1 − V) is exactly 0 when every K-subset passes (fewer than K fails) or
    # none does, and small differences keep their relative accuracy.
    s = _sort_centre(g, centre=False)
    y = s.ys  # 0/1, padding → 0 (its weights are 0)
    f = 1.0 - y
    (p,) = _rows(g, obj.low_first, "value")
    v = ops.sum(y * p)[:, None]
    u = ops.sum(f * p)[:, None]
    q = _scan(y, g, "inc", obj)
    w = _scan(f, g, "inc", obj)
    var = v * u
    sigma = ops.where(var > 0, var, 1.0) ** 0.5
    diff = ops.where(v <= u, q - v, u - w)  # q_i − V from the smaller side
    out = ops.where(var > 0, diff / sigma, 0.0)
    return _finish(g, s, out)


def _gopo(g: Grouped, obj: Objective, eps: float, info: _Info) -> Array:
    """Midrank advantages: d_i = #{j: r_j < r_i} − #{j: r_j > r_i} from the tie blocks of the sort
    (tied rewards count as neither), so ties are exact, a constant group gives 0, and any strictly
    increasing transform of the rewards leaves the result unchanged. Ranks only: the rewards never
    enter arithmetic, so no magnitude can overflow."""
    _require_sizes(g, max(obj.k + 1, 2), f"estimator='gopo' with K={obj.k} (K <= N−1)")
    ops = g.ops
    s = _sort_centre(g, centre=False)
    n = _n_col(g)
    below = ops.cast(ops.tie_starts(s.key), s.ys.dtype)
    above = (n - 1) - ops.tie_ends(s.key)
    d = below - above
    if g.valid is not None:
        d = ops.where(s.in_range, d, 0.0)
    if noisy.is_mean(obj):
        return _finish(g, s, 2.0 * d / ops.where(n > 1, n - 1, 1.0), ties=False)
    u = 0.5 + 0.5 * d / ops.where(n > 1, n - 1, 1.0)  # midrank CDF in [0, 1], sorted order
    if g.valid is not None:
        u = ops.where(s.in_range, u, 0.0)
    c, uc = _centre(g, u, s.in_range)
    su = _Sorted(ys=u, yc=uc, c=c, idx=s.idx, in_range=s.in_range, key=s.key)
    return _finish(g, su, _scan(su.yc, g, "adv", obj))


_ADVANTAGE_FNS: dict[str, Callable[[Grouped, Objective, float, _Info], Array]] = {
    "ordergrad": _ordergrad,
    "rloo": _mean_family("rloo"),
    "dr_grpo": _mean_family("dr_grpo"),
    "grpo": _mean_family("grpo"),
    "pkpo_s": _pkpo("pkpo_s"),
    "pkpo_sloo": _pkpo("pkpo_sloo"),
    "pkpo_sloo1": _pkpo("pkpo_sloo1"),
    "chen_passk": _chen,
    "gopo": _gopo,
}
assert set(_ADVANTAGE_FNS) == set(ESTIMATORS) and set(_ALIASES.values()) <= set(ESTIMATORS)

