"""The handful of array operations each backend provides (numpy, torch, jax).

Estimators are written once against this shim; adding a backend means writing one more class here.
Every op works on the last axis of a 2-D ``[G, N]`` array unless it says otherwise.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["Ops", "get_ops", "is_torch", "is_jax"]

Array = Any


def is_torch(x: object) -> bool:
    mod = sys.modules.get("torch")
    return mod is not None and isinstance(x, mod.Tensor)


def is_jax(x: object) -> bool:
    mod = sys.modules.get("jax")
    return mod is not None and isinstance(x, mod.Array)


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


class Ops:
    """Backend interface. Subclasses implement every method; ``name`` labels errors."""

    name = "abstract"
    differentiable = False

    def __init__(self) -> None:
        self._tables = _TableCache()

    # conversions -----------------------------------------------------------
    def table(self, arr: np.ndarray, like: Array) -> Array:
        """A float64 numpy table as a constant of ``like``'s dtype/device (cached by identity).

        Only concrete arrays are cached: a constant built inside a trace (``jax.jit``) belongs to that
        trace and is rebuilt by the next one, never reused outside it. The cache keeps ``arr`` alive
        with its entry, so its ``id`` cannot be reused while the entry exists.
        """
        key = (id(arr), self.dtype_key(like))
        hit = self._tables.lookup(key)
        if hit is not None:
            return hit[1]
        value = self.from_numpy(arr, like)
        if not self.is_traced(value):
            self._tables.put(key, (arr, value))
        return value

    def dtype_key(self, x: Array) -> tuple:
        return (str(x.dtype),)

    def host(self, fn, *args):  # noqa: ANN001, ANN201
        """Run host-side (numpy) work: parsing objectives, building weight tables. Under
        ``torch.compile`` it runs outside the graph."""
        return fn(*args)

    # to be provided ---------------------------------------------------------
    def from_numpy(self, arr: np.ndarray, like: Array) -> Array: ...
    def to_numpy(self, x: Array) -> np.ndarray: ...
    def is_traced(self, x: Array) -> bool: ...
    def float_like(self, x: Array) -> Array: ...
    def sort(self, x: Array) -> tuple[Array, Array]: ...
    def take(self, x: Array, idx: Array) -> Array: ...
    def unsort(self, x: Array, idx: Array) -> Array: ...
    def cumsum(self, x: Array) -> Array: ...
    def cummax(self, x: Array) -> Array: ...
    def shift_right(self, x: Array) -> Array: ...
    def shift_left(self, x: Array) -> Array: ...
    def arange(self, n: int, like: Array) -> Array: ...
    def where(self, c: Array, a: Array, b: Array) -> Array: ...
    def stop_gradient(self, x: Array) -> Array: ...
    def all_finite(self, x: Array) -> bool: ...
    def scatter_rows(self, values: Array, rows: np.ndarray, cols: np.ndarray, shape: tuple) -> Array:
        """A zero array of ``shape`` with ``out[rows[i], cols[i]] = values[i]``."""
        ...

    def gather_rows(self, x: Array, rows: np.ndarray, cols: np.ndarray) -> Array: ...
    def concat(self, xs: list) -> Array:
        """Concatenate along the first axis."""
        ...

    def take_first(self, x: Array, idx: np.ndarray) -> Array:
        """``x[idx]`` along the first axis, ``idx`` host ints."""
        ...

    def scatter_first(self, parts: list, index: np.ndarray) -> Array:
        """``out[index[i]] = concat(parts)[i]`` along the first axis, ``index`` a permutation of
        0..n−1 (host ints): pieces computed on subsets put back in place. A concatenation and one
        gather, so gradients flow through it (torch, jax)."""
        index = np.asarray(index, dtype=np.int64)
        inverse = np.empty_like(index)
        inverse[index] = np.arange(index.size)
        return self.take_first(parts[0] if len(parts) == 1 else self.concat(parts), inverse)

    def sum(self, x: Array) -> Array: ...
    def asarray(self, arr: np.ndarray, like: Array) -> Array:
        """A host array (ints, bools) on ``like``'s device, dtype unchanged."""
        ...

    def stack(self, xs: list) -> Array:
        """Stack along a new last axis."""
        ...

    def compute(self, x: Array) -> Array:
        """The precision estimators compute in (see each backend)."""
        ...

    def cast(self, x: Array, dtype: Any) -> Array: ...

    def convert(self, x: Any, like: Array | None) -> Array:
        """A numpy array or this backend's array as a float array of this backend (``like``'s
        dtype and device when given)."""
        ...

    def tie_starts(self, ys: Array) -> Array:
        """For sorted ``ys``, the position where each element's block of equal values starts."""
        pos = self.arange(ys.shape[-1], like=ys)[None, :]
        new = (ys != self.shift_right(ys)) | (pos == 0)
        return self.cummax(self.where(new, pos, 0))

    def tie_ends(self, ys: Array) -> Array:
        """For sorted ``ys``, the position where each element's block of equal values ends."""
        w = ys.shape[-1]
        pos = self.arange(w, like=ys)[None, :]
        last = (ys != self.shift_left(ys)) | (pos == w - 1)
        return (w - 1) - self.flip(self.cummax(self.flip(self.where(last, w - 1 - pos, 0))))

    def tie_fix(self, x: Array, ys: Array) -> Array:
        """``x`` with every value replaced by the one at the start of its block of equal ``ys``
        (``ys`` sorted along the last axis): tied rewards get bit-identical results."""
        return self.take(x, self.tie_starts(ys))

    def rev_cumsum(self, x: Array) -> Array:
        """Suffix sums along the last axis by a reversed scan (never total − prefix)."""
        return self.flip(self.cumsum(self.flip(x)))

    def flip(self, x: Array) -> Array: ...

    # magnitudes: overflow-safe scaling ---------------------------------------
    def finfo_max(self, dtype: Any) -> float:
        """The largest finite value of the float ``dtype`` (a dtype of this backend)."""
        ...

    def abs_max(self, x: Array) -> float:
        """max |x| over every entry, as a host float: NaN if an entry is NaN, inf if one is ±inf, 0 for
        an empty array. One reduction and one host transfer."""
        ...

    def row_abs_max(self, x: Array) -> Array:
        """max |x| along the last axis, ``[G]`` (no host transfer; traceable)."""
        ...

    def floor_pow2(self, x: Array) -> Array:
        """Elementwise, the largest power of two <= |x|, exactly, for finite float32/float64 ``x``
        (0 for 0 and subnormals): the sign and mantissa bits cleared. Traceable."""
        ...


class NumpyOps(Ops):
    name = "numpy"

    def from_numpy(self, arr, like):  # noqa: ANN001, D102
        return arr.astype(like.dtype, copy=False)

    def to_numpy(self, x):  # noqa: ANN001, D102
        return np.asarray(x)

    def is_traced(self, x):  # noqa: ANN001, D102
        return False

    def float_like(self, x):  # noqa: ANN001, D102
        x = np.asarray(x)
        return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)

    def sort(self, x):  # noqa: ANN001, D102
        # Any order of tied values gives the same results (ties are fixed up by tie_fix), so the
        # fastest sort will do.
        idx = np.argsort(x, axis=-1)
        return np.take_along_axis(x, idx, axis=-1), idx

    def tie_fix(self, x, ys):  # noqa: ANN001, D102
        new = np.empty(ys.shape, dtype=bool)
        new[..., 0] = True
        np.not_equal(ys[..., 1:], ys[..., :-1], out=new[..., 1:])
        if new.all():
            return x
        start = np.maximum.accumulate(np.where(new, np.arange(ys.shape[-1]), 0), axis=-1)
        return np.take_along_axis(x, start, axis=-1)

    def take(self, x, idx):  # noqa: ANN001, D102
        return np.take_along_axis(x, idx, axis=-1)

    def unsort(self, x, idx):  # noqa: ANN001, D102
        g, n = x.shape
        out = np.empty_like(x)
        flat = idx + (np.arange(g) * n)[:, None]
        out.reshape(-1)[flat.reshape(-1)] = x.reshape(-1)
        return out

    def cumsum(self, x):  # noqa: ANN001, D102
        return np.cumsum(x, axis=-1)

    def cummax(self, x):  # noqa: ANN001, D102
        return np.maximum.accumulate(x, axis=-1)

    def flip(self, x):  # noqa: ANN001, D102
        return x[..., ::-1]

    def shift_right(self, x):  # noqa: ANN001, D102
        out = np.zeros_like(x)
        out[..., 1:] = x[..., :-1]
        return out

    def shift_left(self, x):  # noqa: ANN001, D102
        out = np.zeros_like(x)
        out[..., :-1] = x[..., 1:]
        return out

    def arange(self, n, like):  # noqa: ANN001, D102
        return np.arange(n)

    def where(self, c, a, b):  # noqa: ANN001, D102
        return np.where(c, a, b)

    def stop_gradient(self, x):  # noqa: ANN001, D102
        return x

    def all_finite(self, x):  # noqa: ANN001, D102
        # one reduction pass; the elementwise check only if the sum is not finite (NaN/inf, or an
        # overflowing sum of finite values)
        return bool(np.isfinite(x.sum())) or bool(np.isfinite(x).all())

    def scatter_rows(self, values, rows, cols, shape):  # noqa: ANN001, D102
        out = np.zeros(shape, dtype=values.dtype)
        out[rows, cols] = values
        return out

    def gather_rows(self, x, rows, cols):  # noqa: ANN001, D102
        return x[rows, cols]

    def concat(self, xs):  # noqa: ANN001, D102
        return np.concatenate(xs, axis=0)

    def take_first(self, x, idx):  # noqa: ANN001, D102
        return x[idx]

    def sum(self, x):  # noqa: ANN001, D102
        return np.sum(x, axis=-1)

    def asarray(self, arr, like):  # noqa: ANN001, D102
        return np.asarray(arr)

    def stack(self, xs):  # noqa: ANN001, D102
        return np.stack(xs, axis=-1)

    def compute(self, x):  # noqa: ANN001, D102
        # float64 always: cheap on a CPU, and exact enough for any N
        return self.float_like(x).astype(np.float64, copy=False)

    def cast(self, x, dtype):  # noqa: ANN001, D102
        return x.astype(dtype, copy=False)

    def convert(self, x, like):  # noqa: ANN001, D102
        return np.asarray(x, dtype=np.float64 if like is None else like.dtype)

    def finfo_max(self, dtype):  # noqa: ANN001, D102
        return float(np.finfo(dtype).max)

    def abs_max(self, x):  # noqa: ANN001, D102
        if x.size == 0:
            return 0.0
        return float(np.maximum(x.max(), -x.min()))  # two passes, no temporary; NaN propagates

    def row_abs_max(self, x):  # noqa: ANN001, D102
        return np.abs(x).max(axis=-1)

    def floor_pow2(self, x):  # noqa: ANN001, D102
        x = np.ascontiguousarray(x)
        ity, bits = (np.int64, 0x7FF0000000000000) if x.dtype == np.float64 else (np.int32, 0x7F800000)
        return (x.view(ity) & ity(bits)).view(x.dtype)


class TorchOps(Ops):
    name = "torch"
    differentiable = True

    def __init__(self) -> None:
        super().__init__()
        import torch

        self.torch = torch
        self._outside_graph = torch.compiler.disable(lambda fn, *args: fn(*args))

    def dtype_key(self, x):  # noqa: ANN001, D102
        return (str(x.dtype), str(x.device))

    def host(self, fn, *args):  # noqa: ANN001, ANN201, D102
        # Always through the disabled wrapper: under torch.compile, frames that run eagerly after a
        # graph break are still intercepted by dynamo, and is_compiling() is False there.
        return self._outside_graph(fn, *args)

    def from_numpy(self, arr, like):  # noqa: ANN001, D102
        return self.torch.tensor(np.array(arr), dtype=like.dtype, device=like.device)

    def to_numpy(self, x):  # noqa: ANN001, D102
        x = x.detach()
        if x.dtype == self.torch.bfloat16:  # numpy has no bfloat16; float32 holds every bf16 value
            x = x.float()
        return x.cpu().numpy()

    def is_traced(self, x):  # noqa: ANN001, D102
        comp = getattr(self.torch, "compiler", None)
        return bool(comp is not None and comp.is_compiling())

    def float_like(self, x):  # noqa: ANN001, D102
        return x if x.is_floating_point() else x.to(self.torch.get_default_dtype())

    def sort(self, x):  # noqa: ANN001, D102
        return self.torch.sort(x, dim=-1)  # order among ties is irrelevant (see tie_fix)

    def tie_fix(self, x, ys):  # noqa: ANN001, D102
        t = self.torch
        if ys.is_cuda or self.is_traced(ys):
            return super().tie_fix(x, ys)
        # CPU: skip when there are no ties; else index each block's first element through a
        # cumulative count of block starts (cheaper than torch.cummax on CPU).
        new = t.ones(ys.shape, dtype=t.bool, device=ys.device)
        t.ne(ys[..., 1:], ys[..., :-1], out=new[..., 1:])
        if bool(new.all()):
            return x
        flat = new.reshape(-1)
        starts = t.nonzero(flat).squeeze(1)
        block = t.cumsum(flat, 0) - 1
        return x.reshape(-1)[starts[block]].reshape(x.shape)

    def take(self, x, idx):  # noqa: ANN001, D102
        return self.torch.gather(x, -1, idx)

    def unsort(self, x, idx):  # noqa: ANN001, D102
        return self.torch.empty_like(x).scatter_(-1, idx, x)

    def cumsum(self, x):  # noqa: ANN001, D102
        return self.torch.cumsum(x, dim=-1)

    def cummax(self, x):  # noqa: ANN001, D102
        return self.torch.cummax(x, dim=-1).values

    def flip(self, x):  # noqa: ANN001, D102
        return self.torch.flip(x, dims=(-1,))

    def shift_right(self, x):  # noqa: ANN001, D102
        return self.torch.nn.functional.pad(x[..., :-1], (1, 0))

    def shift_left(self, x):  # noqa: ANN001, D102
        return self.torch.nn.functional.pad(x[..., 1:], (0, 1))

    def arange(self, n, like):  # noqa: ANN001, D102
        return self.torch.arange(n, device=like.device)

    def where(self, c, a, b):  # noqa: ANN001, D102
        return self.torch.where(c, a, b)

    def stop_gradient(self, x):  # noqa: ANN001, D102
        return x.detach()

    def all_finite(self, x):  # noqa: ANN001, D102
        t = self.torch
        return bool(t.isfinite(x.sum())) or bool(t.isfinite(x).all())

    def scatter_rows(self, values, rows, cols, shape):  # noqa: ANN001, D102
        t = self.torch
        out = t.zeros(shape, dtype=values.dtype, device=values.device)
        r = t.as_tensor(rows, device=values.device)
        c = t.as_tensor(cols, device=values.device)
        return out.index_put((r, c), values)

    def gather_rows(self, x, rows, cols):  # noqa: ANN001, D102
        t = self.torch
        return x[t.as_tensor(rows, device=x.device), t.as_tensor(cols, device=x.device)]

    def concat(self, xs):  # noqa: ANN001, D102
        return self.torch.cat(xs, dim=0)

    def take_first(self, x, idx):  # noqa: ANN001, D102
        return x[self.torch.as_tensor(idx, device=x.device)]

    def sum(self, x):  # noqa: ANN001, D102
        return x.sum(dim=-1)

    def asarray(self, arr, like):  # noqa: ANN001, D102
        return self.torch.as_tensor(arr, device=like.device)

    def stack(self, xs):  # noqa: ANN001, D102
        return self.torch.stack(xs, dim=-1)

    def compute(self, x):  # noqa: ANN001, D102
        # float32 and float64 as given; half precisions are lifted to float32
        t = self.torch
        x = self.float_like(x)
        return x if x.dtype in (t.float32, t.float64) else x.to(t.float32)

    def cast(self, x, dtype):  # noqa: ANN001, D102
        return x.to(dtype)

    def convert(self, x, like):  # noqa: ANN001, D102
        t = self.torch
        if like is None:
            return self.float_like(t.as_tensor(x))
        return t.as_tensor(x, device=like.device).to(like.dtype)

    def finfo_max(self, dtype):  # noqa: ANN001, D102
        return float(self.torch.finfo(dtype).max)

    def abs_max(self, x):  # noqa: ANN001, D102
        if x.numel() == 0:
            return 0.0
        return float(x.detach().abs().max())

    def row_abs_max(self, x):  # noqa: ANN001, D102
        return x.abs().amax(dim=-1)

    def floor_pow2(self, x):  # noqa: ANN001, D102
        t = self.torch
        ity, bits = (t.int64, 0x7FF0000000000000) if x.dtype == t.float64 else (t.int32, 0x7F800000)
        return t.bitwise_and(x.contiguous().view(ity), bits).view(x.dtype)


class JaxOps(Ops):
    name = "jax"
    differentiable = True

    def __init__(self) -> None:
        super().__init__()
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp

    def dtype_key(self, x):  # noqa: ANN001, D102
        # Concrete constants are placed on the default device; under a trace they are embedded.
        return (str(x.dtype),)

    def from_numpy(self, arr, like):  # noqa: ANN001, D102
        return self.jnp.asarray(np.asarray(arr, dtype=like.dtype))

    def to_numpy(self, x):  # noqa: ANN001, D102
        return np.asarray(x)

    def is_traced(self, x):  # noqa: ANN001, D102
        return isinstance(x, self.jax.core.Tracer)

    def float_like(self, x):  # noqa: ANN001, D102
        jnp = self.jnp
        return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))

    def sort(self, x):  # noqa: ANN001, D102
        idx = self.jnp.argsort(x, axis=-1, stable=False)
        return self.jnp.take_along_axis(x, idx, axis=-1), idx

    def take(self, x, idx):  # noqa: ANN001, D102
        return self.jnp.take_along_axis(x, idx, axis=-1)

    def unsort(self, x, idx):  # noqa: ANN001, D102
        jnp = self.jnp
        rows = jnp.arange(x.shape[0])[:, None]
        return jnp.zeros_like(x).at[rows, idx].set(x)

    def cumsum(self, x):  # noqa: ANN001, D102
        return self.jnp.cumsum(x, axis=-1)

    def cummax(self, x):  # noqa: ANN001, D102
        return self.jax.lax.cummax(x, axis=x.ndim - 1)

    def flip(self, x):  # noqa: ANN001, D102
        return self.jnp.flip(x, axis=-1)

    def shift_right(self, x):  # noqa: ANN001, D102
        jnp = self.jnp
        return jnp.pad(x[..., :-1], [(0, 0)] * (x.ndim - 1) + [(1, 0)])

    def shift_left(self, x):  # noqa: ANN001, D102
        jnp = self.jnp
        return jnp.pad(x[..., 1:], [(0, 0)] * (x.ndim - 1) + [(0, 1)])

    def arange(self, n, like):  # noqa: ANN001, D102
        return self.jnp.arange(n)

    def where(self, c, a, b):  # noqa: ANN001, D102
        return self.jnp.where(c, a, b)

    def stop_gradient(self, x):  # noqa: ANN001, D102
        return self.jax.lax.stop_gradient(x)

    def all_finite(self, x):  # noqa: ANN001, D102
        jnp = self.jnp
        return bool(jnp.isfinite(x.sum())) or bool(jnp.isfinite(x).all())

    def scatter_rows(self, values, rows, cols, shape):  # noqa: ANN001, D102
        return self.jnp.zeros(shape, dtype=values.dtype).at[rows, cols].set(values)

    def gather_rows(self, x, rows, cols):  # noqa: ANN001, D102
        return x[rows, cols]

    def concat(self, xs):  # noqa: ANN001, D102
        return self.jnp.concatenate(xs, axis=0)

    def take_first(self, x, idx):  # noqa: ANN001, D102
        return x[idx]

    def sum(self, x):  # noqa: ANN001, D102
        return self.jnp.sum(x, axis=-1)

    def asarray(self, arr, like):  # noqa: ANN001, D102
        return self.jnp.asarray(arr)

    def stack(self, xs):  # noqa: ANN001, D102
        return self.jnp.stack(xs, axis=-1)

    def compute(self, x):  # noqa: ANN001, D102
        jnp = self.jnp
        x = self.float_like(x)
        return x if x.dtype in (jnp.float32, jnp.float64) else x.astype(jnp.float32)

    def cast(self, x, dtype):  # noqa: ANN001, D102
        return x.astype(dtype)

    def convert(self, x, like):  # noqa: ANN001, D102
        x = self.jnp.asarray(x)
        return self.float_like(x) if like is None else x.astype(like.dtype)

    def finfo_max(self, dtype):  # noqa: ANN001, D102
        return float(self.jnp.finfo(dtype).max)

    def abs_max(self, x):  # noqa: ANN001, D102
        if x.size == 0:
            return 0.0
        return float(self.jnp.max(self.jnp.abs(x)))

    def row_abs_max(self, x):  # noqa: ANN001, D102
        return self.jnp.max(self.jnp.abs(x), axis=-1)

    def floor_pow2(self, x):  # noqa: ANN001, D102
        jnp, lax = self.jnp, self.jax.lax
        ity, bits = (jnp.int64, 0x7FF0000000000000) if x.dtype == jnp.float64 else (jnp.int32, 0x7F800000)
        return lax.bitcast_convert_type(lax.bitcast_convert_type(x, ity) & jnp.asarray(bits, ity), x.dtype)


_OPS: dict[str, Ops] = {}
_OPS_LOCK = threading.Lock()


def get_ops(x: object) -> Ops:
    """The ops for ``x``'s backend: torch tensors, jax arrays, else numpy (lists are numpy)."""
    if is_torch(x):
        key = "torch"
    elif is_jax(x):
        key = "jax"
    else:
        key = "numpy"
    ops = _OPS.get(key)
    if ops is None:
        with _OPS_LOCK:  # one instance per backend, also when threads race to create it
            ops = _OPS.get(key)
            if ops is None:
                ops = _OPS[key] = {"numpy": NumpyOps, "torch": TorchOps, "jax": JaxOps}[key]()
    return ops
