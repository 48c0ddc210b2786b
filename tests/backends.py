"""Test helpers: the backend matrix and conversions between backends.

JAX runs with x64 enabled in the test process so float64 can be compared across backends; the
no-x64 behaviour is tested in a subprocess (tests/core/test_numerics.py).
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import jax
except ImportError:  # the framework venvs (.venv-trl, .venv-verl, .venv-skyrl) run tests/integrations only
    jax = jnp = None
else:
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

BACKENDS = ("numpy", "torch", "jax")


def to_backend(x: np.ndarray, backend: str, dtype: str = "float64"):
    """``x`` as an array of ``backend`` (floats cast to ``dtype``; other kinds kept)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        x = x.astype(dtype)
    if backend == "numpy":
        return x
    if backend == "torch":
        return torch.as_tensor(x)
    return jnp.asarray(x)


def to_numpy(x) -> np.ndarray:
    """Any backend's array as a NumPy array (torch tensors detached and moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
