"""Types for public signatures: ``ArrayLike`` (what a function accepts) and ``Array`` (what it returns).

rankgrad works on NumPy arrays, torch tensors and jax arrays, and returns arrays of the input's backend
(nested sequences of numbers are read as NumPy arrays). So:

* ``ArrayLike`` = ``numpy.typing.ArrayLike`` (NumPy arrays, scalars, nested sequences of numbers)
  ∪ ``torch.Tensor`` ∪ ``jax.Array``;
* ``Array`` = ``numpy.ndarray`` ∪ ``torch.Tensor`` ∪ ``jax.Array``.

torch and jax are imported for type checkers only (``TYPE_CHECKING``): importing this module at run time
imports NumPy and nothing else; there the torch and jax members are forward references
(``typing.ForwardRef("torch.Tensor")``), which type checkers and documentation tools read as names.

>>> from rankgrad._src.types import Array, ArrayLike
>>> import typing
>>> typing.get_args(Array)[0]
<class 'numpy.ndarray'>
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from typing import TypeAlias

    import jax
    import torch

    Array: TypeAlias = np.ndarray | torch.Tensor | jax.Array
    ArrayLike: TypeAlias = npt.ArrayLike | torch.Tensor | jax.Array
else:  # run time: `|` does not take forward references
    Array = Union[np.ndarray, "torch.Tensor", "jax.Array"]
    ArrayLike = Union[npt.ArrayLike, "torch.Tensor", "jax.Array"]

__all__ = ["Array", "ArrayLike"]
