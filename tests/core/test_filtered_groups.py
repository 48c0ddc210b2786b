"""Filtered, partial and dropped groups (docs/filtering.md), by exact expectation over every outcome.

* A DAPO-style filter that drops constant groups leaves the update unchanged: ordergrad, the mean
  family, pkpo_sloo1 and gopo give those groups exactly 0.
* Rollouts lost at random (timeouts, crashes) independently of their reward leave the per-group
  estimator unbiased: with ``small_groups="zero"`` the expected update is P(N' >= K + 1) · ∇J_K, a
  prompt-independent factor times the true gradient.
* Losses that depend on the reward (e.g. wrong answers time out more often) bias it: the expected
  update is no longer a multiple of ∇J_K.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import rankgrad
from rankgrad.integrations import group_advantages

R = np.array([0.0, 1.0, 2.5])  # arm rewards
THETA = np.array([0.3, -0.2, 0.1])
N, OBJ = 4, "max@2"
K = 2


def _softmax(t: np.ndarray) -> np.ndarray:
    e = np.exp(t - t.max())
    return e / e.sum()


def _expected_update(keep_prob) -> np.ndarray:
    """E[Σ_i (K/N') a_i ∇θ log p(x_i)] over every draw of N arms and every keep mask, where sample i is
    kept with probability keep_prob(reward of i); groups with N' < K + 1 give 0 (small_groups="zero")."""
    p = _softmax(THETA)
    total = np.zeros_like(THETA)
    for xs in itertools.product(range(len(R)), repeat=N):
        px = np.prod(p[list(xs)])
        r = R[list(xs)]
        for keep in itertools.product([False, True], repeat=N):
            keep = np.array(keep)
            kp = np.array([keep_prob(v) for v in r])
            pm = np.prod(np.where(keep, kp, 1 - kp))
            if pm == 0:
                continue
            n_kept = int(keep.sum())
            if n_kept < K + 1:
                continue  # small_groups="zero": no gradient from this prompt
            a = group_advantages(r, np.zeros(N, dtype=int), OBJ, mask=keep, small_groups="zero")
            score = np.eye(len(R))[list(xs)] - p  # ∇θ log p(x_i) for a softmax policy
            total += px * pm * (K / n_kept) * (a[:, None] * score).sum(0)
    return total


def _true_gradient() -> np.ndarray:
    torch = pytest.importorskip("torch")
    theta = torch.tensor(THETA, requires_grad=True)
    rankgrad.exact.value(torch.tensor(R), torch.softmax(theta, 0), OBJ).backward()
    return theta.grad.numpy()


def test_rollouts_lost_at_random_keep_the_update_unbiased_up_to_a_constant():
    q = 0.7  # each rollout survives with probability 0.7, whatever its reward
    grad = _true_gradient()
    p_enough = sum(
        np.prod([q if k else 1 - q for k in keep])
        for keep in itertools.product([False, True], repeat=N)
        if sum(keep) >= K + 1
    )
    np.testing.assert_allclose(_expected_update(lambda r: q), p_enough * grad, rtol=1e-10, atol=1e-13)


def test_no_loss_is_exactly_the_gradient():
    np.testing.assert_allclose(_expected_update(lambda r: 1.0), _true_gradient(), rtol=1e-10, atol=1e-13)


def test_reward_dependent_losses_bias_the_direction():
    """Wrong answers (reward 0) lost half the time: the expected update is not parallel to ∇J_K."""
    got, grad = _expected_update(lambda r: 0.5 if r == 0 else 1.0), _true_gradient()
    cos = got @ grad / (np.linalg.norm(got) * np.linalg.norm(grad))
    assert cos < 1 - 1e-3


@pytest.mark.parametrize("estimator", ["ordergrad", "rloo", "dr_grpo", "pkpo_sloo1", "gopo"])
def test_dropping_constant_groups_leaves_every_advantage_unchanged(estimator):
    """A DAPO-style dynamic-sampling filter removes groups whose rewards are all equal: they had
    advantage exactly 0, and the kept rows' advantages do not depend on the other groups."""
    rng = np.random.default_rng(7)
    groups = [rng.integers(0, 2, 6).astype(float) for _ in range(5)]
    groups += [np.ones(6), np.zeros(6), np.full(6, 0.5)]  # constant: what the filter removes
    scores = np.concatenate(groups)
    uids = np.repeat(np.arange(len(groups)), 6)
    obj = "mean" if estimator in ("rloo", "dr_grpo") else "max@3"
    full = group_advantages(scores, uids, obj, estimator=estimator)
    constant = np.array([np.all(g == g[0]) for g in groups])[uids]
    assert np.all(full[constant] == 0.0)
    kept = group_advantages(scores[~constant], uids[~constant], obj, estimator=estimator)
    np.testing.assert_array_equal(kept, full[~constant])
