"""Rank-weight tables: the only place binomial coefficients live.

For a group of n sorted rewards and a K-subset drawn uniformly from it,

    P_{n,k}(m, j) = C(m−1, j−1) · C(n−m, k−j) / C(n, k)

is the probability that the item at sorted position m (1-based, low → high) is the j-th smallest of the
subset. Every batch estimator contracts this family with the objective's low-first weights α, giving
vectors of length n that depend on (n, K, α) only. They are built here once, in float64 and in log
space (no overflow at n = 10^6), and cached; backends only sort, multiply and scan (see ``docs/math.md``).

Tables for a group of size n (positions t = 1..n; entries that a formula never reads are 0):

    value(t) = P^α_{n,K}(t)                               value V = Σ_t y_t value(t)
    inc_lo(t) = A(t)    = Σ_j α_j P_{n−1,K−1}(t, j)         include-one q_t =
    inc_self(t) = B(t)  = (n/K) P^α_{n,K}(t)                   Σ_{m<t} y_m A(m) + y_t B(t) + Σ_{m>t} y_m C(m)
    inc_hi(t) = C(t)    = Σ_j α_j P_{n−1,K−1}(t−1, j−1)
    loo_lo(t) = U(t)    = P^α_{n−1,K}(t)                    leave-one-out v_t =
    loo_hi(t) = U(t−1)                                         Σ_{m<t} y_m U(m) + Σ_{m>t} y_m U(m−1)
    adv_lo = inc_lo − loo_lo,  adv_hi = inc_hi − loo_hi       a_t = q_t − v_t

Estimators evaluate Σ_{m<t} y_m lo(m) + y_t self(t) + Σ_{m>t} y_m hi(m) as two inclusive scans plus one
product, cumsum(y·lo)_t + revcumsum(y·hi)_t + y_t·mid(t), with mid = self − lo − hi precomputed here
(``inc_mid``, ``loo_mid``, ``adv_mid``): no shifted copies per call.

The same family lifts an objective to a larger K (:func:`lift`): the j-th smallest of a uniform K-subset
of a sorted K'-sample is its i-th smallest with probability P_{K',K}(i, j), so the weights
α'_i = Σ_j α_j P_{K',K}(i, j) at K' define the same objective (and the same U-statistic on any group).
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import numpy as np

__all__ = [
    "RankTables", "rank_tables", "stacked_tables", "log_factorials", "contract", "single_rank",
    "binomial_pmf", "lift", "MAX_LIFT_WORK",
]

_LF_LOCK = threading.Lock()
_LF: np.ndarray = np.zeros(1, dtype=np.longdouble)


def log_factorials(n: int) -> np.ndarray:
    """log(i!) for i = 0..n in extended precision (x86 long double, 64-bit mantissa): a cumulative
    sum of log i, accurate to ~1e-12 absolute at n = 10^5, so that differences of seven such terms
    (a log-probability) lose ~100× less than float64 ``lgamma`` would. Grown and reused."""
    global _LF
    with _LF_LOCK:
        if _LF.size <= n:
            size = max(n + 1, 2 * _LF.size)
            logs = np.log(np.arange(_LF.size, size, dtype=np.longdouble))
            _LF = np.concatenate([_LF, _LF[-1] + np.cumsum(logs)])
        return _LF[: n + 1]


def contract(n: int, k: int, beta: np.ndarray, *, min_run: int = 4) -> np.ndarray:
    """Σ_j β_j P_{n,k}(m, j) for m = 1..n (β low-first, length k); float64 vector of length n.

    A run of equal weights β_a = … = β_b (as in tail means, trimmed means, top/bottom-m) costs two
    single-rank vectors whatever its length, through the survival identity

        Σ_{j<=b} P_{n,k}(m, j) = (k/n) · Σ_{m'>=m} P_{n−1,k−1}(m', b)

    (item m is selected with rank <= b iff …; the difference between positions m and m+1 is the
    chance that both are selected with exactly b−1 below them). A lone weight costs one single-rank
    vector. So cvar/trim/top-m tables are O(n) and a general α is O(n·#runs); never n×k memory.
    ``min_run`` (default 4) is the shortest run summed by the identity (tests compare both paths).
    """
    out = np.zeros(n)
    if k == 0 or n < k:
        return out
    survival: dict[int, np.ndarray | float] = {0: 0.0, k: 1.0}

    def surv(b: int) -> np.ndarray | float:  # Σ_{m'>=m} P_{n−1,k−1}(m', b), m = 1..n
        if b not in survival:
            tail = np.zeros(n)
            tail[: n - 1] = single_rank(n - 1, k - 1, b)
            survival[b] = np.cumsum(tail[::-1])[::-1]
        return survival[b]

    for a, b, v in _runs(beta):
        if b - a + 1 >= min_run:
            out += (v * k / n) * (surv(b) - surv(a - 1))
        else:
            for j in range(a, b + 1):
                out += v * single_rank(n, k, j)
    return out


def _runs(beta: np.ndarray) -> list[tuple[int, int, float]]:
    """Maximal runs of equal nonzero values: (first j, last j, value), 1-based inclusive."""
    runs: list[tuple[int, int, float]] = []
    for j, v in enumerate(beta.tolist(), start=1):
        if v == 0.0:
            continue
        if runs and runs[-1][1] == j - 1 and runs[-1][2] == v:
            runs[-1] = (runs[-1][0], j, v)
        else:
            runs.append((j, j, v))
    return runs


def single_rank(n: int, k: int, j: int) -> np.ndarray:
    """P_{n,k}(m, j) for m = 1..n: the chance that sorted item m is the j-th smallest of a uniform
    k-subset. float64, length n.

    Only m = j + i, i ∈ [0, n−k], is nonzero. Along i, P obeys the ratio recurrence

        P(m+1, j) / P(m, j) = m (n−m−k+j) / ((m−j+1)(n−m)),

    so log P is one extended-precision value at the mode plus cumulative sums of small float64
    log-ratios outward from it: the largest probabilities carry ~1e-13 relative error, and the terms
    are slices of one table of log-integers (no gathers, no overflow at n = 10^6).
    """
    out = np.zeros(n)
    lf = log_factorials(n)
    li = _log_ints(n)
    width = n - k + 1
    ratio = li[j : j + width - 1] - li[n - j : k - j : -1] + li[n - k : 0 : -1] - li[1:width]
    mode = 0 if k == 1 else min(width - 1, round((j - 1) * (n - k) / (k - 1)))
    at_mode = float(
        lf[j - 1 + mode] - lf[j - 1] - lf[mode]
        + lf[n - j - mode] - lf[k - j] - lf[n - k - mode]
        - (lf[n] - lf[k] - lf[n - k])
    )
    lp = np.empty(width)
    lp[mode] = at_mode
    lp[mode + 1 :] = at_mode + np.cumsum(ratio[mode:])
    lp[:mode] = at_mode - np.cumsum(ratio[:mode][::-1])[::-1]
    out[j - 1 : j - 1 + width] = np.exp(lp)
    return out


def binomial_pmf(n: int, p: np.ndarray | float, s: np.ndarray | None = None) -> np.ndarray:
    """P(Bin(n, p) = s) = C(n, s) p^s (1 − p)^(n − s), for ``p`` of any shape and counts ``s``
    (default 0..n): shape ``p.shape + s.shape``, float64.

    Computed in log space from the extended-precision log-factorials, so large n neither overflows
    (C(n, s) > 1e308 for n > 1029) nor underflows to 0/0; p = 0 and p = 1 give exact 0/1 entries.
    """
    s = np.arange(n + 1) if s is None else np.asarray(s, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)[..., None]
    lf = log_factorials(n)
    log_c = (lf[n] - lf[s] - lf[n - s]).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(s == 0, 0.0, s * np.log(p))
        log_q = np.where(s == n, 0.0, (n - s) * np.log1p(-p))
        return np.exp(log_c + log_p + log_q)


# Largest amount of work lift() does: K' entries per single-rank vector it builds (at most K' times K; a
# run of equal weights costs two vectors however long it is). About a second at the cap.
MAX_LIFT_WORK = 100_000_000

# Up to this target K' lift() uses exact integer binomials (each probability one correctly rounded division).
_LIFT_EXACT_MAX = 64


def lift(alpha: np.ndarray, k: int, *, exact_max: int = _LIFT_EXACT_MAX) -> np.ndarray:
    """Low-first weights α (length K) of an L-statistic at K, as weights of the same statistic at K' = k.

        α'_i = Σ_{j=1..K} α_j · C(i−1, j−1) · C(K'−i, K−j) / C(K', K),   i = 1..K'

    (the chance that the i-th smallest of K' i.i.d. draws is the j-th smallest of a uniform K-subset of
    them). For every distribution E[Σ_i α'_i X_(i:K')] = E[Σ_j α_j X_(j:K)], and on every group of N >= K'
    the U-statistic with α' equals the one with α (averaging over K'-subsets and then over their
    K-subsets averages over K-subsets).

    Args:
      alpha: ``[K]`` low-first weights (``Objective.low_first``), finite.
      k: the target K' >= K.
      exact_max: up to this K' the probabilities are exact integer ratios (one rounding each); above
        it they come from :func:`contract` (log space, ~1e-13 relative).

    Returns:
      ``[K']`` float64 low-first weights; a copy of ``alpha`` when K' = K.

    Raises:
      ValueError: K' < K, or work K'·(single-rank vectors needed, at most K) above ``MAX_LIFT_WORK``.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    k0 = alpha.size
    if k < k0:
        raise ValueError(f"k: an objective at K={k0} lifts only to K' >= {k0}, got K'={k}.")
    if k == k0:
        return alpha.copy()
    if k <= exact_max:
        return _lift_exact(alpha, k)
    vectors = sum(2 if b - a + 1 >= 4 else b - a + 1 for a, b, _ in _runs(alpha))
    if k * vectors > MAX_LIFT_WORK:
        raise ValueError(
            f"k: lifting these K={k0} weights to K'={k} needs {k:_}×{vectors} = {k * vectors:_} table "
            f"entries, above the cap rankgrad._src.weights.MAX_LIFT_WORK = {MAX_LIFT_WORK:_}; mix "
            "objectives with closer K, fewer distinct rank weights, or give the weights at K' directly "
            "with rankgrad.Objective.from_weights."
        )
    return contract(k, k0, alpha)


def _lift_exact(alpha: np.ndarray, k: int) -> np.ndarray:
    k0 = alpha.size
    den = math.comb(k, k0)
    p = np.zeros((k, k0))
    for i in range(1, k + 1):
        for j in range(max(1, i - (k - k0)), min(i, k0) + 1):
            p[i - 1, j - 1] = math.comb(i - 1, j - 1) * math.comb(k - i, k0 - j) / den
    return p @ alpha


_LI: np.ndarray = np.zeros(1)


def _log_ints(n: int) -> np.ndarray:
    """log(i) for i = 0..n (float64, log 0 = −inf), grown and reused."""
    global _LI
    with _LF_LOCK:
        if _LI.size <= n:
            with np.errstate(divide="ignore"):
                _LI = np.log(np.arange(max(n + 1, 2 * _LI.size), dtype=np.float64))
        return _LI


@dataclass(frozen=True)
class RankTables:
    """Per-position weight vectors for one (n, K, α); see the module docstring. All float64 [n]."""

    n: int
    k: int
    value: np.ndarray
    inc_lo: np.ndarray
    inc_self: np.ndarray
    inc_hi: np.ndarray
    loo_lo: np.ndarray
    loo_hi: np.ndarray
    adv_lo: np.ndarray
    adv_hi: np.ndarray
    inc_mid: np.ndarray
    loo_mid: np.ndarray
    adv_mid: np.ndarray


def _freeze(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=512)
def _rank_tables(n: int, alpha_bytes: bytes) -> RankTables:
    alpha = np.frombuffer(alpha_bytes, dtype=np.float64)
    k = alpha.size
    value = contract(n, k, alpha)
    nan = np.full(n, np.nan)
    if n >= k + 1:
        inc_lo = np.zeros(n)
        inc_hi = np.zeros(n)
        loo_lo = np.zeros(n)
        loo_hi = np.zeros(n)
        inc_lo[: n - 1] = contract(n - 1, k - 1, alpha[: k - 1])
        inc_hi[1:] = contract(n - 1, k - 1, alpha[1:])
        u = contract(n - 1, k, alpha)
        loo_lo[: n - 1] = u
        loo_hi[1:] = u
        inc_self = value * (n / k)
    else:  # too small for a leave-one-out value: any use is an error, NaN makes it loud
        inc_lo = inc_self = inc_hi = loo_lo = loo_hi = nan
    return RankTables(
        n=n,
        k=k,
        value=_freeze(value),
        inc_lo=_freeze(inc_lo),
        inc_self=_freeze(np.asarray(inc_self)),
        inc_hi=_freeze(inc_hi),
        loo_lo=_freeze(loo_lo),
        loo_hi=_freeze(loo_hi),
        adv_lo=_freeze(inc_lo - loo_lo),
        adv_hi=_freeze(inc_hi - loo_hi),
        inc_mid=_freeze(inc_self - inc_lo - inc_hi),
        loo_mid=_freeze(-loo_lo - loo_hi),
        adv_mid=_freeze((inc_self - inc_lo - inc_hi) - (-loo_lo - loo_hi)),
    )


def rank_tables(n: int, alpha: np.ndarray) -> RankTables:
    """Cached tables for a group of size ``n`` and low-first weights ``alpha`` (length K <= n)."""
    alpha = np.ascontiguousarray(alpha, dtype=np.float64)
    if n < alpha.size:
        raise ValueError(f"group size {n} is smaller than K={alpha.size}.")
    return _rank_tables(int(n), alpha.tobytes())


@functools.lru_cache(maxsize=128)
def _stacked(sizes: tuple[int, ...], width: int, alpha_bytes: bytes, field: str) -> np.ndarray:
    alpha = np.frombuffer(alpha_bytes, dtype=np.float64)
    out = np.zeros((len(sizes), width))
    for row, n in enumerate(sizes):
        if n == 0:
            continue
        if n < alpha.size:
            out[row, :n] = np.nan
            continue
        out[row, :n] = getattr(_rank_tables(n, alpha_bytes), field)
    out.setflags(write=False)
    return out


def stacked_tables(sizes: tuple[int, ...], width: int, alpha: np.ndarray, field: str) -> np.ndarray:
    """Rows of ``field`` for each group size in ``sizes``, zero-padded to ``width``: [S, width].

    A size of 0 gives a zero row (a fully masked group); a size too small for the field gives NaN
    entries (an error that surfaces as NaN where no eager check can run, e.g. under ``jax.jit``).
    """
    alpha = np.ascontiguousarray(alpha, dtype=np.float64)
    return _stacked(tuple(int(s) for s in sizes), int(width), alpha.tobytes(), field)
