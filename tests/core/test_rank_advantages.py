"""Rank (CDF) advantages, GOPO-style but tie-correct: identities from the issue, brute force."""

from __future__ import annotations

import numpy as np
import pytest

import rankgrad
from tests.backends import to_backend, to_numpy


def _midrank_brute(y: np.ndarray) -> np.ndarray:
    n = len(y)
    return np.array([2 / (n - 1) * sum(np.sign(y[i] - y[j]) for j in range(n) if j != i)
                     for i in range(n)])


def test_midrank_form_against_definition(backend):
    rng = np.random.default_rng(0)
    for ties in (False, True):
        y = rng.integers(0, 3, size=(5, 9)).astype(float) if ties else rng.normal(size=(5, 9))
        got = to_numpy(rankgrad.advantages(to_backend(y, backend), "mean", estimator="gopo"))
        np.testing.assert_allclose(got, np.stack([_midrank_brute(r) for r in y]), atol=1e-12)


def test_binary_is_twice_rloo_and_constant_is_zero(backend):
    y = np.array([[1.0, 0, 0, 1, 1, 0, 0, 0], [1.0] * 8, [0.0] * 8])
    got = to_numpy(rankgrad.advantages(to_backend(y, backend), "mean", estimator="gopo"))
    rloo = to_numpy(rankgrad.advantages(to_backend(y, backend), "mean", estimator="rloo"))
    np.testing.assert_allclose(got, 2 * rloo, atol=1e-12)
    assert np.all(got[1:] == 0.0)


@pytest.mark.parametrize("spec", ["mean", "max@3", "cvar:0.25@4"])
def test_invariant_to_monotone_transforms(spec):
    rng = np.random.default_rng(1)
    y = np.round(rng.normal(size=(6, 10)), 1)
    base = rankgrad.advantages(y, spec, estimator="gopo")
    for f in (np.exp, lambda t: 5 * t**3 + 2, np.arctan):
        np.testing.assert_allclose(rankgrad.advantages(f(y), spec, estimator="gopo"), base, atol=1e-12)


def test_l_statistic_of_the_midrank_cdf():
    """With a non-mean objective, gopo = ordergrad applied to u_i = (1 + Σ_j sign(r_i − r_j)/(N−1))/2."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, size=(4, 7)).astype(float)
    u = np.stack([0.5 + 0.25 * _midrank_brute(r) for r in y])
    for spec in ("max@3", "cvar:0.5@4", "median@3"):
        np.testing.assert_allclose(rankgrad.advantages(y, spec, estimator="gopo"),
                                   rankgrad.advantages(u, spec), atol=1e-12)


def test_masked_and_ragged():
    y = np.array([[0.5, 0.1, 0.9, 0.0, 0.0], [0.2, 0.2, 0.3, 0.7, 0.1]])
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    got = rankgrad.advantages(y, "mean", mask=mask, estimator="midrank")
    np.testing.assert_allclose(got[0, :3], _midrank_brute(y[0, :3]), atol=1e-12)
    assert np.all(got[0, 3:] == 0)
    np.testing.assert_allclose(got[1], _midrank_brute(y[1]), atol=1e-12)
