"""Every batch quantity against explicit enumeration over all K-subsets (N <= 9), on every backend,
for every preset and random weights, with and without ties."""

from __future__ import annotations

import dataclasses
import types
import zlib

import numpy as np
import pytest

import rankgrad
from rankgrad import objectives as O
from tests import brute
from tests.backends import to_backend, to_numpy
from tests.objective_cases import merged, missing_names, preset_specs, skipped_presets

KS = (3, 4)
# Hand-picked parameters beside the registry's examples (tests/objective_cases.py), for every K in KS.
HAND_PICKED = (
    "upper:0.5@{k}",
    "cvar:0.5@{k}",
    "quantile:0.3@{k}",
    "hd:0.3@{k}",
    "lmoment:3@{k}",
)
SPECS = merged(*(preset_specs(k) + [t.format(k=k) for t in HAND_PICKED] for k in KS))


def _cases():
    rng = np.random.default_rng(1234)
    cases = [(spec, None) for spec in SPECS]
    for k in (1, 2, 3, 5):
        cases.append((f"weights@{k}", rng.normal(size=k)))
    return cases


def test_cases_cover_the_registry():
    """Every preset name and alias is tested at every K in KS (none skipped for want of a parameter)."""
    assert missing_names(SPECS) == []
    for k in KS:
        assert skipped_presets(k) == {}
        assert missing_names([s for s in SPECS if s.endswith(f"@{k}")]) == []


def test_preset_specs_keep_the_parameter_valid_at_small_k():
    """Hand-derived from the ranges: trim/winsor need 2m < K, rank/top/bottom/lmoment need r, m <= K,
    gini needs K >= 2; the example's parameter is kept where valid, else the nearest valid one."""
    at2, at1 = preset_specs(2), preset_specs(1)
    for spec in ("trim:0@2", "winsor:0@2", "rank:2@2", "top:2@2", "lmoment:2@2", "gini@2", "var:0.9@2"):
        assert spec in at2
    for spec in ("trim:0@1", "rank:1@1", "top:1@1", "bottom:1@1", "lmoment:1@1", "mean", "pass@1"):
        assert spec in at1
    assert skipped_presets(2) == {}
    assert list(skipped_presets(1)) == ["gini"] and "K >= 2" in skipped_presets(1)["gini"]
    assert missing_names(at1) == ["gini"]


def test_a_preset_new_to_the_registry_is_reported(monkeypatch):
    """A registry entry the cases do not spell is missing from them (and skipped if it cannot be built)."""
    extra = dataclasses.replace(O.PRESETS["gini"], name="gini2", example="gini2@4")
    monkeypatch.setattr(O, "PRESETS", types.MappingProxyType({**O.PRESETS, "gini2": extra}))
    assert missing_names(SPECS) == ["gini2"]
    assert list(skipped_presets(3)) == ["gini2"]  # the parser does not know it


def _rewards(rng: np.random.Generator, n: int, ties: bool) -> np.ndarray:
    if ties:
        return rng.integers(0, 3, size=n).astype(np.float64)
    return rng.normal(size=n)


@pytest.mark.parametrize("spec,weights", _cases(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_against_enumeration(backend, spec, weights, ties):
    obj = rankgrad.Objective.from_weights(weights) if weights is not None else rankgrad.parse(spec)
    w = obj.weights
    rng = np.random.default_rng(zlib.crc32(f"{spec}|{ties}".encode()))  # the same in every process
    for n in sorted({obj.k + 1, 6, 9}):
        ys = np.stack([_rewards(rng, n, ties) for _ in range(3)])  # three groups at once
        x = to_backend(ys, backend)
        got_v = to_numpy(rankgrad.value(x, obj))
        got_q = to_numpy(rankgrad.include_one(x, obj))
        got_l = to_numpy(rankgrad.leave_one_out(x, obj))
        got_a = to_numpy(rankgrad.advantages(x, obj))
        for gi, y in enumerate(ys):
            q, v = brute.include_one(y, w), brute.leave_one_out(y, w)
            np.testing.assert_allclose(got_v[gi], brute.batch_value(y, w), rtol=0, atol=1e-12)
            np.testing.assert_allclose(got_q[gi], q, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got_l[gi], v, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got_a[gi], q - v, rtol=0, atol=1e-12)
        # value also at N = K (the whole group is the only subset)
        y = _rewards(rng, obj.k, ties)
        got = to_numpy(rankgrad.value(to_backend(y, backend), obj))
        np.testing.assert_allclose(got, brute.l_stat(y, w), rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_order_statistics_against_enumeration(backend, k):
    rng = np.random.default_rng(k)
    y = np.concatenate([rng.normal(size=5), [0.5, 0.5]])
    got = to_numpy(rankgrad.order_statistics(to_backend(y[None], backend), k))[0]
    np.testing.assert_allclose(got, brute.order_statistics(y, k), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n,k", [(4, 2), (6, 3), (8, 4), (9, 8)])
def test_maxpo_leave_two_out_equals_ordergrad(backend, n, k):
    """MaxPO's expected-improvement minus leave-two-out baseline is exactly q_i − v_i for max@K."""
    rng = np.random.default_rng(n * 10 + k)
    for ties in (False, True):
        y = _rewards(rng, n, ties)
        got = to_numpy(rankgrad.advantages(to_backend(y, backend), f"max@{k}"))
        np.testing.assert_allclose(got, brute.maxpo_l2o(y, k), rtol=0, atol=1e-12)
        alias = to_numpy(rankgrad.advantages(to_backend(y, backend), f"max@{k}", estimator="maxpo"))
        np.testing.assert_array_equal(alias, got)


def test_binary_max_at_k_closed_form():
    """c correct of N, max@K: a_correct = C(N−c, K)/C(N−1, K), a_wrong = C(N−c−1, K)/C(N−1, K) −
    C(N−c−1, K−1)/C(N−1, K−1) (docs/math.md, section 3); N=8, c=3, K=4 gives +5/35 and −3/35."""
    from math import comb

    for n, c, k in [(8, 3, 4), (16, 1, 4), (16, 15, 8), (32, 5, 7), (64, 2, 16)]:
        y = np.zeros(n)
        y[:c] = 1.0
        a = rankgrad.advantages(y, f"max@{k}")
        a_pos = comb(n - c, k) / comb(n - 1, k)
        a_neg = comb(n - c - 1, k) / comb(n - 1, k) - comb(n - c - 1, k - 1) / comb(n - 1, k - 1)
        np.testing.assert_allclose(a[:c], a_pos, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(a[c:], a_neg, rtol=1e-12, atol=1e-15)
    a = rankgrad.advantages(np.array([1.0, 1, 1, 0, 0, 0, 0, 0]), "max@4")
    np.testing.assert_allclose(a * 35, [5, 5, 5, -3, -3, -3, -3, -3], atol=1e-12)


def test_mean_reproduces_rloo(backend):
    rng = np.random.default_rng(7)
    y = rng.normal(size=(5, 7))
    a = to_numpy(rankgrad.advantages(to_backend(y, backend), "mean"))
    rloo = y - (y.sum(-1, keepdims=True) - y) / (y.shape[-1] - 1)
    np.testing.assert_allclose(a, rloo, rtol=0, atol=1e-13)
    np.testing.assert_allclose(
        a, to_numpy(rankgrad.advantages(to_backend(y, backend), "mean", estimator="rloo")),
        rtol=0, atol=1e-13,
    )
