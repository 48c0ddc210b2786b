"""Caller layouts ↔ padded groups.

Three input layouts reach the estimators as one padded ``[G, W]`` view:

* dense ``rewards[..., N]``: groups on the last axis, leading axes flattened to G;
* dense with ``mask[..., N]`` (bool): only True entries belong to their group; the rest get 0;
* flat ``rewards[B]`` with ``group_ids[B]`` (ints or strings, the ``index``/``uid`` convention of
  LLM RL frameworks), groups of any sizes, numbered in order of first appearance.

Nothing loops over groups in Python: the flat layout is a scatter into ``[G, max size]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankgrad._src.ops import Ops

Array = Any

__all__ = ["Grouped", "to_groups"]


@dataclass
class Grouped:
    """Padded groups. ``valid`` is None when every entry of ``values`` is a real sample.

    ``sizes`` are host integers [G] when known; under a trace (``jax.jit``) they are None and
    ``sizes_traced`` holds them as a backend array.
    """

    ops: Ops
    values: Array  # [G, W], compute dtype
    valid: Array | None  # [G, W] bool
    sizes: np.ndarray | None  # [G] host ints
    sizes_traced: Array | None  # [G] backend ints, only under a trace
    width: int
    out_dtype: Any
    restore: Callable[[Array], Array]  # [G, W] → caller's sample shape
    restore_groups: Callable[[Array], Array]  # [G] → caller's group shape


def _as_bool_mask(ops: Ops, mask: Array, shape: tuple, arg: str = "mask") -> Array:
    if ops.name == "numpy":
        mask = np.asarray(mask)
    mshape = tuple(mask.shape)
    if mshape != tuple(shape):
        raise ValueError(f"{arg}: expected the shape of rewards {tuple(shape)}, got {mshape}.")
    kind = str(mask.dtype)
    if "bool" in kind:
        return mask
    if "int" in kind:
        return mask != 0
    raise ValueError(f"{arg}: expected a boolean (or 0/1 integer) array, got dtype {kind}.")


def to_groups(
    ops: Ops, rewards: Array, *, group_ids: Any = None, mask: Array | None = None
) -> Grouped:
    """Bring any supported layout to padded groups (see the module docstring)."""
    if ops.name == "numpy":
        rewards = np.asarray(rewards)
        if rewards.dtype == object or not (
            np.issubdtype(rewards.dtype, np.number) or rewards.dtype == bool
        ):
            raise ValueError(f"rewards: expected a numeric array, got dtype {rewards.dtype}.")
    out_dtype = ops.float_like(rewards).dtype
    x = ops.compute(rewards)
    shape = tuple(x.shape)
    if group_ids is None:
        return _dense(ops, x, shape, mask, out_dtype)
    return _flat(ops, x, shape, group_ids, mask, out_dtype)


def _dense(ops: Ops, x: Array, shape: tuple, mask: Array | None, out_dtype: Any) -> Grouped:
    if len(shape) == 0 or shape[-1] == 0:
        raise ValueError(
            f"rewards: expected shape [..., N] with N >= 1 samples per group, got {shape}."
        )
    n = shape[-1]
    lead = shape[:-1]
    x2 = x.reshape(-1, n)
    valid = None
    sizes = np.full(x2.shape[0], n, dtype=np.int64)
    sizes_traced = None
    if mask is not None:
        m2 = _as_bool_mask(ops, mask, shape).reshape(-1, n)
        if ops.is_traced(m2) or ops.is_traced(x2):
            sizes, sizes_traced = None, m2.sum(-1)
            valid = m2
        else:
            sizes = ops.to_numpy(m2).sum(-1).astype(np.int64)
            valid = None if bool((sizes == n).all()) else m2

    return Grouped(
        ops=ops,
        values=x2,
        valid=valid,
        sizes=sizes,
        sizes_traced=sizes_traced,
        width=n,
        out_dtype=out_dtype,
        restore=lambda a: a.reshape(shape),
        restore_groups=lambda v: v.reshape(lead),
    )


def _flat(
    ops: Ops, x: Array, shape: tuple, group_ids: Any, mask: Array | None, out_dtype: Any
) -> Grouped:
    if len(shape) != 1:
        raise ValueError(
            f"rewards: with group_ids, expected flat rewards of shape [B], got {shape}; "
            "for [..., N] groups drop group_ids."
        )
    if ops.is_traced(group_ids) or ops.is_traced(x):
        raise ValueError(
            "group_ids: flat group ids need concrete values (their count fixes the output shape); "
            "under jax.jit pass padded [G, N] rewards with a mask instead."
        )
    ids = group_ids if isinstance(group_ids, np.ndarray) else _host(ops, group_ids)
    if ids.ndim != 1 or ids.shape[0] != shape[0]:
        raise ValueError(
            f"group_ids: expected shape ({shape[0]},) to match rewards, got {tuple(ids.shape)}."
        )
    b = shape[0]
    if b == 0:
        raise ValueError("rewards: got an empty batch (B = 0); pass at least one group.")
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(order.size)
    codes = rank_of[inverse.reshape(-1)]
    g = int(order.size)
    counts = np.bincount(codes, minlength=g)
    by_group = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(b, dtype=np.int64)
    pos[by_group] = np.arange(b) - starts[codes[by_group]]
    width = int(counts.max())

    valid_np = np.zeros((g, width), dtype=bool)
    if mask is not None:
        m = _host(ops, _as_bool_mask(ops, mask, shape))
        valid_np[codes, pos] = m
    else:
        valid_np[codes, pos] = True
    sizes = valid_np.sum(-1).astype(np.int64)
    values = ops.scatter_rows(x, codes, pos, (g, width))
    uniform = bool((sizes == width).all())
    valid = None if uniform else ops.asarray(valid_np, x)
    return Grouped(
        ops=ops,
        values=values,
        valid=valid,
        sizes=sizes,
        sizes_traced=None,
        width=width,
        out_dtype=out_dtype,
        restore=lambda a: ops.gather_rows(a, codes, pos),
        restore_groups=lambda v: v,
    )


def _host(ops: Ops, a: Any) -> np.ndarray:
    if isinstance(a, (list, tuple)):
        return np.asarray(a)
    mod = type(a).__module__
    if mod.startswith("torch") or mod.startswith("jax"):
        from rankgrad._src.ops import get_ops

        return get_ops(a).to_numpy(a)
    return np.asarray(a)
