"""The handful of array operations each backend provides (numpy, torch, jax).

Estimators are written once against this shim; adding a backend means writing one more subclass of
the abstract :class:`Ops` here (and one more entry of ``_BACKENDS``). Every op works on the last axis
of a 2-D ``[G, N]`` array unless it says otherwise. Backend-specific code lives here only: arrays move
to the host through :func:`to_host` (:meth:`Ops.to_host`) and back through :meth:`Ops.asarray`.
"""

from __future__ import annotations

import sys
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Ops", "get_ops", "is_host", "to_host"]

Array = Any


def _is_torch(x: object) -> bool:
    mod = sys.modules.get("torch")
    return mod is not None and isinstance(x, mod.Tensor)


def _is_jax(x: object) -> bool:
    mod = sys.modules.get("jax")
    return mod is not None and isinstance(x, mod.Array)


def is_host(x: object) -> bool:
    """Whether ``x`` is host data (numpy arrays and scalars, lists, Python numbers), not an array of
    a device backend (torch, jax)."""
    return not (_is_torch(x) or _is_jax(x))


class _TableCache:
    """A bounded, thread-safe LRU of weight tables already converted to a backend's dtype and device.

    Look-ups and insertions hold one lock (no reader sees a half-evicted entry); the caller builds a
    missing table between ``lookup`` and ``put``, outside the lock, so two threads may build the same
    table once each (same result).
    """

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self.data: OrderedDict[tuple, Array] = OrderedDict()
        self.lock = threading.Lock()

    def lookup(self, key: tuple) -> Array | None:
        with self.lock:
            hit = self.data.get(key)
            if hit is not None:
                self.data.move_to_end(key)
            return hit

    def put(self, key: tuple, value: Array) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > max(self.maxsize, 0):
                self.data.popitem(last=False)


class Ops(ABC):
    """Backend interface: every abstract method is implemented by each backend. ``name`` labels
    errors; ``differentiable``: gradients flow through the backend's arrays; ``scales_traced``: a
    traced computation can afford the per-group overflow scaling (jax: a few fused operations; under
    ``torch.compile`` each costs a graph segment, so it is off there)."""

    name: str = "abstract"
    differentiable: bool = False
    scales_traced: bool = False

    def __init__(self) -> None:
        self._tables = _TableCache()

    # host transfers ----------------------------------------------------------
    @abstractmethod
    def to_host(self, x: Array) -> np.ndarray:
        """``x`` (an array of this backend, or host data) as a host numpy array: detached, one
        transfer from its device; bfloat16 becomes float32 (numpy has no bfloat16; float32 holds
        every bfloat16 value exactly)."""

    @abstractmethod
    def asarray(self, x: Any, like: Array, *, cast: bool = True) -> Array:
        """Host data (or an array of this backend) as an array of this backend on ``like``'s
        device: in ``like``'s dtype when ``cast``, else in its own (ints, bools)."""

    @abstractmethod
    def as_native(self, x: Any) -> Array:
        """``x`` as an array of this backend without moving it: host data (lists, scalars) become a
        numpy array; this backend's arrays are returned as they are."""

    def table(self, arr: np.ndarray, like: Array) -> Array:
        """A float64 numpy table as a constant of ``like``'s dtype/device (cached by identity).

        Only concrete arrays are cached: a constant built inside a trace (``jax.jit``) belongs to that
        trace and is rebuilt by the next one, never reused outside it. The cache keeps ``arr`` alive
        with its entry, so its ``id`` cannot be reused while the entry exists. The constant is a copy:
        it never shares memory with the host table.
        """
        key = (id(arr), self.dtype_key(like))
        hit = self._tables.lookup(key)
        if hit is not None:
            return hit[1]
        value = self.asarray(np.array(arr), like)
        if not self.is_traced(value):
            self._tables.put(key, (arr, value))
        return value

    def dtype_key(self, x: Array) -> tuple:
        """What a converted table depends on besides the table: the dtype (and device)."""
        return (str(x.dtype),)

    def host(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run host-side (numpy) work: parsing objectives, building weight tables. Under
        ``torch.compile`` it runs outside the graph."""
        return fn(*args)

    # facts about arrays ------------------------------------------------------
    @abstractmethod
    def is_traced(self, x: Array) -> bool:
        """Whether ``x`` is (or the call runs inside) a trace: no value can be read on the host."""

    @abstractmethod
    def cheap_host(self, x: Array) -> bool:
        """Whether reading a value of ``x`` on the host is cheap (concrete, in host memory): shortcuts
        that need a host check (e.g. "no ties at all") are then worth it."""

    @abstractmethod
    def is_real(self, x: Array) -> bool:
        """Whether ``x``'s dtype holds real numbers (bool, int, float; not complex or objects)."""

    @abstractmethod
    def all_finite(self, x: Array) -> bool:
        """No NaN or inf in ``x`` (a host bool)."""

    @abstractmethod
    def finfo_max(self, dtype: Any) -> float:
        """The largest finite value of the float ``dtype`` (a dtype of this backend)."""

    @abstractmethod
    def abs_max(self, x: Array) -> float:
        """max |x| over every entry, as a host float: NaN if an entry is NaN, inf if one is ±inf, 0 for
        an empty array. One reduction and one host transfer."""

    # dtypes ------------------------------------------------------------------
    @abstractmethod
    def float_like(self, x: Array) -> Array:
        """``x`` if it is floating, else ``x`` in the backend's default float dtype."""

    @abstractmethod
    def compute(self, x: Array) -> Array:
        """``x`` in the precision estimators compute in (see each backend)."""

    @abstractmethod
    def cast(self, x: Array, dtype: Any) -> Array:
        """``x`` in ``dtype``."""

    # elementwise and along the last axis of [G, W] --------------------------------
    @abstractmethod
    def sort(self, x: Array) -> tuple[Array, Array]:
        """(sorted ``x``, the permutation): any order of tied values (ties are fixed by
        :meth:`tie_fix`)."""

    @abstractmethod
    def take(self, x: Array, idx: Array) -> Array:
        """``x[g, idx[g, j]]`` (gather along the last axis)."""

    @abstractmethod
    def unsort(self, x: Array, idx: Array) -> Array:
        """``out[g, idx[g, j]] = x[g, j]`` (the inverse of ``take`` with a permutation)."""

    @abstractmethod
    def cumsum(self, x: Array) -> Array:
        """Prefix sums along the last axis."""

    @abstractmethod
    def flip(self, x: Array) -> Array:
        """``x`` reversed along the last axis."""

    @abstractmethod
    def shift_right(self, x: Array) -> Array:
        """``out[..., j] = x[..., j − 1]``, 0 at j = 0."""

    @abstractmethod
    def shift_left(self, x: Array) -> Array:
        """``out[..., j] = x[..., j + 1]``, 0 at the last position."""

    @abstractmethod
    def arange(self, n: int, like: Array) -> Array:
        """0..n−1 as integers on ``like``'s device."""

    @abstractmethod
    def where(self, c: Array, a: Array, b: Array) -> Array:
        """Elementwise ``a if c else b``."""

    @abstractmethod
    def stop_gradient(self, x: Array) -> Array:
        """``x`` with no gradient flowing through it."""

    @abstractmethod
    def sum(self, x: Array) -> Array:
        """Sums along the last axis."""

    @abstractmethod
    def stack(self, xs: list) -> Array:
        """Stack along a new last axis."""

    @abstractmethod
    def row_abs_max(self, x: Array) -> Array:
        """max |x| along the last axis, ``[G]`` (no host transfer; traceable)."""

    @abstractmethod
    def floor_pow2(self, x: Array) -> Array:
        """Elementwise, the largest power of two <= |x|, exactly, for finite float32/float64 ``x``
        (0 for 0 and subnormals): the sign and mantissa bits cleared. Traceable."""

    @abstractmethod
    def block_starts(self, ys: Array) -> Array:
        """For sorted ``ys`` [G, W], a bool mask: True where a block of equal values starts (always at
        position 0)."""

    @abstractmethod
    def cummax(self, x: Array) -> Array:
        """Running maximum along the last axis."""

    # first axis (rows), host indices ------------------------------------------------
    @abstractmethod
    def scatter_rows(self, values: Array, rows: np.ndarray, cols: np.ndarray, shape: tuple) -> Array:
        """A zero array of ``shape`` with ``out[rows[i], cols[i]] = values[i]``."""

    @abstractmethod
    def gather_rows(self, x: Array, rows: np.ndarray, cols: np.ndarray) -> Array:
        """``x[rows[i], cols[i]]`` for host ints ``rows``, ``cols``."""

    @abstractmethod
    def concat(self, xs: list) -> Array:
        """Concatenate along the first axis."""

    @abstractmethod
    def take_first(self, x: Array, idx: np.ndarray) -> Array:
        """``x[idx]`` along the first axis, ``idx`` host ints (gradients flow through it)."""

    def scatter_first(self, parts: list, index: np.ndarray) -> Array:
        """``out[index[i]] = concat(parts)[i]`` along the first axis, ``index`` a permutation of
        0..n−1 (host ints): pieces computed on subsets put back in place. A concatenation and one
        gather, so gradients flow through it (torch, jax)."""
        index = np.asarray(index, dtype=np.int64)
        inverse = np.empty_like(index)
        inverse[index] = np.arange(index.size)
        return self.take_first(parts[0] if len(parts) == 1 else self.concat(parts), inverse)

    # ties, written once over the primitives ------------------------------------------
    def block_index(self, new: Array) -> Array:
        """For a mask of block starts (:meth:`block_starts`), each position's block start: the last
        True position at or before it, [G, W] integers (one scan)."""
        return self.cummax(self.where(new, self.arange(new.shape[-1], like=new), 0))

    def tie_starts(self, ys: Array) -> Array:
        """For sorted ``ys``, the position where each element's block of equal values starts."""
        return self.block_index(self.block_starts(ys))

    def tie_ends(self, ys: Array) -> Array:
        """For sorted ``ys``, the position where each element's block of equal values ends: the
        blocks of the reversed row, read back."""
        return (ys.shape[-1] - 1) - self.flip(self.tie_starts(self.flip(ys)))

    def tie_fix(self, x: Array, ys: Array) -> Array:
        """``x`` with every value replaced by the one at the start of its block of equal ``ys``
        (``ys`` sorted along the last axis): tied rewards get bit-identical results. Where a host
        check is cheap, a row set without ties returns ``x`` itself."""
        new = self.block_starts(ys)
        if self.cheap_host(ys) and bool(new.all()):
            return x
        return self.take(x, self.block_index(new))

    def rev_cumsum(self, x: Array) -> Array:
        """Suffix sums along the last axis by a reversed scan (never total − prefix)."""
        return self.flip(self.cumsum(self.flip(x)))


class NumpyOps(Ops):
    name = "numpy"

    def to_host(self, x):
        return np.asarray(x)

    def asarray(self, x, like, *, cast=True):
        return np.asarray(x, dtype=like.dtype if cast else None)

    def as_native(self, x):
        return np.asarray(x)

    def is_traced(self, x):
        return False

    def cheap_host(self, x):
        return True

    def is_real(self, x):
        return x.dtype.kind in "biuf"

    def all_finite(self, x):
        # one reduction pass; the elementwise check only if the sum is not finite (NaN/inf, or an
        # overflowing sum of finite values)
        return bool(np.isfinite(x.sum())) or bool(np.isfinite(x).all())

    def finfo_max(self, dtype):
        return float(np.finfo(dtype).max)

    def abs_max(self, x):
        if x.size == 0:
            return 0.0
        return float(np.maximum(x.max(), -x.min()))  # two passes, no temporary; NaN propagates

    def float_like(self, x):
        x = np.asarray(x)
        return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)

    def compute(self, x):
        # float64 always: cheap on a CPU, and exact enough for any N
        return self.float_like(x).astype(np.float64, copy=False)

    def cast(self, x, dtype):
        return x.astype(dtype, copy=False)

    def sort(self, x):
        idx = np.argsort(x, axis=-1)  # any order of ties will do: the fastest sort
        return np.take_along_axis(x, idx, axis=-1), idx

    def take(self, x, idx):
        return np.take_along_axis(x, idx, axis=-1)

    def unsort(self, x, idx):
        g, n = x.shape
        out = np.empty_like(x)
        flat = idx + (np.arange(g) * n)[:, None]
        out.reshape(-1)[flat.reshape(-1)] = x.reshape(-1)
        return out

    def cumsum(self, x):
        return np.cumsum(x, axis=-1)

    def flip(self, x):
        return x[..., ::-1]

    def shift_right(self, x):
        out = np.zeros_like(x)
        out[..., 1:] = x[..., :-1]
        return out

    def shift_left(self, x):
        out = np.zeros_like(x)
        out[..., :-1] = x[..., 1:]
        return out

    def arange(self, n, like):
        return np.arange(n)

    def where(self, c, a, b):
        return np.where(c, a, b)

    def stop_gradient(self, x):
        return x

    def sum(self, x):
        return np.sum(x, axis=-1)

    def stack(self, xs):
        return np.stack(xs, axis=-1)

    def row_abs_max(self, x):
        return np.abs(x).max(axis=-1)

    def floor_pow2(self, x):
        x = np.ascontiguousarray(x)
        ity, bits = (np.int64, 0x7FF0000000000000) if x.dtype == np.float64 else (np.int32, 0x7F800000)
        return (x.view(ity) & ity(bits)).view(x.dtype)

    def block_starts(self, ys):
        new = np.empty(ys.shape, dtype=bool)
        new[..., 0] = True
        np.not_equal(ys[..., 1:], ys[..., :-1], out=new[..., 1:])
        return new

    def cummax(self, x):
        return np.maximum.accumulate(x, axis=-1)

    def scatter_rows(self, values, rows, cols, shape):
        out = np.zeros(shape, dtype=values.dtype)
        out[rows, cols] = values
        return out

    def gather_rows(self, x, rows, cols):
        return x[rows, cols]

    def concat(self, xs):
        return np.concatenate(xs, axis=0)

    def take_first(self, x, idx):
        return x[idx]


class TorchOps(Ops):
    name = "torch"
    differentiable = True

    def __init__(self) -> None:
        super().__init__()
        import torch

        self.torch = torch
        self._outside_graph = torch.compiler.disable(lambda fn, *args: fn(*args))

    def dtype_key(self, x):
        return (str(x.dtype), str(x.device))

    def host(self, fn, *args):
        # Always through the disabled wrapper: under torch.compile, frames that run eagerly after a
        # graph break are still intercepted by dynamo, and is_compiling() is False there.
        return self._outside_graph(fn, *args)

    def to_host(self, x):
        if not isinstance(x, self.torch.Tensor):
            return np.asarray(x)
        x = x.detach()
        if x.dtype == self.torch.bfloat16:
            x = x.float()
        return x.cpu().numpy()

    def asarray(self, x, like, *, cast=True):
        return self.torch.as_tensor(x, dtype=like.dtype if cast else None, device=like.device)

    def as_native(self, x):
        return x if isinstance(x, self.torch.Tensor) else np.asarray(x)

    def is_traced(self, x):
        comp = getattr(self.torch, "compiler", None)
        return bool(comp is not None and comp.is_compiling())

    def cheap_host(self, x):
        return x.device.type == "cpu" and not self.is_traced(x)

    def is_real(self, x):
        return not x.is_complex()

    def all_finite(self, x):
        t = self.torch
        return bool(t.isfinite(x.sum())) or bool(t.isfinite(x).all())

    def finfo_max(self, dtype):
        return float(self.torch.finfo(dtype).max)

    def abs_max(self, x):
        if x.numel() == 0:
            return 0.0
        return float(x.detach().abs().max())

    def float_like(self, x):
        return x if x.is_floating_point() else x.to(self.torch.get_default_dtype())

    def compute(self, x):
        # float32 and float64 as given; half precisions are lifted to float32
        t = self.torch
        x = self.float_like(x)
        return x if x.dtype in (t.float32, t.float64) else x.to(t.float32)

    def cast(self, x, dtype):
        return x.to(dtype)

    def sort(self, x):
        return self.torch.sort(x, dim=-1)  # order among ties is irrelevant (see tie_fix)

    def take(self, x, idx):
        return self.torch.gather(x, -1, idx)

    def unsort(self, x, idx):
        return self.torch.empty_like(x).scatter_(-1, idx, x)

    def cumsum(self, x):
        return self.torch.cumsum(x, dim=-1)

    def flip(self, x):
        return self.torch.flip(x, dims=(-1,))

    def shift_right(self, x):
        return self.torch.nn.functional.pad(x[..., :-1], (1, 0))

    def shift_left(self, x):
        return self.torch.nn.functional.pad(x[..., 1:], (0, 1))

    def arange(self, n, like):
        return self.torch.arange(n, device=like.device)

    def where(self, c, a, b):
        return self.torch.where(c, a, b)

    def stop_gradient(self, x):
        return x.detach()

    def sum(self, x):
        return x.sum(dim=-1)

    def stack(self, xs):
        return self.torch.stack(xs, dim=-1)

    def row_abs_max(self, x):
        return x.abs().amax(dim=-1)

    def floor_pow2(self, x):
        t = self.torch
        ity, bits = (t.int64, 0x7FF0000000000000) if x.dtype == t.float64 else (t.int32, 0x7F800000)
        return t.bitwise_and(x.contiguous().view(ity), bits).view(x.dtype)

    def block_starts(self, ys):
        t = self.torch
        if self.cheap_host(ys):  # eager CPU: one comparison into a preallocated mask
            new = t.ones(ys.shape, dtype=t.bool, device=ys.device)
            t.ne(ys[..., 1:], ys[..., :-1], out=new[..., 1:])
            return new
        head = t.ones(ys.shape[:-1] + (1,), dtype=t.bool, device=ys.device)
        return t.cat([head, ys[..., 1:] != ys[..., :-1]], dim=-1)

    def cummax(self, x):
        return self.torch.cummax(x, dim=-1).values

    def scatter_rows(self, values, rows, cols, shape):
        t = self.torch
        out = t.zeros(shape, dtype=values.dtype, device=values.device)
        r = t.as_tensor(rows, device=values.device)
        c = t.as_tensor(cols, device=values.device)
        return out.index_put((r, c), values)

    def gather_rows(self, x, rows, cols):
        t = self.torch
        return x[t.as_tensor(rows, device=x.device), t.as_tensor(cols, device=x.device)]

    def concat(self, xs):
        return self.torch.cat(xs, dim=0)

    def take_first(self, x, idx):
        # index_select: several times faster than advanced indexing on CPU; gradients flow through both
        t = self.torch
        return t.index_select(x, 0, t.as_tensor(idx, device=x.device))


class JaxOps(Ops):
    name = "jax"
    differentiable = True
    scales_traced = True

    def __init__(self) -> None:
        super().__init__()
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp

    def dtype_key(self, x):
        # Concrete constants are placed on the default device; under a trace they are embedded.
        return (str(x.dtype),)

    def to_host(self, x):
        arr = np.asarray(x)
        if "bfloat16" in str(arr.dtype):
            arr = arr.astype(np.float32)
        return arr

    def asarray(self, x, like, *, cast=True):
        return self.jnp.asarray(x, dtype=like.dtype if cast else None)

    def as_native(self, x):
        return x if isinstance(x, self.jax.Array) else np.asarray(x)

    def is_traced(self, x):
        return isinstance(x, self.jax.core.Tracer)

    def cheap_host(self, x):
        return False  # a host check would wait for the device

    def is_real(self, x):
        return not self.jnp.issubdtype(x.dtype, self.jnp.complexfloating)

    def all_finite(self, x):
        jnp = self.jnp
        return bool(jnp.isfinite(x.sum())) or bool(jnp.isfinite(x).all())

    def finfo_max(self, dtype):
        return float(self.jnp.finfo(dtype).max)

    def abs_max(self, x):
        if x.size == 0:
            return 0.0
        return float(self.jnp.max(self.jnp.abs(x)))

    def float_like(self, x):
        jnp = self.jnp
        return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))

    def compute(self, x):
        jnp = self.jnp
        x = self.float_like(x)
        return x if x.dtype in (jnp.float32, jnp.float64) else x.astype(jnp.float32)

    def cast(self, x, dtype):
        return x.astype(dtype)

    def sort(self, x):
        idx = self.jnp.argsort(x, axis=-1, stable=False)
        return self.jnp.take_along_axis(x, idx, axis=-1), idx

    def take(self, x, idx):
        return self.jnp.take_along_axis(x, idx, axis=-1)

    def unsort(self, x, idx):
        jnp = self.jnp
        rows = jnp.arange(x.shape[0])[:, None]
        return jnp.zeros_like(x).at[rows, idx].set(x)

    def cumsum(self, x):
        return self.jnp.cumsum(x, axis=-1)

    def flip(self, x):
        return self.jnp.flip(x, axis=-1)

    def shift_right(self, x):
        jnp = self.jnp
        return jnp.pad(x[..., :-1], [(0, 0)] * (x.ndim - 1) + [(1, 0)])

    def shift_left(self, x):
        jnp = self.jnp
        return jnp.pad(x[..., 1:], [(0, 0)] * (x.ndim - 1) + [(0, 1)])

    def arange(self, n, like):
        return self.jnp.arange(n)

    def where(self, c, a, b):
        return self.jnp.where(c, a, b)

    def stop_gradient(self, x):
        return self.jax.lax.stop_gradient(x)

    def sum(self, x):
        return self.jnp.sum(x, axis=-1)

    def stack(self, xs):
        return self.jnp.stack(xs, axis=-1)

    def row_abs_max(self, x):
        return self.jnp.max(self.jnp.abs(x), axis=-1)

    def floor_pow2(self, x):
        jnp, lax = self.jnp, self.jax.lax
        ity, bits = (jnp.int64, 0x7FF0000000000000) if x.dtype == jnp.float64 else (jnp.int32, 0x7F800000)
        return lax.bitcast_convert_type(lax.bitcast_convert_type(x, ity) & jnp.asarray(bits, ity), x.dtype)

    def block_starts(self, ys):
        jnp = self.jnp
        head = jnp.ones(ys.shape[:-1] + (1,), dtype=bool)
        return jnp.concatenate([head, ys[..., 1:] != ys[..., :-1]], axis=-1)

    def cummax(self, x):
        return self.jax.lax.cummax(x, axis=x.ndim - 1)

    def scatter_rows(self, values, rows, cols, shape):
        return self.jnp.zeros(shape, dtype=values.dtype).at[rows, cols].set(values)

    def gather_rows(self, x, rows, cols):
        return x[rows, cols]

    def concat(self, xs):
        return self.jnp.concatenate(xs, axis=0)

    def take_first(self, x, idx):
        return x[idx]


_BACKENDS: dict[str, Callable[[], Ops]] = {"numpy": NumpyOps, "torch": TorchOps, "jax": JaxOps}
_OPS: dict[str, Ops] = {}
_OPS_LOCK = threading.Lock()


def get_ops(x: object) -> Ops:
    """The ops for ``x``'s backend: torch tensors, jax arrays, else numpy (lists are numpy)."""
    if _is_torch(x):
        key = "torch"
    elif _is_jax(x):
        key = "jax"
    else:
        key = "numpy"
    ops = _OPS.get(key)
    if ops is None:
        with _OPS_LOCK:  # one instance per backend, also when threads race to create it
            ops = _OPS.get(key)
            if ops is None:
                ops = _OPS[key] = _BACKENDS[key]()
    return ops


def to_host(x: Any) -> np.ndarray:
    """Any supported array (numpy, torch on any device, jax, lists) as a host numpy array: the one
    way arrays move to the host (:meth:`Ops.to_host`: detached, bfloat16 as float32)."""
    return get_ops(x).to_host(x)
