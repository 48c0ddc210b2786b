"""Exact regime against enumeration over all M^K draws, its identities, and its gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rankgrad
from rankgrad import objectives as O
from tests import brute
from tests.backends import to_backend, to_numpy
from tests.objective_cases import merged, missing_names, preset_specs, skipped_presets

K = 3
# Every registry preset at K (tests/objective_cases.py), then hand-picked cases: other parameters and K,
# and the edge max@1.
HAND_PICKED = ["rank:2@4", "cvar:0.5@4", "upper:0.25@4", "quantile:0.3@3", "trim:1@4", "winsor:1@4",
               "hd:0.7@3", "lmoment:3@4", "max@1"]
SPECS = merged(preset_specs(K), HAND_PICKED)
# The LR identity: every registry example (its own K), then fractional K and other hand-picked cases.
GRADIENT_SPECS = merged([p.example for p in O.PRESETS.values()],
                        ["max@4", "cvar:0.25@8", "median@5", "max@2.5", "min@0.7", "gini@4", "trim:2@7"])


def test_cases_cover_the_registry():
    """Every preset name and alias is in SPECS at K (none skipped), every preset in GRADIENT_SPECS."""
    assert skipped_presets(K) == {}
    assert missing_names([s for s in SPECS if s == "mean" or s.endswith(f"@{K}")]) == []
    assert all(p.example in GRADIENT_SPECS for p in O.PRESETS.values())


def _arms(seed: int, m: int = 4, ties: bool = False):
    rng = np.random.default_rng(seed)
    r = rng.integers(0, 3, size=m).astype(float) if ties else rng.normal(size=m)
    p = rng.dirichlet(np.ones(m))
    return r, p


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_value_and_include_one_against_enumeration(backend, spec, ties):
    obj = rankgrad.parse(spec)
    r, p = _arms(len(spec) + 17 * ties, ties=ties)
    rb, pb = to_backend(r, backend), to_backend(p, backend)
    j = brute.exact_value(r, p, obj.weights)
    q = brute.exact_include_one(r, p, obj.weights)
    np.testing.assert_allclose(to_numpy(rankgrad.exact.value(rb, pb, obj)), j, atol=1e-12)
    np.testing.assert_allclose(to_numpy(rankgrad.exact.include_one(rb, pb, obj)), q, atol=1e-12)
    a = to_numpy(rankgrad.exact.advantages(rb, pb, obj))
    np.testing.assert_allclose(a, q - j, atol=1e-12)
    assert abs(np.dot(p, a)) < 1e-12  # Σ_b p_b ā_b = 0


def test_random_weights_and_batch_axis():
    rng = np.random.default_rng(3)
    w = rng.normal(size=3)
    obj = rankgrad.Objective.from_weights(w)
    rs = rng.normal(size=(2, 5))
    ps = rng.dirichlet(np.ones(5), size=2)
    got = rankgrad.exact.value(rs, ps, obj)
    assert got.shape == (2,)
    for i in range(2):
        np.testing.assert_allclose(got[i], brute.exact_value(rs[i], ps[i], w), atol=1e-12)
    np.testing.assert_allclose(
        rankgrad.exact.include_one(rs, ps, obj)[1], brute.exact_include_one(rs[1], ps[1], w),
        atol=1e-12,
    )


def test_order_statistics_exact(backend):
    r, p = _arms(5)
    got = to_numpy(rankgrad.exact.order_statistics(to_backend(r, backend), to_backend(p, backend), 3))
    for j in range(3):
        w = np.zeros(3)
        w[j] = 1
        np.testing.assert_allclose(got[j], brute.exact_value(r, p, w), atol=1e-12)
    assert got[0] >= got[1] >= got[2]


@pytest.mark.parametrize("spec", GRADIENT_SPECS)
def test_lr_gradient_identity_matches_autograd(spec):
    """∇J_K (autograd through exact.value) = K · Σ_b p_b ā_b ∇log p_b for a softmax policy."""
    rng = np.random.default_rng(11)
    r = torch.tensor(rng.normal(size=6))
    logits = torch.tensor(rng.normal(size=6), requires_grad=True)
    obj = rankgrad.parse(spec)
    p = torch.softmax(logits, 0)
    (grad,) = torch.autograd.grad(rankgrad.exact.value(r, p, obj), logits)
    a = rankgrad.exact.advantages(r, p.detach(), obj)
    pd = p.detach()
    # ∇_logits log p_b = e_b − p  ⇒  Σ_b p_b ā_b (e_b − p) = p ⊙ ā − p (Σ p ā)
    lr = obj.k * (pd * a - pd * (pd * a).sum())
    np.testing.assert_allclose(grad.numpy(), lr.numpy(), atol=1e-10)


def test_fractional_k_finite_differences():
    """For fractional K (max/min only), the exact value's derivative matches finite differences and
    the LR identity, and max@K is increasing in K."""
    r = np.array([0.0, 0.3, 1.0, 2.0])
    theta = np.array([0.1, -0.2, 0.3, 0.0])

    def j(th, spec):
        p = np.exp(th) / np.exp(th).sum()
        return float(rankgrad.exact.value(r, p, spec))

    for spec in ("max@1.5", "max@3.7", "min@2.2"):
        fd = np.array([(j(theta + h, spec) - j(theta - h, spec)) / 2e-6
                       for h in np.eye(4) * 1e-6])
        p = np.exp(theta) / np.exp(theta).sum()
        a = rankgrad.exact.advantages(r, p, spec)
        k = float(spec.split("@")[1])
        np.testing.assert_allclose(fd, k * (p * a - p * np.dot(p, a)), atol=1e-7)
    p = np.exp(theta) / np.exp(theta).sum()
    vals = [float(rankgrad.exact.value(r, p, f"max@{k}")) for k in (1, 1.5, 2, 2.5)]
    assert np.all(np.diff(vals) > 0)
    np.testing.assert_allclose(vals[0], np.dot(r, p), atol=1e-14)
    with pytest.raises(ValueError, match="fractional K"):
        rankgrad.value(np.arange(5.0), "max@2.5")


def test_gradients_finite_at_degenerate_policy():
    """A one-hot policy (F = 0 or 1 at every arm) still has finite exact gradients."""
    for spec in ("median@5", "cvar:0.2@10", "max@3", "min@3"):
        logits = torch.tensor([30.0, -30.0, -30.0], dtype=torch.float64, requires_grad=True)
        p = torch.softmax(logits, 0)
        v = rankgrad.exact.value(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), p, spec)
        (g,) = torch.autograd.grad(v, logits)
        assert torch.isfinite(g).all()


def test_jax_grad_matches_torch():
    import jax
    import jax.numpy as jnp

    r = np.array([0.2, -1.0, 0.7, 0.7, 3.0])
    logits = np.array([0.3, 0.1, -0.4, 0.2, -1.0])
    for spec in ("cvar:0.3@6", "max@4", "hd:0.5@5"):
        gj = jax.grad(lambda th: rankgrad.exact.value(jnp.asarray(r), jax.nn.softmax(th), spec))(
            jnp.asarray(logits)
        )
        th = torch.tensor(logits, requires_grad=True)
        (gt,) = torch.autograd.grad(
            rankgrad.exact.value(torch.tensor(r), torch.softmax(th, 0), spec), th
        )
        np.testing.assert_allclose(np.asarray(gj), gt.numpy(), atol=1e-12)


def test_exact_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        rankgrad.exact.value([0.0, 1.0], [0.5, 0.6], "max@2")
    with pytest.raises(ValueError, match="same shape"):
        rankgrad.exact.value([0.0, 1.0], [1.0], "max@2")
    with pytest.raises(ValueError, match=">= 0"):
        rankgrad.exact.value([0.0, 1.0], [1.5, -0.5], "max@2")
    with pytest.raises(ValueError, match="finite"):
        rankgrad.exact.value([np.nan, 1.0], [0.5, 0.5], "max@2")
