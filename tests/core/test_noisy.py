"""Noise-corrected L-statistics for 0/1 rewards from a verifier with false-positive rate ρ0 and
false-negative rate ρ1: exact expectations over every outcome of a small group (arm draws *and*
verifier flips), against autograd gradients of the exact clean objective."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import rankgrad

CLEAN = np.array([1.0, 0.0, 0.0])  # arm 0 is correct
LOGITS = np.array([-0.7, 0.4, 0.1])
N = 4


def _softmax(th):
    e = np.exp(th - th.max())
    return e / e.sum()


def _outcomes(rho0, rho1, logits=LOGITS):
    """All N-tuples of (arm, observed reward) with their probabilities: [T, N] arms, obs, prob."""
    p = _softmax(logits)
    states = [(b, o) for b in range(3) for o in (0, 1)]
    sp = np.array([p[b] * ((1 - rho1) if CLEAN[b] else rho0) ** o
                   * (1 - ((1 - rho1) if CLEAN[b] else rho0)) ** (1 - o) for b, o in states])
    idx = np.array(list(itertools.product(range(len(states)), repeat=N)))
    arms = np.array([s[0] for s in states])[idx]
    obs = np.array([s[1] for s in states], dtype=float)[idx]
    return arms, obs, np.prod(sp[idx], axis=1), p


def _grad(spec, observed_rates=None, logits=LOGITS):
    th = torch.tensor(logits, requires_grad=True)
    p = torch.softmax(th, 0)
    if observed_rates is None:
        v = rankgrad.exact.value(torch.tensor(CLEAN), p, spec)
    else:
        rho0, rho1 = observed_rates
        pt = rho0 + (1 - rho0 - rho1) * p[0]
        atoms = torch.tensor([0.0, 1.0], dtype=torch.float64)
        v = rankgrad.exact.value(atoms, torch.stack([1 - pt, pt]), spec)
    (g,) = torch.autograd.grad(v, th)
    return g.numpy()


def _expected_lr(adv, arms, prob, p, k):
    score = np.eye(3)[arms] - p
    return (k / N) * (prob[:, None] * np.einsum("tn,tnm->tm", adv, score)).sum(0)


@pytest.mark.parametrize("spec", ["max@3", "max@2", "mean", "median@3", "cvar:0.5@2"])
@pytest.mark.parametrize("rates", [(0.1, 0.2), (0.0, 0.3), (0.25, 0.05)])
def test_corrected_estimators_are_unbiased_for_the_clean_objective(spec, rates):
    rho0, rho1 = rates
    arms, obs, prob, p = _outcomes(rho0, rho1)
    assert abs(prob.sum() - 1) < 1e-12
    k = rankgrad.parse(spec).k
    a = rankgrad.noisy.advantages(obs, spec, rho0=rho0, rho1=rho1)
    np.testing.assert_allclose(_expected_lr(a, arms, prob, p, k), _grad(spec), atol=1e-12)
    v = rankgrad.noisy.value(obs, spec, rho0=rho0, rho1=rho1)
    clean_j = float(rankgrad.exact.value(CLEAN, p, spec))
    np.testing.assert_allclose((prob * v).sum(), clean_j, atol=1e-12)
    # the naive estimator (ranking observed rewards) is unbiased for the *noisy* objective instead
    naive = rankgrad.advantages(obs, spec)
    np.testing.assert_allclose(_expected_lr(naive, arms, prob, p, k), _grad(spec, rates), atol=1e-12)


def test_naive_pass_at_k_is_off_by_the_predicted_factor():
    rho0, rho1, k = 0.1, 0.2, 3
    p = _softmax(LOGITS)[0]
    pt = rho0 + (1 - rho0 - rho1) * p
    factor = (1 - rho0 - rho1) * ((1 - pt) / (1 - p)) ** (k - 1)
    np.testing.assert_allclose(_grad(f"max@{k}", (rho0, rho1)), factor * _grad(f"max@{k}"), atol=1e-12)
    assert abs(factor - 1) > 0.1


def test_mean_is_the_backward_correction_and_noise_free_is_identity():
    r = np.array([[1.0, 0, 0, 1, 0, 1, 0, 0]])
    np.testing.assert_allclose(rankgrad.noisy.advantages(r, "mean", rho0=0.2, rho1=0.1),
                               rankgrad.advantages((r - 0.2) / 0.7, "mean"), atol=1e-12)
    obj, offset = rankgrad.noisy.corrected_objective("max@4", 0.0, 0.0)
    np.testing.assert_allclose(obj.weights, rankgrad.parse("max@4").weights, atol=1e-12)
    assert offset == 0.0


def test_errors():
    with pytest.raises(ValueError, match="binary 0/1"):
        rankgrad.noisy.advantages(np.array([0.5, 1.0, 0.0]), "max@2", rho0=0.1, rho1=0.1)
    with pytest.raises(ValueError, match="rho0 \\+ rho1 < 1"):
        rankgrad.noisy.advantages(np.array([0.0, 1.0, 0.0]), "max@2", rho0=0.6, rho1=0.5)


def test_through_the_main_entry_point(backend):
    from tests.backends import to_backend, to_numpy

    r = np.array([[1.0, 0, 0, 1, 0, 1, 0, 0], [0.0, 0, 0, 1, 0, 0, 0, 0]])
    got = to_numpy(rankgrad.advantages(to_backend(r, backend), "max@3", noise=(0.1, 0.2)))
    np.testing.assert_allclose(got, rankgrad.noisy.advantages(r, "max@3", rho0=0.1, rho1=0.2), atol=1e-12)
    with pytest.raises(ValueError, match="only estimator='ordergrad'"):
        rankgrad.advantages(r, "mean", noise=(0.1, 0.1), estimator="rloo")


@pytest.mark.parametrize("rho0,rho1,p", [(0.0, 0.3, 0.4), (0.05, 0.15, 0.2), (0.1, 0.4, 0.7)])
def test_rho1_from_rechecked_negatives(rho0, rho1, p):
    """Exact in the population limit; within 3 standard errors on a simulated sample (seed 0)."""
    pt = rho0 + (1 - rho0 - rho1) * p
    f = rho1 * p / (1 - pt)
    np.testing.assert_allclose(rankgrad.noisy.estimate_rho1(pt, 10**9, round(f * 10**9), rho0=rho0),
                               rho1, atol=1e-6)
    rng = np.random.default_rng(0)
    truth = rng.random(200_000) < p
    obs = np.where(truth, rng.random(truth.size) >= rho1, rng.random(truth.size) < rho0)
    fails = np.flatnonzero(~obs)
    sample = rng.choice(fails, size=20_000, replace=False)
    est = rankgrad.noisy.estimate_rho1(obs.mean(), sample.size, int(truth[sample].sum()), rho0=rho0)
    se = np.sqrt(f * (1 - f) / sample.size) * rho1 / max(f, 1e-9)  # delta method, leading term
    assert abs(est - rho1) <= 3 * se + 0.005


def _second_moment(adv, arms, prob, p, k):
    score = np.eye(3)[arms] - p
    g = (k / N) * np.einsum("tn,tnm->tm", adv, score)
    return (prob[:, None] * g * g).sum(0)


@pytest.mark.parametrize("logits", [LOGITS, np.array([1.2, -0.3, 0.5])])
@pytest.mark.parametrize("rates", [(0.0, 0.3), (0.1, 0.2), (0.25, 0.05)])
def test_forward_correction_keeps_the_clean_direction_and_needs_only_rho1(logits, rates):
    """E[forward update] = (1 − ρ0 − ρ1)/(1 − ρ1) · ∇p exactly (over every draw and flip), for every
    policy: the clean gradient itself when ρ0 = 0. The backward correction is exactly unbiased."""
    rho0, rho1 = rates
    arms, obs, prob, p = _outcomes(rho0, rho1, logits)
    clean = _grad("mean", logits=logits)
    fwd = rankgrad.noisy.forward_advantages(obs, rho1=rho1)
    np.testing.assert_allclose(_expected_lr(fwd, arms, prob, p, 1),
                               (1 - rho0 - rho1) / (1 - rho1) * clean, atol=1e-12)
    np.testing.assert_allclose(fwd, rankgrad.advantages(obs, "mean", noise=(None, rho1)), atol=1e-15)
    bwd = rankgrad.advantages(rankgrad.noisy.backward_rewards(obs, rho0=rho0, rho1=rho1), "mean")
    np.testing.assert_allclose(_expected_lr(bwd, arms, prob, p, 1), clean, atol=1e-12)
    np.testing.assert_allclose(bwd, rankgrad.noisy.advantages(obs, "mean", rho0=rho0, rho1=rho1), atol=1e-12)
    if rho0 > 0:  # the price of exactness: the backward update has the larger second moment
        assert np.all(_second_moment(bwd, arms, prob, p, 1) > _second_moment(fwd, arms, prob, p, 1))


def test_backward_rewards_are_unbiased_per_label():
    rho0, rho1 = 0.1, 0.25
    r_pass, r_fail = rankgrad.noisy.backward_rewards(np.array([1.0, 0.0]), rho0=rho0, rho1=rho1)
    assert abs((1 - rho1) * r_pass + rho1 * r_fail - 1.0) < 1e-15  # true pass
    assert abs(rho0 * r_pass + (1 - rho0) * r_fail) < 1e-15  # true fail
    t = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float32)
    out = rankgrad.noisy.backward_rewards(t, rho0=rho0, rho1=rho1)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32


def test_forward_correction_errors():
    r = np.array([[1.0, 0, 0, 1, 0, 1, 0, 0]])
    with pytest.raises(ValueError, match="forward correction .* mean only"):
        rankgrad.advantages(r, "max@4", noise=(None, 0.2))
    with pytest.raises(ValueError, match="rho1: expected"):
        rankgrad.noisy.forward_advantages(r, rho1=1.0)
    with pytest.raises(ValueError, match="binary 0/1"):
        rankgrad.noisy.forward_advantages(r * 0.5, rho1=0.1)
    with pytest.raises(ValueError, match="noise: expected \\(rho0, rho1\\)"):
        rankgrad.advantages(r, "mean", noise=0.2)
    with pytest.raises(ValueError, match="binary 0/1"):
        rankgrad.noisy.backward_rewards(r * 0.5, rho0=0.1, rho1=0.1)


def test_forward_through_the_main_entry_point(backend):
    from tests.backends import to_backend, to_numpy

    r = np.array([1.0, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0])
    ids = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    got = to_numpy(rankgrad.advantages(to_backend(r, backend), "mean", group_ids=ids, noise=(None, 0.3)))
    np.testing.assert_allclose(got, rankgrad.advantages(r, "mean", group_ids=ids) / 0.7, atol=1e-6)


def test_value_through_the_main_entry_point(backend):
    from tests.backends import to_backend, to_numpy

    r = np.array([[1.0, 0, 0, 1, 0, 1, 0, 0], [0.0, 0, 0, 1, 0, 0, 0, 0]])
    got = to_numpy(rankgrad.value(to_backend(r, backend), "max@3", noise=(0.1, 0.2)))
    np.testing.assert_allclose(got, rankgrad.noisy.value(r, "max@3", rho0=0.1, rho1=0.2), atol=1e-6)
    with pytest.raises(ValueError, match="needs the false-positive rate"):
        rankgrad.value(r, "mean", noise=(None, 0.2))


@pytest.mark.parametrize("rates", [(0.6, 0.5), (-0.1, 0.2), (0.1, float("nan")), ("x", 0.1), (0.1, "x")])
def test_one_rate_checker_names_the_argument(rates):
    """noise=(rho0, rho1) and rho0=, rho1= go through one checker: the same rule in the same words,
    only the argument named first differs."""
    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    with pytest.raises(ValueError) as via_noise:
        rankgrad.advantages(y, "mean", noise=rates)
    with pytest.raises(ValueError) as via_rates:
        rankgrad.noisy.advantages(y, "mean", rho0=rates[0], rho1=rates[1])
    assert type(via_noise.value) is type(via_rates.value)
    a, b = str(via_noise.value), str(via_rates.value)
    assert a.startswith("noise: ") and not b.startswith("noise")
    assert _rule(a) == _rule(b)


def _rule(msg: str) -> str:
    """What an error message says is expected (between "expected" and ", got")."""
    return msg.split("expected", 1)[1].split(", got")[0]
