"""Edges of layouts, types, group ids, caches and memory.

Expected values come from brute force over K-subsets (tests/brute.py, or the same enumeration
vectorised over many equal-size groups here) or from closed forms for 0/1 rewards (math.comb), never
from rankgrad itself.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
import threading
import time
import tracemalloc
from collections import OrderedDict
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rankgrad
from rankgrad._src import ops as ops_lib
from rankgrad._src import weights as W
from rankgrad._src.errors import InputTypeError
from rankgrad._src.layout import bucket_plan, bucketed, group_codes
from rankgrad.integrations import group_advantages, token_advantages
from tests import brute
from tests.backends import to_backend, to_numpy


def _w(spec: str) -> np.ndarray:
    """Top-first weights of a preset (the brute-force side needs only the weight vector)."""
    return rankgrad.parse(spec).weights


def _brute_adv(y: np.ndarray, spec: str) -> np.ndarray:
    w = _w(spec)
    return brute.include_one(y, w) - brute.leave_one_out(y, w)


def _brute_dense(y: np.ndarray, spec: str) -> np.ndarray:
    return np.stack([_brute_adv(row, spec) for row in np.asarray(y, dtype=np.float64)])


def _brute_by_label(y: np.ndarray, keys: list, spec: str) -> tuple[np.ndarray, list]:
    """Per-sample advantages for groups given by equal ``keys``; also the keys in first-appearance order."""
    out = np.zeros(len(keys))
    order: list = []
    for key in keys:
        if key not in order:
            order.append(key)
    for key in order:
        idx = [i for i, k in enumerate(keys) if k == key]
        out[idx] = _brute_adv(y[idx], spec)
    return out, order


def _fresh_table_cache(monkeypatch: pytest.MonkeyPatch, like, maxsize: int = 256) -> None:
    ops = ops_lib.get_ops(like)
    monkeypatch.setattr(ops, "_tables", ops_lib._TableCache(maxsize))


# ------------------------------------------------------------- 1. jax traces
Y6 = np.round(np.random.default_rng(0).normal(size=(3, 6)), 1)
MASK6 = np.array([[True] * 6, [True, True, True, False, True, False], [False] + [True] * 5])


# Seven groups of width 6 keeping 0, 1, ..., 6 samples: an eager masked call then needs the tables of
# every size 0..6, exactly those a traced masked call builds.
Y7 = np.round(np.random.default_rng(1).normal(size=(7, 6)), 1)  # ties, and a reward of exactly 0
MASK7 = np.stack([np.random.default_rng(k).permutation(6) < k for k in range(7)])


def _mean_values(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.array([y[g, mask[g]].mean() if mask[g].any() else 0.0 for g in range(len(y))])


def test_jax_eager_after_jit_reuses_no_traced_table(monkeypatch):
    _fresh_table_cache(monkeypatch, jnp.zeros(1))  # the trace must build the table itself
    cache = ops_lib.get_ops(jnp.zeros(1))._tables
    x = jnp.asarray(Y6)
    jitted = jax.jit(lambda a: rankgrad.advantages(a, "max@2"))(x)
    assert not any(isinstance(v[1], jax.core.Tracer) for v in cache.data.values())
    eager = rankgrad.advantages(x, "max@2")
    assert cache.data and not any(isinstance(v[1], jax.core.Tracer) for v in cache.data.values())
    want = _brute_dense(Y6, "max@2")
    np.testing.assert_allclose(np.asarray(jitted), want, atol=1e-12)
    np.testing.assert_allclose(np.asarray(eager), want, atol=1e-12)


def test_jax_eager_after_jit_masked(monkeypatch):
    _fresh_table_cache(monkeypatch, jnp.zeros(1))
    x, m = jnp.asarray(Y7), jnp.asarray(MASK7)
    jitted = jax.jit(lambda a, k: rankgrad.value(a, "mean", mask=k))(x, m)
    eager = rankgrad.value(x, "mean", mask=m)
    np.testing.assert_allclose(np.asarray(jitted), _mean_values(Y7, MASK7), atol=1e-12)
    np.testing.assert_allclose(np.asarray(eager), _mean_values(Y7, MASK7), atol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_jax_retrace_with_new_batch_size_and_second_function(monkeypatch, masked):
    _fresh_table_cache(monkeypatch, jnp.zeros(1))
    m = (lambda g: jnp.asarray(MASK6[:g])) if masked else (lambda g: None)
    f1 = jax.jit(lambda a, mk: rankgrad.advantages(a, "cvar:0.5@2", mask=mk))
    f2 = jax.jit(lambda a, mk: rankgrad.advantages(a, "cvar:0.5@2", mask=mk) * 2.0)
    outs = [f1(jnp.asarray(Y6[:1]), m(1)), f1(jnp.asarray(Y6), m(3)), f2(jnp.asarray(Y6[:2]), m(2))]
    for out, factor in zip(outs, (1.0, 1.0, 2.0), strict=True):
        g = out.shape[0]
        want = np.zeros((g, 6))
        for i in range(g):
            keep = MASK6[i] if masked else np.ones(6, bool)
            want[i, keep] = factor * _brute_adv(Y6[i, keep], "cvar:0.5@2")
        np.testing.assert_allclose(np.asarray(out), want, atol=1e-12)


def test_jax_grad_of_jitted_value_then_eager(monkeypatch):
    _fresh_table_cache(monkeypatch, jnp.zeros(1))
    x = jnp.asarray(Y6)
    grad = jax.jit(jax.grad(lambda a: rankgrad.value(a, "median@3").sum()))(x)
    # d V / d y sums to the total weight (1) over each group
    np.testing.assert_allclose(np.asarray(grad).sum(-1), 1.0, atol=1e-12)
    v = np.asarray(rankgrad.value(x, "median@3"))
    np.testing.assert_allclose(v, [brute.batch_value(row, _w("median@3")) for row in Y6], atol=1e-12)


def test_jax_grad_of_jitted_masked_value_then_eager(monkeypatch):
    _fresh_table_cache(monkeypatch, jnp.zeros(1))
    x, m = jnp.asarray(Y7), jnp.asarray(MASK7)
    grad = np.asarray(jax.jit(jax.grad(lambda a: rankgrad.value(a, "mean", mask=m).sum()))(x))
    n = MASK7.sum(-1, keepdims=True)
    np.testing.assert_allclose(grad, np.where(MASK7, 1.0 / np.maximum(n, 1), 0.0), atol=1e-12)
    eager = rankgrad.value(x, "mean", mask=m)
    np.testing.assert_allclose(np.asarray(eager), _mean_values(Y7, MASK7), atol=1e-12)


# ---------------------------------------------------------- 2. thread safety

def _race(work, threads: int = 8) -> None:
    """Run ``work(t)`` for t = 0..threads−1 on that many threads at once, switching threads as often as
    possible so that races show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
    finally:
        sys.setswitchinterval(old)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_table_cache_hits_and_evictions_race_free(monkeypatch, backend):
    """8 threads, 3 tables, room for 2: hits and evictions interleave. The cache's dict yields the GIL
    after every look-up, so another thread runs exactly where a look-up and its follow-up could race."""

    class YieldingDict(OrderedDict):
        def get(self, key, default=None):
            out = super().get(key, default)
            time.sleep(0)
            return out

    like = to_backend(np.zeros(1), backend)
    _fresh_table_cache(monkeypatch, like, maxsize=2)
    ops = ops_lib.get_ops(like)
    ops._tables.data = YieldingDict()
    tables = [np.full(4, float(i)) for i in range(3)]
    errors: list = []
    wrong: list = []

    def work(t: int) -> None:
        try:
            for i in range(200):
                j = (7 * i + 3 * t + (i >> 3)) % 3
                if float(ops.table(tables[j], like)[0]) != j:
                    wrong.append(j)
        except Exception as e:
            errors.append(e)

    _race(work)
    assert not errors and not wrong, (errors[:3], wrong[:3])
    assert len(ops._tables.data) <= 2


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_threads_evicting_caches_match_single_threaded(monkeypatch, backend):
    """8 threads, different objectives and widths, caches of 2 entries: every call evicts."""
    like = to_backend(np.zeros(1), backend)
    _fresh_table_cache(monkeypatch, like, maxsize=2)
    monkeypatch.setattr(W, "_rank_tables", functools.lru_cache(maxsize=2)(W._rank_tables.__wrapped__))
    monkeypatch.setattr(W, "_stacked", functools.lru_cache(maxsize=2)(W._stacked.__wrapped__))
    rng = np.random.default_rng(1)
    specs = ["max@2", "mean", "cvar:0.5@2", "median@3", "min@2", "max@3", "trim:1@3", "rank:2@3"]
    cases = []
    for i, spec in enumerate(specs):
        n = 6 if backend == "jax" else 5 + i  # eager jax compiles per shape: one width there
        y = np.round(rng.normal(size=(3, n)), 1)
        mask = np.ones((3, n), bool)
        mask[1, -1] = False  # a ragged group: the stacked-table path too
        cases.append((spec, y, mask))
    want = [(_brute_dense(y, spec), [_brute_adv(y[g][m[g]], spec) for g in range(3)])
            for spec, y, m in cases]
    errors: list = []
    results: dict = {}

    reps = 6 if backend == "jax" else 30  # eager jax dispatch is slow; one cache class for all

    def work(t: int) -> None:
        try:
            for rep in range(reps):
                spec, y, m = cases[(t + rep) % len(cases)]
                a = to_numpy(rankgrad.advantages(to_backend(y, backend), spec))
                am = to_numpy(rankgrad.advantages(to_backend(y, backend), spec, mask=to_backend(m, backend)))
                results.setdefault((t + rep) % len(cases), []).append((a, am))
        except Exception as e:
            errors.append(e)

    _race(work)
    assert not errors, errors[:3]
    for i, outs in results.items():
        spec, y, m = cases[i]
        single = to_numpy(rankgrad.advantages(to_backend(y, backend), spec))
        single_m = to_numpy(rankgrad.advantages(to_backend(y, backend), spec, mask=to_backend(m, backend)))
        np.testing.assert_allclose(single, want[i][0], atol=1e-12)
        for g in range(3):
            np.testing.assert_allclose(single_m[g][m[g]], want[i][1][g], atol=1e-12)
        for a, am in outs:
            np.testing.assert_array_equal(a, single)
            np.testing.assert_array_equal(am, single_m)


# --------------------------------------------------------------- 3. group ids
def _kind_key(v):
    """The policy, written out: kind + value; ints and floats compare by value; bools are their own."""
    if isinstance(v, (bool, np.bool_)):
        return ("bool", bool(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return ("num", float(v))
    if isinstance(v, bytes):
        return ("bytes", v)
    return ("str", str(v))


@pytest.mark.parametrize(
    "ids",
    [
        [1, "1", 1.0, "1", 1, "1", 1.0, "1"],  # "1" != 1, 1 == 1.0
        [True, 1, True, 1, 1, True, True, 1],  # True is its own group
        np.array([b"x", 2, "x", b"x", 2.0, "x", b"x", np.int64(2), "x"], dtype=object),  # bytes/num/str
        ["b", "a", "b", "a", "b", "a", "b", "a"],
        np.array([3, 1, 3, 1, 3, 1, 3, 1], dtype=np.uint8),
        np.array([0.5, -0.0, 0.5, 0.0, 0.5, -0.0, 0.5, 0.0]),  # -0.0 == 0.0
        (7, 7, 7, 7, 9, 9, 9, 9),
    ],
)
@pytest.mark.parametrize("backend", ["numpy", "torch"])  # host-side factorisation; jax ids below
def test_group_ids_of_any_kind_match_brute_force(ids, backend):
    y = np.array([0.3, 1.0, -0.2, 0.7, 0.1, 0.9, 0.4, -0.5, 0.6])[: len(ids)]
    keys = [_kind_key(v) for v in (ids.tolist() if isinstance(ids, np.ndarray) else ids)]
    want, order = _brute_by_label(y, keys, "max@2")
    got = to_numpy(rankgrad.advantages(to_backend(y, backend), "max@2", group_ids=ids))
    np.testing.assert_allclose(got, want, atol=1e-12)
    # one value per group, in order of first appearance
    vals = to_numpy(rankgrad.value(to_backend(y, backend), "max@2", group_ids=ids))
    want_v = [brute.batch_value(y[[i for i, k in enumerate(keys) if k == key]], _w("max@2")) for key in order]
    np.testing.assert_allclose(vals, want_v, atol=1e-12)
    # the helpers factorise the same way
    np.testing.assert_allclose(to_numpy(group_advantages(to_backend(y, backend), ids, "max@2")), want,
                               atol=1e-12)


LABELS = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.0, 1.0, 2.5, -1.0]), st.booleans(),
    st.sampled_from(["0", "1", "a", ""]), st.sampled_from([b"0", b"a"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(LABELS, min_size=1, max_size=14), st.integers(0, 2**31 - 1))
def test_mixed_labels_property(labels, seed):
    y = np.random.default_rng(seed).normal(size=len(labels))
    keys = [_kind_key(v) for v in labels]
    order = list(dict.fromkeys(keys))
    gc = group_codes(labels, len(labels))
    assert gc.count == len(order)
    np.testing.assert_array_equal(gc.codes, [order.index(k) for k in keys])
    sizes = [keys.count(k) for k in order]
    if min(sizes) >= 2:
        want, _ = _brute_by_label(y, keys, "mean")
        np.testing.assert_allclose(rankgrad.advantages(y, "mean", group_ids=labels), want, atol=1e-12)
        obj_arr = np.empty(len(labels), dtype=object)
        obj_arr[:] = labels
        np.testing.assert_allclose(group_advantages(y, obj_arr, "mean"), want, atol=1e-12)


@pytest.mark.parametrize(
    "ids,pos,what",
    [
        (np.array([0.0, 0.0, np.nan, 1.0, 1.0, np.nan]), 2, "nan"),
        ([1, 1, 1, None, 2, 2], 3, "None"),
        (np.array(["a", "a", None, "b", "b", "b"], dtype=object), 2, "None"),
        ([0, 0, 0, 1, 1, float("nan")], 5, "nan"),
        (torch.tensor([0.0, float("nan"), 0.0, 1.0, 1.0, 1.0]), 1, "nan"),
        (np.array([0.0, 0.0, 0.0, np.inf, 1.0, 1.0]), 3, "inf"),
    ],
)
def test_nan_none_ids_are_rejected_with_position(ids, pos, what):
    y = np.arange(6.0)
    with pytest.raises(ValueError, match=rf"group_ids: found the label {what} at position {pos}\b"):
        rankgrad.advantages(y, "mean", group_ids=ids)
    with pytest.raises(ValueError, match=rf"uids: found the label {what} at position {pos}\b"):
        group_advantages(y, ids, "mean")


def test_unsupported_id_types_are_type_errors():
    with pytest.raises(InputTypeError, match=r"group_ids: .* got tuple \(1, 2\) at position 1"):
        rankgrad.advantages(np.arange(4.0), "mean", group_ids=[1, (1, 2), 1, 1])
    with pytest.raises(InputTypeError, match="group_ids: .* got dtype complex128"):
        rankgrad.advantages(np.arange(4.0), "mean", group_ids=np.zeros(4, complex))
    with pytest.raises(InputTypeError, match="uids: .* got dtype complex128"):
        group_advantages(np.arange(4.0), np.zeros(4, complex), "mean")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_half_precision_torch_group_ids(dtype):
    y = np.array([0.3, 1.0, -0.2, 0.7, 0.1, 0.9, 0.4, -0.5])
    ids = torch.tensor([2.0, 0.5, 2.0, 0.5, 2.0, 0.5, 2.0, 0.5], dtype=dtype)  # exact in every dtype
    keys = ids.float().tolist()
    want, _ = _brute_by_label(y, keys, "max@2")
    np.testing.assert_allclose(rankgrad.advantages(torch.tensor(y), "max@2", group_ids=ids).numpy(), want,
                               atol=1e-12)
    np.testing.assert_allclose(group_advantages(y, ids, "max@2"), want, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.int32])
def test_jax_group_ids(dtype):
    y = np.array([0.3, 1.0, -0.2, 0.7, 0.1, 0.9])
    ids = jnp.asarray([3, 1, 3, 1, 3, 1], dtype=dtype)
    want, _ = _brute_by_label(y, [3, 1, 3, 1, 3, 1], "max@2")
    np.testing.assert_allclose(np.asarray(rankgrad.advantages(jnp.asarray(y), "max@2", group_ids=ids)), want,
                               atol=1e-12)
    mixed = [b"x", 1, "x", b"x", 1.0, "x"]  # python labels of three kinds with jax rewards
    want, _ = _brute_by_label(y, [_kind_key(v) for v in mixed], "max@1")
    got = rankgrad.advantages(jnp.asarray(y), "max@1", group_ids=mixed)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-12)


def test_group_codes_first_appearance_fast_paths():
    for ids in (np.array([5, 3, 5, 9, 3]), ["e", "c", "e", "i", "c"], np.array(["e", "c", "e", "i", "c"]),
                torch.tensor([5, 3, 5, 9, 3]), jnp.asarray([5, 3, 5, 9, 3])):
        gc = group_codes(ids, 5)
        assert gc.count == 3
        np.testing.assert_array_equal(gc.codes, [0, 1, 0, 2, 1])


# ---------------------------------------------------------- 4. types, masks
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_complex_rewards_are_type_errors(backend):
    y = np.array([[1.0, 0.0, 2.0, 0.5]]) + 0.5j
    x = {"numpy": lambda: y, "torch": lambda: torch.tensor(y), "jax": lambda: jnp.asarray(y)}[backend]()
    with pytest.raises(InputTypeError, match="rewards: .*complex"):
        rankgrad.advantages(x, "max@2")
    with pytest.raises(InputTypeError, match="rewards: .*complex"):
        rankgrad.value(x.reshape(-1), "max@2", group_ids=[0, 0, 0, 0])
    with pytest.raises(InputTypeError, match="scores: .*complex"):
        group_advantages(x.reshape(-1), [0, 0, 0, 0], "max@2")


def test_non_numeric_rewards_are_type_errors():
    with pytest.raises(InputTypeError, match="rewards: expected a numeric array"):
        rankgrad.advantages(np.array(["1", "2", "3"]), "mean")
    with pytest.raises(InputTypeError, match="scores: expected a numeric array"):
        group_advantages(np.array(["1", "2", "3"]), [0, 0, 0], "mean")


BAD_MASK_VALUES = [
    (np.array([1.0, 1.0, 0.5, 1.0, 1.0, 1.0]), 2),
    (np.array([1, 1, 1, 2, 1, 1]), 3),
    (np.array([1, -1, 1, 1, 1, 1]), 1),
    (np.array([1.0, 1.0, 1.0, 1.0, np.nan, 1.0]), 4),
]


@pytest.mark.parametrize("mask,pos", BAD_MASK_VALUES)
def test_mask_values_other_than_0_1_are_rejected(mask, pos, backend):
    y = to_backend(np.arange(6.0), backend)
    with pytest.raises(ValueError, match=rf"mask: .*at position \(0, {pos}\)"):
        rankgrad.advantages(y.reshape(1, 6), "mean", mask=to_backend(mask.reshape(1, 6), backend))
    with pytest.raises(ValueError, match=rf"mask: .*at position {pos}\b"):
        rankgrad.advantages(y, "mean", group_ids=[0] * 6, mask=to_backend(mask, backend))
    with pytest.raises(ValueError, match=rf"mask: .*at position {pos}\b"):
        group_advantages(y, [0] * 6, "mean", mask=to_backend(mask, backend))


@pytest.mark.parametrize("mask", [np.array(["True"] * 6), ["False"] * 6, np.zeros(6, complex),
                                  [True, None, True, True, True, True]])
def test_mask_of_wrong_dtype_is_a_type_error(mask):
    with pytest.raises(InputTypeError, match="mask: expected a boolean array"):
        rankgrad.advantages(np.arange(6.0).reshape(1, 6), "mean", mask=np.reshape(np.asarray(mask), (1, 6)))
    with pytest.raises(InputTypeError, match="mask: expected a boolean array"):
        group_advantages(np.arange(6.0), [0] * 6, "mean", mask=mask)


@pytest.mark.parametrize("mask_dtype", [bool, np.int64, np.float32, np.float64])
def test_numeric_0_1_masks_equal_boolean_ones(mask_dtype, backend):
    y = np.array([0.3, 1.0, -0.2, 0.7, 0.1, 0.9, 0.4, -0.5])
    keep = np.array([1, 1, 0, 1, 1, 1, 0, 1])
    want = np.zeros(8)
    want[keep == 1] = _brute_adv(y[keep == 1], "max@2")
    m = to_backend(keep.astype(mask_dtype), backend)
    got = to_numpy(rankgrad.advantages(to_backend(y, backend).reshape(1, 8), "max@2", mask=m.reshape(1, 8)))
    np.testing.assert_allclose(got[0], want, atol=1e-12)
    np.testing.assert_allclose(to_numpy(group_advantages(to_backend(y, backend), [0] * 8, "max@2", mask=m)),
                               want, atol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("kind", ["numpy", "list"])
def test_host_mask_and_ids_with_torch_or_jax_rewards(backend, kind):
    y = np.array([0.3, 1.0, -0.2, 0.7, 0.1, 0.9, 0.4, -0.5])
    keep = np.array([True, True, False, True, True, True, True, False])
    ids = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    conv = (lambda a: a) if kind == "numpy" else (lambda a: a.tolist())
    want = np.zeros(8)
    for g in (0, 1):
        sel = (ids == g) & keep
        want[sel] = _brute_adv(y[sel], "max@2")
    x = to_backend(y, backend)
    got = rankgrad.advantages(x, "max@2", group_ids=conv(ids), mask=conv(keep))
    assert type(got) is type(x)
    np.testing.assert_allclose(to_numpy(got), want, atol=1e-12)
    dense = rankgrad.advantages(x.reshape(2, 4), "max@2", mask=conv(keep.reshape(2, 4)))
    np.testing.assert_allclose(to_numpy(dense).reshape(-1), want, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_token_advantages_mask_is_binary(backend):
    adv = to_backend(np.array([1.0, 2.0]), backend)
    with pytest.raises(ValueError, match=r"response_mask: .*found 2 at position \(0, 0\)"):
        token_advantages(adv, to_backend(np.array([[2, 1], [1, 0]]), backend))
    with pytest.raises(ValueError, match=r"response_mask: .*found -1 at position \(0, 1\)"):
        token_advantages(adv, to_backend(np.array([[1, -1], [1, 0]]), backend))
    with pytest.raises(InputTypeError, match="response_mask: expected a boolean array"):
        token_advantages(adv, np.array([["1", "0"], ["1", "0"]]))
    got = token_advantages(adv, to_backend(np.array([[1.0, 0.0], [1.0, 1.0]]), backend))
    np.testing.assert_array_equal(to_numpy(got), [[1.0, 0.0], [2.0, 2.0]])
    got = token_advantages(adv, [[True, False], [False, True]])  # a list with any backend
    np.testing.assert_array_equal(to_numpy(got), [[1.0, 0.0], [0.0, 2.0]])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_scores_in_helpers(dtype):
    s = torch.tensor([1.0, 0.0, 0.5, 0.25, 0.75, 1.0, 0.0, 0.5], dtype=dtype)  # exact in both dtypes
    uids = ["a", "a", "a", "a", "b", "b", "b", "b"]
    y = s.double().numpy()
    want, _ = _brute_by_label(y, uids, "max@2")
    got = group_advantages(s, uids, "max@2")
    assert got.dtype == dtype
    # float32 arithmetic, rounded once to the caller's dtype
    rounded = torch.tensor(want).to(dtype).double().numpy()
    np.testing.assert_allclose(got.double().numpy(), rounded, atol=1e-12)
    got_std = group_advantages(s, uids, "mean", std_normalize=True, loss_scale=True)
    assert got_std.dtype == dtype and torch.isfinite(got_std).all()
    tok = token_advantages(got, torch.ones(8, 3, dtype=torch.int64))
    assert tok.dtype == dtype
    np.testing.assert_array_equal(tok.double().numpy(), np.repeat(got.double().numpy()[:, None], 3, 1))


def test_jax_bfloat16_scores_in_helpers():
    s = jnp.asarray([1.0, 0.0, 0.5, 0.25, 0.75, 1.0], dtype=jnp.bfloat16)
    want, _ = _brute_by_label(np.asarray(s, dtype=np.float64), [0] * 3 + [1] * 3, "mean")
    got = group_advantages(s, [0] * 3 + [1] * 3, "mean")
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64),
                               np.asarray(jnp.asarray(want).astype(jnp.bfloat16), dtype=np.float64), atol=0)


@pytest.mark.parametrize("eps", [float("nan"), -1e-6, float("inf"), -float("inf")])
def test_bad_eps_is_rejected(eps):
    with pytest.raises(ValueError, match="eps: expected a finite number >= 0"):
        group_advantages(np.arange(4.0), [0] * 4, "mean", std_normalize=True, eps=eps)
    with pytest.raises(InputTypeError, match="eps: expected a number"):
        group_advantages(np.arange(4.0), [0] * 4, "mean", eps="1e-6")


def test_eps_zero_is_allowed():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    got = group_advantages(y, [0] * 4, "mean", std_normalize=True, eps=0.0)
    loo = y - (y.sum() - y) / 3
    np.testing.assert_allclose(got, loo / np.std(y, ddof=1), atol=1e-12)


# ----------------------------------------------------------- 5. bounded memory
def _brute_equal_groups(y: np.ndarray, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over K-subsets for [G, n] groups of one small size, vectorised over G:
    (advantages [G, n], values [G])."""
    w = _w(spec)
    g, n = y.shape
    k = len(w)

    def lstat(cols) -> np.ndarray:
        return np.sort(y[:, list(cols)], axis=1)[:, ::-1] @ w

    value = np.mean([lstat(c) for c in itertools.combinations(range(n), k)], axis=0)
    q = np.stack([np.mean([lstat(c) for c in itertools.combinations(range(n), k) if i in c], axis=0)
                  for i in range(n)], axis=1)
    v = np.stack([np.mean([lstat(c) for c in itertools.combinations([j for j in range(n) if j != i], k)],
                          axis=0) for i in range(n)], axis=1)
    return q - v, value


def _binary_max_at_k(n: int, c: int, k: int) -> tuple[float, float, float]:
    """max@K on one group of n 0/1 rewards with c ones, exactly: (advantage of a 1, of a 0, value).
    q = P(a K-subset containing i has a 1); v = P(a K-subset of the others has a 1)."""
    def p_none(zeros: int, total: int, draw: int) -> Fraction:
        return Fraction(math.comb(zeros, draw), math.comb(total, draw))

    a_one = 1 - (1 - p_none(n - c, n - 1, k))  # q = 1; others hold c−1 ones
    a_zero = (1 - p_none(n - 1 - c, n - 1, k - 1)) - (1 - p_none(n - 1 - c, n - 1, k))
    value = 1 - p_none(n - c, n, k)
    return float(a_one), float(a_zero), float(value)


def _big_mix(seed: int = 0):
    """One group of 20,000 0/1 rewards and 20,000 groups of 4 real rewards, shuffled together."""
    rng = np.random.default_rng(seed)
    n_big, c = 20_000, 137
    big = np.zeros(n_big)
    big[rng.choice(n_big, c, replace=False)] = 1.0
    small = np.round(rng.normal(size=(20_000, 4)), 2)
    ids = np.concatenate([np.full(n_big, -1), np.repeat(np.arange(20_000), 4)])
    rewards = np.concatenate([big, small.reshape(-1)])
    perm = rng.permutation(ids.size)
    return rewards[perm], ids[perm], perm, big, small, c


def test_bucketed_big_mix_matches_exact_values_in_bounded_memory():
    spec = "max@3"
    rewards, ids, perm, big, small, c = _big_mix()
    b = ids.size
    counts = np.bincount(group_codes(ids, b).codes)
    assert counts.size * counts.max() * 8 > 3e9  # one padded call: > 3 GB for the values alone
    plan = bucket_plan(counts)
    padded = sum(int((plan == k).sum()) * int(counts[plan == k].max()) for k in range(plan.max() + 1))
    assert padded <= 2 * b

    adv_fn = bucketed(rankgrad.advantages, "sample")
    val_fn = bucketed(rankgrad.value, "group")
    tracemalloc.start()
    try:
        got = adv_fn(rewards, spec, group_ids=ids)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * b, f"peak {peak / 2**20:.1f} MiB for B = {b}"  # O(B): ~25 float64 per sample
    vals = val_fn(rewards, spec, group_ids=ids)

    a_one, a_zero, v_big = _binary_max_at_k(big.size, c, 3)
    adv_small, v_small = _brute_equal_groups(small, spec)
    want = np.concatenate([np.where(big == 1, a_one, a_zero), adv_small.reshape(-1)])[perm]
    np.testing.assert_allclose(got, want, atol=1e-12)
    # groups in order of first appearance (ids are -1 for the big group, else the small group's number)
    first = np.unique(ids, return_index=True)
    order = first[0][np.argsort(first[1])]
    want_v = np.where(order == -1, v_big, v_small[np.maximum(order, 0)])
    np.testing.assert_allclose(vals, want_v, atol=1e-12)


def _ragged_mix_case(backend: str, seed: int, big: int, masked: bool) -> None:
    rng = np.random.default_rng(seed)
    sizes = list(rng.integers(3, 6, size=int(rng.integers(3, 12)))) + [big] * int(rng.integers(1, 3))
    labels = np.array([f"g{i}" for i, n in enumerate(sizes) for _ in range(n)], dtype=object)
    perm = rng.permutation(labels.size)
    labels = labels[perm]
    y = np.round(rng.normal(size=labels.size), 1)  # ties, rewards equal to the padding value 0
    keep = np.ones(labels.size, bool)
    if masked:
        keep[rng.random(labels.size) < 0.1] = False
    spec = "median@2"
    order = list(dict.fromkeys(labels.tolist()))
    want = np.zeros(labels.size)
    want_v = []
    for lab in order:
        sel = (labels == lab) & keep
        if sel.sum() >= 3:
            want[sel] = _brute_adv(y[sel], spec)
        want_v.append(brute.batch_value(y[sel], _w(spec)) if sel.sum() >= 2 else 0.0)
    n_kept = [int(((labels == lab) & keep).sum()) for lab in order]
    ok_groups = [n for n in n_kept if n == 0 or n >= 3]  # empty groups give 0, not an error
    if len(ok_groups) != len(order):  # a group masked below K + 1: the bucket raises, named globally
        with pytest.raises(ValueError, match="needs groups of at least 3"):
            bucketed(rankgrad.advantages, "sample")(to_backend(y, backend), spec, group_ids=labels,
                                                   mask=keep)
        return
    x = to_backend(y, backend)
    got = bucketed(rankgrad.advantages, "sample")(x, spec, group_ids=labels, mask=to_backend(keep, backend))
    assert type(got) is type(x)
    np.testing.assert_allclose(to_numpy(got), want, atol=1e-12)
    vals = bucketed(rankgrad.value, "group")(x, spec, group_ids=labels.tolist(), mask=keep.tolist())
    np.testing.assert_allclose(to_numpy(vals), want_v, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), big=st.integers(12, 40), masked=st.booleans())
def test_bucketed_random_ragged_mix_matches_brute_force(backend, seed, big, masked):
    _ragged_mix_case(backend, seed, big, masked)


def test_bucketed_ragged_mix_jax():
    _ragged_mix_case("jax", 11, 17, True)  # eager jax compiles per shape: one case


def test_bucketed_single_bucket_is_one_plain_call():
    calls = []

    def spy(rewards, objective, *, group_ids=None, mask=None, **kw):
        calls.append(group_ids)
        return rankgrad.advantages(rewards, objective, group_ids=group_ids, mask=mask, **kw)

    y = np.round(np.random.default_rng(3).normal(size=24), 1)
    ids = np.repeat(["p", "q", "r", "s"], [6, 6, 5, 7])  # sizes within 2× of each other: one bucket
    got = bucketed(spy, "sample")(y, "max@3", group_ids=ids)
    assert len(calls) == 1
    want, _ = _brute_by_label(y, ids.tolist(), "max@3")
    np.testing.assert_allclose(got, want, atol=1e-12)
    dense = bucketed(spy, "sample")(y.reshape(4, 6), "max@3")
    assert len(calls) == 2 and calls[-1] is None
    np.testing.assert_allclose(dense, _brute_dense(y.reshape(4, 6), "max@3"), atol=1e-12)


def test_bucketed_errors_name_the_batch_group_number():
    # sizes 40, 4, 4, 2, 4 ...: the size-2 group (number 3) is too small for max@2 advantages
    sizes = [40, 4, 4, 2] + [4] * 30
    ids = np.repeat(np.arange(len(sizes)), sizes)
    y = np.random.default_rng(4).normal(size=ids.size)
    assert bucket_plan(np.array(sizes)) is not None
    with pytest.raises(ValueError, match=r"but group 3 has 2") as plain:
        rankgrad.advantages(y, "max@2", group_ids=ids)
    with pytest.raises(ValueError, match=r"but group 3 has 2") as split:
        bucketed(rankgrad.advantages, "sample")(y, "max@2", group_ids=ids)
    assert "group 3" in str(plain.value) and "group 3" in str(split.value)
    # a bucket of equal groups, all too small: the message names the batch's first such group
    sizes = [40] + [4] * 20
    ids = np.repeat(np.arange(len(sizes)), sizes)
    y = np.random.default_rng(4).normal(size=ids.size)
    with pytest.raises(ValueError, match=r"at least 5 samples, but group 1 has 4 \(20 group\(s\)"):
        rankgrad.advantages(y, "max@4", group_ids=ids)
    with pytest.raises(ValueError, match=r"at least 5 samples, but group 1 has 4 \(20 group\(s\)"):
        bucketed(rankgrad.advantages, "sample")(y, "max@4", group_ids=ids)


def test_bucketed_torch_value_keeps_gradients():
    sizes = [30, 3, 3, 3, 3, 3, 3, 3]
    ids = np.repeat(np.arange(len(sizes)), sizes)
    y = torch.tensor(np.random.default_rng(5).normal(size=ids.size), requires_grad=True)
    v = bucketed(rankgrad.value, "group")(y, "max@2", group_ids=torch.tensor(ids))
    v.sum().backward()
    # each group's value has weights summing to 1 over its samples
    np.testing.assert_allclose(np.bincount(ids, weights=y.grad.numpy()), 1.0, atol=1e-12)
    want = [brute.batch_value(y.detach().numpy()[ids == g], _w("max@2")) for g in range(len(sizes))]
    np.testing.assert_allclose(v.detach().numpy(), want, atol=1e-12)


def test_bucket_plan_bound_and_count():
    rng = np.random.default_rng(6)
    for _ in range(50):
        counts = np.concatenate([rng.integers(1, 5, 200), rng.integers(1, 10_000, 5)])
        plan = bucket_plan(counts)
        if plan is None:
            assert counts.size * counts.max() <= 2 * counts.sum()
            continue
        cells = sum(int((plan == k).sum()) * int(counts[plan == k].max()) for k in range(plan.max() + 1))
        assert cells <= 2 * counts.sum()
        assert plan.max() + 1 <= math.log2(counts.max()) + 2
        # a bucket holds a contiguous range of sizes
        for k in range(plan.max()):
            assert counts[plan == k].max() < counts[plan == k + 1].min()
    assert bucket_plan(np.full(100, 8)) is None


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_torch_device_host_masks_half_ids_and_buckets(device):
    y = np.round(np.random.default_rng(7).normal(size=26), 1)
    ids = np.array([0] * 8 + [1, 2, 3, 4, 5, 6] * 3)  # one group of 8, six of 3: two buckets
    keep = np.ones(26, bool)
    keep[3] = False
    assert bucket_plan(np.bincount(ids)) is not None
    want = np.zeros(26)
    for g in range(7):
        sel = (ids == g) & keep
        want[sel] = _brute_adv(y[sel], "max@2")
    x = torch.tensor(y, device=device)
    half_ids = torch.tensor(ids, dtype=torch.bfloat16, device=device)
    got = rankgrad.advantages(x, "max@2", group_ids=half_ids, mask=keep)  # host mask, bf16 device ids
    assert got.device.type == device
    np.testing.assert_allclose(got.cpu().numpy(), want, atol=1e-12)
    got = bucketed(rankgrad.advantages, "sample")(x, "max@2", group_ids=ids.tolist(), mask=keep.tolist())
    assert got.device.type == device
    np.testing.assert_allclose(got.cpu().numpy(), want, atol=1e-12)
    tok = token_advantages(got, np.ones((26, 3), dtype=np.float32))
    assert tok.device.type == device
    np.testing.assert_array_equal(tok.cpu().numpy(), np.repeat(got.cpu().numpy()[:, None], 3, 1))
    s = torch.tensor(y, dtype=torch.bfloat16, device=device)
    assert group_advantages(s, ids, "max@2").dtype == torch.bfloat16


# ------------------------------------------------------------ 6. the backend shim
def _loop_ties(ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block start and end of every position of sorted rows, by a Python loop."""
    starts, ends = np.zeros(ys.shape, dtype=np.int64), np.zeros(ys.shape, dtype=np.int64)
    for g, row in enumerate(ys.tolist()):
        for j, v in enumerate(row):
            starts[g, j] = min(i for i, u in enumerate(row) if u == v)
            ends[g, j] = max(i for i, u in enumerate(row) if u == v)
    return starts, ends


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("scan", [False, True])
@pytest.mark.parametrize("values", ["ties", "distinct"])
def test_tie_helpers_match_a_loop(backend, scan, values):
    """tie_starts / tie_ends / tie_fix against a loop, on rows with and without ties; ``scan`` forces
    the path taken where a host check is not cheap (CUDA, traces) on every backend."""
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 3, size=(6, 7)) if values == "ties" else rng.permutation(42).reshape(6, 7)
    ys = np.sort(raw.astype(np.float64), axis=-1)
    x = rng.normal(size=ys.shape)
    starts, ends = _loop_ties(ys)
    ops = ops_lib.get_ops(to_backend(ys, backend))
    if scan:
        ops = type(ops)()  # a private instance, so that the shared one keeps its behaviour
        ops.cheap_host = lambda a: False
    yb, xb = to_backend(ys, backend), to_backend(x, backend)
    np.testing.assert_array_equal(to_numpy(ops.tie_starts(yb)), starts)
    np.testing.assert_array_equal(to_numpy(ops.tie_ends(yb)), ends)
    np.testing.assert_array_equal(to_numpy(ops.tie_fix(xb, yb)), np.take_along_axis(x, starts, axis=-1))


def test_ops_is_abstract():
    """Every backend implements the whole interface: an incomplete one cannot be built."""
    with pytest.raises(TypeError):
        ops_lib.Ops()
    numpy_methods = {k: v for k, v in vars(ops_lib.NumpyOps).items() if not k.startswith(("__", "_abc"))}
    whole = type("Whole", (ops_lib.Ops,), numpy_methods)
    assert isinstance(whole(), ops_lib.Ops)
    missing = type("Missing", (ops_lib.Ops,), {k: v for k, v in numpy_methods.items() if k != "cummax"})
    with pytest.raises(TypeError, match="cummax"):
        missing()


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_to_host_is_the_one_host_transfer(backend):
    x = np.array([[0.5, -1.25], [3.0, 2.0]])
    xb = to_backend(x, backend)
    assert ops_lib.is_host(xb) == (backend == "numpy")
    got = ops_lib.to_host(xb)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_array_equal(got, x)
    np.testing.assert_array_equal(ops_lib.to_host([[1, 2]]), [[1, 2]])
    assert ops_lib.is_host([1.0]) and ops_lib.is_host(3)


def test_to_host_bfloat16_and_autograd():
    t = torch.tensor([1.5, -2.0], dtype=torch.bfloat16, requires_grad=True)
    got = ops_lib.to_host(t * 1)
    assert got.dtype == np.float32 and got.tolist() == [1.5, -2.0]
    j = ops_lib.to_host(jnp.asarray([1.5, -2.0], dtype=jnp.bfloat16))
    assert j.dtype == np.float32 and j.tolist() == [1.5, -2.0]
