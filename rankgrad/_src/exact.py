"""Exact regime: a known discrete reward distribution (arms with rewards r_b, probabilities p_b).

K draws with replacement. Sort arms by reward, F_t = Σ_{s<=t} p_(s) (F_0 = 0). With α low-first and
A_i = Σ_{j<=i} α_j (A_0 = 0),

    P(R_(j:K) <= r_(t)) = P(Bin(K, F_t) >= j)   ⇒   Σ_j α_j P(R_(j:K) <= r_(t)) = G(F_t),
    G(F) = E[A_{Bin(K, F)}] = Σ_i A_i C(K, i) F^i (1−F)^{K−i}          (a Bernstein polynomial)
    J_K  = Σ_t r_(t) [G(F_t) − G(F_{t−1})].

Include-one (one draw fixed to arm b, δ = 1[r_b <= r_(t)]): Σ_j α_j P(R_(j:K) <= r_(t) | b) =
H_δ(F_t) = E[A_{min(Bin(K−1, F_t) + δ, K)}], so q̄_b = Σ_t r_(t)[H(F_t) − H(F_{t−1})], and the exact
advantage is ā_b = q̄_b − J_K with Σ_b p_b ā_b = 0 and ∇J_K = K · E_{b∼p}[ā_b ∇log p_b].

Bernstein polynomials are evaluated by de Casteljau's algorithm (stable and smooth on [0, 1], so
autograd gives finite gradients at F = 0 and 1; cost O(K²) per point). max@K and min@K use the
closed forms F^K and 1 − (1−F)^K, valid for any real K > 0 (fractional K).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rankgrad._src.objectives import Objective, ObjectiveLike, as_objective, rank
from rankgrad._src.ops import Ops, get_ops, is_jax, is_torch

Array = Any

__all__ = ["value", "advantages", "include_one", "order_statistics"]


def _backend_of(*xs: Any) -> Ops:
    for x in xs:
        if is_torch(x) or is_jax(x):
            return get_ops(x)
    return get_ops(np.zeros(0))


def _convert(ops: Ops, x: Any, like: Any | None, arg: str) -> Array:
    if not (is_torch(x) or is_jax(x)):
        a = np.asarray(x)
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"{arg}: expected a numeric array, got dtype {a.dtype}.")
        x = a if ops.name != "numpy" or like is not None else a.astype(np.float64)
    return ops.convert(x, like)


def _prepare(r: Any, p: Any) -> tuple[Ops, Array, Array, tuple]:
    ops = _backend_of(r, p)
    first = p if (is_torch(p) or is_jax(p)) else (r if (is_torch(r) or is_jax(r)) else None)
    like = None if first is None else ops.float_like(first)
    r = _convert(ops, r, like, "r")
    p = _convert(ops, p, r if like is None else like, "p")
    if tuple(r.shape) != tuple(p.shape) or len(r.shape) == 0 or r.shape[-1] == 0:
        raise ValueError(
            f"r, p: expected arm rewards and probabilities of the same shape [..., M] with M >= 1, "
            f"got {tuple(r.shape)} and {tuple(p.shape)}."
        )
    if not (ops.is_traced(r) or ops.is_traced(p)):
        rn, pn = ops.to_numpy(r), ops.to_numpy(p)
        if not np.all(np.isfinite(rn)):
            raise ValueError("r: arm rewards must be finite (no NaN or inf).")
        if not np.all(np.isfinite(pn)) or np.any(pn < 0):
            raise ValueError("p: probabilities must be finite and >= 0.")
        tot = pn.sum(-1)
        if not np.allclose(tot, 1.0, rtol=0, atol=1e-5 if pn.dtype == np.float32 else 1e-9):
            raise ValueError(
                f"p: probabilities must sum to 1 over the last axis (got sums in "
                f"[{tot.min():.6g}, {tot.max():.6g}]); normalise p, e.g. softmax(logits)."
            )
    shape = tuple(r.shape)
    m = shape[-1]
    return ops, r.reshape(-1, m), p.reshape(-1, m), shape


def _bernstein(ops: Ops, coeffs: np.ndarray, f: Array) -> Array:
    """Σ_i coeffs_i C(d, i) f^i (1−f)^{d−i} (d = len − 1) by de Casteljau, elementwise in f."""
    b = [f * 0 + float(c) for c in coeffs]
    for _ in range(len(coeffs) - 1):
        b = [(1 - f) * b[i] + f * b[i + 1] for i in range(len(b) - 1)]
    return b[0]


def _polys(obj: Objective) -> tuple[Callable, Callable, Callable]:
    """(G, H0, H1) as functions of F for the objective (see the module docstring)."""
    k = obj.k
    kind = obj.extreme
    if kind == "max":
        return (lambda ops, f: f**k, lambda ops, f: f * 0, lambda ops, f: f ** (k - 1))
    if kind == "min":
        return (
            lambda ops, f: 1 - (1 - f) ** k,
            lambda ops, f: 1 - (1 - f) ** (k - 1),
            lambda ops, f: f * 0 + 1.0,
        )
    acum = np.concatenate([[0.0], np.cumsum(obj.low_first)])
    return (
        lambda ops, f: _bernstein(ops, acum, f),
        lambda ops, f: _bernstein(ops, acum[:-1], f),
        lambda ops, f: _bernstein(ops, acum[1:], f),
    )


def _sorted_arms(ops: Ops, r: Array, p: Array) -> tuple[Array, Array, Array, Array, Array]:
    rs, idx = ops.sort(r)
    ps = ops.take(p, idx)
    f = ops.cumsum(ps)
    m = r.shape[-1]
    c = rs[:, (m - 1) // 2 : (m - 1) // 2 + 1]
    return rs, rs - c, c, f, ops.shift_right(f)


def value(r: Any, p: Any, objective: ObjectiveLike) -> Array:
    """Exact J_K = E[Σ_j w_j R_(j:K)] for K i.i.d. draws from arms (r, p).

    Args:
      r: ``[..., M]`` arm rewards (ties allowed).
      p: ``[..., M]`` probabilities summing to 1 over the last axis.
      objective: preset string or Objective; ``max@K`` / ``min@K`` accept fractional K.

    Returns:
      ``[...]``: J_K, in the backend of ``r``/``p`` (torch or jax if either is), differentiable in
      both r and p — its autograd gradient is the ground truth for every Monte-Carlo test.

    Example:
      >>> import rankgrad
      >>> float(rankgrad.exact.value([0.0, 1.0], [0.5, 0.5], "max@2"))  # 1 − 0.5²
      0.75
    """
    obj = as_objective(objective)
    ops, r2, p2, shape = _prepare(r, p)
    g_fn, _, _ = _polys(obj)
    _, rc, c, f, fprev = _sorted_arms(ops, r2, p2)
    j = ops.sum(rc * (g_fn(ops, f) - g_fn(ops, fprev))) + c[:, 0] * obj.total_weight
    return j.reshape(shape[:-1])


def include_one(r: Any, p: Any, objective: ObjectiveLike) -> Array:
    """Exact include-one values q̄_b = E[L-statistic of K draws | one of them is arm b], ``[..., M]``."""
    obj = as_objective(objective)
    ops, r2, p2, shape = _prepare(r, p)
    return _include_one(ops, obj, r2, p2).reshape(shape)


def _include_one(ops: Ops, obj: Objective, r2: Array, p2: Array) -> Array:
    _, h0_fn, h1_fn = _polys(obj)
    rs, rc, c, f, fprev = _sorted_arms(ops, r2, p2)
    h0, h1 = h0_fn(ops, f), h1_fn(ops, f)  # [G, M_t]
    h0p, h1p = ops.shift_right(h0), ops.shift_right(h1)  # at F_{t−1}; 0 at t = 0
    delta = r2[:, :, None] <= rs[:, None, :]  # [G, M_b, M_t]
    rs_prev = ops.shift_right(rs)
    pos = ops.arange(rs.shape[-1], like=rs)[None, None, :]
    delta_prev = (r2[:, :, None] <= rs_prev[:, None, :]) & (pos > 0)
    h = ops.where(delta, h1[:, None, :], h0[:, None, :])
    hp = ops.where(delta_prev, h1p[:, None, :], h0p[:, None, :])
    return ops.sum(rc[:, None, :] * (h - hp)) + c * obj.total_weight


def advantages(r: Any, p: Any, objective: ObjectiveLike) -> Array:
    """Exact advantages ā_b = q̄_b − J_K per arm, ``[..., M]``.

    Σ_b p_b ā_b = 0 and ∇J_K = K · Σ_b p_b ā_b ∇log p_b (the expectation that the batch LR
    estimator (K/N)·Σ_i a_i ∇log p(x_i) matches).
    """
    obj = as_objective(objective)
    ops, r2, p2, shape = _prepare(r, p)
    g_fn, _, _ = _polys(obj)
    _, rc, c, f, fprev = _sorted_arms(ops, r2, p2)
    j = ops.sum(rc * (g_fn(ops, f) - g_fn(ops, fprev)))[:, None] + c * obj.total_weight
    return (_include_one(ops, obj, r2, p2) - j).reshape(shape)


def order_statistics(r: Any, p: Any, k: int) -> Array:
    """Exact E[R_(j:K)] for the K order statistics, **top-first** (entry 0 is E[max]): ``[..., K]``."""
    cols = [value(r, p, rank(j, k)) for j in range(1, k + 1)]
    return get_ops(cols[0]).stack(cols)
