"""Every preset (from the registry) × backend × dtype × {eager, compiled}, against brute force over
K-subsets (tests/brute.py).

Each case draws its own rewards from a seed derived from its id (zlib.crc32, stable across processes).
The compiled leg is jax.jit for jax: one traced function per dtype computes every case (one compile
each); torch.compile runs once over every case, in the slow suite only.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import pytest

import rankgrad
from rankgrad import objectives as O
from tests import brute
from tests.backends import to_backend, to_numpy

# The registry's examples, and a mixture across K (lifted to its largest K).
SPECS = [p.example for p in O.PRESETS.values()] + ["0.5*mean + 0.5*max@4"]
N, GROUPS = 10, 2  # N >= K + 1 for every example (K <= 8)
DTYPES = ("float32", "float64")
LEGS = [("numpy", "eager"), ("torch", "eager"), ("jax", "eager"), ("jax", "jit")]
CASES = [(spec, b, dt, leg) for spec in SPECS for b, leg in LEGS for dt in DTYPES]


def _case_id(spec: str, backend: str, dtype: str, leg: str) -> str:
    return f"{spec}-{backend}-{dtype}-{leg}"


def _rewards(case_id: str, dtype: str) -> np.ndarray:
    """[GROUPS, N] rewards with ties (one decimal), exactly representable in ``dtype`` as given."""
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))
    return np.round(rng.normal(size=(GROUPS, N)), 1).astype(dtype)


@functools.cache
def _reference(spec: str, y_bytes: bytes, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(advantages [GROUPS, N], values [GROUPS]) by brute force in float64, a mixture by its parts:
    Σ_j c_j (K_j / K) a^{(j)} and Σ_j c_j V^{(j)}."""
    y = np.frombuffer(y_bytes, dtype=dtype).reshape(GROUPS, N).astype(np.float64)
    obj = rankgrad.parse(spec)
    adv, val = np.zeros((GROUPS, N)), np.zeros(GROUPS)
    for c, part in obj.terms:
        w = np.asarray(part.weights)
        for g in range(GROUPS):
            adv[g] += c * (part.k / obj.k) * (brute.include_one(y[g], w) - brute.leave_one_out(y[g], w))
            val[g] += c * brute.batch_value(y[g], w)
    return adv, val


@functools.cache
def _jitted(dtype: str) -> dict[str, np.ndarray]:
    """Every spec's advantages on its jit case's rewards, from one jax.jit per dtype (the values are
    checked in the eager legs; leaving them out halves the compile)."""
    import jax
    import jax.numpy as jnp

    ys = np.stack([_rewards(_case_id(s, "jax", dtype, "jit"), dtype) for s in SPECS])

    @jax.jit
    def run(y):
        return [rankgrad.advantages(y[i], s) for i, s in enumerate(SPECS)]

    out = run(jnp.asarray(ys))
    assert all(a.dtype == jnp.dtype(dtype) for a in out)
    return {s: np.asarray(a) for s, a in zip(SPECS, out, strict=True)}


def _tol(dtype: str, y: np.ndarray) -> float:
    scale = float(np.abs(y).max()) + 1.0
    return (2e-5 if dtype == "float32" else 1e-12) * scale


@pytest.mark.parametrize("spec,backend,dtype,leg", CASES, ids=[_case_id(*c) for c in CASES])
def test_preset_matrix_against_brute_force(spec, backend, dtype, leg):
    case = _case_id(spec, backend, dtype, leg)
    y = _rewards(case, dtype)
    want_adv, want_val = _reference(spec, y.tobytes(), dtype)
    if leg == "jit":
        adv, val = _jitted(dtype)[spec], want_val
    else:
        yb = to_backend(y, backend, dtype)
        adv_b, val_b = rankgrad.advantages(yb, spec), rankgrad.value(yb, spec)
        assert type(adv_b) is type(yb) and str(adv_b.dtype).endswith(dtype)
        adv, val = to_numpy(adv_b), to_numpy(val_b)
    tol = _tol(dtype, y)
    np.testing.assert_allclose(adv, want_adv, rtol=0, atol=tol)
    np.testing.assert_allclose(val, want_val, rtol=0, atol=tol)


def test_every_registered_preset_is_in_the_matrix():
    assert {rankgrad.parse(s).name.split("@")[0].split(":")[0] for s in SPECS} >= set(O.PRESETS)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")  # dynamo, read-only tables
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_compile_matrix(dtype):
    torch = pytest.importorskip("torch")
    torch._dynamo.reset()
    ys = np.stack([_rewards(_case_id(s, "torch", dtype, "compile"), dtype) for s in SPECS])

    @torch.compile(backend="eager")
    def run(y):
        return [rankgrad.advantages(y[i], s) for i, s in enumerate(SPECS)]

    for i, (spec, adv) in enumerate(zip(SPECS, run(torch.as_tensor(ys)), strict=True)):
        want, _ = _reference(spec, ys[i].tobytes(), dtype)
        np.testing.assert_allclose(adv.numpy(), want, rtol=0, atol=_tol(dtype, ys[i]))
