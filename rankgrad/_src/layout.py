"""Caller layouts ↔ padded groups.

Three input layouts reach the estimators as one padded ``[G, W]`` view:

* dense ``rewards[..., N]``: groups on the last axis, leading axes flattened to G;
* dense with ``mask[..., N]``: only kept entries belong to their group; the rest get 0;
* flat ``rewards[B]`` with ``group_ids[B]`` (the ``index``/``uid`` convention of LLM RL frameworks),
  groups of any sizes, numbered in order of first appearance.

Nothing loops over groups in Python: the flat layout is a scatter into ``[G, max size]``. Its padded
size G × max size is bounded by :func:`bucketed`, which splits a batch of very unequal groups into
size classes (memory O(B) for any mix of group sizes).

Input rules (one place for every entry point):

* ``rewards``: real numbers (float, int, bool); complex or non-numeric dtypes raise
  :class:`InputTypeError`.
* masks: boolean, or integer/float arrays whose values are exactly 0 or 1. Other dtypes raise
  :class:`InputTypeError`; other values (2, −1, 0.5, NaN) raise ``ValueError`` naming the first bad
  position. A numpy array or list is accepted with torch/jax rewards (moved to their device).
* group ids: ints, strings, bytes, bools and finite floats, or mixes of them (lists, object arrays).
  Ids of different kinds are different groups (``"1"`` ≠ ``1``; ``True`` is its own group, not
  ``1``); numbers compare by value (``1 == 1.0``). ``None``, NaN and ±inf raise ``ValueError``
  naming the position of the first one; other types raise :class:`InputTypeError`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rankgrad._src.errors import InputTypeError
from rankgrad._src.ops import Ops, get_ops, is_host, to_host

Array = Any

__all__ = [
    "Grouped",
    "GroupCodes",
    "to_groups",
    "group_codes",
    "check_real",
    "host_mask",
    "backend_mask",
    "bucketed",
    "bucket_plan",
]


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


# ------------------------------------------------------------------ rewards
def check_real(ops: Ops, x: Array, arg: str = "rewards") -> None:
    """Raise :class:`InputTypeError` unless ``x`` (an array of ``ops``' backend) holds real numbers."""
    if not ops.is_real(x):
        hint = (
            "pass the real part or the magnitude explicitly (x.real, abs(x))"
            if "complex" in str(x.dtype)
            else "convert the values to numbers first"
        )
        raise InputTypeError(
            f"{arg}: expected a numeric array of real numbers (float, int or bool), got dtype "
            f"{x.dtype}; {hint}."
        )


# --------------------------------------------------------------------- masks
def _check_mask_dtype(dtype: Any, arg: str) -> str:
    """'bool' or 'number' for an accepted mask dtype, else InputTypeError."""
    kind = str(dtype)
    if "bool" in kind:
        return "bool"
    if ("int" in kind or "float" in kind) and "complex" not in kind:
        return "number"
    raise InputTypeError(
        f"{arg}: expected a boolean array (or integers/floats that are exactly 0 or 1), got dtype "
        f"{kind}; build it with e.g. mask = (lengths > 0) or np.asarray(mask, dtype=bool)."
    )


def _bad_value_error(host: np.ndarray, arg: str) -> ValueError:
    bad = ~((host == 0) | (host == 1))
    where = np.argwhere(bad)
    first = where[0]
    pos = int(first[0]) if host.ndim == 1 else tuple(int(i) for i in first)
    return ValueError(
        f"{arg}: expected a boolean array, or 0/1 numbers; found {host[tuple(first)].item()!r} at "
        f"position {pos} ({where.shape[0]} value(s) not 0 or 1). Pass True/1 for kept entries and "
        "False/0 for the rest."
    )


def host_mask(mask: Any, shape: tuple, arg: str = "mask") -> np.ndarray:
    """A mask of any backend (or a list) as a host bool array of ``shape``, checked (module docstring)."""
    m = to_host(mask)
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"{arg}: expected the shape of rewards {tuple(shape)}, got {tuple(m.shape)}.")
    if m.dtype.kind == "O" and m.size:  # a list of Python bools/ints: type it
        try:
            m = np.asarray(m.tolist(), dtype=None)
        except (TypeError, ValueError):
            pass
    if _check_mask_dtype(m.dtype, arg) == "bool":
        return m.astype(bool, copy=False)
    if not np.all((m == 0) | (m == 1)):
        raise _bad_value_error(m, arg)
    return m != 0


def backend_mask(ops: Ops, mask: Any, shape: tuple, like: Array, arg: str = "mask") -> Array:
    """A mask as a bool array of ``like``'s backend and device, shape ``shape``, checked.

    A mask of another backend (numpy arrays and lists with torch/jax rewards) goes through the host.
    Under a trace only its dtype can be checked; values other than 0/1 then count as kept.
    """
    if is_host(mask) or get_ops(mask) is not ops:
        return ops.asarray(host_mask(mask, shape, arg), like, cast=False)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{arg}: expected the shape of rewards {tuple(shape)}, got {tuple(mask.shape)}.")
    mask = ops.asarray(mask, like, cast=False)  # on the rewards' device
    if _check_mask_dtype(mask.dtype, arg) == "bool":
        return mask
    if not (ops.is_traced(mask) or ops.is_traced(like)):
        binary = (mask == 0) | (mask == 1)
        if not bool(binary.all()):
            raise _bad_value_error(ops.to_host(mask), arg)
    return mask != 0


# ----------------------------------------------------------------- group ids
@dataclass(frozen=True)
class GroupCodes:
    """Group ids already factorised: ``codes[B]`` int64 in ``0..count−1``, groups numbered in order of
    first appearance. Passing one as ``group_ids`` skips the factorisation; it also reads as an
    ordinary id array (``np.asarray(codes)``)."""

    codes: np.ndarray
    count: int
    _sizes: list = field(default_factory=list, init=False, repr=False, compare=False)

    def sizes(self) -> np.ndarray:
        """``[count]`` samples per group (computed once; the array must not be modified)."""
        if not self._sizes:
            self._sizes.append(np.bincount(self.codes, minlength=self.count))
        return self._sizes[0]

    @property
    def shape(self) -> tuple:
        return self.codes.shape

    @property
    def ndim(self) -> int:
        return 1

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.codes if dtype is None else self.codes.astype(dtype)


def group_codes(group_ids: Any, size: int, arg: str = "group_ids") -> GroupCodes:
    """Factorise ``[size]`` group ids of any supported kind (module docstring) into
    :class:`GroupCodes`, groups numbered in order of first appearance.

    Fast paths: numpy int/bool/float/str/bytes arrays and torch/jax arrays (one ``np.unique``); lists
    and object arrays of one kind (one dict pass). Mixed kinds are keyed by (kind, value).
    """
    if isinstance(group_ids, GroupCodes):
        _check_length(group_ids.shape, size, arg)
        return group_ids
    if isinstance(group_ids, (list, tuple)):
        items = list(group_ids)
        if any(isinstance(v, (list, tuple, np.ndarray)) for v in items[:1]):  # nested: a shape error
            _check_length(np.shape(group_ids), size, arg)
        _check_length((len(items),), size, arg)
        return _codes_of_items(items, arg)
    arr = to_host(group_ids)  # bf16 as float32; float16 is widened below
    _check_length(arr.shape, size, arg)
    kind = arr.dtype.kind
    if kind == "O":
        return _codes_of_items(arr.tolist(), arg)
    if kind == "f":
        if arr.dtype.itemsize < 4:
            arr = arr.astype(np.float32)
        finite = np.isfinite(arr)
        if not finite.all():
            first = int(np.flatnonzero(~finite)[0])
            raise ValueError(_non_finite_message(arg, arr[first].item(), first))
    elif kind not in "biuUS":
        raise InputTypeError(
            f"{arg}: expected group labels (ints, strings, bytes, bools or finite floats), got dtype "
            f"{arr.dtype}."
        )
    return _codes_of_array(arr)


def _check_length(shape: tuple, size: int, arg: str) -> None:
    if len(shape) != 1 or shape[0] != size:
        raise ValueError(f"{arg}: expected shape ({size},) to match rewards, got {tuple(shape)}.")


def _non_finite_message(arg: str, v: Any, pos: int) -> str:
    what = "None" if v is None else repr(v)
    return (
        f"{arg}: found the label {what} at position {pos}; every sample needs a real group label "
        "(an int, string or finite float). Give unlabelled samples their own labels, or drop them."
    )


def _codes_of_array(arr: np.ndarray) -> GroupCodes:
    """One sort: np.unique, then groups renumbered by first appearance."""
    _, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(order.size)
    return GroupCodes(codes=rank_of[inverse.reshape(-1)].astype(np.int64, copy=False), count=int(order.size))


_STR, _BYTES, _BOOL, _INT, _FLOAT = "str", "bytes", "bool", "number", "float"


def _kind_of_type(t: type) -> str | None:
    """The id kind of a Python/numpy scalar type, or None if it is not a supported label."""
    if issubclass(t, (bool, np.bool_)):
        return _BOOL
    if issubclass(t, (int, np.integer)):
        return _INT
    if issubclass(t, (float, np.floating)):
        return _FLOAT
    if issubclass(t, str):
        return _STR
    if issubclass(t, bytes):
        return _BYTES
    return None


_kind_of: Callable[[type], str | None] = functools.lru_cache(maxsize=64)(_kind_of_type)


def _dict_codes(items: Any) -> tuple[GroupCodes, dict]:
    """Codes of hashable labels in one C-level dict pass: each label maps to the position of its first
    appearance (``setdefault``), and those positions, in the dict's insertion order, are the groups in
    order of first appearance. Returns the codes and the dict (label → first position)."""
    n = len(items)
    table: dict = {}
    first = np.fromiter(map(table.setdefault, items, range(n)), dtype=np.int64, count=n)
    g = len(table)
    number = np.empty(n, dtype=np.int64)
    number[np.fromiter(table.values(), dtype=np.int64, count=g)] = np.arange(g)
    return GroupCodes(codes=number[first], count=g), table


def _codes_of_items(items: list, arg: str) -> GroupCodes:
    """Python objects → codes in one dict pass. One kind of label: the labels are the keys; mixed
    kinds: (kind, value), with ints and floats sharing one kind so that 1 == 1.0."""
    n = len(items)
    if n and isinstance(items[0], (str, bytes)):
        # Strings or bytes (the usual uids): one dict pass, then the kinds of the distinct labels only.
        # No label of another kind compares equal to a str/bytes label, so any such label is a key of
        # its own and shows up here; then the general pass below decides (and names bad positions).
        try:
            codes, table = _dict_codes(items)
        except TypeError:  # an unhashable label: the general pass names it
            pass
        else:
            key_kinds = {_kind_of(type(k)) for k in table}
            if key_kinds == {_STR} or key_kinds == {_BYTES}:
                return codes
    kinds = {_kind_of(t) for t in set(map(type, items))}
    if kinds <= {_STR} or kinds <= {_BYTES} or kinds <= {_INT}:
        return _dict_codes(items)[0]
    keyed: dict = {}
    put = keyed.setdefault
    codes_arr = np.empty(n, dtype=np.int64)
    for i, v in enumerate(items):
        kind = _kind_of(type(v))
        if kind is None:
            if v is None:
                raise ValueError(_non_finite_message(arg, None, i))
            raise InputTypeError(
                f"{arg}: expected group labels (ints, strings, bytes, bools or finite floats), got "
                f"{type(v).__name__} {v!r} at position {i}."
            )
        if kind == _FLOAT:
            if not math.isfinite(v):
                raise ValueError(_non_finite_message(arg, float(v), i))
            kind = _INT
        elif kind == _BOOL:
            v = bool(v)
        codes_arr[i] = put((kind, v), len(keyed))
    return GroupCodes(codes=codes_arr, count=len(keyed))


# ---------------------------------------------------------------- to_groups
def to_groups(
    ops: Ops, rewards: Array, *, group_ids: Any = None, mask: Array | None = None
) -> Grouped:
    """Bring any supported layout to padded groups (see the module docstring)."""
    rewards = ops.as_native(rewards)
    check_real(ops, rewards)
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
    sizes: np.ndarray | None = np.full(x2.shape[0], n, dtype=np.int64)
    sizes_traced = None
    if mask is not None:
        m2 = backend_mask(ops, mask, shape, x).reshape(-1, n)
        if ops.is_traced(m2) or ops.is_traced(x2):
            sizes, sizes_traced = None, m2.sum(-1)
            valid = m2
        else:
            sizes = ops.to_host(m2).sum(-1).astype(np.int64)
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
    b = shape[0]
    gc = group_codes(group_ids, b)
    if b == 0:
        raise ValueError("rewards: got an empty batch (B = 0); pass at least one group.")
    codes, g = gc.codes, gc.count
    counts = gc.sizes()
    by_group = _group_order(codes, g)
    width = int(counts.max())
    if mask is None and int(counts.min()) == width:  # equal sizes: one gather in, one gather out
        back = np.empty_like(by_group)
        back[by_group] = np.arange(b)
        return Grouped(
            ops=ops,
            values=ops.take_first(x, by_group).reshape(g, width),
            valid=None,
            sizes=counts.copy(),
            sizes_traced=None,
            width=width,
            out_dtype=out_dtype,
            restore=lambda a: ops.take_first(a.reshape((g * width, *tuple(a.shape)[2:])), back),
            restore_groups=lambda v: v,
        )
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(b, dtype=np.int64)
    pos[by_group] = np.arange(b) - starts[codes[by_group]]

    valid_np = np.zeros((g, width), dtype=bool)
    if mask is not None:
        valid_np[codes, pos] = host_mask(mask, shape)
    else:
        valid_np[codes, pos] = True
    sizes = valid_np.sum(-1).astype(np.int64)
    values = ops.scatter_rows(x, codes, pos, (g, width))
    uniform = bool((sizes == width).all())
    valid = None if uniform else ops.asarray(valid_np, x, cast=False)
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


def _group_order(codes: np.ndarray, count: int) -> np.ndarray:
    """The stable permutation that sorts ``codes`` (values in ``0..count−1``): samples by group, each
    group in order of appearance. Codes that fit 16 bits are sorted as such (numpy's stable sort is
    then a radix sort, O(B))."""
    if count <= 1 << 16:
        return np.argsort(codes.astype(np.uint16), kind="stable")
    return np.argsort(codes, kind="stable")


# ----------------------------------------------------------- bounded memory
def bucket_plan(counts: np.ndarray, slack: float = 2.0) -> np.ndarray | None:
    """Split groups of sizes ``counts[G]`` into buckets whose padded size (groups × largest size)
    is at most ``slack`` × their sample count; the bucket of each group, or None when one bucket
    already meets the bound (every group then stays in one call).

    Distinct sizes are taken in increasing order and a size joins the current bucket while the bound
    holds, so the total padded size is at most ``slack`` · B. A new bucket starts only at a size
    above ``slack`` × the current bucket's mean size, so there are at most ~log2(max size) + 1.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if counts.size == 0 or counts.size * int(counts.max()) <= slack * total:
        return None
    sizes, inverse, n_groups = np.unique(counts, return_inverse=True, return_counts=True)
    bucket_of_size = np.empty(sizes.size, dtype=np.int64)
    bucket, groups, samples = 0, 0, 0
    for i, (s, ng) in enumerate(zip(sizes.tolist(), n_groups.tolist(), strict=True)):
        if groups and (groups + ng) * s > slack * (samples + ng * s):
            bucket, groups, samples = bucket + 1, 0, 0
        groups, samples = groups + ng, samples + ng * s
        bucket_of_size[i] = bucket
    return bucket_of_size[inverse.reshape(-1)]


_GROUP_NUMBER = re.compile(r"\bgroup (\d+)\b")
_ALL_GROUPS = re.compile(r"\bthe groups have (\d+)\b")


def bucketed(fn: Callable[..., Array], per: Literal["sample", "group"]) -> Callable[..., Array]:
    """Wrap an estimator entry point ``fn(rewards, objective, *, group_ids=None, mask=None, **kw)`` so
    that flat input uses memory O(B) for any mix of group sizes.

    For flat ``rewards[B]`` with concrete ``group_ids``, groups are split by :func:`bucket_plan` and
    ``fn`` runs once per bucket on that bucket's samples (``rewards[idx]``, the bucket's group codes,
    ``mask[idx]``, the same keyword arguments); the outputs are put back in place: ``[B, ...]``
    per sample (``per="sample"``) or ``[G, ...]`` per group in order of first appearance
    (``per="group"``), in the caller's backend, device and dtype (gradients flow through the merge).
    Dense input, traced input, and batches where one padded call already meets the bound call ``fn``
    once (with the ids factorised, so ``fn`` does not factorise them again).

    Group numbers in errors raised by a bucket are translated back to the whole batch's numbering.
    """
    if per not in ("sample", "group"):
        raise ValueError(f"per: expected 'sample' or 'group', got {per!r}.")

    @functools.wraps(fn)
    def wrapper(rewards: Array, objective: Any, *args: Any, group_ids: Any = None, mask: Any = None,
                **kwargs: Any) -> Array:
        def call(r: Array, ids: Any, m: Any) -> Array:
            return fn(r, objective, *args, group_ids=ids, mask=m, **kwargs)

        if group_ids is None:
            return call(rewards, None, mask)
        ops = get_ops(rewards)
        rewards = ops.as_native(rewards)
        if ops.is_traced(rewards) or ops.is_traced(group_ids) or len(rewards.shape) != 1:
            return call(rewards, group_ids, mask)  # fn raises its own clear error
        gc = group_codes(group_ids, int(rewards.shape[0]))
        if gc.count == 0:
            return call(rewards, gc, mask)
        counts = gc.sizes()
        plan = bucket_plan(counts)
        if plan is None:
            return call(rewards, gc, mask)
        if mask is not None and (is_host(mask) or get_ops(mask) is not ops):
            mask = to_host(mask)  # indexed on the host; the layout moves it to the rewards' device
        bucket_of_sample = plan[gc.codes]
        parts, places = [], []
        for b in range(int(plan.max()) + 1):
            groups = np.flatnonzero(plan == b)  # increasing = first-appearance order
            idx = np.flatnonzero(bucket_of_sample == b)  # increasing: first appearance kept
            local = np.empty(gc.count, dtype=np.int64)
            local[groups] = np.arange(groups.size)
            sub = GroupCodes(codes=local[gc.codes[idx]], count=int(groups.size))
            try:
                out = call(_take(ops, rewards, idx), sub, None if mask is None else _take(ops, mask, idx))
            except ValueError as err:
                raise _renumbered(err, groups) from None
            parts.append(out)
            places.append(idx if per == "sample" else groups)
        return get_ops(parts[0]).scatter_first(parts, np.concatenate(places))

    return wrapper


def _take(ops: Ops, a: Array, idx: np.ndarray) -> Array:
    """``a[idx]`` for an array of ``ops``' backend or a host array."""
    if not is_host(a) and get_ops(a) is ops:
        return ops.take_first(a, idx)
    return to_host(a)[idx]


def _renumbered(err: ValueError, groups: np.ndarray) -> ValueError:
    """``err`` with bucket-local "group j" replaced by the batch's group number ``groups[j]``, and
    "the groups have n" (every group of the bucket) by the bucket's first group."""
    msg = str(err)

    def sub(m: re.Match) -> str:
        j = int(m.group(1))
        return f"group {int(groups[j])}" if j < groups.size else m.group(0)

    new = _GROUP_NUMBER.sub(sub, msg)
    new = _ALL_GROUPS.sub(
        lambda m: f"group {int(groups[0])} has {m.group(1)} ({groups.size} group(s) of that size)", new
    )
    if new == msg:
        return err
    try:
        out = type(err)(new)
    except Exception:  # an exception type with a different constructor: keep it as it is
        return err
    return out
