"""rankgrad._src.types: ``Array`` and ``ArrayLike`` name NumPy, torch and jax arrays without importing
torch or jax."""

from __future__ import annotations

import subprocess
import sys
import typing

import numpy as np
import torch

from rankgrad._src.types import Array, ArrayLike


def _resolve(alias) -> tuple[type, ...]:
    """The classes in ``alias``'s union, forward references evaluated with torch and jax imported."""
    import jax

    out = []
    for arg in typing.get_args(alias):
        if isinstance(arg, typing.ForwardRef):
            arg = eval(arg.__forward_arg__, {"torch": torch, "jax": jax})
        out.append(typing.get_origin(arg) or arg)
    return tuple(a for a in out if isinstance(a, type))


def test_importing_types_imports_neither_torch_nor_jax():
    code = "import sys, rankgrad._src.types; print(sorted({'torch', 'jax'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_array_covers_each_backend():
    import jax.numpy as jnp

    classes = _resolve(Array)
    for x in (np.zeros(3), torch.zeros(3), jnp.zeros(3)):
        assert isinstance(x, classes), type(x)
    assert not isinstance([1.0, 2.0], classes)  # Array is what functions return: arrays only


def test_array_like_also_covers_nested_sequences():
    import jax.numpy as jnp

    args = typing.get_args(ArrayLike)
    refs = {a.__forward_arg__ for a in args if isinstance(a, typing.ForwardRef)}
    assert refs == {"torch.Tensor", "jax.Array"}
    classes = _resolve(ArrayLike)
    for x in (np.zeros(3), torch.zeros(3), jnp.zeros(3)):
        assert isinstance(x, classes), type(x)
    # numpy.typing.ArrayLike's members include nested sequences of numbers
    assert set(typing.get_args(np.typing.ArrayLike)) <= set(args)
