"""A deliberately simple dense reference for the batch L-statistic estimators (tests and benchmarks only).

Written from ``docs/math.md`` alone; nothing here imports rankgrad. For one group of N rewards sorted
y_1 <= … <= y_N and top-first weights w (low-first α = w reversed, length K):

    P_{n,k}(m, j) = C(m−1, j−1) · C(n−m, k−j) / C(n, k)          (dense [n, k] table)
    V   = Σ_m y_m · (P_{N,K} α)(m)
    q_t = Σ_{m<t} y_m A(m) + y_t B(t) + Σ_{m>t} y_m C(m),   A = P_{N−1,K−1} α_{1..K−1},
          B = (N/K) P_{N,K} α,   C(m) = (P_{N−1,K−1} α_{2..K})(m−1)
    v_t = Σ_{m<t} y_m U(m) + Σ_{m>t} y_m U(m−1),            U = P_{N−1,K} α
    a_t = q_t − v_t, averaged over each block of tied rewards, then put back in the caller's order.

The tables are plain dense matrix–vector products. Only the columns j with α_j ≠ 0 are formed (a zero
column contributes nothing), in blocks of columns so memory stays bounded; at N <= a few thousand that
is the whole N×K table. Binomials come from log-factorials evaluated in x87 extended precision by the
Stirling series (exact factorials below 20), so each probability carries ~1e-13 relative error even
at N = 10^6 (float64 ``gammaln`` would give ~1e-9 there, too coarse for a 1e-10 check).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "log_factorial",
    "rank_prob_table",
    "contract_dense",
    "NaiveTables",
    "naive_tables",
    "naive_value",
    "naive_include_one",
    "naive_leave_one_out",
    "naive_advantages",
    "naive_advantages_rows",
]

_LD = np.longdouble
_SMALL = 20
_SMALL_LF = np.array([np.log(_LD(math.factorial(i))) for i in range(_SMALL)], dtype=_LD)
_HALF_LOG_2PI = _LD("0.918938533204672741780329736405617639861397473637783412817")
# Stirling-series coefficients B_{2r} / (2r (2r − 1)) for ln Γ(z), r = 1..7.
_STIRLING = tuple(
    _LD(num) / _LD(den)
    for num, den in ((1, 12), (-1, 360), (1, 1260), (-1, 1680), (1, 1188), (-691, 360360), (1, 156))
)
_BLOCK_ENTRIES = 1 << 20  # table entries formed at once (columns per block = this // n)


def log_factorial(n: np.ndarray) -> np.ndarray:
    """log(n!) elementwise for integers n >= 0, in extended precision (``np.longdouble``)."""
    n = np.asarray(n, dtype=np.int64)
    out = np.empty(n.shape, dtype=_LD)
    small = n < _SMALL
    out[small] = _SMALL_LF[n[small]]
    z = n[~small].astype(_LD) + 1  # log(n!) = ln Γ(n + 1)
    inv, inv2 = 1 / z, 1 / (z * z)
    series = np.zeros_like(z)
    for coef in reversed(_STIRLING):
        series = series * inv2 + coef
    out[~small] = (z - _LD(0.5)) * np.log(z) - z + _HALF_LOG_2PI + series * inv
    return out


@functools.lru_cache(maxsize=4)
def _log_factorial_table(n: int) -> np.ndarray:
    """log(i!) for i = 0..n (each entry evaluated directly, no accumulated sums)."""
    return log_factorial(np.arange(n + 1))


def rank_prob_table(n: int, k: int, cols: np.ndarray | None = None) -> np.ndarray:
    """Dense P_{n,k}(m, j) for m = 1..n (rows) and j in ``cols`` (1-based ranks, low → high; default
    1..k): float64 [n, len(cols)]. Entries outside the support are exactly 0.

    log P = log C(m−1, j−1) + log C(n−m, k−j) − log C(n, k), each binomial from log-factorials, summed
    in extended precision before the exponential.
    """
    cols = np.arange(1, k + 1) if cols is None else np.asarray(cols, dtype=np.int64)
    if k == 0 or n < k:
        return np.zeros((n, cols.size))
    lf = _log_factorial_table(n)
    m = np.arange(1, n + 1)[:, None]
    j = cols[None, :]
    below, above = m - j, (n - m) - (k - j)  # C(m−1, j−1) needs below >= 0, C(n−m, k−j) above >= 0
    ok = (below >= 0) & (above >= 0)
    per_row = lf[m - 1] + lf[n - m]
    per_col = lf[j - 1] + lf[k - j] + (lf[n] - lf[k] - lf[n - k])
    logp = per_row - lf[np.maximum(below, 0)] - lf[np.maximum(above, 0)] - per_col
    return np.where(ok, np.exp(np.where(ok, logp, 0.0).astype(np.float64)), 0.0)


def contract_dense(n: int, k: int, alpha_low_first: np.ndarray) -> np.ndarray:
    """Σ_j α_j P_{n,k}(m, j), m = 1..n: the dense table times α (zero columns skipped). [n]."""
    alpha = np.asarray(alpha_low_first, dtype=np.float64)
    out = np.zeros(n)
    support = np.flatnonzero(alpha) + 1
    block = max(1, _BLOCK_ENTRIES // max(n, 1))
    for start in range(0, support.size, block):
        cols = support[start : start + block]
        out += rank_prob_table(n, k, cols) @ alpha[cols - 1]
    return out


@dataclass(frozen=True)
class NaiveTables:
    """Per-position weights for one (N, w), sorted positions 1..N stored at index 0..N−1.

    ``p`` is P^α_{N,K}; ``a_lo``, ``b_self``, ``c_hi`` are A, B, C of the include-one value (A[N−1] and
    C[0] are never read and are 0); ``u`` is U of the leave-one-out value, length N−1 (None if K = N).
    """

    n: int
    k: int
    p: np.ndarray
    a_lo: np.ndarray
    b_self: np.ndarray
    c_hi: np.ndarray
    u: np.ndarray | None


@functools.lru_cache(maxsize=64)
def _tables_cached(n: int, w_bytes: bytes) -> NaiveTables:
    alpha = np.frombuffer(w_bytes, dtype=np.float64)[::-1]  # low-first
    k = alpha.size
    p = contract_dense(n, k, alpha)
    a_lo, c_hi = np.zeros(n), np.zeros(n)
    u = None
    if n > k:
        a_lo[: n - 1] = contract_dense(n - 1, k - 1, alpha[: k - 1])
        # C(m) = Σ_{j>=2} α_j P_{N−1,K−1}(m−1, j−1): the same table, ranks shifted by one.
        c_hi[1:] = contract_dense(n - 1, k - 1, alpha[1:])
        u = contract_dense(n - 1, k, alpha)
    return NaiveTables(n=n, k=k, p=p, a_lo=a_lo, b_self=p * (n / k), c_hi=c_hi, u=u)


def naive_tables(n: int, weights_top_first: np.ndarray) -> NaiveTables:
    """The dense-reference tables for a group of size ``n`` (cached per (n, weights))."""
    w = np.ascontiguousarray(weights_top_first, dtype=np.float64).reshape(-1)
    if not 1 <= w.size <= n:
        raise ValueError(f"need 1 <= K <= N, got K={w.size}, N={n}")
    return _tables_cached(int(n), w.tobytes())


def _prefix_excl(x: np.ndarray) -> np.ndarray:
    """out[t] = Σ_{m<t} x[m]."""
    out = np.zeros_like(x)
    out[1:] = np.cumsum(x)[:-1]
    return out


def _suffix_excl(x: np.ndarray) -> np.ndarray:
    """out[t] = Σ_{m>t} x[m], by a reversed cumulative sum (no total − prefix)."""
    out = np.zeros_like(x)
    out[:-1] = np.cumsum(x[::-1])[::-1][1:]
    return out


def _tie_average(ys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Replace each value by the mean over its block of equal sorted rewards."""
    block = np.concatenate([[0], np.cumsum(ys[1:] != ys[:-1])])
    return (np.bincount(block, vals) / np.bincount(block))[block]


def _sorted_group(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    order = np.argsort(y, kind="stable")
    return y[order], order


def _unsort(sorted_vals: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty_like(sorted_vals)
    out[order] = sorted_vals
    return out


def _q_sorted(ys: np.ndarray, t: NaiveTables) -> np.ndarray:
    return _prefix_excl(ys * t.a_lo) + ys * t.b_self + _suffix_excl(ys * t.c_hi)


def _v_sorted(ys: np.ndarray, t: NaiveTables) -> np.ndarray:
    assert t.u is not None
    lo = np.append(t.u, 0.0)  # U(m) for m = 1..N−1
    hi = np.insert(t.u, 0, 0.0)  # U(m − 1) for m = 2..N
    return _prefix_excl(ys * lo) + _suffix_excl(ys * hi)


def _check_loo(n: int, k: int) -> None:
    if k >= n:
        raise ValueError(f"include-one / leave-one-out values need K <= N − 1, got K={k}, N={n}")


def naive_value(y: np.ndarray, weights_top_first: np.ndarray) -> float:
    """V = mean over all K-subsets of Σ_j w_j · (j-th largest of the subset), for one group."""
    ys, _ = _sorted_group(y)
    return float(ys @ naive_tables(ys.size, weights_top_first).p)


def naive_include_one(y: np.ndarray, weights_top_first: np.ndarray) -> np.ndarray:
    """q_i: mean L over the K-subsets containing i (tie-averaged, caller's order)."""
    ys, order = _sorted_group(y)
    t = naive_tables(ys.size, weights_top_first)
    _check_loo(t.n, t.k)
    return _unsort(_tie_average(ys, _q_sorted(ys, t)), order)


def naive_leave_one_out(y: np.ndarray, weights_top_first: np.ndarray) -> np.ndarray:
    """v_i: the batch value of the group without i (tie-averaged, caller's order)."""
    ys, order = _sorted_group(y)
    t = naive_tables(ys.size, weights_top_first)
    _check_loo(t.n, t.k)
    return _unsort(_tie_average(ys, _v_sorted(ys, t)), order)


def naive_advantages(y: np.ndarray, weights_top_first: np.ndarray) -> np.ndarray:
    """a_i = q_i − v_i for one group (float64, caller's order; tied rewards share the block mean)."""
    ys, order = _sorted_group(y)
    t = naive_tables(ys.size, weights_top_first)
    _check_loo(t.n, t.k)
    return _unsort(_tie_average(ys, _q_sorted(ys, t) - _v_sorted(ys, t)), order)


def naive_advantages_rows(rewards: np.ndarray, weights_top_first: np.ndarray) -> np.ndarray:
    """:func:`naive_advantages` for every row of ``[G, N]`` rewards (a plain loop over groups)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    return np.stack([naive_advantages(row, weights_top_first) for row in rewards])
