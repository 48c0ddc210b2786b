"""The array backends the benchmarks run on: how to convert, synchronise, sort and wrap a function.

``numpy`` and ``torch`` call rankgrad eagerly; ``jax`` wraps it in ``jax.jit`` (first call = trace +
compile); ``torch.compile`` wraps it in ``torch.compile`` (first call = compile). Each backend also names
its sort baseline and its peak-memory method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.timing import peak_rss_mb, peak_tracemalloc_mb

__all__ = ["Backend", "make_backend", "BACKEND_NAMES", "cuda_available"]

BACKEND_NAMES = ("numpy", "torch", "jax", "torch.compile", "torch.cuda")

Fn = Callable[[Any], Any]


@dataclass(frozen=True)
class Backend:
    """One way of running rankgrad.

    Attributes:
      name: label in the tables.
      convert: numpy array → backend array (dtype kept).
      to_numpy: backend array → numpy.
      sync: block until an output is ready; returns it.
      wrap: a function of the rewards → the function to time (identity, ``jax.jit``, ``torch.compile``).
      sort: the sort baseline on a backend array (synchronised).
      sort_label: how the baseline sorts.
      compiles: whether the first call of a wrapped function compiles.
      memory: (wrapped fn, backend input) → (peak MB or None, method).
      float64: a context in which float64 arrays can be created and computed on.
    """

    name: str
    convert: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]
    sync: Callable[[Any], Any]
    wrap: Callable[[Fn], Fn]
    sort: Callable[[Any], Any]
    sort_label: str
    compiles: bool
    memory: Callable[[Fn, Any], tuple[float | None, str]]
    float64: Callable[[], contextlib.AbstractContextManager]


def _identity(fn: Fn) -> Fn:
    return fn


def _no_context() -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def _rss_memory(fn: Fn, x: Any) -> tuple[float | None, str]:
    return peak_rss_mb(lambda: fn(x)), "RSS"


def _numpy() -> Backend:
    def sort(x: np.ndarray) -> np.ndarray:
        return np.argsort(x, axis=-1, kind="stable")

    def memory(fn: Fn, x: Any) -> tuple[float | None, str]:
        return peak_tracemalloc_mb(lambda: fn(x)), "tracemalloc"

    return Backend(
        name="numpy",
        convert=np.asarray,
        to_numpy=np.asarray,
        sync=_identity,
        wrap=_identity,
        sort=sort,
        sort_label='np.argsort(kind="stable")',
        compiles=False,
        memory=memory,
        float64=_no_context,
    )


def _torch(compiled: bool) -> Backend:
    import torch

    def sort(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.sort(x, dim=-1)

    def wrap(fn: Fn) -> Fn:
        if not compiled:
            return fn
        torch._dynamo.reset()
        return torch.compile(fn)

    return Backend(
        name="torch.compile" if compiled else "torch",
        convert=torch.from_numpy,
        to_numpy=lambda x: x.detach().cpu().numpy(),
        sync=_identity,
        wrap=wrap,
        sort=sort,
        sort_label="torch.sort (values+indices)",
        compiles=compiled,
        memory=_rss_memory,
        float64=_no_context,
    )


def _torch_cuda() -> Backend:
    """Eager torch on the GPU: inputs moved once, every timing synchronised, peak memory from the
    CUDA caching allocator."""
    import torch

    def sync(x: Any) -> Any:
        torch.cuda.synchronize()
        return x

    def sort(x: torch.Tensor) -> Any:
        return sync(torch.sort(x, dim=-1))

    def memory(fn: Fn, x: Any) -> tuple[float | None, str]:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        sync(fn(x))
        return (torch.cuda.max_memory_allocated() - base) / 1e6, "CUDA allocator peak"

    return Backend(
        name="torch.cuda",
        convert=lambda a: torch.from_numpy(a).cuda(),
        to_numpy=lambda x: x.detach().cpu().numpy(),
        sync=sync,
        wrap=_identity,
        sort=sort,
        sort_label="torch.sort on CUDA (values+indices)",
        compiles=False,
        memory=memory,
        float64=_no_context,
    )


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _jax() -> Backend:
    import jax
    import jax.numpy as jnp

    @jax.jit
    def sort(x: jax.Array) -> jax.Array:
        return jnp.take_along_axis(x, jnp.argsort(x, axis=-1), axis=-1)

    def memory(fn: Fn, x: Any) -> tuple[float | None, str]:
        try:
            stats = fn.lower(x).compile().memory_analysis()
            return (stats.temp_size_in_bytes + stats.output_size_in_bytes) / 1e6, "XLA temp+output"
        except (AttributeError, TypeError, RuntimeError, NotImplementedError):
            return _rss_memory(fn, x)

    @contextlib.contextmanager
    def float64() -> Iterator[None]:
        with jax.enable_x64(True):
            yield

    return Backend(
        name="jax",
        convert=jnp.asarray,
        to_numpy=np.asarray,
        sync=lambda x: x.block_until_ready(),
        wrap=jax.jit,
        sort=lambda x: sort(x).block_until_ready(),
        sort_label="jit(argsort + take_along_axis)",
        compiles=True,
        memory=memory,
        float64=float64,
    )


def _jax_eager() -> Backend:
    jb = _jax()
    return Backend(
        name="jax (eager)",
        convert=jb.convert,
        to_numpy=jb.to_numpy,
        sync=jb.sync,
        wrap=_identity,
        sort=jb.sort,
        sort_label=jb.sort_label,
        compiles=False,
        memory=_rss_memory,
        float64=jb.float64,
    )


def make_backend(name: str) -> Backend:
    """``"numpy"``, ``"torch"``, ``"jax"`` (jit), ``"jax (eager)"``, ``"torch.compile"`` or
    ``"torch.cuda"``."""
    makers: dict[str, Callable[[], Backend]] = {
        "numpy": _numpy,
        "torch": lambda: _torch(compiled=False),
        "torch.compile": lambda: _torch(compiled=True),
        "torch.cuda": _torch_cuda,
        "jax": _jax,
        "jax (eager)": _jax_eager,
    }
    return makers[name]()
