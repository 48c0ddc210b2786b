"""Compiled paths: jax.jit (dense and masked; eager checks are skipped under a trace)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import rankgrad


def test_jax_jit_dense_and_masked():
    rng = np.random.default_rng(0)
    y = np.round(rng.normal(size=(8, 10)), 1)
    mask = rng.random((8, 10)) < 0.8
    mask[:, :6] = True  # every group keeps >= 6 samples
    f = jax.jit(lambda a: rankgrad.advantages(a, "cvar:0.25@4"))
    fm = jax.jit(lambda a, m: rankgrad.advantages(a, "max@5", mask=m))
    np.testing.assert_allclose(np.asarray(f(jnp.asarray(y))), rankgrad.advantages(y, "cvar:0.25@4"),
                               atol=1e-12)
    got = np.asarray(fm(jnp.asarray(y), jnp.asarray(mask)))
    np.testing.assert_allclose(got, rankgrad.advantages(y, "max@5", mask=mask), atol=1e-12)
    # new reward values, same shapes: no retrace
    before = fm._cache_size()
    fm(jnp.asarray(y + 1.0), jnp.asarray(mask))
    assert fm._cache_size() == before


def test_jax_jit_too_small_group_is_nan_not_wrong():
    y = jnp.arange(12.0).reshape(2, 6)
    mask = jnp.array([[True] * 6, [True] * 3 + [False] * 3])
    a = np.asarray(jax.jit(lambda y, m: rankgrad.advantages(y, "max@4", mask=m))(y, mask))
    assert np.all(np.isfinite(a[0])) and np.all(np.isnan(a[1, :3])) and np.all(a[1, 3:] == 0)


def test_jax_jit_value_grad():
    y = jnp.asarray(np.random.default_rng(1).normal(size=(4, 7)))
    g = jax.jit(jax.grad(lambda a: rankgrad.value(a, "median@3").sum()))(y)
    np.testing.assert_allclose(np.asarray(g).sum(-1), 1.0, atol=1e-12)


def test_torch_compile_runs_and_does_not_recompile_on_new_values():
    import torch
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    f = torch.compile(lambda a: rankgrad.advantages(a, "cvar:0.25@4"), backend="eager")
    y = torch.randn(64, 8, dtype=torch.float64)
    np.testing.assert_allclose(f(y).numpy(), rankgrad.advantages(y.numpy(), "cvar:0.25@4"), atol=1e-12)
    graphs = counters["stats"]["unique_graphs"]
    for _ in range(3):
        z = torch.randn(64, 8, dtype=torch.float64)
        np.testing.assert_allclose(f(z).numpy(), rankgrad.advantages(z.numpy(), "cvar:0.25@4"), atol=1e-12)
    assert counters["stats"]["unique_graphs"] == graphs
