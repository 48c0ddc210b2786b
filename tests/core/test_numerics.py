"""Large-N accuracy: float32 vs float64 at N = 10^5, K = 10^3 (centred and offset by +1000), JAX
without x64, no overflow at N = 10^6, closed forms at large N."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from fractions import Fraction

import numpy as np
import pytest

import rankgrad
from tests.backends import to_backend, to_numpy

N, K = 100_000, 1_000


@pytest.fixture(scope="module")
def big_rewards():
    return np.random.default_rng(0).normal(size=N)


@pytest.mark.parametrize("spec", [f"max@{K}", f"cvar:0.1@{K}", f"median@{K}"])
@pytest.mark.parametrize("offset,tol", [(0.0, 1e-5), (1000.0, 1e-4)])
def test_float32_matches_float64_at_large_n(backend, big_rewards, spec, offset, tol):
    y32 = (big_rewards + offset).astype(np.float32)
    ref = rankgrad.advantages(y32.astype(np.float64), spec)  # float64 from the same inputs
    got = to_numpy(rankgrad.advantages(to_backend(y32, backend, "float32"), spec))
    assert got.dtype == np.float32
    assert np.abs(got - ref).max() <= tol * np.abs(ref).max()
    np.testing.assert_allclose(ref.sum(), 0.0, atol=1e-9 * np.abs(ref).max() * N)


def test_jax_without_x64_keeps_accuracy():
    """In a fresh process with JAX's default (x64 off) float32 advantages meet the same bound."""
    code = textwrap.dedent(
        f"""
        import numpy as np, jax, jax.numpy as jnp, rankgrad
        assert not jax.config.jax_enable_x64
        y = (np.random.default_rng(0).normal(size={N}) + 1000.0).astype(np.float32)
        ref = rankgrad.advantages(y.astype(np.float64), "max@{K}")
        got = rankgrad.advantages(jnp.asarray(y), "max@{K}")
        assert got.dtype == jnp.float32, got.dtype
        err = float(np.abs(np.asarray(got) - ref).max() / np.abs(ref).max())
        v = rankgrad.exact.value(jnp.asarray([0.0, 1.0, 2.0]), jnp.asarray([0.2, 0.3, 0.5]), "cvar:0.5@8")
        v64 = rankgrad.exact.value(np.array([0.0, 1.0, 2.0]), np.array([0.2, 0.3, 0.5]), "cvar:0.5@8")
        print(err, abs(float(v) - float(v64)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    err, verr = map(float, out.stdout.split())
    assert err <= 1e-4 and verr <= 1e-6


def test_no_overflow_at_a_million():
    """y = (1..N)/N has V(max@K) = K(N+1)/(N(K+1)) exactly (Σ_m m C(m−1, K−1) = K C(N+1, K+1))."""
    n, k = 1_000_000, 10_000
    y = np.arange(1, n + 1) / n
    v = rankgrad.value(y, f"max@{k}")
    np.testing.assert_allclose(v, k * (n + 1) / (n * (k + 1)), rtol=1e-9)
    a = rankgrad.advantages(y[::-1].copy(), f"max@{k}")
    # zero-sum up to the weight tables' ~1e-12 relative accuracy at this size
    assert np.all(np.isfinite(a)) and abs(a.mean()) < 1e-11


def test_binary_closed_form_at_large_n():
    n, k, c = 100_000, 1_000, 37
    y = np.zeros(n)
    y[:c] = 1.0

    comb = math.comb  # exact integers: the reference has no rounding until the last division
    a_pos = Fraction(comb(n - c, k), comb(n - 1, k))
    a_neg = Fraction(comb(n - c - 1, k), comb(n - 1, k)) - Fraction(
        comb(n - c - 1, k - 1), comb(n - 1, k - 1)
    )
    a_pos, a_neg = float(a_pos), float(a_neg)
    a = rankgrad.advantages(y, f"max@{k}")
    np.testing.assert_allclose(a[:c], a_pos, rtol=1e-8)
    np.testing.assert_allclose(a[c:], a_neg, rtol=1e-8)


@pytest.mark.parametrize("n,k", [(12, 5), (300, 40), (20_000, 500)])
def test_run_identity_matches_per_rank_sum(n, k):
    """Runs of equal weights use a survival identity; it equals the per-rank sum."""
    from rankgrad._src.weights import contract

    rng = np.random.default_rng(n)
    beta = np.repeat(rng.normal(size=5), k // 5 + 1)[:k]  # five runs
    beta[: k // 7] = 0.0
    fast, slow = contract(n, k, beta), contract(n, k, beta, min_run=10**9)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12 * np.abs(slow).max())
