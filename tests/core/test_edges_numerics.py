"""Numerical edge cases of the estimators, on every backend:

1. padding next to a tied top reward of 0 (values, advantages, pieces and the pathwise gradient equal
   the unpadded group's);
2. NaN/inf/huge values in masked-out entries never reach a result;
4. the noise-corrected value of a fully masked group is 0; bad ``noise`` rates are named;
5. a constant group gives exactly 0 advantages, for every centred estimator (chen_passk included, also
   when fewer than K samples fail);
6. float32 accuracy with a large offset; exact values of constant groups;
7. huge finite rewards: exact power-of-two scaling (results equal those of the rewards divided by a
   power of two, times it), and a clear error when a result does not fit the output dtype;
8. ``eps`` and ``order_statistics``' ``k`` are validated.

JAX compiles its eager operations once per shape, so the jax cases use a few shapes only ([4, 6]
dense, [24] flat).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rankgrad
from rankgrad._src.errors import InputTypeError
from tests import brute
from tests.backends import BACKENDS, to_backend, to_numpy

G, N = 4, 6  # the shape of most cases

# (estimator, objective, binary rewards?) covering every estimator
CASES = [
    ("ordergrad", "max@2", False), ("ordergrad", "median@3", False), ("ordergrad", "gini@2", False),
    ("rloo", "mean", False), ("dr_grpo", "mean", False), ("grpo", "mean", False),
    ("pkpo_s", "max@2", False), ("pkpo_sloo", "cvar:0.5@2", False), ("pkpo_sloo1", "max@2", False),
    ("chen_passk", "max@2", True), ("gopo", "mean", False), ("gopo", "max@2", False),
]
PIECES = [rankgrad.include_one, rankgrad.leave_one_out]


def _mask_of(mask: np.ndarray, backend: str):
    if backend == "numpy":
        return mask
    if backend == "torch":
        return torch.as_tensor(mask)
    return jnp.asarray(mask)


def _value_grad(backend: str, y: np.ndarray, spec: str, mask: np.ndarray | None = None) -> np.ndarray:
    """d Σ value / d rewards by autograd (torch) or jax.grad."""
    if backend == "torch":
        r = torch.tensor(y, requires_grad=True)
        m = None if mask is None else torch.as_tensor(mask)
        rankgrad.value(r, spec, mask=m).sum().backward()
        return r.grad.numpy()
    m = None if mask is None else jnp.asarray(mask)
    return np.asarray(jax.grad(lambda a: rankgrad.value(a, spec, mask=m).sum())(jnp.asarray(y)))


def _per_group(fn, y: np.ndarray, mask: np.ndarray, spec: str) -> np.ndarray:
    """fn on each group alone (unpadded, numpy float64), put back in place, 0 elsewhere."""
    out = np.zeros_like(y)
    for i in range(y.shape[0]):
        if mask[i].any():
            out[i, mask[i]] = fn(y[i][mask[i]][None, :], spec)[0]
    return out


# ------------------------------------------------------------------ 1. padding and ties
@pytest.mark.parametrize("backend", BACKENDS)
def test_value_with_padding_after_a_top_zero(backend):
    """The largest valid reward is 0 and padding follows: padding must not join its tie block."""
    y = np.array([[-1.0, 0.0, 7.0, 7.0, 7.0, 7.0],
                  [0.0, -2.0, 0.0, 3.0, 0.0, 3.0],
                  [0.0, 0.0, 5.0, 5.0, 5.0, 5.0],
                  [-3.0, 0.0, -1.0, 0.0, 0.0, 0.0]])
    mask = np.array([[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 1, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    for spec, row0, grad0 in [("mean", -0.5, [0.5, 0.5]), ("max@2", 0.0, [0.0, 1.0]),
                              ("min@2", -1.0, [1.0, 0.0]), ("gini@2", 1.0, [-1.0, 1.0])]:
        got = to_numpy(rankgrad.value(to_backend(y, backend), spec, mask=_mask_of(mask, backend)))
        w = rankgrad.parse(spec).weights
        want = [brute.batch_value(y[i][mask[i]], w) for i in range(G)]
        assert want[0] == row0
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
        if backend == "torch" or (backend == "jax" and spec in ("mean", "max@2")):  # jax: compile time
            got = _value_grad(backend, y, spec, mask)
            np.testing.assert_allclose(got[0], grad0 + [0.0] * 4, rtol=0, atol=1e-15)
            for i in range(1, G):
                ref = _value_grad("torch", y[i][mask[i]][None, :], spec)[0]
                np.testing.assert_allclose(got[i][mask[i]], ref, rtol=0, atol=1e-15)
                assert np.all(got[i][~mask[i]] == 0)
    # the same groups flat, through group ids
    ids = np.repeat(np.arange(G), N)
    got = to_numpy(rankgrad.value(to_backend(y.reshape(-1), backend), "mean", group_ids=ids,
                                  mask=mask.reshape(-1)))
    np.testing.assert_allclose(got, [y[i][mask[i]].mean() for i in range(G)], rtol=0, atol=1e-15)


@st.composite
def padded_groups(draw):
    """[4, 6] groups of few distinct values (ties, zeros, often a top 0), masked at random positions
    (a group may be empty); masked-out entries hold arbitrary finite values."""
    spec = draw(st.sampled_from(["mean", "max@2", "min@2", "median@3", "gini@2", "cvar:0.5@2"]))
    need = rankgrad.parse(spec).k + 1
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    sizes = rng.integers(need, N + 1, size=G)
    if draw(st.booleans()):
        sizes[rng.integers(G)] = 0
    y = rng.choice(np.array([-2.0, -1.0, -0.5, 0.0, 0.0, 0.0, 1.5]), size=(G, N))
    if draw(st.booleans()):  # make 0 the largest valid reward
        y = np.minimum(y, 0.0)
    mask = np.zeros((G, N), bool)
    for i, n in enumerate(sizes):
        mask[i, rng.permutation(N)[:n]] = True
    y[~mask] = rng.choice([0.0, 7.0, -3.0], size=int((~mask).sum()))
    return spec, y, mask


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=20, deadline=None)
@given(case=padded_groups())
def test_padded_equals_unpadded(backend, case):
    spec, y, mask = case
    m = _mask_of(mask, backend)
    for fn in [rankgrad.advantages, *PIECES]:
        got = to_numpy(fn(to_backend(y, backend), spec, mask=m))
        np.testing.assert_allclose(got, _per_group(fn, y, mask, spec), rtol=1e-12, atol=1e-12)
    # value: against brute force over K-subsets, dense with a mask and flat with group ids
    w = rankgrad.parse(spec).weights
    want = [brute.batch_value(y[i][mask[i]], w) if mask[i].any() else 0.0 for i in range(G)]
    got = to_numpy(rankgrad.value(to_backend(y, backend), spec, mask=m))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    flat = to_numpy(rankgrad.value(to_backend(y.reshape(-1), backend), spec,
                                   group_ids=np.repeat(np.arange(G), N), mask=mask.reshape(-1)))
    np.testing.assert_allclose(flat, want, rtol=1e-12, atol=1e-12)
    if backend != "numpy":  # the pathwise gradient: the unpadded group's (by torch), 0 on padding
        got = _value_grad(backend, y, spec, mask)
        for i in range(G):
            assert np.all(got[i][~mask[i]] == 0)
            if mask[i].any():
                ref = _value_grad("torch", y[i][mask[i]][None, :], spec)[0]
                np.testing.assert_allclose(got[i][mask[i]], ref, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------- 2. masked-out NaN / inf
BAD = [np.nan, np.inf, -np.inf, 1e308, -1.7e308]


def _rewards_for(binary: bool, rng: np.random.Generator, shape: tuple) -> np.ndarray:
    if binary:
        return rng.integers(0, 2, size=shape).astype(float)
    return np.round(rng.normal(size=shape), 1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_masked_nan_at_every_position(backend, bad):
    """One masked-out entry at each position in turn (row j of ~eye leaves out sample j): every
    estimator, the pieces and the value give the result of the group without it, and 0 there."""
    rng = np.random.default_rng(3)
    eye = ~np.eye(N, dtype=bool)
    for rows in (eye[:4], eye[[4, 5, 0, 1]]):  # [4, 6] each
        for estimator, spec, binary in CASES:
            y = np.repeat(_rewards_for(binary, rng, (1, N)), G, axis=0)
            yb = np.where(rows, y, bad)
            got = to_numpy(rankgrad.advantages(to_backend(yb, backend), spec, mask=_mask_of(rows, backend),
                                               estimator=estimator))
            assert np.all(got[~rows] == 0), estimator
            want = _per_group(lambda a, s, e=estimator: rankgrad.advantages(a, s, estimator=e), y, rows, spec)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=estimator)
        y = np.repeat(rng.normal(size=(1, N)), G, axis=0)
        yb = np.where(rows, y, bad)
        for fn in PIECES:
            got = to_numpy(fn(to_backend(yb, backend), "max@2", mask=_mask_of(rows, backend)))
            np.testing.assert_allclose(got, _per_group(fn, y, rows, "max@2"), rtol=1e-12, atol=1e-12)
        got = to_numpy(rankgrad.value(to_backend(yb, backend), "max@2", mask=_mask_of(rows, backend)))
        want = [brute.batch_value(y[i][rows[i]], np.array([1.0, 0.0])) for i in range(G)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_masked_nan_rloo_hand_values():
    a = rankgrad.advantages(np.array([[np.nan, 1, 0, 1, 0]]), "mean",
                            mask=np.array([[False, True, True, True, True]]), estimator="rloo")
    np.testing.assert_allclose(a, [[0, 2 / 3, -2 / 3, 2 / 3, -2 / 3]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), flat=st.booleans())
def test_masked_values_never_matter(backend, seed, flat):
    """Random masks, NaN/inf/huge values at random masked-out spots: bit-identical to the same
    input with 0 there, for every estimator; dense with a mask or flat with group ids."""
    rng = np.random.default_rng(seed)
    mask = np.ones((G, N), bool)
    for i in range(G):
        mask[i, rng.permutation(N)[: rng.integers(0, N - 3)]] = False  # >= 4 samples stay
    for estimator, spec, binary in CASES:
        y0 = np.where(mask, _rewards_for(binary, rng, (G, N)), 0.0)
        yb = np.where(mask, y0, rng.choice(BAD, size=(G, N)))
        if flat:
            kw = dict(group_ids=np.repeat(np.arange(G), N), mask=mask.reshape(-1))
            y0, yb = y0.reshape(-1), yb.reshape(-1)
        else:
            kw = dict(mask=_mask_of(mask, backend))
        got = to_numpy(rankgrad.advantages(to_backend(yb, backend), spec, estimator=estimator, **kw))
        want = to_numpy(rankgrad.advantages(to_backend(y0, backend), spec, estimator=estimator, **kw))
        np.testing.assert_array_equal(got, want, err_msg=estimator)
        assert np.all(np.isfinite(got))


def test_masked_nan_under_jit():
    y = np.array([[np.nan, 1.0, 0.0, 1.0, 0.0, 2.0], [2.0, np.inf, 0.5, -1.0, 0.0, -np.inf],
                  [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [-np.inf, 1.0, 1.0, 0.0, 0.5, 0.25]])
    mask = np.isfinite(y)
    for estimator in ("rloo", "grpo", "dr_grpo", "gopo", "pkpo_s"):
        f = jax.jit(lambda a, m, e=estimator: rankgrad.advantages(a, "mean", mask=m, estimator=e))
        got = np.asarray(f(jnp.asarray(y), jnp.asarray(mask)))
        want = _per_group(lambda a, s, e=estimator: rankgrad.advantages(a, s, estimator=e), y, mask, "mean")
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=estimator)


# ------------------------------------------------------------------ 4. noisy verifiers
@pytest.mark.parametrize("backend", BACKENDS)
def test_noisy_value_of_an_empty_group_is_zero(backend):
    """mean with rates (ρ0, ρ1) is the mean of (r − ρ0)/(1 − ρ0 − ρ1) (backward correction)."""
    rho0, rho1 = 0.1, 0.2
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=(G, N)).astype(float)
    mask = rng.random((G, N)) < 0.7
    mask[1] = False
    mask[:, 0] |= np.arange(G) != 1
    want = [0.0 if not mask[i].any() else float(np.mean((y[i][mask[i]] - rho0) / (1 - rho0 - rho1)))
            for i in range(G)]
    for call in (lambda a, m: rankgrad.noisy.value(a, "mean", rho0=rho0, rho1=rho1, mask=m),
                 lambda a, m: rankgrad.value(a, "mean", noise=(rho0, rho1), mask=m)):
        got = to_numpy(call(to_backend(y, backend), _mask_of(mask, backend)))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        assert got[1] == 0
    flat = to_numpy(rankgrad.noisy.value(to_backend(y.reshape(-1), backend), "mean", rho0=rho0, rho1=rho1,
                                         group_ids=np.repeat(np.arange(G), N), mask=mask.reshape(-1)))
    np.testing.assert_allclose(flat, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "noise",
    [(None, None), (np.nan, 0.1), (0.1, np.nan), (-0.1, 0.1), (0.1, -0.2), (0.6, 0.5), (1.0, 0.0),
     (None, np.nan), (None, -0.1), (None, 1.0), ("x", 0.1), (0.1, "x"), (0.1,), 0.1],
)
def test_bad_noise_rates_name_noise(noise):
    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match=r"^noise: "):
        rankgrad.advantages(y, "mean", noise=noise)
    with pytest.raises(ValueError, match=r"^noise: "):
        rankgrad.value(y, "mean", noise=noise)


def test_bad_rates_in_noisy_module_are_named():
    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    with pytest.raises(InputTypeError, match=r"^rho0: "):
        rankgrad.noisy.advantages(y, "mean", rho0=None, rho1=0.1)
    with pytest.raises(ValueError, match=r"^rho0, rho1: "):
        rankgrad.noisy.value(y, "mean", rho0=np.nan, rho1=0.1)
    with pytest.raises(ValueError, match=r"^rho1: "):
        rankgrad.noisy.forward_advantages(y, rho1=np.nan)


# -------------------------------------------------------------- 5. constant groups
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_constant_group_gives_exact_zeros(backend, dtype):
    """Centred estimators give exactly 0; PKPO's s_i, s_i^(loo) (no baseline) give their hand values
    (K/N)·c and −K·c/(N(N−1)), and s_i^(loo−1) gives 0."""
    for estimator, spec, binary in CASES:
        k = rankgrad.parse(spec).k
        consts = [0.0, 1.0, 1.0, 0.0] if binary else [1.0, 0.1, -3.7, 1e4 if dtype == "float16" else -1e6]
        c = np.asarray(consts, dtype).astype(np.float64)[:, None]  # c as the dtype holds it
        a = to_numpy(rankgrad.advantages(to_backend(np.repeat(c, N, axis=1), backend, dtype), spec,
                                         estimator=estimator))
        if rankgrad.ESTIMATORS[estimator].centred or estimator == "pkpo_sloo1":
            assert np.all(a == 0), (estimator, a)
        else:
            want = c * k / N if estimator == "pkpo_s" else -c * k / (N * (N - 1))
            np.testing.assert_allclose(a, np.broadcast_to(want, a.shape), rtol=4 * np.finfo(dtype).eps,
                                       err_msg=estimator)


@pytest.mark.parametrize("backend,dtype", [(b, d) for b in BACKENDS for d in ("float64", "float32")
                                           if (b, d) != ("jax", "float32")])  # jax: compile time
def test_chen_passk_is_zero_when_every_subset_passes(backend, dtype):
    """Fewer than K fails: every K-subset passes, V = 1, σ = 0, and every q_i = 1: all zeros."""
    width = 16  # groups of every size n <= 16, padded to one shape: one call per K
    for k in range(1, width):
        rows = [(n, f) for n in range(k + 1, width + 1) for f in range(k)]
        rows += [(0, 0)] * (64 - len(rows))  # fully masked filler rows
        y = np.array([[1.0 if j < n - f else 0.0 for j in range(width)] for n, f in rows])
        mask = np.array([[j < n for j in range(width)] for n, _ in rows])
        a = to_numpy(rankgrad.advantages(to_backend(y, backend, dtype), f"max@{k}", estimator="chen_passk",
                                         mask=_mask_of(mask, backend)))
        assert np.all(a == 0), (k, a)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_chen_passk_against_closed_form(backend):
    """(q_i − V)/sqrt(V(1 − V)) with V = 1 − C(z, K)/C(N, K), q_fail = 1 − C(z−1, K−1)/C(N−1, K−1)."""
    width = 11
    for k in range(1, width):
        rows = [(n, z) for n in range(k + 1, width + 1) for z in range(n + 1)]
        y = np.array([[1.0 if j < n - z else 0.0 for j in range(width)] for n, z in rows])
        mask = np.array([[j < n for j in range(width)] for n, _ in rows])
        a = to_numpy(rankgrad.advantages(to_backend(y, backend), f"max@{k}", estimator="chen_passk",
                                         mask=_mask_of(mask, backend)))
        for row, (n, z) in enumerate(rows):
            v = 1 - math.comb(z, k) / math.comb(n, k)
            q_fail = 1 - (math.comb(z - 1, k - 1) / math.comb(n - 1, k - 1) if z else 0.0)
            sd = math.sqrt(v * (1 - v))
            want = np.zeros(width)
            if sd > 0:
                want[: n - z], want[n - z : n] = (1 - v) / sd, (q_fail - v) / sd
            np.testing.assert_allclose(a[row], want, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------- 6. float32 with a large offset
@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_offset_accuracy(backend):
    """Rewards near −1e6 in float32 against float64 results from the same float32 inputs."""
    y32 = (np.random.default_rng(0).normal(size=(G, N)) - 1e6).astype(np.float32)
    for estimator, spec, binary in CASES:
        if binary:
            continue
        ref = rankgrad.advantages(y32.astype(np.float64), spec, estimator=estimator)
        got = to_numpy(rankgrad.advantages(to_backend(y32, backend, "float32"), spec, estimator=estimator))
        assert got.dtype == np.float32
        assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max(), estimator


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_value_of_constant_group_is_exact(backend, dtype):
    """V(c, ..., c) = c·Σw exactly: 0 for zero-sum objectives (Gini, L-moments >= 2), c otherwise."""
    c = np.array([[-1e6], [12345.678], [0.1], [-3.0]], dtype)
    y = to_backend(np.repeat(c, N, axis=1), backend, dtype)
    for spec, total in [("gini@4", 0), ("lmoment:2@5", 0), ("lmoment:3@6", 0), ("lmoment:4@6", 0),
                        ("mean@6", 1), ("max@4", 1), ("cvar:0.3@6", 1), ("median@5", 1)]:
        got = to_numpy(rankgrad.value(y, spec))
        np.testing.assert_array_equal(got, c[:, 0] * total, err_msg=spec)


# ----------------------------------------------------------------- 7. huge rewards
LINEAR = [(e, s) for e, s, b in CASES if e not in ("grpo", "gopo", "chen_passk")]
POW = {"float64": 1000, "float32": 120}  # |r| < 4 times 2^POW stays below the dtype's max / 8


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_huge_rewards_equal_scaled_small_ones(backend, dtype):
    """r·2^p gives exactly (bit for bit) 2^p times the results for r, group by group; GRPO and GOPO
    (scale-free) give the same results. Row 1 stays small (its own scale)."""
    rng = np.random.default_rng(1)
    small = np.clip(rng.normal(size=(G, N)), -3.9, 3.9).astype(dtype)
    small[0, :3] = small[0, 3]  # a tie
    factor = np.ones((G, 1), dtype)
    factor[[0, 2, 3]] = np.ldexp(np.ones(1, dtype), [[POW[dtype]], [POW[dtype] - 7], [POW[dtype] // 2]])
    big = small * factor
    assert np.all(np.isfinite(big))
    B, S = to_backend(big, backend, dtype), to_backend(small, backend, dtype)
    for estimator, spec in LINEAR:
        got = to_numpy(rankgrad.advantages(B, spec, estimator=estimator))
        want = to_numpy(rankgrad.advantages(S, spec, estimator=estimator)) * factor
        np.testing.assert_array_equal(got, want, err_msg=estimator)
    for fn in PIECES:
        np.testing.assert_array_equal(to_numpy(fn(B, "median@3")), to_numpy(fn(S, "median@3")) * factor)
    for spec in ("mean", "max@3", "gini@4", "cvar:0.5@4"):
        np.testing.assert_array_equal(to_numpy(rankgrad.value(B, spec)),
                                      to_numpy(rankgrad.value(S, spec)) * factor[:, 0])
    for estimator, spec in [("grpo", "mean"), ("gopo", "mean"), ("gopo", "max@2")]:
        got = to_numpy(rankgrad.advantages(B, spec, estimator=estimator, eps=0.0))
        want = to_numpy(rankgrad.advantages(S, spec, estimator=estimator, eps=0.0))
        np.testing.assert_array_equal(got, want, err_msg=estimator)
    if backend != "numpy" and dtype == "float64":  # the gradient of a linear function: scale-free
        np.testing.assert_array_equal(_value_grad(backend, big, "median@3"),
                                      _value_grad(backend, small, "median@3"))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_huge_rewards_hand_values(backend):
    y = to_backend(np.array([[0.0, 0.0, 0.0, 0.0, 1.44e308]]), backend)
    for estimator in ("ordergrad", "rloo"):  # r_i − mean of the others
        a = to_numpy(rankgrad.advantages(y, "mean", estimator=estimator))
        np.testing.assert_allclose(a, [[-3.6e307] * 4 + [1.44e308]], rtol=1e-14)
    np.testing.assert_allclose(to_numpy(rankgrad.advantages(y, "mean", estimator="dr_grpo")),
                               [[-2.88e307] * 4 + [1.152e308]], rtol=1e-14)
    np.testing.assert_allclose(to_numpy(rankgrad.value(y, "mean")), [2.88e307], rtol=1e-14)
    np.testing.assert_allclose(to_numpy(rankgrad.value(y, "max@5")), [1.44e308], rtol=1e-14)
    # GRPO is scale-free: ±1e200 gives the standardised pattern of ±1
    r = np.array([[1.0, -1.0, 0.0, 1.0]])
    d = r - r.mean()
    want = d / math.sqrt((d**2).sum() / 3)
    for eps in (0.0, 1e-6):
        got = to_numpy(rankgrad.advantages(to_backend(r * 1e200, backend), "mean", estimator="grpo", eps=eps))
        np.testing.assert_allclose(got, want, rtol=1e-14)
    # near ±max: a finite result, or the clear error when one does not fit float64 — never inf/NaN
    y = to_backend(np.array([[1.7e308, -1.7e308, 0.0, 1e308, -1e308, 5e307]]), backend)
    finite = 0
    for estimator, spec, binary in CASES:
        if binary:
            continue
        try:
            a = to_numpy(rankgrad.advantages(y, spec, estimator=estimator))
        except ValueError as err:
            assert str(err).startswith("rewards: the advantages do not fit"), err
            continue
        assert np.all(np.isfinite(a)), estimator
        finite += 1
    assert finite >= 6  # dr_grpo, grpo, gopo, pkpo_s, ...


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_that_do_not_fit_raise(backend):
    """float16: [−4e4, 4e4 ×5] gives a_0 = −8e4 < −65504; float64: ±1.7e308 gives ∓3.4e308."""
    row = np.array([[-4e4] + [4e4] * (N - 1)])
    y16 = to_backend(np.repeat(row, G, axis=0), backend, "float16")
    for estimator in ("ordergrad", "rloo"):
        with pytest.raises(ValueError, match=r"^rewards: the advantages do not fit .*float16"):
            rankgrad.advantages(y16, "mean", estimator=estimator)
    ok = np.repeat(np.array([[-3e4, 3e4] + [0.0] * (N - 2)]), G, axis=0)
    got = to_numpy(rankgrad.advantages(to_backend(ok, backend, "float16"), "mean"))
    np.testing.assert_array_equal(got, np.repeat(np.array([[-3.6e4, 3.6e4] + [0.0] * (N - 2)], np.float16),
                                                 G, axis=0))
    with pytest.raises(ValueError, match=r"^rewards: the advantages do not fit .*float64"):
        rankgrad.advantages(to_backend(np.repeat(row, G, axis=0) * 4.25e303, backend), "mean")
    with pytest.raises(ValueError, match=r"^rewards: the values do not fit .*float16"):
        rankgrad.value(to_backend(np.full((G, N), 6e4), backend, "float16"),
                       rankgrad.Objective.from_weights([2.0, 0.0]))  # 2·max = 1.2e5


def test_huge_rewards_under_jit():
    """Traced: every group's scale is computed in the graph."""
    rng = np.random.default_rng(2)
    small = rng.normal(size=(G, N))
    factor = np.array([[2.0**1000], [1.0], [2.0**-40], [2.0**900]])
    big = small * factor
    f = jax.jit(lambda a: rankgrad.advantages(a, "cvar:0.5@4"))
    np.testing.assert_allclose(np.asarray(f(jnp.asarray(big))),
                               rankgrad.advantages(small, "cvar:0.5@4") * factor, rtol=1e-14)
    mask = np.ones((G, N), bool)
    mask[1, 2] = False
    fm = jax.jit(lambda a, m: rankgrad.advantages(a, "mean", mask=m, estimator="grpo", eps=0.0))
    np.testing.assert_allclose(np.asarray(fm(jnp.asarray(big), jnp.asarray(mask))),
                               rankgrad.advantages(small, "mean", mask=mask, estimator="grpo", eps=0.0),
                               rtol=1e-12)
    g = jax.jit(jax.grad(lambda a: rankgrad.value(a, "max@3").sum()))(jnp.asarray(big))
    np.testing.assert_allclose(np.asarray(g), _value_grad("torch", small, "max@3"), rtol=1e-14)


# ------------------------------------------------------------------ 8. knobs
@pytest.mark.parametrize("eps", [np.nan, -1e-6, np.inf, -np.inf])
def test_bad_eps_is_named(eps):
    with pytest.raises(ValueError, match=r"^eps: "):
        rankgrad.advantages(np.array([[1.0, 2.0, 3.0]]), "mean", estimator="grpo", eps=eps)


@pytest.mark.parametrize("eps", ["1e-6", None, [1e-6], True])
def test_eps_of_a_wrong_type_is_named(eps):
    with pytest.raises(InputTypeError, match=r"^eps: "):
        rankgrad.advantages(np.array([[1.0, 2.0, 3.0]]), "mean", estimator="grpo", eps=eps)


def test_grpo_eps_zero():
    """eps = 0: a constant group gives 0 (not 0/0), and tiny rewards (whose squares underflow) give
    the standardised pattern."""
    y = np.array([[2.0, 2.0, 2.0], [1.0, 0.0, 2.0], [1e-170, 0.0, 2e-170]])
    a = rankgrad.advantages(y, "mean", estimator="grpo", eps=0.0)
    np.testing.assert_allclose(a, [[0, 0, 0], [0, -1, 1], [0, -1, 1]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("k,exc", [(0, ValueError), (-2, ValueError), (7, ValueError), (2.5, InputTypeError),
                                   (2.0, InputTypeError), (True, InputTypeError), ("2", InputTypeError)])
def test_order_statistics_bad_k_is_named(k, exc):
    y = np.arange(6.0)
    with pytest.raises(exc, match=r"^k: "):
        rankgrad.order_statistics(y, k)
    with pytest.raises(exc, match=r"^k: "):
        rankgrad.order_statistics(y, k, group_ids=[0, 0, 0, 1, 1, 1])


def test_order_statistics_k_matches_brute_force():
    y = np.array([0.3, -1.0, 2.0, 0.0, 0.0])
    np.testing.assert_allclose(rankgrad.order_statistics(y, np.int64(3)), brute.order_statistics(y, 3),
                               rtol=1e-13)
