"""Objective-aware prompt sampling: scores against closed forms, the sampler's bookkeeping, and the
simulated-pool headline (seed 0 of the example's --quick mode, where the margin is 23%)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import rankgrad
from rankgrad.sampling import PromptSampler, prompt_scores


def test_scores_closed_forms():
    p = np.linspace(0, 1, 11)
    np.testing.assert_allclose(prompt_scores(p, "variance"), p * (1 - p))
    np.testing.assert_allclose(prompt_scores(p, "nondegenerate", group_size=8), 1 - p**8 - (1 - p) ** 8)
    np.testing.assert_allclose(prompt_scores(p, "gradient", objective="max@4"),
                               4 * (1 - p) ** 3 * p * (1 - p), atol=1e-15)
    np.testing.assert_allclose(prompt_scores(p, "gradient", objective="mean"), p * (1 - p), atol=1e-15)


def test_binomial_pmf_is_exact_and_holds_at_large_n():
    """The one binomial pmf (weights.binomial_pmf): C(n, s) p^s (1−p)^(n−s) in exact rationals for
    small n; at n = 5000 (C(n, s) overflows float64 beyond n = 1029) it sums to 1 and matches the
    normal approximation's location; p = 0 and 1 give exact 0/1 rows."""
    from fractions import Fraction
    from math import comb

    from rankgrad._src.weights import binomial_pmf

    for n in (0, 1, 7, 30):
        for p in (Fraction(1, 3), Fraction(7, 8)):
            want = [float(comb(n, s) * p**s * (1 - p) ** (n - s)) for s in range(n + 1)]
            np.testing.assert_allclose(binomial_pmf(n, float(p)), want, rtol=1e-12, atol=1e-300)
    big = binomial_pmf(5000, np.array([0.3, 0.9]))
    assert big.shape == (2, 5001) and np.all(np.isfinite(big))
    np.testing.assert_allclose(big.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(big @ np.arange(5001), [1500.0, 4500.0], rtol=1e-12)
    np.testing.assert_array_equal(binomial_pmf(5, np.array([0.0, 1.0])),
                                  [[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]])


def test_gradient_score_at_large_k_is_the_closed_form():
    """max@K's slope is K(1−p)^(K−1) for any K (the old C(K−1, s) products overflowed past K = 1029)."""
    p = np.array([0.0, 1e-4, 0.001, 0.5, 1.0])
    for k in (1030, 5000, 100_000):
        want = k * (1 - p) ** (k - 1) * p * (1 - p)
        np.testing.assert_allclose(prompt_scores(p, "gradient", objective=f"max@{k}"), want, rtol=1e-9)


@pytest.mark.parametrize("spec", ["max@4", "cvar:0.5@4", "median@5", "rank:2@3"])
def test_gradient_score_is_the_exact_slope(spec):
    """|dJ/dp|·p(1−p) with J from rankgrad.exact on a Bernoulli(p) reward (finite differences)."""
    p = np.array([0.1, 0.35, 0.8])
    h = 1e-6
    j = [float(rankgrad.exact.value([0.0, 1.0], [1 - q, q], spec)) for q in np.r_[p + h, p - h]]
    slope = (np.array(j[:3]) - np.array(j[3:])) / (2 * h)
    np.testing.assert_allclose(prompt_scores(p, "gradient", objective=spec),
                               np.abs(slope) * p * (1 - p), rtol=1e-6)


def test_sampler_bookkeeping():
    s = PromptSampler(3, score="variance", prior=(1.0, 1.0), decay=0.5, uniform=0.0, seed=0)
    s.update([0, 0, 1], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(s.pass_rates, [2 / 4, 2 / 3, 1 / 2])
    s.update([0], [1.0])  # prompt 0's old counts halve first; the others keep theirs
    np.testing.assert_allclose(s.trials, [2.0, 1.0, 0.0])
    np.testing.assert_allclose(s.successes, [1.5, 1.0, 0.0])
    probs = s.probabilities()
    assert abs(probs.sum() - 1) < 1e-12 and np.all(probs > 0)
    draws = s.sample(20_000)
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 20_000, probs, atol=0.015)
    with pytest.raises(ValueError, match="score: expected one of"):
        PromptSampler(3, score="entropy")
    with pytest.raises(ValueError, match="rewards: expected pass rates"):
        s.update([0], [2.0])


def test_torch_sampler():
    s = PromptSampler(5, seed=1)
    sampler = s.torch_sampler(batch_prompts=4, num_batches=3)
    idx = list(iter(sampler))
    assert len(idx) == len(sampler) == 12 and all(0 <= i < 5 for i in idx)


def test_simulated_pool_gradient_score_needs_fewer_rollouts():
    path = Path(__file__).resolve().parents[2] / "examples" / "prompt_sampling.py"
    spec = importlib.util.spec_from_file_location("prompt_sampling", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--quick", "--seed", "0"])
    assert res["gradient"] < 0.9 * res["uniform"] and res["gradient"] < 0.9 * res["variance"], res
