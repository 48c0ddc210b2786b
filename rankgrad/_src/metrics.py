"""Training and evaluation metrics from a batch of grouped rewards: unbiased max@k / pass@k for every k,
and how much of a batch carries no policy-gradient signal.

The estimates are the core's U-statistics: the value of max@k for one group is
:func:`rankgrad.value` (mean over the group's k-subsets of their best reward), unbiased for
E[max of k i.i.d. rewards] — pass@k for 0/1 rewards — whenever the group holds at least k i.i.d.
samples. Nothing here re-derives it: each k is one ``value`` call. Everything runs on the host in
float64 (metrics are logged as Python floats): torch/jax inputs are copied to the host once.

Groups: ``rewards`` ``[..., N]`` (the last axis is a group) or flat ``[B]`` with ``group_ids``
(labels: ints, strings, bytes, bools, finite floats; groups in order of first appearance, sizes may
differ); ``mask`` (False = not a sample) in either layout. A group with fewer than k valid samples has
no unbiased max@k: its entry is NaN and it is left out of that k's mean over groups.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rankgrad._src.errors import InputTypeError
from rankgrad._src.estimators import value
from rankgrad._src.layout import group_codes, host_mask
from rankgrad._src.objectives import Objective, as_objective, best_of_k, worst_of_k
from rankgrad._src.ops import to_host
from rankgrad._src.types import ArrayLike

__all__ = [
    "AdvantageStats",
    "MaxAtK",
    "advantage_stats",
    "default_ks",
    "max_at_k",
    "min_at_k",
    "pass_at_k",
    "training_metrics",
]


# ------------------------------------------------------------------------------ host arrays
def _host(x: Any, arg: str) -> np.ndarray:
    """Any supported array (numpy, torch on any device, jax, lists) as a host numpy array
    (:func:`rankgrad._src.ops.to_host`); a ragged nested list is a ValueError naming ``arg``."""
    try:
        return to_host(x)
    except ValueError:
        if isinstance(x, (list, tuple)):
            raise ValueError(f"{arg}: expected a rectangular array, got a ragged nested list.") from None
        raise


def _reals(x: Any, arg: str) -> np.ndarray:
    """``x`` as float64 on the host; bools and ints are numbers, anything else an InputTypeError."""
    arr = _host(x, arg)
    if arr.dtype.kind not in "biuf":
        raise InputTypeError(
            f"{arg}: expected real numbers (float, int or bool), got dtype {arr.dtype}; "
            "pass numeric rewards (e.g. 0/1 for pass/fail)."
        )
    return arr.astype(np.float64)


def _bool_mask(mask: Any, shape: tuple, arg: str = "mask") -> np.ndarray:
    """A boolean (or 0/1) mask of ``shape`` as a host bool array (the layout's mask rules)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    return host_mask(mask, shape, arg)


def _codes(group_ids: Any, b: int, arg: str = "group_ids") -> tuple[np.ndarray, int]:
    """Labels ``[b]`` → (int64 codes numbered by first appearance, number of groups), by the layout's
    one id factorisation (kinds never merge; NaN/None rejected)."""
    gc = group_codes(group_ids, b, arg)
    return gc.codes, gc.count


@dataclass(frozen=True)
class _Batch:
    """Rewards in the caller's layout, on the host: ``x`` float64 (0 where invalid), ``valid`` bool,
    both [G, N] (dense) or [B] (flat, with ``codes``); ``counts`` valid samples per group [G];
    ``total`` samples per group, valid or not [G]; ``lead``: the output shape of one value per group;
    ``shape``: the caller's shape of the rewards; ``padded``: flat groups laid out as padded
    ``([G, W] values, [G, W] valid)`` for the value calls, when that takes at most twice the memory of
    the batch (else None: the value calls take the flat layout)."""

    x: np.ndarray
    valid: np.ndarray
    codes: np.ndarray | None
    groups: int
    counts: np.ndarray
    total: np.ndarray
    lead: tuple
    shape: tuple
    padded: tuple[np.ndarray, np.ndarray] | None = None

    def value(self, objective: Objective, keep: np.ndarray, **kw: Any) -> np.ndarray:
        """The core's value per group [G], over the valid samples of the groups in ``keep`` [G]."""
        if self.codes is None or self.padded is not None:
            x, valid = (self.x, self.valid) if self.padded is None else self.padded
            m = valid & keep[:, None]
            return np.asarray(value(x, objective, mask=None if m.all() else m, **kw))
        m = self.valid & keep[self.codes]
        return np.asarray(value(self.x, objective, group_ids=self.codes, mask=None if m.all() else m, **kw))

    def per_group_min_max(self, y: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-group min and max of ``y`` over ``valid`` (+inf / −inf for a group with none)."""
        if self.codes is None:
            return np.where(valid, y, np.inf).min(-1), np.where(valid, y, -np.inf).max(-1)
        lo = np.full(self.groups, np.inf)
        hi = np.full(self.groups, -np.inf)
        np.minimum.at(lo, self.codes[valid], y[valid])
        np.maximum.at(hi, self.codes[valid], y[valid])
        return lo, hi


def _batch(
    rewards: Any,
    group_ids: Any,
    mask: Any,
    *,
    arg: str = "rewards",
    ids_arg: str = "group_ids",
    drop_nonfinite: bool = False,
) -> _Batch:
    x = _reals(rewards, arg)
    if group_ids is None:
        if x.ndim == 0:
            raise ValueError(
                f"{arg}: expected groups on the last axis [..., N] or flat [B] with group_ids, got a scalar."
            )
        if x.shape[-1] == 0 or x.size == 0:
            raise ValueError(f"{arg}: got empty groups (shape {x.shape}).")
    else:
        if x.ndim != 1:
            raise ValueError(f"{arg}: with group_ids, expected flat [B] rewards, got shape {x.shape}.")
        if x.size == 0:
            raise ValueError(f"{arg}: got an empty batch (B = 0).")
    valid = _bool_mask(mask, x.shape)
    finite = np.isfinite(x)
    if drop_nonfinite:
        valid = valid & finite
    elif not finite[valid].all():
        pos = np.argwhere(valid & ~finite)[0]
        where = int(pos[0]) if pos.size == 1 else tuple(int(p) for p in pos)
        raise ValueError(
            f"{arg}: found a NaN or inf reward at position {where}; mask it out with mask=... "
            "(it is then not a sample) or give it a finite score."
        )
    x = np.where(valid, x, 0.0)
    if group_ids is None:
        lead = x.shape[:-1]
        n = x.shape[-1]
        x2, v2 = x.reshape(-1, n), valid.reshape(-1, n)
        return _Batch(x2, v2, None, x2.shape[0], v2.sum(-1), np.full(x2.shape[0], n), lead, x.shape)
    codes, g = _codes(group_ids, x.shape[0], ids_arg)
    counts = np.bincount(codes, weights=valid, minlength=g).astype(np.int64)
    total = np.bincount(codes, minlength=g).astype(np.int64)
    return _Batch(x, valid, codes, g, counts, total, (g,), x.shape, _padded(x, valid, codes, total))


def _padded(
    x: np.ndarray, valid: np.ndarray, codes: np.ndarray, total: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Flat groups as padded [G, W] rows (each group's samples in batch order), if G·W <= 2·B."""
    g, w, b = total.size, int(total.max()), x.size
    if g * w > 2 * b:
        return None
    order = np.argsort(codes, kind="stable")
    starts = np.cumsum(total) - total
    pos = np.empty(b, dtype=np.int64)
    pos[order] = np.arange(b) - starts[codes[order]]
    dx = np.zeros((g, w))
    dv = np.zeros((g, w), dtype=bool)
    dx[codes, pos] = x
    dv[codes, pos] = valid
    return dx, dv


def _check_ks(ks: Any, arg: str = "ks") -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, (bool, np.bool_)):
        ks = (ks,)
    if not isinstance(ks, Iterable) or isinstance(ks, (str, bytes)):
        raise InputTypeError(
            f"{arg}: expected a list of subset sizes k >= 1 (e.g. [1, 4, 8]), got {ks!r:.60}."
        )
    out = []
    for k in ks:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise InputTypeError(f"{arg}: expected integer subset sizes k >= 1, got {k!r:.40}.")
        if k < 1:
            raise ValueError(f"{arg}: expected subset sizes k >= 1, got {int(k)}.")
        out.append(int(k))
    if not out:
        raise ValueError(f"{arg}: expected at least one subset size k.")
    return tuple(out)


def default_ks(n: int) -> tuple[int, ...]:
    """1, 2, 4, ... below ``n``, then ``n``: the sizes logged by default for groups of ``n`` samples.

    Example:
      >>> from rankgrad.metrics import default_ks
      >>> default_ks(16), default_ks(6), default_ks(1)
      ((1, 2, 4, 8, 16), (1, 2, 4, 6), (1,))
    """
    out, k = [], 1
    while k < n:
        out.append(k)
        k *= 2
    return (*out, int(n)) if n >= 1 else ()


# --------------------------------------------------------------------------- max@k / pass@k
@dataclass(frozen=True)
class MaxAtK:
    """Unbiased max@k (pass@k for 0/1 rewards) per group and averaged over groups.

    Attributes:
      ks: the subset sizes k, in the order of the last axis below.
      per_group: ``[..., len(ks)]`` (dense rewards ``[..., N]``) or ``[G, len(ks)]`` (flat, groups in
        order of first appearance), float64: the U-statistic of max@k of the group's valid samples;
        NaN where the group has fewer than k.
      mean: ``[len(ks)]`` the mean of ``per_group`` over the groups with at least k valid samples
        (every such group weighs the same, as every prompt does); NaN if there is none.
      groups: ``[len(ks)]`` how many groups each mean is over.
      sizes: ``[...]`` / ``[G]`` valid samples per group.
    """

    ks: tuple[int, ...]
    per_group: np.ndarray
    mean: np.ndarray
    groups: np.ndarray
    sizes: np.ndarray

    def as_dict(self, prefix: str = "", name: str = "max") -> dict[str, float]:
        """``{f"{prefix}{name}@{k}": mean}`` for the ks with at least one group (floats)."""
        rows = zip(self.ks, self.mean, self.groups, strict=True)
        return {f"{prefix}{name}@{k}": float(m) for k, m, g in rows if g}


def _max_at_k(b: _Batch, ks: tuple[int, ...] | None, extreme: Any = best_of_k) -> MaxAtK:
    most = int(b.counts.max())
    if most == 0:
        raise ValueError("mask: every sample is masked out; there is nothing to estimate.")
    ks = tuple(range(1, most + 1)) if ks is None else ks
    per = np.full((b.groups, len(ks)), np.nan)
    used = np.zeros(len(ks), dtype=np.int64)
    for j, k in enumerate(ks):
        keep = b.counts >= k
        used[j] = int(keep.sum())
        if used[j]:
            per[:, j] = np.where(keep, b.value(extreme(k), keep), np.nan)
    mean = np.array([np.nanmean(per[:, j]) if used[j] else np.nan for j in range(len(ks))])
    return MaxAtK(
        ks=ks, per_group=per.reshape(*b.lead, len(ks)), mean=mean, groups=used,
        sizes=b.counts.reshape(b.lead),
    )


def max_at_k(
    rewards: ArrayLike,
    ks: Iterable[int] | int | None = None,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> MaxAtK:
    """Unbiased max@k per group and averaged over groups, for several k at once.

    For a group of n valid samples and k <= n, max@k is :func:`rankgrad.value` with ``"max@k"``: the
    mean over the C(n, k) k-subsets of their largest reward, unbiased for E[max of k i.i.d. rewards]
    (for 0/1 rewards: pass@k = 1 − C(n − c, k) / C(n, k) with c successes). Unlike a bootstrap of
    k draws with replacement, it is exact for the k-subsets of the data.

    Args:
      rewards: ``[..., N]`` groups on the last axis, or flat ``[B]`` with ``group_ids``; numpy, torch
        (any device) or jax; bools and ints are numbers.
      ks: subset sizes (ints >= 1); default every k = 1..n_max, n_max the largest group's valid count.
        A k larger than a group gives NaN for that group (and that group is left out of k's mean).
      group_ids: ``[B]`` labels for flat rewards; groups may differ in size.
      mask: bool like ``rewards``; False = not a sample (its value is never read, it may be NaN).

    Returns:
      :class:`MaxAtK` (host float64 arrays).

    Raises:
      ValueError: NaN/inf rewards that are not masked out, bad shapes, ks < 1, every sample masked.
      InputTypeError: non-numeric rewards, masks or labels; non-integer ks.

    Example:
      >>> import numpy as np
      >>> from rankgrad.metrics import max_at_k
      >>> m = max_at_k(np.array([[1, 0, 0, 0], [1, 1, 0, 0]]), ks=[1, 2, 4])
      >>> m.per_group  # 1 of 4 correct: pass@2 = 1 − C(3,2)/C(4,2) = 1/2; pass@4 = 1
      array([[0.25      , 0.5       , 1.        ],
             [0.5       , 0.83333333, 1.        ]])
      >>> m.mean
      array([0.375     , 0.66666667, 1.        ])
    """
    b = _batch(rewards, group_ids, mask)
    return _max_at_k(b, None if ks is None else _check_ks(ks))


def min_at_k(
    rewards: ArrayLike,
    ks: Iterable[int] | int | None = None,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> MaxAtK:
    """:func:`max_at_k` for the worst of k: the unbiased min@k (``"min@k"``) per group and averaged.

    Example:
      >>> from rankgrad.metrics import min_at_k
      >>> min_at_k([3.0, 1.0, 2.0], ks=[1, 2, 3]).per_group  # pairs (3,1), (3,2), (1,2): minima 1, 2, 1
      array([2.        , 1.33333333, 1.        ])
    """
    b = _batch(rewards, group_ids, mask)
    return _max_at_k(b, None if ks is None else _check_ks(ks), worst_of_k)


def pass_at_k(
    rewards: ArrayLike,
    ks: Iterable[int] | int | None = None,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> MaxAtK:
    """:func:`max_at_k` for pass/fail rewards, checked: every valid reward must be 0 or 1.

    Raises:
      ValueError: a valid reward other than 0 or 1 (use :func:`max_at_k` for real-valued rewards); as
        :func:`max_at_k` otherwise.
    """
    b = _batch(rewards, group_ids, mask)
    bad = b.valid & (b.x != 0) & (b.x != 1)
    if bad.any():
        pos = np.argwhere(bad)[0]
        raise ValueError(
            f"rewards: pass@k needs 0/1 (fail/pass) rewards, found {float(b.x[tuple(pos)])!r} in group "
            f"{int(pos[0]) if b.codes is None else int(b.codes[pos[0]])}; use rankgrad.metrics.max_at_k for "
            "real-valued rewards (the expected best of k)."
        )
    return _max_at_k(b, None if ks is None else _check_ks(ks))


# -------------------------------------------------------------------------- advantage stats
@dataclass(frozen=True)
class AdvantageStats:
    """How much of a batch carries policy-gradient signal.

    Attributes:
      frac_zero: fraction of samples whose advantage is 0 (they contribute no gradient): exactly 0, or
        within the float rounding of 0, |a| <= 4·n·ε·(max r − min r) of the group (n its valid samples,
        ε the machine epsilon of the advantages' dtype); only an exact 0 without ``rewards``.
      frac_zero_groups: fraction of groups (with a valid sample) whose advantages are all 0.
      frac_constant_groups: fraction of groups (with a valid sample) whose rewards are all equal (a
        constant group has no ranking: every centred estimator gives it 0); NaN without ``rewards``.
      mean_abs, max_abs: mean and largest |advantage| over the samples.
      samples, groups: how many samples and non-empty groups these are over.
    """

    frac_zero: float
    frac_zero_groups: float
    frac_constant_groups: float
    mean_abs: float
    max_abs: float
    samples: int
    groups: int


def _float_eps(x: Any) -> float:
    """Machine epsilon of ``x``'s float width (bfloat16's for 16-bit floats); 0 for ints and bools."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        dtype = np.asarray(x).dtype
    name = str(dtype)
    if "float" not in name:
        return 0.0
    width = getattr(dtype, "itemsize", None) or np.dtype(name.rsplit(".", 1)[-1]).itemsize
    return {2: 2.0**-7, 4: 2.0**-23}.get(int(width), 2.0**-52)


def _adv_stats(b: _Batch, a: np.ndarray, samples: np.ndarray, eps: float, ranged: bool) -> AdvantageStats:
    """Sample fractions over ``samples``; group fractions over the valid samples of non-empty groups.

    An advantage counts as zero when |a| <= 4·n·ε·(max r − min r) of its group (n valid samples, ε of
    the advantages' dtype): within the float rounding of a value that is 0 in exact arithmetic. Without
    rewards (``ranged`` False) only an exact 0 counts.
    """
    n = int(samples.sum())
    absa = np.abs(a)
    lo, hi = b.per_group_min_max(b.x, b.valid)
    nonempty = b.counts > 0
    tol = np.where(nonempty & ranged, 4.0 * b.counts * eps * (hi - lo), 0.0)
    zero = np.where(absa <= (tol[:, None] if b.codes is None else tol[b.codes]), 1.0, 0.0)
    lo_z, _ = b.per_group_min_max(zero, b.valid)
    groups = int(nonempty.sum())
    return AdvantageStats(
        frac_zero=float(zero[samples].mean()) if n else math.nan,
        frac_zero_groups=float((nonempty & (lo_z == 1.0)).sum() / groups) if groups else math.nan,
        frac_constant_groups=float((nonempty & (lo == hi)).sum() / groups) if groups else math.nan,
        mean_abs=float(absa[samples].mean()) if n else math.nan,
        max_abs=float(absa[samples].max()) if n else math.nan,
        samples=n,
        groups=groups,
    )


def _advantages(adv: Any, b: _Batch, samples: np.ndarray) -> tuple[np.ndarray, float]:
    """``adv`` checked against the rewards' layout, in the batch's [G, N] / [B] layout, and the
    epsilon of its float dtype."""
    a = _reals(adv, "adv")
    if a.shape != b.shape:
        raise ValueError(f"adv: expected one advantage per reward, shape {b.shape}, got {a.shape}.")
    a = a.reshape(b.valid.shape)
    if not np.isfinite(a[samples]).all():
        raise ValueError("adv: found a NaN or inf advantage on a sample; advantages must be finite.")
    return np.where(samples, a, 0.0), _float_eps(adv)


def advantage_stats(
    adv: ArrayLike,
    rewards: ArrayLike | None = None,
    *,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> AdvantageStats:
    """Fractions of zero advantages and of constant groups, in one batch.

    With 0/1 rewards and max@K, a group of N with c successes has every advantage exactly 0 when
    c = 0 or c = N (constant) and also when c >= N − K + 1 (every K-subset already passes): a large K
    on easy prompts gives no gradient. Both fractions tell how much of the batch teaches nothing.

    Args:
      adv: advantages, same layout as ``rewards`` (``[..., N]`` or flat ``[B]`` with ``group_ids``).
      rewards: the rewards they came from, for the constant-group fraction (NaN without them).
      group_ids: ``[B]`` labels for the flat layout.
      mask: bool like ``adv``; False = not a sample (left out of every fraction).

    Returns:
      :class:`AdvantageStats` (Python floats and ints).

    Raises:
      ValueError: shapes that differ, NaN/inf advantages or rewards on samples.

    Example:
      >>> import numpy as np, rankgrad
      >>> from rankgrad.metrics import advantage_stats
      >>> r = np.array([[0., 0., 0., 0., 0., 0.], [1., 0., 0., 0., 0., 0.], [1., 1., 1., 1., 0., 0.]])
      >>> s = advantage_stats(rankgrad.advantages(r, "max@3"), r)  # 4 of 6 >= 6 − 3 + 1: all zero
      >>> s.frac_constant_groups, s.frac_zero_groups, s.frac_zero
      (0.3333333333333333, 0.6666666666666666, 0.6666666666666666)
    """
    known = rewards is not None
    b = _batch(rewards if known else np.zeros(np.shape(_host(adv, "adv"))), group_ids, mask,
               arg="rewards" if known else "adv")
    a, eps = _advantages(adv, b, b.valid)
    st = _adv_stats(b, a, b.valid, eps, known)
    return st if known else replace(st, frac_constant_groups=math.nan)


# ---------------------------------------------------------------------------- training dict
def training_metrics(
    scores: ArrayLike,
    uids: ArrayLike,
    objective: str | Objective,
    adv: ArrayLike,
    *,
    ks: Iterable[int] | None = None,
    mask: ArrayLike | None = None,
    noise: tuple[float | None, float] | None = None,
    prefix: str = "rankgrad/",
) -> dict[str, float]:
    """The per-step metrics both adapters log, as a flat dict of floats with stable names.

    Non-finite scores (unscorable rollouts) and ``mask=False`` rollouts are not samples of their group.
    Keys (``prefix`` = ``"rankgrad/"``):

    * ``objective``: mean over groups with >= K valid rollouts of the U-statistic of ``objective``
      (e.g. pass@K for 0/1 scores and max@K); noise-corrected with ``noise=(rho0, rho1)``
      (``(None, rho1)``: corrected as if rho0 = 0); ``objective_k``: its K;
    * ``max@{k}`` for k in ``ks`` (default 1, 2, 4, ... and the nominal group size N, the most rollouts
      of one uid, so the names stay the same from step to step): mean over groups with >= k valid
      rollouts of the unbiased max@k of the *observed* scores (pass@k for 0/1 scores); a k no group
      reaches is left out;
    * ``advantage_mean_abs``, ``advantage_max_abs``, ``frac_zero_advantage``: over all B rollouts
      (an unscorable or masked rollout has advantage 0 and counts as zero);
    * ``frac_zero_advantage_groups``: groups whose advantages are all 0; ``frac_constant_groups``:
      groups whose valid scores are all equal (both over groups with a valid rollout);
    * ``frac_unscorable``: rollouts with a non-finite score.

    Args:
      scores: ``[B]`` rewards (NaN = unscorable); uids: ``[B]`` group labels; objective: the objective
      in force (preset string or :class:`~rankgrad.Objective`); adv: ``[B]`` the advantages used.
      ks, mask, noise, prefix: as above.

    Example:
      >>> import numpy as np, rankgrad
      >>> from rankgrad.metrics import training_metrics
      >>> s = np.array([1., 0., 0., 0., 1., 1., 1., 1.])
      >>> uid = np.repeat([0, 1], 4)
      >>> m = training_metrics(s, uid, "max@2", rankgrad.advantages(s.reshape(2, 4), "max@2").reshape(-1))
      >>> m["rankgrad/objective"], m["rankgrad/max@1"], m["rankgrad/frac_constant_groups"]
      (0.75, 0.625, 0.5)
    """
    obj = as_objective(objective)
    obj.require_integral("training_metrics")
    b = _batch(scores, uids, mask, arg="scores", ids_arg="uids", drop_nonfinite=True)
    everyone = np.ones(b.valid.shape, dtype=bool)
    a, eps = _advantages(adv, b, everyone)
    out: dict[str, float] = {}
    keep = b.counts >= obj.k
    if keep.any():
        kw: dict[str, Any] = {}
        if noise is not None:
            kw["noise"] = (0.0 if noise[0] is None else noise[0], noise[1])
        v = b.value(obj, keep, **kw)
        out[f"{prefix}objective"] = float(v[keep].mean())
    out[f"{prefix}objective_k"] = float(obj.k)
    if b.counts.max() > 0:
        chosen = default_ks(int(b.total.max())) if ks is None else _check_ks(ks)
        out.update(_max_at_k(b, chosen).as_dict(prefix))
    st = _adv_stats(b, a, everyone, eps, True)
    finite = np.isfinite(_reals(scores, "scores"))
    out.update({
        f"{prefix}advantage_mean_abs": st.mean_abs,
        f"{prefix}advantage_max_abs": st.max_abs,
        f"{prefix}frac_zero_advantage": st.frac_zero,
        f"{prefix}frac_zero_advantage_groups": st.frac_zero_groups,
        f"{prefix}frac_constant_groups": st.frac_constant_groups,
        f"{prefix}frac_unscorable": float(1.0 - finite.mean()),
    })
    return {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}
