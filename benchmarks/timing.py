"""Timing, peak-memory and cache helpers for the benchmarks.

* :func:`time_call` — median wall time of a synchronised call after warm-up;
* :func:`time_cold` — median of single calls, each made right after :func:`clear_rankgrad_caches`;
* :func:`peak_tracemalloc_mb` — peak bytes traced by ``tracemalloc`` during a call (numpy buffers);
* :func:`peak_rss_mb` — peak resident set size during a call above the resident size just before it,
  from ``/proc/self/status`` after ``malloc_trim`` and a reset of the kernel's high-water mark
  (``echo 5 > /proc/self/clear_refs``), so one process can measure many calls (torch, jax).
"""

from __future__ import annotations

import ctypes
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Timing",
    "time_call",
    "time_cold",
    "clear_rankgrad_caches",
    "caches_cleared_so_far",
    "peak_tracemalloc_mb",
    "peak_rss_mb",
    "rss_method",
]


@dataclass(frozen=True)
class Timing:
    """Wall times of one measured call in milliseconds."""

    median_ms: float
    min_ms: float
    repeats: int


def _summarise(seconds: list[float]) -> Timing:
    return Timing(
        median_ms=1e3 * statistics.median(seconds), min_ms=1e3 * min(seconds), repeats=len(seconds)
    )


def time_call(
    fn: Callable[[], object],
    *,
    warmup: int = 3,
    min_repeats: int = 5,
    max_repeats: int = 1000,
    budget_s: float = 0.5,
) -> Timing:
    """Median of repeated calls of ``fn`` (which must block until its result is ready) after
    ``warmup`` calls; repeats until ``budget_s`` is spent, at least ``min_repeats`` times."""
    for _ in range(warmup):
        fn()
    gc.collect()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return _summarise(times)


def time_cold(fn: Callable[[], object], *, repeats: int = 3) -> Timing:
    """Median of ``repeats`` single calls, each right after clearing every rankgrad cache."""
    times: list[float] = []
    for _ in range(repeats):
        clear_rankgrad_caches()
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return _summarise(times)


_CLEARED: set[str] = set()


def caches_cleared_so_far() -> list[str]:
    """Every cache :func:`clear_rankgrad_caches` has cleared in this process."""
    return sorted(_CLEARED)


def clear_rankgrad_caches() -> list[str]:
    """Clear rankgrad's caches; returns what was cleared.

    The weight-table LRU caches (``weights._rank_tables``, ``weights._stacked``) and every other
    ``functools`` cache in ``rankgrad._src``; the per-backend ops (``ops._OPS``, which hold the tables
    converted to backend arrays); and the grown log-factorial / log-integer tables of ``weights`` (cut
    back to their first entry) where present. Missing names are skipped, so this keeps working while
    the internals change.
    """
    cleared: list[str] = []
    for name, mod in sorted(sys.modules.items()):
        if not name.startswith("rankgrad._src") or mod is None:
            continue
        for attr, obj in list(vars(mod).items()):
            if callable(getattr(obj, "cache_clear", None)) and getattr(obj, "__module__", name) == name:
                obj.cache_clear()
                cleared.append(f"{name}.{attr}")
    ops_mod = sys.modules.get("rankgrad._src.ops")
    if ops_mod is not None and isinstance(getattr(ops_mod, "_OPS", None), dict):
        ops_mod._OPS.clear()
        cleared.append("rankgrad._src.ops._OPS")
    weights_mod = sys.modules.get("rankgrad._src.weights")
    for attr in ("_LF", "_LI"):
        arr = getattr(weights_mod, attr, None)
        if isinstance(arr, np.ndarray) and arr.size > 1:
            setattr(weights_mod, attr, arr[:1].copy())
            cleared.append(f"rankgrad._src.weights.{attr} (grown table)")
    _CLEARED.update(cleared)
    return cleared


def peak_tracemalloc_mb(fn: Callable[[], object]) -> float:
    """Peak traced allocation during ``fn()`` above the traced size before it, in MB (10^6 B)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / 1e6


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def rss_method() -> str:
    """How :func:`peak_rss_mb` measures on this machine."""
    ok = _reset_high_water_mark()
    return (
        "peak RSS (VmHWM, reset via /proc/self/clear_refs) minus VmRSS before the call, after malloc_trim"
        if ok
        else "unavailable (/proc/self/clear_refs not writable)"
    )


def peak_rss_mb(fn: Callable[[], object]) -> float | None:
    """Peak resident memory during ``fn()`` above the resident size before it, in MB; None when the
    high-water mark cannot be reset."""
    gc.collect()
    _malloc_trim()
    if not _reset_high_water_mark():
        return None
    before = _proc_status_kb("VmRSS")
    fn()
    peak = _proc_status_kb("VmHWM")
    return max(0, peak - before) * 1024 / 1e6
