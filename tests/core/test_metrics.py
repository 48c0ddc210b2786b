"""Unbiased max@k / pass@k metrics against enumeration over all k-subsets and the closed form of
pass@k; zero-advantage and constant-group fractions against the closed form of binary max@K
advantages; the training dict; every input error."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rankgrad
from rankgrad._src.errors import InputTypeError
from rankgrad.integrations import group_advantages
from rankgrad.metrics import advantage_stats, default_ks, max_at_k, min_at_k, pass_at_k, training_metrics
from tests import brute
from tests.backends import BACKENDS, to_backend


def _enum_max(y: np.ndarray, k: int) -> float:
    """Mean over the k-subsets of y of their maximum (NaN when y has fewer than k)."""
    if len(y) < k:
        return math.nan
    return brute.batch_value(np.asarray(y, float), np.eye(k)[0])


def _pass_closed_form(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@st.composite
def ragged(draw):
    sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=5))
    binary = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    groups = [rng.integers(0, 2, n).astype(float) if binary else rng.normal(size=n).round(1) for n in sizes]
    labels = rng.permutation(len(sizes) * 7)[: len(sizes)]  # arbitrary int labels
    ids = np.concatenate([[labels[g]] * n for g, n in enumerate(sizes)])
    order = rng.permutation(ids.size)  # interleaved groups
    return groups, labels, np.concatenate(groups)[order], ids[order], seed


@settings(max_examples=60, deadline=None)
@given(ragged(), st.sampled_from(BACKENDS))
def test_max_at_k_matches_enumeration_on_ragged_groups(case, backend):
    groups, labels, flat, ids, seed = case
    _, first = np.unique(ids, return_index=True)
    appearance = [int(np.flatnonzero(labels == ids[i])[0]) for i in sorted(first)]
    groups = [groups[i] for i in appearance]  # output rows follow first appearance in the batch
    m = max_at_k(to_backend(flat, backend), group_ids=to_backend(ids, backend))
    n_max = max(len(g) for g in groups)
    assert m.ks == tuple(range(1, n_max + 1))
    want = np.array([[_enum_max(g, k) for k in m.ks] for g in groups])
    np.testing.assert_allclose(m.per_group, want, rtol=0, atol=1e-12)  # NaN where the group is too small
    np.testing.assert_array_equal(m.sizes, [len(g) for g in groups])
    for j, k in enumerate(m.ks):
        eligible = [_enum_max(g, k) for g in groups if len(g) >= k]
        assert m.groups[j] == len(eligible)
        assert m.mean[j] == pytest.approx(np.mean(eligible), abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_min_at_k_matches_enumeration(backend):
    rng = np.random.default_rng(5)
    flat = rng.normal(size=11).round(1)
    ids = np.array([0, 1, 0, 2, 1, 0, 0, 1, 2, 0, 1])
    m = min_at_k(to_backend(flat, backend), ks=[1, 2, 4, 6], group_ids=ids)
    for g in range(3):
        y = flat[ids == g]
        want = [brute.batch_value(y, np.eye(k)[-1]) if k <= y.size else np.nan for k in (1, 2, 4, 6)]
        np.testing.assert_allclose(m.per_group[g], want, atol=1e-12)
    assert m.groups.tolist() == [3, 3, 2, 0]  # sizes 5, 4, 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pass_at_k_is_the_closed_form_on_every_backend(backend, dtype):
    rng = np.random.default_rng(0)
    n, g = 9, 12
    counts = np.arange(g) % (n + 1)  # c = 0..9 correct of 9
    r = np.zeros((g, n))
    for i, c in enumerate(counts):
        r[i, rng.permutation(n)[:c]] = 1.0
    m = pass_at_k(to_backend(r.reshape(3, 4, n), backend, dtype), ks=[1, 3, 9, 10])
    assert m.per_group.shape == (3, 4, 4) and m.per_group.dtype == np.float64
    want = np.array([[_pass_closed_form(n, c, k) for k in (1, 3, 9)] for c in counts]).reshape(3, 4, 3)
    np.testing.assert_allclose(m.per_group[..., :3], want, rtol=0, atol=1e-6 if dtype == "float32" else 1e-14)
    assert np.isnan(m.per_group[..., 3]).all() and np.isnan(m.mean[3]) and m.groups.tolist() == [g, g, g, 0]
    np.testing.assert_allclose(m.mean[:3], want.reshape(g, 3).mean(0), atol=1e-6)
    assert set(m.as_dict("x/", "pass")) == {"x/pass@1", "x/pass@3", "x/pass@9"}


def test_one_correct_of_four_is_pass_at_4_equal_to_one():
    """The only 4-subset of {1, 0, 0, 0} passes: pass@4 = 1 (a with-replacement bootstrap says 0.684)."""
    m = pass_at_k([1, 0, 0, 0], ks=[1, 2, 3, 4])
    np.testing.assert_allclose(m.per_group, [0.25, 0.5, 0.75, 1.0], atol=1e-15)
    assert 1 - (3 / 4) ** 4 == pytest.approx(0.6836, abs=1e-4)  # what best@4 by resampling reports


def test_mask_and_layouts_agree_and_masked_values_are_never_read():
    rng = np.random.default_rng(1)
    r = rng.normal(size=(4, 6))
    mask = rng.random((4, 6)) < 0.7
    mask[0] = False  # an empty group
    poisoned = np.where(mask, r, np.nan)
    dense = max_at_k(poisoned, ks=[1, 2, 5], mask=mask)
    ids = np.repeat(["a", "b", "c", "d"], 6)
    flat = max_at_k(poisoned.reshape(-1), ks=[1, 2, 5], group_ids=ids, mask=mask.reshape(-1))
    for i in range(4):
        want = [_enum_max(r[i][mask[i]], k) for k in (1, 2, 5)]
        np.testing.assert_allclose(dense.per_group[i], want, atol=1e-12)
        np.testing.assert_allclose(flat.per_group[i], want, atol=1e-12)
    assert np.isnan(dense.per_group[0]).all() and dense.sizes[0] == 0


@pytest.mark.parametrize("sizes", [(4, 5, 4), (1, 1, 1, 1, 12)])  # padded layout; too ragged to pad
def test_padded_and_flat_value_layouts_match_enumeration(sizes):
    rng = np.random.default_rng(len(sizes))
    ids = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    flat = rng.normal(size=ids.size).round(1)
    mask = rng.random(ids.size) < 0.9
    m = max_at_k(flat, ks=[1, 2, 3, 9], group_ids=ids, mask=mask)
    for row, g in enumerate(dict.fromkeys(ids.tolist())):  # rows in order of first appearance
        y = flat[(ids == g) & mask]
        np.testing.assert_allclose(m.per_group[row], [_enum_max(y, k) for k in (1, 2, 3, 9)], atol=1e-12)


def test_string_and_mixed_labels_group_by_first_appearance():
    r = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    m = max_at_k(r, ks=[2], group_ids=["z", 1, "z", 1.0, "1", "1"])  # 1 and 1.0 are one group; "1" another
    np.testing.assert_allclose(m.per_group[:, 0], [1.0, 1.0, 0.0])
    m = max_at_k(r, ks=2, group_ids=np.array([b"x", b"y", b"x", b"y", b"x", b"y"]))
    np.testing.assert_allclose(m.per_group[:, 0], [_enum_max(r[::2], 2), _enum_max(r[1::2], 2)])


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: max_at_k([1.0, np.nan, 0.0]), ValueError,
         r"^rewards: found a NaN or inf reward at position 1"),
        (lambda: max_at_k([[1.0, 0.0], [np.inf, 0.0]]), ValueError, r"^rewards: .*position \(1, 0\)"),
        (lambda: max_at_k([1.0, 0.0], ks=[0]), ValueError, r"^ks: expected subset sizes k >= 1"),
        (lambda: max_at_k([1.0, 0.0], ks=[1.5]), InputTypeError, r"^ks: expected integer subset sizes"),
        (lambda: max_at_k([1.0, 0.0], ks=[True]), InputTypeError, r"^ks: expected integer subset sizes"),
        (lambda: max_at_k([1.0, 0.0], ks="4"), InputTypeError, r"^ks: expected a list"),
        (lambda: max_at_k([1.0, 0.0], ks=[]), ValueError, r"^ks: expected at least one"),
        (lambda: max_at_k(np.array(["a", "b"])), InputTypeError, r"^rewards: expected real numbers"),
        (lambda: max_at_k(np.array([1 + 1j, 0])), InputTypeError, r"^rewards: expected real numbers"),
        (lambda: max_at_k(1.0), ValueError, r"^rewards: expected groups on the last axis"),
        (lambda: max_at_k(np.zeros((2, 0))), ValueError, r"^rewards: got empty groups"),
        (lambda: max_at_k([[1.0], [0.0, 1.0]]), ValueError, r"^rewards: expected a rectangular array"),
        (lambda: max_at_k([1.0, 0.0], mask=[False, False]), ValueError, r"^mask: every sample is masked out"),
        (lambda: max_at_k([1.0, 0.0], mask=[1, 2]), ValueError, r"^mask: .*found 2 at position 1"),
        (lambda: max_at_k([1.0, 0.0], mask=[True]), ValueError, r"^mask: expected the shape of rewards"),
        (lambda: max_at_k([1.0, 0.0], mask=["y", "n"]), InputTypeError, r"^mask: expected a boolean .*<U1"),
        (lambda: max_at_k([[1.0, 0.0]], group_ids=[0]), ValueError,
         r"^rewards: with group_ids, expected flat"),
        (lambda: max_at_k([1.0, 0.0], group_ids=[0]), ValueError,
         r"^group_ids: expected shape \(2,\) to match rewards"),
        (lambda: max_at_k([1.0, 0.0], group_ids=[0, None]), ValueError, r"^group_ids: found the label None"),
        (lambda: max_at_k([1.0, 0.0], group_ids=[0.0, np.nan]), ValueError,
         r"^group_ids: found the label nan"),
        (lambda: max_at_k([1.0, 0.0], group_ids=[0, object()]), InputTypeError,
         r"^group_ids: expected group labels"),
        (lambda: max_at_k([], group_ids=[]), ValueError, r"^rewards: got an empty batch"),
        (lambda: pass_at_k([1.0, 0.5, 0.0]), ValueError, r"^rewards: pass@k needs 0/1 .*found 0\.5"),
    ],
)
def test_bad_input_is_named(call, err, match):
    with pytest.raises(err, match=match):
        call()


# ---------------------------------------------------------------------------- advantage stats
def _binary_group(n: int, c: int) -> np.ndarray:
    return np.array([1.0] * c + [0.0] * (n - c))


ZERO_CASES = [(8, 4, "numpy", "float64"), (6, 3, "numpy", "float64"), (5, 1, "numpy", "float64"),
              (16, 8, "numpy", "float32"), (16, 8, "torch", "float32")] + [
    (9, 8, b, d) for b in BACKENDS for d in ("float32", "float64")]


@pytest.mark.parametrize("n, k, backend, dtype", ZERO_CASES)
def test_zero_advantages_follow_the_closed_form(n, k, backend, dtype):
    """Binary max@K: a_correct = C(N−c, K)/C(N−1, K), a_wrong = C(N−c−1, K)/C(N−1, K) −
    C(N−c−1, K−1)/C(N−1, K−1) (docs/math.md): every advantage of a group is 0 iff c = 0 or
    c >= N − K + 1; the group is constant iff c in {0, N}."""
    r = np.stack([_binary_group(n, c) for c in range(n + 1)])
    rb = to_backend(r, backend, dtype)
    s = advantage_stats(rankgrad.advantages(rb, f"max@{k}"), rb)  # the smallest non-zero |a| is 1/6435
    zero_c = [c for c in range(n + 1) if c == 0 or c >= n - k + 1]
    zero_samples = 0
    for c in range(n + 1):
        ac = math.comb(n - c, k) / math.comb(n - 1, k)
        m, c1 = n - c - 1, math.comb(n - 1, k)
        aw = 0.0 if c == n else math.comb(m, k) / c1 - math.comb(m, k - 1) / math.comb(n - 1, k - 1)
        zero_samples += c * (ac == 0) + (n - c) * (aw == 0)
    assert s.frac_zero_groups == pytest.approx(len(zero_c) / (n + 1), abs=1e-15)
    assert s.frac_constant_groups == pytest.approx(2 / (n + 1), abs=1e-15)
    assert s.frac_zero == pytest.approx(zero_samples / (n * (n + 1)), abs=1e-15)
    assert s.samples == n * (n + 1) and s.groups == n + 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_advantage_stats_flat_masked_and_without_rewards(backend):
    r = np.array([1.0, 0.0, 5.0, 0.0, 2.0, 2.0, np.nan, 3.0])
    ids = np.array([0, 0, 1, 0, 1, 2, 2, 3])
    mask = np.isfinite(r)
    a = np.array([0.5, -0.25, 0.0, -0.25, 0.0, 0.0, 7.0, 0.0])
    s = advantage_stats(to_backend(a, backend), to_backend(np.nan_to_num(r), backend),
                        group_ids=to_backend(ids, backend), mask=to_backend(mask, backend))
    # groups: {1,0,0} varied, {5,2} varied but all-zero advantages, {2} constant, {3} constant
    assert (s.frac_constant_groups, s.frac_zero_groups) == (0.5, 0.75)
    assert s.frac_zero == pytest.approx(4 / 7) and s.mean_abs == pytest.approx(1 / 7) and s.max_abs == 0.5
    s2 = advantage_stats(a, group_ids=ids, mask=mask)
    assert math.isnan(s2.frac_constant_groups) and s2.frac_zero_groups == 0.75
    with pytest.raises(ValueError, match=r"^adv: expected one advantage per reward"):
        advantage_stats(a[:4], r[:5])
    with pytest.raises(ValueError, match=r"^adv: found a NaN or inf advantage"):
        advantage_stats(np.array([np.nan, 0.0]), np.array([1.0, 0.0]))


# ------------------------------------------------------------------------------ training dict
def test_training_metrics_values_and_stable_names():
    rng = np.random.default_rng(4)
    n, g = 6, 5
    r = (rng.random((g, n)) < 0.4).astype(float)
    r[0] = 1.0  # a constant group
    r[1, 0] = np.nan  # an unscorable rollout: group 1 has 5 valid samples
    flat = r.reshape(-1)
    uid = np.repeat([f"p{i}" for i in range(g)], n)
    valid = np.isfinite(flat)
    adv = group_advantages(flat, uid, "max@3", unscorable="zero")
    m = training_metrics(flat, uid, "max@3", adv)
    assert set(m) == {
        "rankgrad/objective", "rankgrad/objective_k", "rankgrad/max@1", "rankgrad/max@2", "rankgrad/max@4",
        "rankgrad/max@6", "rankgrad/advantage_mean_abs", "rankgrad/advantage_max_abs",
        "rankgrad/frac_zero_advantage", "rankgrad/frac_zero_advantage_groups",
        "rankgrad/frac_constant_groups", "rankgrad/frac_unscorable",
    }
    assert all(isinstance(v, float) for v in m.values())
    groups = [r[i][np.isfinite(r[i])] for i in range(g)]
    assert m["rankgrad/objective"] == pytest.approx(np.mean([_enum_max(y, 3) for y in groups]), abs=1e-12)
    assert m["rankgrad/objective_k"] == 3.0
    for k in (1, 2, 4):
        assert m[f"rankgrad/max@{k}"] == pytest.approx(np.mean([_enum_max(y, k) for y in groups]), abs=1e-12)
    assert m["rankgrad/max@6"] == pytest.approx(np.mean([_enum_max(y, 6) for y in groups if len(y) == 6]))
    assert m["rankgrad/frac_unscorable"] == pytest.approx(1 / 30)
    assert m["rankgrad/frac_zero_advantage"] == pytest.approx(np.mean(adv == 0))
    assert m["rankgrad/advantage_mean_abs"] == pytest.approx(np.abs(adv).mean())
    const = [len(set(y.tolist())) == 1 for y in groups]
    assert m["rankgrad/frac_constant_groups"] == pytest.approx(np.mean(const))
    zero_groups = [bool((adv[i * n:(i + 1) * n][valid[i * n:(i + 1) * n]] == 0).all()) for i in range(g)]
    assert m["rankgrad/frac_zero_advantage_groups"] == pytest.approx(np.mean(zero_groups))
    assert set(default_ks(n)) == {1, 2, 4, 6}


def test_training_metrics_leaves_out_what_no_group_reaches_and_corrects_noise():
    s = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    uid = np.array([0, 0, 0, 1, 1, 1])
    adv = np.zeros(6)
    m = training_metrics(s, uid, "max@4", adv, ks=[1, 3, 4], prefix="")
    assert "objective" not in m and "max@4" not in m and m["objective_k"] == 4.0
    assert m["max@3"] == pytest.approx(1.0) and m["max@1"] == pytest.approx(0.5)
    # the mean with flip rates (rho0, rho1): (p̂ − rho0)/(1 − rho0 − rho1), p̂ = 1/2 in both groups
    m = training_metrics(s, uid, "mean", adv, noise=(0.1, 0.2))
    assert m["rankgrad/objective"] == pytest.approx((0.5 - 0.1) / 0.7, abs=1e-12)
    m = training_metrics(s, uid, "mean", adv, noise=(None, 0.2))  # forward correction: as if rho0 = 0
    assert m["rankgrad/objective"] == pytest.approx(0.5 / 0.8, abs=1e-12)
    with pytest.raises(ValueError, match=r"^adv: expected one advantage per reward"):
        training_metrics(s, uid, "mean", adv[:5])
    with pytest.raises(ValueError, match=r"^adv: found a NaN or inf advantage"):
        training_metrics(s, uid, "mean", np.full(6, np.nan))
    with pytest.raises(ValueError, match=r"training_metrics: objective 'max@2\.5' has fractional K"):
        training_metrics(s, uid, "max@2.5", adv)
    with pytest.raises(ValueError, match=r"^uids: expected shape \(6,\) to match rewards"):
        training_metrics(s, uid[:3], "mean", adv)


def test_enumeration_helper_is_the_definition():
    """_enum_max is the mean of max over explicit combinations (a check of the test's own reference)."""
    y = np.array([3.0, -1.0, 2.0, 2.0, 0.5])
    for k in range(1, 6):
        direct = np.mean([max(y[list(c)]) for c in combinations(range(5), k)])
        assert _enum_max(y, k) == pytest.approx(direct, abs=1e-15)
