"""rankgrad's batch estimators against the dense naive reference in ``benchmarks/naive.py``.

The naive reference is itself checked against brute-force enumeration (``tests/brute.py``) on small
groups, then used at sizes enumeration cannot reach (N up to 2000, K up to 200), with and without ties.
Tolerance: max |rankgrad − naive| <= 1e-10 · max(1, max |a|), float64.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import rankgrad
from benchmarks.naive import (
    naive_advantages,
    naive_advantages_rows,
    naive_include_one,
    naive_leave_one_out,
    naive_value,
)
from tests import brute
from tests.backends import to_backend, to_numpy

RTOL = 1e-10


def _tol(ref: np.ndarray) -> float:
    return RTOL * max(1.0, float(np.max(np.abs(ref))))


def _rewards(rng: np.random.Generator, n: int, ties: bool) -> np.ndarray:
    y = rng.normal(size=n)
    return np.round(y * 2) / 2 if ties else y


def _random_weights(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.normal(size=k)


@pytest.mark.parametrize("n,k", [(5, 2), (7, 3), (8, 4), (6, 1), (9, 5)])
@pytest.mark.parametrize("ties", [False, True])
def test_naive_matches_brute_force(n: int, k: int, ties: bool) -> None:
    rng = np.random.default_rng(100 * n + k + ties)
    y = np.round(rng.normal(size=n)) if ties else rng.normal(size=n)
    w = _random_weights(rng, k)
    q, v = brute.include_one(y, w), brute.leave_one_out(y, w)
    np.testing.assert_allclose(naive_include_one(y, w), q, rtol=0, atol=1e-13)
    np.testing.assert_allclose(naive_leave_one_out(y, w), v, rtol=0, atol=1e-13)
    np.testing.assert_allclose(naive_advantages(y, w), q - v, rtol=0, atol=1e-13)
    assert abs(naive_value(y, w) - brute.batch_value(y, w)) <= 1e-13


CASES = [
    ("max@4", 16),
    ("max@200", 2000),
    ("cvar:0.2@200", 2000),
    ("median@51", 300),
    ("trim:10@100", 1000),
    ("mean", 50),
    ("random@7", 40),
    ("random@60", 500),
]


def _objective(spec: str, rng: np.random.Generator) -> rankgrad.Objective:
    if spec.startswith("random@"):
        return rankgrad.Objective.from_weights(_random_weights(rng, int(spec.split("@")[1])))
    return rankgrad.parse(spec)


@pytest.mark.parametrize("spec,n", CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_advantages_and_value_match_naive(spec: str, n: int, ties: bool) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{spec}/{n}/{ties}".encode()))
    obj = _objective(spec, rng)
    y = _rewards(rng, n, ties)
    ref = naive_advantages(y, obj.weights)
    got = rankgrad.advantages(y, obj)
    assert np.max(np.abs(got - ref)) <= _tol(ref)
    v_ref = naive_value(y, obj.weights)
    assert abs(float(rankgrad.value(y, obj)) - v_ref) <= _tol(np.array([v_ref]))
    if ties:  # tied rewards share one advantage
        for val in np.unique(y):
            block = got[y == val]
            assert np.ptp(block) <= _tol(ref)


@pytest.mark.parametrize("spec", ["max@8", "cvar:0.25@8", "random@5"])
def test_batched_groups_match_naive(spec: str) -> None:
    rng = np.random.default_rng(7)
    obj = _objective(spec, rng)
    y = np.round(rng.normal(size=(64, 33)) * 3) / 3  # many ties
    ref = naive_advantages_rows(y, obj.weights)
    got = rankgrad.advantages(y, obj)
    assert np.max(np.abs(got - ref)) <= _tol(ref)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backends_match_naive(backend: str) -> None:
    rng = np.random.default_rng(11)
    obj = rankgrad.parse("cvar:0.1@100")
    y = _rewards(rng, 1500, ties=True).reshape(1, -1)
    ref = naive_advantages_rows(y, obj.weights)
    got = to_numpy(rankgrad.advantages(to_backend(y, backend), obj))
    assert got.dtype == np.float64
    assert np.max(np.abs(got - ref)) <= _tol(ref)


def test_ragged_flat_matches_naive() -> None:
    rng = np.random.default_rng(3)
    sizes = rng.integers(6, 40, size=30)
    ids = np.repeat(np.arange(sizes.size), sizes)
    perm = rng.permutation(ids.size)
    ids = ids[perm]
    y = _rewards(rng, ids.size, ties=True)
    w = rankgrad.parse("max@5").weights
    got = rankgrad.advantages(y, "max@5", group_ids=ids)
    for g in range(sizes.size):
        sel = ids == g
        ref = naive_advantages(y[sel], w)
        assert np.max(np.abs(got[sel] - ref)) <= _tol(ref)
