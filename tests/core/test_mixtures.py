"""Mixtures across K: Σ_j c_j·O_j (K_j) is one objective at K = max_j K_j, each part lifted to K.

Checked against references that share no code with the lift:

1. the lift: on a K'-sample the lifted L-statistic is the mean over its K-subsets (brute force); J under
   ``rankgrad.exact`` and the batch U-statistic ``rankgrad.value`` (numpy, torch, jax) are unchanged;
2. the gradient: the exact expectation over every outcome of a small group of (K/N)·Σ a_i ∇log p(x_i),
   K the mixture's K, equals Σ_j c_j ∇J_{K_j} (autograd through ``rankgrad.exact`` of each part);
3. brute force: the mixture's advantages are Σ_j c_j (K_j/K) a^{(j)} from tests/brute.py;
4. the parser and Objective arithmetic: round trips, equal constructions, errors;
5. schedules blending objectives of different K.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rankgrad
from rankgrad import objectives as O
from rankgrad import schedules as S
from rankgrad._src import objectives as src
from rankgrad._src import weights as W
from rankgrad._src.errors import InputTypeError
from tests import brute
from tests.backends import BACKENDS, to_backend, to_numpy

# Mixtures with their parts written out by hand: (spec, [(coefficient, part spec, top-first weights)]).
MIXTURES = [
    ("0.5*mean + 0.5*max@3", [(0.5, "mean", [1.0]), (0.5, "max@3", [1.0, 0, 0])]),
    ("max@4 - 0.1*min@2", [(1.0, "max@4", [1.0, 0, 0, 0]), (-0.1, "min@2", [0, 1.0])]),
    ("mean + 0.25*cvar:0.5@4", [(1.0, "mean", [1.0]), (0.25, "cvar:0.5@4", [0, 0, 0.5, 0.5])]),
    ("0.3*median@3+0.7*rank:2@4", [(0.3, "median@3", [0, 1.0, 0]), (0.7, "rank:2@4", [0, 1.0, 0, 0])]),
    ("-gini@2 + 2*top:2@3", [(-1.0, "gini@2", [1.0, -1.0]), (2.0, "top:2@3", [0.5, 0.5, 0])]),
]


def _brute_advantages(y: np.ndarray, parts: list) -> np.ndarray:
    """Σ_j c_j (K_j / K) (include-one − leave-one-out) of each part by brute force, K the largest K_j."""
    k = max(len(w) for _, _, w in parts)
    return sum(c * (len(w) / k) * (brute.include_one(y, np.array(w)) - brute.leave_one_out(y, np.array(w)))
               for c, _, w in parts)


def _brute_lift(w_top: np.ndarray, k: int) -> np.ndarray:
    """Top-first weights at K' = k from the definition: on the sample e_i (1 at sorted position i, low
    → high, 0 elsewhere) the lifted weight is the brute-force mean over K-subsets. Valid as the
    L-statistic is linear in the sorted sample and e_1..e_k span it: sample = Σ_i x_(i) e_i."""
    out = np.empty(k)
    for i in range(k):
        # A strictly increasing sample differing from x = arange only at position i gives the same
        # ranks; the difference of the two brute-force values is the weight of rank i (low-first).
        x = np.arange(k, dtype=float)
        y = x.copy()
        y[i] += 0.5
        out[i] = (brute.batch_value(y, w_top) - brute.batch_value(x, w_top)) / 0.5
    return out[::-1]


# ------------------------------------------------------------------------------ 1. the lift
@pytest.mark.parametrize("k0,k", [(1, 4), (2, 5), (3, 3), (3, 7), (4, 9)])
@pytest.mark.parametrize("exact_max", [64, 0])  # integer ratios, and the log-space path
def test_lift_is_the_mean_over_k_subsets_of_a_k_prime_sample(k0, k, exact_max):
    rng = np.random.default_rng(100 * k0 + k)
    w = rng.normal(size=k0)
    lifted = W.lift(w[::-1], k, exact_max=exact_max)[::-1]  # lift works low-first
    np.testing.assert_allclose(lifted, _brute_lift(w, k), rtol=0, atol=1e-12)
    for _ in range(3):  # and directly: the lifted L-statistic of a K'-sample = mean over its K-subsets
        x = rng.normal(size=k)
        assert brute.l_stat(x, lifted) == pytest.approx(brute.batch_value(x, w), abs=1e-12)


def test_lift_known_values_and_paths_agree():
    # mean lifts to the mean; max@4 at K' = 8 puts C(i−1, 3)/C(8, 4) on rank i (low-first).
    np.testing.assert_array_equal(W.lift(np.array([1.0]), 4), [0.25] * 4)
    want = np.array([math.comb(i - 1, 3) for i in range(1, 9)]) / math.comb(8, 4)
    np.testing.assert_allclose(W.lift(np.array([0, 0, 0, 1.0]), 8), want, rtol=1e-15, atol=0)
    rng = np.random.default_rng(0)
    for k0, k in [(5, 64), (17, 60), (1, 40)]:
        a = rng.normal(size=k0)
        np.testing.assert_allclose(W.lift(a, k), W.lift(a, k, exact_max=0), rtol=0, atol=1e-13)
        assert W.lift(a, k).sum() == pytest.approx(a.sum(), abs=1e-13)  # Σ_i P(i, j) = 1 for every j


def test_lift_errors():
    with pytest.raises(ValueError, match=r"^k: an objective at K=4 lifts only to K' >= 4, got K'=3"):
        W.lift(np.ones(4), 3)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"MAX_LIFT_WORK"):  # refused before any table is built
        W.lift(np.random.default_rng(0).normal(size=3000), 1_000_000)
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(ValueError, match=r"MAX_LIFT_WORK"):
        O.harrell_davis(0.3, 3000) + O.best_of_k(1_000_000)
    # a long run of equal weights costs two vectors: mean@1000 lifts to K' = 10^6 within the cap
    big = O.mean(1000) + O.best_of_k(1_000_000)
    assert big.k == 1_000_000 and big.total_weight == 2.0


ARMS = np.array([-0.5, 0.0, 0.4, 1.0, 2.0])


@pytest.mark.parametrize("spec", ["max@3", "cvar:0.5@4", "median@3", "gini@2", "trim:1@4", "mean"])
def test_lifted_objective_has_the_same_exact_value(spec):
    obj = rankgrad.parse(spec)
    rng = np.random.default_rng(len(spec))
    for k in (obj.k, obj.k + 1, obj.k + 5, 40):
        lifted = rankgrad.Objective.from_weights(W.lift(obj.low_first, k)[::-1])
        for _ in range(3):
            p = rng.dirichlet(np.ones(ARMS.size))
            want = float(rankgrad.exact.value(ARMS, p, obj))
            assert float(rankgrad.exact.value(ARMS, p, lifted)) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lifted_objective_has_the_same_u_statistic(backend):
    rng = np.random.default_rng(7)
    for spec, k in [("max@3", 6), ("cvar:0.5@4", 10), ("mean", 6), ("rank:2@3", 3)]:
        obj = rankgrad.parse(spec)
        lifted = rankgrad.Objective.from_weights(W.lift(obj.low_first, k)[::-1])
        y = rng.normal(size=(2, 10))  # the shape of the other jax tests here: compiled once
        y[0, :4] = y[0, 0]  # ties
        got = to_numpy(rankgrad.value(to_backend(y, backend), lifted))
        want = to_numpy(rankgrad.value(to_backend(y, backend), obj))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        np.testing.assert_allclose(want[1], brute.batch_value(y[1], obj.weights), rtol=0, atol=1e-12)


# ------------------------------------------------------------- 2. gradients by exact expectation
R3 = np.array([0.0, 1.0, 0.3])
LOGITS3 = np.array([0.2, -0.5, 0.4])


def _softmax(t: np.ndarray) -> np.ndarray:
    e = np.exp(t - t.max())
    return e / e.sum()


def _exact_grad(part: str) -> np.ndarray:
    th = torch.tensor(LOGITS3, requires_grad=True)
    (g,) = torch.autograd.grad(rankgrad.exact.value(torch.tensor(R3), torch.softmax(th, 0), part), th)
    return g.numpy()


@pytest.mark.parametrize("n", [5, 6])
@pytest.mark.parametrize("spec,parts", MIXTURES[:4], ids=[m[0] for m in MIXTURES[:4]])
def test_expected_update_is_the_mixture_of_exact_gradients(spec, parts, n):
    """E[(K/N)·Σ_i a_i ∇log p(x_i)] over all 3^N outcomes, K = the mixture's K, = Σ_j c_j ∇J_{K_j}."""
    obj = rankgrad.parse(spec)
    k = max(len(w) for _, _, w in parts)
    assert obj.k == k
    p = _softmax(LOGITS3)
    tuples = np.array(list(itertools.product(range(3), repeat=n)))  # [3^N, N]
    prob = np.prod(p[tuples], axis=1)
    a = rankgrad.advantages(R3[tuples], spec)  # [3^N, N]
    score = np.eye(3)[tuples] - p  # ∇_logits log p(x_i)
    got = (k / n) * np.einsum("t,tn,tnm->m", prob, a, score)
    want = sum(c * _exact_grad(part) for c, part, _ in parts)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.abs(want).max() > 1e-3  # not a trivially zero gradient


def test_exact_regime_of_a_mixture_is_the_mixture_of_parts():
    rng = np.random.default_rng(11)
    for spec, parts in MIXTURES:
        obj = rankgrad.parse(spec)
        for _ in range(3):
            p = rng.dirichlet(np.ones(ARMS.size))
            want = sum(c * brute.exact_value(ARMS, p, np.array(w)) for c, _, w in parts)
            assert float(rankgrad.exact.value(ARMS, p, obj)) == pytest.approx(want, abs=1e-12)


# ------------------------------------------------------------------------------ 3. brute force
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec,parts", MIXTURES, ids=[m[0] for m in MIXTURES])
def test_advantages_and_value_against_brute_force(spec, parts, backend):
    k = max(len(w) for _, _, w in parts)
    rng = np.random.default_rng(len(spec))
    # jax compiles once per shape: one shape, the one tests/core/test_matrix.py uses too
    for n in (k + 1, k + 3) if backend != "jax" else (10,):
        y = np.round(rng.normal(size=(2, n)), 1)  # rounding makes ties likely
        want_adv = np.stack([_brute_advantages(row, parts) for row in y])
        want_val = [sum(c * brute.batch_value(row, np.array(w)) for c, _, w in parts) for row in y]
        yb = to_backend(y, backend)
        np.testing.assert_allclose(to_numpy(rankgrad.advantages(yb, spec)), want_adv, rtol=0, atol=1e-12)
        np.testing.assert_allclose(to_numpy(rankgrad.value(yb, spec)), want_val, rtol=0, atol=1e-12)


def test_mixture_needs_groups_of_its_largest_k_plus_one():
    with pytest.raises(ValueError):
        rankgrad.advantages(np.arange(4.0), "0.5*mean + 0.5*max@4")  # N = 4 < K + 1 = 5
    assert rankgrad.advantages(np.arange(5.0), "0.5*mean + 0.5*max@4").shape == (5,)


# ----------------------------------------------------------------- 4. parser and arithmetic
def test_arithmetic_and_strings_build_the_same_objective():
    mean, mx8 = O.mean(), O.best_of_k(8)
    obj = 0.5 * mean + 0.5 * mx8
    assert obj == rankgrad.parse("0.5*mean + 0.5*max@8") == rankgrad.parse("0.5 * mean+0.5*max@8")
    assert obj.name == "0.5*mean + 0.5*max@8" and obj.k == 8
    assert obj.parts == ((0.5, mean), (0.5, mx8)) and obj.terms == obj.parts
    assert mx8.terms == ((1.0, mx8),) and mx8.parts == ()
    # mean at K = 8 is 1/8 on every rank: top-first weights 1/16 + (1/2 on the top)
    np.testing.assert_array_equal(obj.weights, [0.5625] + [0.0625] * 7)
    assert rankgrad.parse("mean + 0.25*cvar:0.25@8") == mean + O.lower_tail(0.25, 8) * 0.25
    assert rankgrad.parse("max@4 - 0.1*min@4") == O.best_of_k(4) - 0.1 * O.worst_of_k(4)
    assert rankgrad.parse("0.5 * mean@4+0.5*max@8") == 0.5 * O.mean(4) + 0.5 * mx8
    assert rankgrad.parse("-max@4") == -O.best_of_k(4) == O.best_of_k(4) / -1
    assert rankgrad.parse("1e-3*max@4 + mean").parts[0][0] == 0.001  # an exponent is not a separator
    assert sum([mean, mx8, O.worst_of_k(2)]) == rankgrad.parse("mean + max@8 + min@2")
    assert np.float64(0.5) * mx8 == mx8 * 0.5 == mx8 / 2  # numpy scalars on the left


def test_merging_and_identities():
    mx4 = O.best_of_k(4)
    assert (0.5 * mx4 + 0.5 * mx4) is mx4  # merged to one part of coefficient 1: the part itself
    assert (2 * mx4) / 2 is mx4
    assert rankgrad.parse("mean + 0*max@4") == O.mean(4)  # same value, K raised by a zero part
    assert (mx4 - mx4).k == 4 and not np.any((mx4 - mx4).weights)
    nested = 0.5 * (O.mean() + mx4) - 0.25 * mx4
    assert nested.parts == ((0.5, O.mean()), (0.25, mx4)) and nested.name == "0.5*mean + 0.25*max@4"
    assert hash(nested) == hash(rankgrad.parse(nested.name))


@pytest.mark.parametrize("spec,parts", MIXTURES, ids=[m[0] for m in MIXTURES])
def test_names_read_back(spec, parts):
    obj = rankgrad.parse(spec)
    again = rankgrad.parse(obj.name)
    assert again == obj and again.name == obj.name
    assert [(c, o.name) for c, o in obj.parts] == [(c, name) for c, name, _ in parts]


def test_single_presets_parse_as_before():
    for spec in ["max@4", " MAX@4 ", "cvar:0.25@8", "mean", "max@2.5", "max@4e+2", "cvar:1e-1@8"]:
        obj = rankgrad.parse(spec)
        assert obj.parts == ()
    assert rankgrad.parse("max@4e+2").k == 400 and rankgrad.parse("+max@4") == O.best_of_k(4)
    assert rankgrad.parse("max@2.5").k == 2.5  # a fractional K alone is still accepted


@pytest.mark.parametrize(
    "spec,match",
    [
        ("mean +", r"an empty term at the end \(index 6\)"),
        ("--max@4", r"an empty term before the '-' at index 1"),
        ("max@4 ++ mean", r"an empty term before the '\+' at index 7"),
        ("max@4 + foo@3", r"term 'foo@3' at index 8: unknown objective 'foo'"),
        ("mean + 0.5*max@", r"term '0.5\*max@' at index 7: K='' is not a plain decimal"),
        ("max@4*0.5", r"term 'max@4\*0.5' at index 0: write the coefficient first, as in 0.5\*preset"),
        ("mean + a*max@4", r"term 'a\*max@4' at index 7: the coefficient 'a' is not a plain decimal"),
        ("2*3*max@4", r"more than one '\*'"),
        ("1e400*mean", r"the coefficient 1e400 is not a finite float64"),
        ("mean + 0.5*max@2.5", r"'max@2.5' has fractional K=2.5 and cannot be mixed"),
        ("1e308*mean + 1e308*mean", r"overflows"),
        ("max@+4", r"term 'max@' at index 0: K='' is not"),
        ("0.5*mean + " + "0.1*mean + " * 20 + "max@4", r"MAX_SPEC_LENGTH"),
    ],
)
def test_parse_errors_name_the_term_and_its_index(spec, match):
    with pytest.raises(ValueError, match=r"^objective: cannot parse") as err:
        rankgrad.parse(spec)
    assert err.match(match)
    assert "mixture" in str(err.value)  # the valid forms mention mixtures


def test_arithmetic_errors():
    mx4 = O.best_of_k(4)
    with pytest.raises(ValueError, match=r"^objective: 'max@2.5' has fractional K=2.5 and cannot be mixed"):
        mx4 + O.best_of_k(2.5)
    with pytest.raises(ValueError, match=r"fractional K"):
        0.5 * O.worst_of_k(1.5)
    for bad in (1j, "2", None, np.array([1.0, 2.0]), True):
        with pytest.raises(InputTypeError, match=r"^coefficient: objective \* c needs a real number"):
            mx4 * bad
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match=r"^coefficient: expected a finite number"):
            bad * mx4
    with pytest.raises(ZeroDivisionError, match=r"c must be nonzero"):
        mx4 / 0
    with pytest.raises(TypeError):
        mx4 + 1  # only objectives add (and 0, for sum())
    with pytest.raises(InputTypeError, match=r"^parts: expected a tuple of \(coefficient, Objective\)"):
        rankgrad.Objective(k=1, weights=np.ones(1), parts=[(1.0, O.mean())])


def test_split_terms_is_linear():
    t0 = time.perf_counter()
    assert len(src._split_terms("mean+" * 100_000 + "mean")) == 100_001
    with pytest.raises(ValueError, match="empty term"):
        src._split_terms("1e-" * 100_000 + "+")
    assert time.perf_counter() - t0 < 1.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet="maxinedpsvrcg:@.e0123456789-+* ", max_size=40))
def test_parse_fuzz_with_mixtures(text):
    try:
        obj = rankgrad.parse(text)
    except ValueError as err:
        assert not isinstance(err, TypeError)
        assert str(err).startswith("objective: cannot parse")
        return
    assert 0 < obj.k <= O.MAX_K
    if obj.parts:
        assert obj.k == max(o.k for _, o in obj.parts) and np.all(np.isfinite(obj.weights))


# ------------------------------------------------------------------------------ 5. schedules
def test_schedule_blends_objectives_of_different_k():
    """(1 − λ)·max@8 + λ·mean: value and advantages against brute force at every step."""
    lam = S.linear_weight(0.0, 1.0, 4)
    s = S.mixture("max@8", "mean", lam)
    rng = np.random.default_rng(5)
    y = np.round(rng.normal(size=9), 1)
    w8, w1 = np.array([1.0] + [0.0] * 7), np.array([1.0])
    adv8 = brute.include_one(y, w8) - brute.leave_one_out(y, w8)
    adv1 = brute.include_one(y, w1) - brute.leave_one_out(y, w1)
    for t in range(6):
        obj, lt = s(t), lam(t)
        assert obj.k == (1 if lt == 1.0 else 8)
        want_val = (1 - lt) * brute.batch_value(y, w8) + lt * brute.batch_value(y, w1)
        assert float(rankgrad.value(y, obj)) == pytest.approx(want_val, abs=1e-12)
        want_adv = (1 - lt) * adv8 + lt * (1 / obj.k) * adv1  # a part at K_j weighs (K_j / K)
        np.testing.assert_allclose(rankgrad.advantages(y, obj), want_adv, rtol=0, atol=1e-12)
    assert s(2).name == "0.5*max@8 + 0.5*mean" and s(2) == 0.5 * O.best_of_k(8) + 0.5 * O.mean()
    assert s.k_range() == (1, 8)


def test_schedule_k_range_bounds_every_step():
    cases = [
        S.mixture(S.objective("max@{k}", k=S.linear(8, 2, 6)), "mean@4", 0.5),
        S.mixture("max@2", S.objective("max@{k}", k=S.linear(8, 2, 4)), S.linear_weight(0.0, 1.0, 4)),
        S.mixture("cvar:0.5@4", "0.5*mean + 0.5*max@6", S.cosine_weight(1.0, 0.0, 5)),
    ]
    for s in cases:
        lo, hi = s.k_range()
        ks = [s(t).k for t in range(s.horizon + 2)]
        assert lo <= min(ks) and max(ks) <= hi, (ks, lo, hi)
    assert cases[0].k_range() == (4, 8) and cases[1].k_range() == (2, 8)
    assert [cases[0](t).k for t in range(7)] == [8, 7, 6, 5, 4, 4, 4]


def test_noise_correction_of_a_mixture_is_the_mixture_of_corrections():
    """The corrected kernel is the unique unbiased symmetric function of the observed count, so
    correcting the lifted mixture equals lifting the corrected parts: a_i = Σ_j c_j (K_j/K) ã^{(j)}_i."""
    rng = np.random.default_rng(2)
    y = (rng.random((5, 7)) < 0.5).astype(float)
    for spec, parts in MIXTURES[:3]:
        obj = rankgrad.parse(spec)
        got = rankgrad.advantages(y, obj, noise=(0.1, 0.2))
        want = sum(c * (len(w) / obj.k) * rankgrad.advantages(y, part, noise=(0.1, 0.2))
                   for c, part, w in parts)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
        assert np.abs(got - rankgrad.advantages(y, obj)).max() > 1e-3  # the correction does something


def test_flat_and_masked_layouts_take_a_mixture():
    spec, parts = MIXTURES[0]  # K = 3
    rng = np.random.default_rng(4)
    sizes = [4, 6, 5]
    y = np.round(rng.normal(size=sum(sizes)), 1)
    gid = np.repeat(np.arange(3), sizes)
    perm = rng.permutation(y.size)
    y, gid = y[perm], gid[perm]
    flat = rankgrad.advantages(y, spec, group_ids=gid)
    for g in range(3):
        yg = y[gid == g]
        np.testing.assert_allclose(flat[gid == g], _brute_advantages(yg, parts), rtol=0, atol=1e-12)
    dense = np.zeros((3, 6))
    mask = np.arange(6)[None, :] < np.array(sizes)[:, None]
    for g in range(3):
        dense[g, : sizes[g]] = y[gid == g]
    masked = rankgrad.advantages(dense, spec, mask=mask)
    for g in range(3):
        np.testing.assert_allclose(masked[g, : sizes[g]], flat[gid == g], rtol=0, atol=1e-12)


def test_the_mixtures_guide_examples_run():
    """docs/guides/mixtures.md: every ``>>>`` example gives the output the page shows."""
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "guides" / "mixtures.md"
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10 and result.failed == 0
