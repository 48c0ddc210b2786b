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
autograd gives finite gradients at F = 0 and 1; cost O(K²) per point). max@K and min@K use closed
forms, valid for any real K > 0: max@K has G = F^K, H₀ = 0, H₁ = F^(K−1); min@K has
G = 1 − (1−F)^K, H₀ = 1 − (1−F)^(K−1), H₁ = 1.

Summing by parts (H(F_0) = 0, H(F_M = 1) = A_K = Σα, gaps d_t = r_(t+1) − r_(t) >= 0):

    J_K = r_(M)·A_K − Σ_{t<M} G(F_t)·d_t,   q̄_b = r_(M)·A_K − Σ_{t<M} H_δ(F_t)·d_t,
    ā_b = Σ_{t<M} (G(F_t) − H_δ(F_t))·d_t.

Boundaries. F_t is summed from the bottom and U_t = 1 − F_t = Σ_{s>t} p_(s) from the top (each is
accurate where it is small: F for max@K, U for min@K and the Bernstein form); both are clamped into
[0, 1] with F_M = 1 and U_M = 0 exactly, so sums that overshoot 1 by an ulp change nothing
(gradients are those of the sums). A fractional power x^a (x = F or U) is 0 at x = 0 for a > 0 and
has derivative 0 there; for a < 1 the true derivative is infinite, and holding that term constant
gives the exact limit of the gradient with respect to logits (a softmax arm with p_b → 0 contributes
p_b·∂J/∂p_b → 0). So ``value`` and its torch/jax gradients are finite for every K > 0,
zero-probability arms included. For K < 1, H₁ = F^(K−1) (max) and H₀ = 1 − U^(K−1) (min) are
infinite at the boundary: the include-one value of a zero-probability arm below all the mass (max@K)
or above it (min@K) is −inf or +inf, its exact limit as p_b → 0; every other entry is finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from rankgrad._src.errors import InputTypeError
from rankgrad._src.objectives import Objective, ObjectiveLike, as_objective, rank
from rankgrad._src.ops import Ops, get_ops, is_host
from rankgrad._src.types import ArrayLike

Array = Any

__all__ = ["value", "advantages", "include_one", "order_statistics"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """The softmax policy of ``logits`` over the last axis, float64 on the host (max-shifted: no
    overflow). The one implementation for the bandits of ``rankgrad check`` and the experiments."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _backend_of(*xs: Any) -> Ops:
    for x in xs:
        if not is_host(x):
            return get_ops(x)
    return get_ops(np.zeros(0))


def _convert(ops: Ops, x: Any, like: Any | None, arg: str) -> Array:
    """``x`` as a float array of ``ops``' backend: ``like``'s dtype and device, or float64 on the host
    when ``like`` is None (both arguments host data)."""
    if is_host(x):
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise InputTypeError(
                f"{arg}: expected a numeric array of real numbers (float, int or bool), got dtype "
                f"{a.dtype}."
            )
        return a.astype(np.float64) if like is None else ops.asarray(a, like)
    if "complex" in str(x.dtype):
        raise InputTypeError(f"{arg}: expected real numbers, got dtype {x.dtype}; pass x.real or abs(x).")
    return ops.float_like(x) if like is None else ops.asarray(x, like)


def _prepare(r: Any, p: Any) -> tuple[Ops, Array, Array, tuple]:
    ops = _backend_of(r, p)
    p_dtype = str(p.dtype if hasattr(p, "dtype") else np.asarray(p).dtype)  # before float64 conversion
    first = p if not is_host(p) else (r if not is_host(r) else None)
    like = None if first is None else ops.float_like(first)
    r = _convert(ops, r, like, "r")
    p = _convert(ops, p, r if like is None else like, "p")
    if tuple(r.shape) != tuple(p.shape) or len(r.shape) == 0 or r.shape[-1] == 0:
        raise ValueError(
            f"r, p: expected arm rewards and probabilities of the same shape [..., M] with M >= 1, "
            f"got {tuple(r.shape)} and {tuple(p.shape)}."
        )
    if not (ops.is_traced(r) or ops.is_traced(p)):
        rn, pn = ops.to_host(r), ops.to_host(p)
        if not np.all(np.isfinite(rn)):
            raise ValueError("r: arm rewards must be finite (no NaN or inf).")
        if not np.all(np.isfinite(pn)) or np.any(pn < 0):
            raise ValueError("p: probabilities must be finite and >= 0.")
        tot = pn.sum(-1)
        # a softmax in the caller's precision sums to 1 within a few of its ulps
        atol = 1e-2 if "float16" in p_dtype else 1e-5 if "float32" in p_dtype else 1e-9
        if not np.allclose(tot, 1.0, rtol=0, atol=atol):
            raise ValueError(
                f"p: probabilities must sum to 1 over the last axis (got sums in "
                f"[{tot.min():.6g}, {tot.max():.6g}]); normalise p, e.g. softmax(logits)."
            )
    shape = tuple(r.shape)
    m = shape[-1]
    return ops, r.reshape(-1, m), p.reshape(-1, m), shape


def _bernstein(ops: Ops, coeffs: np.ndarray, f: Array, u: Array) -> Array:
    """Σ_i coeffs_i C(d, i) f^i u^{d−i} (d = len − 1, u = 1 − f) by de Casteljau, elementwise."""
    b = [f * 0 + float(c) for c in coeffs]
    for _ in range(len(coeffs) - 1):
        b = [u * b[i] + f * b[i + 1] for i in range(len(b) - 1)]
    return b[0]


def _pow01(ops: Ops, x: Array, a: float) -> Array:
    """x^a elementwise for x in [0, 1] and real a, finite in value and gradient at x = 0.

    Integer a >= 0 is a plain power. Otherwise x = 0 gives 0 (a > 0) or +inf (a < 0), as a constant:
    its gradient there is 0 (the power is never taken at 0, so no inf·0 in the backward pass).
    """
    if a == 0:
        return x * 0 + 1.0
    if a > 0 and float(a).is_integer():
        return x ** int(a)
    pos = x > 0
    y = ops.where(pos, x, 1.0) ** a
    return ops.where(pos, y, 0.0 if a > 0 else math.inf)


def _polys(obj: Objective) -> tuple[Callable, Callable, Callable]:
    """(G, H0, H1) as functions of (F, U = 1 − F) for the objective (see the module docstring)."""
    k = obj.k
    kind = obj.extreme
    if kind == "max":
        return (
            lambda ops, f, u: _pow01(ops, f, k),
            lambda ops, f, u: f * 0,
            lambda ops, f, u: _pow01(ops, f, k - 1),
        )
    if kind == "min":
        return (
            lambda ops, f, u: 1 - _pow01(ops, u, k),
            lambda ops, f, u: 1 - _pow01(ops, u, k - 1),
            lambda ops, f, u: f * 0 + 1.0,
        )
    acum = np.concatenate([[0.0], np.cumsum(obj.low_first)])
    return (
        lambda ops, f, u: _bernstein(ops, acum, f, u),
        lambda ops, f, u: _bernstein(ops, acum[:-1], f, u),
        lambda ops, f, u: _bernstein(ops, acum[1:], f, u),
    )


def _clean(ops: Ops, x: Array, edge: Array, value: float) -> Array:
    """``x`` clamped into [0, 1] and set to ``value`` where ``edge``, with x's gradient. Only rounding
    is corrected, so c is near x and x + (c − x) is exactly c (Sterbenz's lemma)."""
    c = ops.where(edge, value, ops.where(x > 1, 1.0, ops.where(x < 0, 0.0, x)))
    return x + ops.stop_gradient(c - x)


def _sorted_arms(ops: Ops, r: Array, p: Array) -> tuple[Array, Array, Array, Array]:
    """Sorted rewards r_(t), gaps d_t = r_(t+1) − r_(t) (0 for the last), F_t and U_t = 1 − F_t, [G, M].

    F_t = Σ_{s<=t} p_(s) and U_t = Σ_{s>t} p_(s) are summed separately (each accurate where it is
    small: F near 0 for max@K, U near 0 for min@K), clamped into [0, 1], with F_M = 1 and U_M = 0.
    """
    rs, idx = ops.sort(r)
    ps = ops.take(p, idx)
    m = r.shape[-1]
    last = ops.arange(m, like=rs)[None, :] == m - 1
    f = _clean(ops, ops.cumsum(ps), last, 1.0)
    u = _clean(ops, ops.shift_left(ops.rev_cumsum(ps)), last, 0.0)
    gap = ops.where(last, 0.0, ops.shift_left(rs) - rs)
    return rs, gap, f, u


def _h_terms(ops: Ops, obj: Objective, r2: Array, rs: Array, gap: Array, f: Array, u: Array) -> Array:
    """H_δ(F_t)·d_t for every arm b and sorted position t, [G, M_b, M_t] (δ = 1[r_b <= r_(t)])."""
    _, h0_fn, h1_fn = _polys(obj)
    delta = r2[:, :, None] <= rs[:, None, :]
    h = ops.where(delta, h1_fn(ops, f, u)[:, None, :], h0_fn(ops, f, u)[:, None, :])
    if obj.weights is None and obj.k < 1:
        # H is ±inf at a boundary F; a tie (d_t = 0) contributes nothing, not inf·0
        h = ops.where(gap[:, None, :] > 0, h, 0.0)
    return h * gap[:, None, :]


def value(r: ArrayLike, p: ArrayLike, objective: ObjectiveLike) -> Array:
    """Exact J_K = E[Σ_j w_j R_(j:K)] for K i.i.d. draws from arms (r, p).

    Args:
      r: ``[..., M]`` arm rewards (ties allowed).
      p: ``[..., M]`` probabilities summing to 1 over the last axis.
      objective: preset string or Objective; ``max@K`` / ``min@K`` accept fractional K.

    Returns:
      ``[...]``: J_K, in the backend of ``r``/``p`` (torch or jax if either is), differentiable in
      both r and p — its autograd gradient is the ground truth for every Monte-Carlo test. J is a
      function on the simplex: of a gradient with respect to ``p`` itself only directions that keep
      Σp = 1 are meaningful (differentiate through logits, e.g. ``softmax``, to get the policy
      gradient). Values and gradients stay finite at F ∈ {0, 1} (see the module docstring).

    Example:
      >>> import rankgrad
      >>> float(rankgrad.exact.value([0.0, 1.0], [0.5, 0.5], "max@2"))  # 1 − 0.5²
      0.75
    """
    obj = as_objective(objective)
    ops, r2, p2, shape = _prepare(r, p)
    return _value(ops, obj, *_sorted_arms(ops, r2, p2)).reshape(shape[:-1])


def _value(ops: Ops, obj: Objective, rs: Array, gap: Array, f: Array, u: Array) -> Array:
    g_fn, _, _ = _polys(obj)
    return rs[:, -1] * obj.total_weight - ops.sum(g_fn(ops, f, u) * gap)


def include_one(r: ArrayLike, p: ArrayLike, objective: ObjectiveLike) -> Array:
    """Exact include-one values q̄_b = E[L-statistic of K draws | one of them is arm b], ``[..., M]``."""
    obj = as_objective(objective)
    ops, r2, p2, shape = _prepare(r, p)
    return _include_one(ops, obj, r2, p2).reshape(shape)


def _include_one(ops: Ops, obj: Objective, r2: Array, p2: Array) -> Array:
    rs, gap, f, u = _sorted_arms(ops, r2, p2)
    return rs[:, -1:] * obj.total_weight - ops.sum(_h_terms(ops, obj, r2, rs, gap, f, u))


def advantages(r: ArrayLike, p: ArrayLike, objective: ObjectiveLike) -> Array:
    """Exact advantages ā_b = q̄_b − J_K per arm, ``[..., M]``.

    Σ_b p_b ā_b = 0 and ∇J_K = K · Σ_b p_b ā_b ∇log p_b (the expectation that the batch LR
    estimator (K/N)·Σ_i a_i ∇log p(x_i) matches).
    """
    obj = as_objective(objective)
    ops, r2, p2, shape = _prepare(r, p)
    g_fn, _, _ = _polys(obj)
    rs, gap, f, u = _sorted_arms(ops, r2, p2)
    g_terms = (g_fn(ops, f, u) * gap)[:, None, :]
    return ops.sum(g_terms - _h_terms(ops, obj, r2, rs, gap, f, u)).reshape(shape)


def order_statistics(r: ArrayLike, p: ArrayLike, k: int) -> Array:
    """Exact E[R_(j:K)] for the K order statistics, **top-first** (entry 0 is E[max]): ``[..., K]``."""
    cols = [value(r, p, rank(j, k)) for j in range(1, k + 1)]
    return get_ops(cols[0]).stack(cols)
