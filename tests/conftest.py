"""Shared fixtures: the backend matrix and conversions.

JAX runs with x64 enabled in this process so float64 can be compared across backends; the
no-x64 behaviour is tested in a subprocess (tests/test_numerics.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

try:
    import jax
except ImportError:  # the framework venvs (.venv-trl, .venv-verl) run tests/integrations only
    jax = jnp = None
else:
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

BACKENDS = ("numpy", "torch", "jax")


def to_backend(x: np.ndarray, backend: str, dtype: str = "float64"):
    x = np.asarray(x)
    if x.dtype.kind == "f":
        x = x.astype(dtype)
    if backend == "numpy":
        return x
    if backend == "torch":
        return torch.as_tensor(x)
    return jnp.asarray(x)


def to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param
