"""Identities that hold for every objective and input (hypothesis), and layout equivalences:
ragged (group ids) = padded with a mask = per-group calls; masked = sliced; backends agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rankgrad
from tests.backends import to_backend, to_numpy
from tests.objective_cases import merged, missing_names, preset_specs, skipped_presets

K = 4
# Every registry preset at K (tests/objective_cases.py), then hand-picked cases at other K and parameters.
HAND_PICKED = ["max@3", "min@2", "cvar:0.3@5", "upper:0.5@4", "trim:1@5", "quantile:0.7@3", "gini@3",
               "lmoment:3@3"]
SPECS = merged(preset_specs(K), HAND_PICKED)


def test_cases_cover_the_registry():
    """Every preset name and alias is in SPECS at K (none skipped for want of a parameter)."""
    assert skipped_presets(K) == {}
    assert missing_names([s for s in SPECS if s.endswith(f"@{K}")]) == []


@st.composite
def groups(draw):
    spec = draw(st.sampled_from(SPECS))
    k = rankgrad.parse(spec).k
    n = draw(st.integers(min_value=k + 1, max_value=12))
    g = draw(st.integers(min_value=1, max_value=4))
    levels = draw(st.sampled_from([None, 2, 3]))  # None: continuous, else few values (ties)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(g, n)) if levels is None else rng.integers(0, levels, (g, n)).astype(float)
    return spec, y, seed


@settings(max_examples=150, deadline=None)
@given(groups())
def test_identities(case):
    spec, y, seed = case
    rng = np.random.default_rng(seed)
    a = rankgrad.advantages(y, spec)
    q = rankgrad.include_one(y, spec)
    v = rankgrad.leave_one_out(y, spec)
    val = rankgrad.value(y, spec)
    scale = np.abs(y).max() + 1
    # zero-sum, mean_t q_t = V = mean_t v_t
    np.testing.assert_allclose(a.sum(-1), 0, atol=1e-12 * scale * y.shape[-1])
    np.testing.assert_allclose(q.mean(-1), val, atol=1e-12 * scale)
    np.testing.assert_allclose(v.mean(-1), val, atol=1e-12 * scale)
    # permutation equivariance (exactly: the same sort, the same arithmetic)
    perm = rng.permutation(y.shape[-1])
    np.testing.assert_allclose(rankgrad.advantages(y[:, perm], spec), a[:, perm], atol=1e-13 * scale)
    # translation invariance of a, equivariance of V; positive scale equivariance
    c, s = rng.normal() * 100, rng.uniform(0.1, 10)
    np.testing.assert_allclose(rankgrad.advantages(y + c, spec), a, atol=1e-11 * (abs(c) + scale))
    tw = rankgrad.parse(spec).total_weight
    np.testing.assert_allclose(rankgrad.value(y + c, spec), val + c * tw, atol=1e-11 * (abs(c) + scale))
    np.testing.assert_allclose(rankgrad.advantages(s * y, spec), s * a, atol=1e-12 * s * scale)
    # tied rewards get identical advantages, bit for bit
    for gi in range(y.shape[0]):
        for val_ in np.unique(y[gi]):
            same = a[gi][y[gi] == val_]
            assert np.all(same == same[0])


@pytest.mark.parametrize("spec", SPECS)
def test_constant_group_is_exactly_zero(backend, spec):
    for c in (0.0, 1.0, 0.1, -1e6, 3.3e-7):
        y = np.full((2, 9), c)
        a = to_numpy(rankgrad.advantages(to_backend(y, backend), spec))
        assert np.all(a == 0.0)
        a32 = to_numpy(rankgrad.advantages(to_backend(y, backend, "float32"), spec))
        assert a32.dtype == np.float32 and np.all(a32 == 0.0)


def test_backends_agree(backend):
    rng = np.random.default_rng(0)
    y = np.round(rng.normal(size=(16, 11)), 1)  # with ties
    for spec in SPECS:
        ref = rankgrad.advantages(y, spec)
        got = to_numpy(rankgrad.advantages(to_backend(y, backend), spec))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            to_numpy(rankgrad.value(to_backend(y, backend), spec)), rankgrad.value(y, spec),
            rtol=0, atol=1e-12,
        )


def _ragged(seed: int):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 13, size=7)
    chunks = [np.round(rng.normal(size=s), 1) for s in sizes]
    ids = np.concatenate([np.full(s, 100 - i) for i, s in enumerate(sizes)])  # labels not 0..G−1
    flat = np.concatenate(chunks)
    perm = rng.permutation(flat.size)  # interleave groups
    return chunks, flat[perm], ids[perm], perm


@pytest.mark.parametrize("estimator", sorted(rankgrad.ESTIMATORS))
def test_ragged_equals_padded_equals_per_group(backend, estimator):
    spec = "mean" if rankgrad.ESTIMATORS[estimator].objectives == "mean" else "max@4"
    chunks, flat, ids, perm = _ragged(3)
    if estimator == "chen_passk":
        chunks = [(c > 0).astype(float) for c in chunks]
        flat = np.concatenate(chunks)[perm]
    per_group = np.concatenate(
        [rankgrad.advantages(c, spec, estimator=estimator) for c in chunks]
    )[perm]
    got_flat = to_numpy(rankgrad.advantages(to_backend(flat, backend), spec, group_ids=ids,
                                            estimator=estimator))
    np.testing.assert_allclose(got_flat, per_group, rtol=0, atol=1e-12)
    # padded with a mask (padding filled with junk that must be ignored)
    width = max(len(c) for c in chunks)
    pad = np.full((len(chunks), width), 1e9)
    mask = np.zeros_like(pad, dtype=bool)
    for i, c in enumerate(chunks):
        pad[i, : len(c)] = c
        mask[i, : len(c)] = True
    got_pad = to_numpy(rankgrad.advantages(to_backend(pad, backend), spec, mask=to_backend(mask, backend),
                                           estimator=estimator))
    assert np.all(got_pad[~mask] == 0)
    np.testing.assert_allclose(np.concatenate([got_pad[i, : len(c)] for i, c in enumerate(chunks)]),
                               np.concatenate([rankgrad.advantages(c, spec, estimator=estimator)
                                               for c in chunks]), rtol=0, atol=1e-12)


def test_value_group_ids_in_order_of_first_appearance(backend):
    chunks, flat, ids, _ = _ragged(4)
    got = to_numpy(rankgrad.value(to_backend(flat, backend), "cvar:0.25@4", group_ids=ids))
    order = list(dict.fromkeys(ids.tolist()))
    expected = [rankgrad.value(chunks[100 - lab], "cvar:0.25@4") for lab in order]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_string_group_ids_and_masked_equals_sliced():
    ids = np.array(["b", "a", "b", "a", "b", "a", "b", "c", "c", "c"])
    y = np.array([0.1, 0.5, 0.9, 0.2, 0.4, 0.3, 0.0, 1.0, 2.0, 3.0])
    mask = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 1], dtype=bool)
    a = rankgrad.advantages(y, "max@2", group_ids=ids, mask=mask)
    assert a[6] == 0
    b = y[[0, 2, 4]]
    np.testing.assert_allclose(a[[0, 2, 4]], rankgrad.advantages(b, "max@2"), atol=1e-14)
    np.testing.assert_allclose(rankgrad.value(y, "max@2", group_ids=ids, mask=mask),
                               [rankgrad.value(b, "max@2"), rankgrad.value(y[[1, 3, 5]], "max@2"),
                                rankgrad.value(y[7:], "max@2")], atol=1e-14)


def test_fully_masked_group_gives_zero(backend):
    y = np.arange(12.0).reshape(2, 6)
    mask = np.ones_like(y, dtype=bool)
    mask[1] = False
    a = to_numpy(rankgrad.advantages(to_backend(y, backend), "max@3", mask=to_backend(mask, backend)))
    v = to_numpy(rankgrad.value(to_backend(y, backend), "max@3", mask=to_backend(mask, backend)))
    assert np.all(a[1] == 0) and v[1] == 0 and np.all(np.isfinite(a))
    np.testing.assert_allclose(a[0], rankgrad.advantages(y[0], "max@3"), atol=1e-13)


def test_leading_axes_and_dtypes(backend):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(2, 3, 7))
    for dtype in ("float32", "float64"):
        x = to_backend(y, backend, dtype)
        a = rankgrad.advantages(x, "median@3")
        v = rankgrad.value(x, "median@3")
        assert tuple(a.shape) == (2, 3, 7) and tuple(v.shape) == (2, 3)
        assert str(a.dtype).endswith(dtype) and str(v.dtype).endswith(dtype)
        assert type(a) is type(x)
        tol = 1e-5 if dtype == "float32" else 1e-13
        np.testing.assert_allclose(to_numpy(a).reshape(6, 7),
                                   rankgrad.advantages(y.reshape(6, 7), "median@3"), atol=tol)


def test_integer_and_bool_rewards(backend):
    y = np.array([[1, 0, 0, 1, 0, 0, 1, 0]])
    a = rankgrad.advantages(to_backend(y, backend), "max@4")
    assert "float" in str(a.dtype)
    np.testing.assert_allclose(to_numpy(a) * 35, [[5, -3, -3, 5, -3, -3, 5, -3]], atol=1e-5)
    ab = rankgrad.advantages(to_backend(y.astype(bool), backend), "max@4")
    np.testing.assert_allclose(to_numpy(ab), to_numpy(a), atol=1e-6)


def test_advantages_never_carry_gradients():
    import jax
    import jax.numpy as jnp
    import torch

    t = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert not rankgrad.advantages(t, "max@3").requires_grad
    g = jax.grad(lambda y: (rankgrad.advantages(y, "max@3") * y).sum())(jnp.ones((2, 5)) * jnp.arange(5.0))
    np.testing.assert_allclose(np.asarray(g), rankgrad.advantages(np.ones((2, 5)) * np.arange(5.0), "max@3"))
