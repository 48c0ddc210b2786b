"""Unbiasedness, checked three ways against the exact gradient of J_K:

1. exact expectation of each estimator over *all* M^N outcomes of a group (no sampling error), driven
   by the claims in ``rankgrad.ESTIMATORS``;
2. Monte Carlo with a fixed seed, tolerance from the estimated standard error;
3. the pathwise (reparameterised) value on a Gaussian/log-normal policy against quadrature.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

import rankgrad


def _softmax(th: np.ndarray) -> np.ndarray:
    e = np.exp(th - th.max())
    return e / e.sum()


def _exact_grad(r: np.ndarray, logits: np.ndarray, spec: str) -> np.ndarray:
    th = torch.tensor(logits, requires_grad=True)
    v = rankgrad.exact.value(torch.tensor(r), torch.softmax(th, 0), spec)
    (g,) = torch.autograd.grad(v, th)
    return g.numpy()


def _expected_estimate(r, logits, spec, estimator, n, scale) -> np.ndarray:
    """Σ over all M^N arm tuples of P(tuple) · scale · Σ_i a_i ∇log p(x_i)."""
    p = _softmax(logits)
    m = len(r)
    tuples = np.array(list(itertools.product(range(m), repeat=n)))  # [M^N, N]
    prob = np.prod(p[tuples], axis=1)
    a = rankgrad.advantages(r[tuples], spec, estimator=estimator)  # [M^N, N], one batched call
    onehot = np.eye(m)[tuples]  # [T, N, M]
    score = onehot - p  # ∇_logits log p(x_i)
    per_tuple = np.einsum("tn,tnm->tm", a, score)
    return scale * (prob[:, None] * per_tuple).sum(0)


R_REAL = np.array([0.0, 1.0, 0.4, -0.5])
R_BINARY = np.array([0.0, 1.0, 0.0, 0.0])
LOGITS = np.array([0.2, -0.6, 0.4, 0.1])
LOGITS_2 = np.array([-1.0, 1.2, 0.0, 0.5])

CASES = [
    ("ordergrad", "max@3", R_REAL), ("ordergrad", "cvar:0.5@4", R_REAL),
    ("ordergrad", "median@3", R_REAL), ("ordergrad", "gini@2", R_REAL),
    ("ordergrad", "mean", R_REAL), ("ordergrad", "trim:1@4", R_REAL),
    ("rloo", "mean", R_REAL), ("dr_grpo", "mean", R_REAL), ("grpo", "mean", R_REAL),
    ("pkpo_s", "max@3", R_REAL), ("pkpo_sloo", "max@3", R_REAL), ("pkpo_sloo1", "max@3", R_REAL),
    ("pkpo_s", "cvar:0.5@4", R_REAL), ("pkpo_sloo", "quantile:0.5@3", R_REAL),
    ("chen_passk", "max@3", R_BINARY), ("pkpo_sloo1", "max@2", R_BINARY),
]


@pytest.mark.parametrize("estimator,spec,r", CASES, ids=[f"{e}-{s}" for e, s, _ in CASES])
def test_registry_claims_by_exact_expectation(estimator, spec, r):
    info = rankgrad.ESTIMATORS[estimator]
    n = 5
    k = rankgrad.parse(spec).k
    truth = _exact_grad(r, LOGITS, spec)
    if info.unbiased:
        got = _expected_estimate(r, LOGITS, spec, estimator, n, info.gradient_scale(n, k))
        np.testing.assert_allclose(got, truth, rtol=0, atol=1e-12)
    else:
        # Biased: no policy-independent scale c(N, K) makes c·E[ĝ] equal ∇J. Fit the best scale at
        # two policies: for an unbiased-up-to-scale estimator the two fits would be equal.
        scales = []
        for logits in (LOGITS, LOGITS_2):
            got = _expected_estimate(r, logits, spec, estimator, n, 1.0)
            tr = _exact_grad(r, logits, spec)
            scales.append(np.dot(got, tr) / np.dot(got, got))
            residual = np.linalg.norm(scales[-1] * got - tr)
        assert abs(scales[0] - scales[1]) > 0.01 * abs(scales[0]) or residual > 1e-3


def test_chen_times_sigma_is_unbiased_up_to_scale():
    """Chen et al.'s advantage times its σ is q_i − V, whose gradient is unbiased with scale
    K/(N−K): the σ division alone makes the published form biased."""
    n, spec = 5, "max@3"
    k = 3
    p = _softmax(LOGITS)
    tuples = np.array(list(itertools.product(range(4), repeat=n)))
    y = R_BINARY[tuples]
    q = rankgrad.include_one(y, spec)
    v = rankgrad.value(y, spec)[:, None]
    chen = rankgrad.advantages(y, spec, estimator="chen_passk")
    sigma = np.sqrt(v * (1 - v))
    np.testing.assert_allclose(chen * sigma, np.where(sigma > 0, q - v, 0.0), atol=1e-12)
    score = np.eye(4)[tuples] - p
    g = (np.prod(p[tuples], 1)[:, None] * np.einsum("tn,tnm->tm", q - v, score)).sum(0)
    np.testing.assert_allclose(k / (n - k) * g, _exact_grad(R_BINARY, LOGITS, spec), atol=1e-12)


def test_centring_claims():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(64, 8))
    yb = rng.integers(0, 2, size=(64, 8)).astype(float)
    for name, info in rankgrad.ESTIMATORS.items():
        spec = "mean" if info.objectives == "mean" else "max@3"
        data = yb if name == "chen_passk" else y
        sums = rankgrad.advantages(data, spec, estimator=name).sum(-1)
        if info.centred:
            np.testing.assert_allclose(sums, 0.0, atol=1e-12, err_msg=name)
        else:
            assert np.abs(sums).max() > 1e-3, name


@pytest.mark.parametrize("spec", ["max@4", "cvar:0.25@4", "median@5", "rank:2@3"])
def test_monte_carlo_lr_converges_to_exact_gradient(spec):
    """Mean of T = 20,000 batch LR estimates (K/N)·Σ a_i ∇log p(x_i) on a 6-arm softmax bandit is
    within 4.5 standard errors of the autograd gradient of the exact J_K (seed 2026)."""
    rng = np.random.default_rng(2026)
    r = np.array([0.0, 0.2, 0.5, 0.9, 1.0, -0.3])
    logits = np.array([0.5, 0.1, -0.2, -1.0, -1.5, 0.3])
    p = _softmax(logits)
    n, t = 8, 20_000
    k = rankgrad.parse(spec).k
    x = rng.choice(6, size=(t, n), p=p)
    a = rankgrad.advantages(r[x], spec)
    per_group = (k / n) * np.einsum("tn,tnm->tm", a, np.eye(6)[x] - p)
    mean = per_group.mean(0)
    se = per_group.std(0, ddof=1) / np.sqrt(t)
    truth = _exact_grad(r, logits, spec)
    assert np.all(np.abs(mean - truth) <= 4.5 * se + 1e-12), (mean, truth, se)
    # and it is not trivially satisfied: the signal is many standard errors away from zero
    assert np.max(np.abs(truth) / se) > 10


def _lognormal_truth(mu: float, sigma: float, w_top_first: np.ndarray):
    """J and ∇_(μ,σ) J for Y = exp(μ + σZ), by quadrature over the order-statistic densities."""
    k = len(w_top_first)
    z = np.linspace(-12, 12, 200_001)
    cdf, pdf = stats.norm.cdf(z), stats.norm.pdf(z)
    y = np.exp(mu + sigma * z)
    j = dmu = dsig = 0.0
    for r in range(1, k + 1):  # r = 1 is the top, i.e. low-first index k − r + 1
        lo = k - r + 1
        dens = stats.beta.pdf(cdf, lo, k - lo + 1) * pdf
        j += w_top_first[r - 1] * np.trapezoid(y * dens, z)
        dsig += w_top_first[r - 1] * np.trapezoid(z * y * dens, z)
    dmu = j
    return j, np.array([dmu, dsig])


@pytest.mark.parametrize("spec", ["max@4", "cvar:0.5@4", "median@3"])
def test_pathwise_value_gradient_torch(spec):
    """E[∇ value(exp(μ + σε))] over T groups of N matches the quadrature gradient (4.5 SE)."""
    obj = rankgrad.parse(spec)
    mu, sigma = 0.1, 0.5
    truth_j, truth_g = _lognormal_truth(mu, sigma, obj.weights)
    gen = torch.Generator().manual_seed(7)
    t, n = 20_000, 6
    eps = torch.randn(t, n, generator=gen, dtype=torch.float64)
    # one (μ, σ) copy per group: one backward pass gives every group's own gradient
    th = torch.tensor([mu, sigma], dtype=torch.float64).repeat(t, 1).requires_grad_(True)
    v = rankgrad.value(torch.exp(th[:, :1] + th[:, 1:] * eps), obj)  # [T]
    (per,) = torch.autograd.grad(v.sum(), th)
    per = per.numpy()
    se = per.std(0, ddof=1) / np.sqrt(t)
    assert np.all(np.abs(per.mean(0) - truth_g) <= 4.5 * se), (per.mean(0), truth_g, se)
    assert np.max(np.abs(truth_g) / se) > 10
    vd = v.detach()
    assert abs(vd.mean().item() - truth_j) <= 4.5 * vd.std().item() / np.sqrt(t)


def test_pathwise_value_gradient_jax():
    import jax
    import jax.numpy as jnp

    obj = rankgrad.parse("cvar:0.25@4")
    mu, sigma = -0.2, 0.8
    _, truth_g = _lognormal_truth(mu, sigma, obj.weights)
    t = 20_000
    eps = jnp.asarray(np.random.default_rng(5).normal(size=(t, 5)))
    th = jnp.tile(jnp.array([mu, sigma]), (t, 1))  # one copy per group → per-group gradients
    per = jax.grad(lambda p: rankgrad.value(jnp.exp(p[:, :1] + p[:, 1:] * eps), obj).sum())(th)
    per = np.asarray(per)
    se = per.std(0, ddof=1) / np.sqrt(per.shape[0])
    assert np.all(np.abs(per.mean(0) - truth_g) <= 4.5 * se), (per.mean(0), truth_g, se)


def test_pathwise_ties_share_gradient(backend):
    """At tied rewards the pathwise weights are averaged over the tie block: tied samples get equal
    gradients, and the total equals the untied total."""
    import jax
    import jax.numpy as jnp

    y = np.array([[0.3, 1.0, 1.0, -0.2, 1.0, 0.5]])
    if backend == "torch":
        t = torch.tensor(y, requires_grad=True)
        (g,) = torch.autograd.grad(rankgrad.value(t, "max@3").sum(), t)
        g = g.numpy()[0]
    elif backend == "jax":
        g = np.asarray(jax.grad(lambda a: rankgrad.value(a, "max@3").sum())(jnp.asarray(y)))[0]
    else:
        pytest.skip("numpy has no autograd")
    assert g[1] == g[2] == g[4]
    # sorted position m is the max of a 3-subset w.p. C(m−1, 2)/C(6, 3): 0, 0, 1, 3, 6, 10 (/20);
    # the tied block {4, 5, 6} shares (3 + 6 + 10)/3
    np.testing.assert_allclose(g, np.array([0, 19 / 3, 19 / 3, 0, 19 / 3, 1]) / 20, atol=1e-12)
