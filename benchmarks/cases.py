"""The benchmark cases. Each ``run_*`` function returns one row (a JSON-ready dict) per case × backend.

Rewards are standard normal, float32 for timing; every check recomputes the same rewards in float64
and compares with the dense naive reference (``benchmarks/naive.py``) at 1e-10 · max(1, max |a|).
A backend that raises is recorded with the exception (``status``), never crashes the run.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import rankgrad
from benchmarks.backends import Backend, make_backend
from benchmarks.naive import naive_advantages, naive_advantages_rows
from benchmarks.timing import clear_rankgrad_caches, time_call, time_cold

__all__ = [
    "Config",
    "SMALL_CASES",
    "HUGE_CASES",
    "run_small_groups",
    "run_huge_group",
    "run_ragged",
    "run_cache",
    "run_mixed",
    "run_flat_uids",
    "ragged_sizes",
]

CHECK_RTOL = 1e-10
SMALL_CASES: tuple[tuple[int, int, int], ...] = (
    (1024, 16, 4), (8192, 64, 8), (256, 256, 32), (65536, 16, 4)
)
HUGE_CASES: tuple[tuple[int, str], ...] = (
    (10**5, "cvar:0.2@1000"),
    (10**5, "max@1000"),
    (10**6, "max@10000"),
)
HUGE_TARGET_N = 10**5  # the 2 s / 200 MB target applies to these; N = 10^6 is reported only
RAGGED_B, RAGGED_MIN, RAGGED_MAX = 65_536, 2, 64
# One big group beside many small ones: padding every group to the largest would need
# (MIXED_SMALL + 1) × MIXED_BIG cells (3.2 GB in float64); the target is memory O(B).
MIXED_BIG, MIXED_SMALL, MIXED_SMALL_N, MIXED_OBJ = 20_000, 20_000, 4, "max@2"
MIXED_TARGET_MB = 200
# verl-style flat batch: P prompts × N rollouts, binary rewards, shuffled string uids (an object array).
FLAT_P, FLAT_N, FLAT_OBJ, FLAT_TARGET = 512, 16, "max@4", 1.2


@dataclass(frozen=True)
class Config:
    """Run-wide settings: ``quick`` trims repeats and cases."""

    quick: bool
    budget_s: float
    cold_repeats: int
    seed: int = 0

    @classmethod
    def make(cls, quick: bool) -> Config:
        return cls(quick=quick, budget_s=0.15 if quick else 0.6, cold_repeats=2 if quick else 5)


# ----------------------------------------------------------------------------- helpers
def _rewards(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check(got: np.ndarray, ref: np.ndarray, ref_label: str) -> dict[str, Any]:
    diff = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - ref)))
    tol = CHECK_RTOL * max(1.0, float(np.max(np.abs(ref))))
    return {"check_diff": diff, "check_tol": tol, "check_ok": bool(diff <= tol), "check_ref": ref_label}


def _error_row(row: dict[str, Any], exc: BaseException, backend: Backend) -> dict[str, Any]:
    kind = "unsupported" if backend.name == "torch.compile" else "error"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = " / ".join(lines[:2])[:300]
    row.update(status=f"{kind}: {type(exc).__name__}", error=msg, traceback=traceback.format_exc(limit=3))
    return row


def _targets(*pairs: tuple[str, bool]) -> list[dict[str, Any]]:
    return [{"target": label, "ok": bool(ok)} for label, ok in pairs]


def _pow10(n: int) -> str:
    e = round(np.log10(n))
    return f"10^{e}" if 10**e == n else str(n)


def _warm_up(backend: Backend) -> None:
    """First-use costs of the library (lazy init, first kernel, first compile) on a tiny unrelated
    input, so that cold numbers measure rankgrad's own preparation."""
    tiny = backend.convert(_rewards((4, 9), 12345))
    backend.sync(rankgrad.advantages(tiny, "max@2"))
    backend.sort(tiny)
    if backend.compiles:
        backend.sync(backend.wrap(lambda y: y * 2 + 1)(tiny))


def _sorted_ms(backend: Backend, x: Any, cfg: Config) -> float:
    return time_call(lambda: backend.sort(x), budget_s=cfg.budget_s).median_ms


def _default_argsort_ms(backend: Backend, x: Any, cfg: Config) -> dict[str, float]:
    """numpy only: ``np.argsort`` with its default (unstable, SIMD) kind, for reference."""
    if backend.name != "numpy":
        return {}
    t = time_call(lambda: np.argsort(x, axis=-1), warmup=1, min_repeats=3, budget_s=cfg.budget_s)
    return {"argsort_default_kind_ms": t.median_ms}


def _cold_and_fn(backend: Backend, raw: Callable[[Any], Any], x: Any, repeats: int) -> tuple[float, Any]:
    """Cold time (caches cleared, fresh wrapper, one call; median over ``repeats``) and the last
    wrapped function, already compiled where the backend compiles."""
    holder: dict[str, Any] = {}
    _warm_up(backend)

    def cold_call() -> Any:
        # A fresh function object each time: jax.jit caches traces and executables per function.
        holder["fn"] = backend.wrap(lambda y: raw(y))
        return backend.sync(holder["fn"](x))

    return time_cold(cold_call, repeats=repeats).median_ms, holder["fn"]


def _f64_output(backend: Backend, fn: Callable[[Any], Any], y64: np.ndarray) -> np.ndarray:
    with backend.float64():
        x64 = backend.convert(y64)
        return backend.to_numpy(backend.sync(fn(x64)))


def _memory(backend: Backend, fn: Callable[[Any], Any], x: Any) -> tuple[float | None, str]:
    """Peak MB of one call: cold (caches cleared: table build included) for eager backends, the
    compiled executable's buffers (jax) or a warm call (torch.compile) for compiled ones."""
    if not backend.compiles:
        clear_rankgrad_caches()
        mb, method = backend.memory(lambda y: backend.sync(fn(y)), x)
        return mb, f"{method}, cold call"
    mb, method = backend.memory(fn, x)
    return mb, method if method != "RSS" else "RSS, warm call"


def _recompiles(backend: Backend, fn: Any, y32: np.ndarray, seed: int) -> int | None:
    """How many new compilations 3 calls on fresh float32 rewards of the same shape trigger (jax:
    the jitted function's executable cache; torch.compile: dynamo's count of unique graphs)."""
    if backend.name == "jax":
        count = fn._cache_size
    elif backend.name == "torch.compile":
        from torch._dynamo.utils import counters

        def count() -> int:
            return int(counters["stats"]["unique_graphs"])
    else:
        return None
    before = count()
    for j in range(3):
        backend.sync(fn(backend.convert(_rewards(y32.shape, seed + 1000 + j))))
    return count() - before


# ------------------------------------------------------------------- 1. small groups
def _small_targets(
    backend: Backend, g: int, n: int, ms: float, ratio: float, recompiles: int | None = None
) -> list[dict[str, Any]]:
    if backend.name == "numpy":
        pairs = [("ratio <= 10", ratio <= 10)]
        if (g, n) == (1024, 16):
            pairs.append(("<= 0.75 ms", ms <= 0.75))
        return _targets(*pairs)
    if backend.name == "torch":
        return _targets(("ratio <= 3", ratio <= 3))
    if recompiles is not None:
        return _targets(("no recompile on new values", recompiles == 0))
    return []


def _timed_fields(
    backend: Backend, fn: Any, x: Any, y32: np.ndarray, ref: np.ndarray, cfg: Config,
    warm_ms: float, cold_ms: float, sort_ms: float,
) -> dict[str, Any]:
    """The columns shared by the small-group and huge-group rows: times, ratio, memory, check."""
    peak, method = _memory(backend, fn, x)
    return dict(
        status="ok",
        ms=warm_ms,
        cold_ms=cold_ms,
        cold_label="compile+first call" if backend.compiles else "caches cleared + call",
        sort_ms=sort_ms,
        sort_label=backend.sort_label,
        ratio=warm_ms / sort_ms,
        peak_mb=peak,
        mem_method=method,
        **_default_argsort_ms(backend, x, cfg),
        **_check(_f64_output(backend, fn, y32.astype(np.float64)), ref, "naive f64"),
    )


def _small_row(
    backend: Backend, shape: tuple[int, int, int], y32: np.ndarray, ref: np.ndarray, cfg: Config
) -> dict[str, Any]:
    g, n, k = shape
    obj = f"max@{k}"
    row: dict[str, Any] = {"case": f"G={g} N={n} K={k}", "objective": obj, "backend": backend.name}
    try:
        x = backend.convert(y32)
        raw = lambda y: rankgrad.advantages(y, obj)  # noqa: E731
        repeats = 1 if backend.name == "torch.compile" else cfg.cold_repeats
        cold_ms, fn = _cold_and_fn(backend, raw, x, repeats)
        warm = time_call(lambda: backend.sync(fn(x)), budget_s=cfg.budget_s)
        sort_ms = _sorted_ms(backend, x, cfg)
        out32 = backend.to_numpy(backend.sync(fn(x)))
        recompiles = _recompiles(backend, fn, y32, cfg.seed)
        row.update(
            **_timed_fields(backend, fn, x, y32, ref, cfg, warm.median_ms, cold_ms, sort_ms),
            f32_err=float(np.max(np.abs(out32.astype(np.float64) - ref))),
            recompiles=recompiles,
        )
        row["targets"] = _small_targets(backend, g, n, warm.median_ms, row["ratio"], recompiles)
    except Exception as exc:
        return _error_row(row, exc, backend)
    return row


def run_small_groups(cfg: Config, backends: tuple[str, ...], log: Callable[[str], None]) -> list[dict]:
    """Case 1: many small groups ``[G, N]``, max@K, on every backend."""
    rows = []
    for i, shape in enumerate(SMALL_CASES):
        g, n, k = shape
        y32 = _rewards((g, n), cfg.seed + i)
        ref = naive_advantages_rows(y32.astype(np.float64), rankgrad.parse(f"max@{k}").weights)
        for name in backends:
            if cfg.quick and name == "torch.compile" and i > 0:
                continue
            log(f"  small {shape} {name}")
            rows.append(_small_row(make_backend(name), shape, y32, ref, cfg))
    return rows


# -------------------------------------------------------------------- 2. huge group
def _huge_row(
    backend: Backend, n: int, obj: str, y32: np.ndarray, ref: np.ndarray, cfg: Config
) -> dict[str, Any]:
    k = rankgrad.parse(obj).k
    case = f"N={_pow10(n)} K={_pow10(k)} {obj}"
    row: dict[str, Any] = {"case": case, "objective": obj, "backend": backend.name}
    try:
        x = backend.convert(y32)
        raw = lambda y: rankgrad.advantages(y, obj)  # noqa: E731
        cold_ms, fn = _cold_and_fn(backend, raw, x, max(1, cfg.cold_repeats - 2))
        warm = time_call(lambda: backend.sync(fn(x)), warmup=1, min_repeats=3, budget_s=cfg.budget_s)
        sort_ms = time_call(lambda: backend.sort(x), warmup=1, min_repeats=3, budget_s=cfg.budget_s).median_ms
        row.update(**_timed_fields(backend, fn, x, y32, ref, cfg, warm.median_ms, cold_ms, sort_ms))
        peak = row["peak_mb"]
        if n == HUGE_TARGET_N and not backend.compiles:
            row["targets"] = _targets(
                ("prep+call <= 2 s", cold_ms <= 2000), ("<= 200 MB", peak is not None and peak <= 200)
            )
    except Exception as exc:
        return _error_row(row, exc, backend)
    return row


def run_huge_group(cfg: Config, backends: tuple[str, ...], log: Callable[[str], None]) -> list[dict]:
    """Case 2: one group of N = 10^5 (and 10^6 unless quick) with K = N/100."""
    rows = []
    for i, (n, obj) in enumerate(HUGE_CASES):
        if cfg.quick and n > HUGE_TARGET_N:
            continue
        y32 = _rewards((1, n), cfg.seed + 100 + i)
        log(f"  huge N={n} {obj}: naive reference")
        ref = naive_advantages(y32[0].astype(np.float64), rankgrad.parse(obj).weights)[None, :]
        for name in backends:
            log(f"  huge N={n} {obj} {name}")
            rows.append(_huge_row(make_backend(name), n, obj, y32, ref, cfg))
    return rows


# ------------------------------------------------------------------------- 3. ragged
def ragged_sizes(total: int, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """Group sizes drawn uniformly from lo..hi that add up to ``total`` (the last one is cut to fit;
    a draw that would leave fewer than ``lo`` samples is redrawn)."""
    sizes: list[int] = []
    left = total
    while left > 0:
        s = int(rng.integers(lo, hi + 1))
        if 0 < left - s < lo:
            continue
        s = min(s, left)
        sizes.append(s)
        left -= s
    return np.asarray(sizes, dtype=np.int64)


@dataclass(frozen=True)
class _Ragged:
    flat: np.ndarray  # [B] float32
    ids: np.ndarray  # [B] int64, contiguous groups
    padded: np.ndarray  # [G, W] float32
    mask: np.ndarray  # [G, W] bool
    sizes: np.ndarray  # [G]


def _ragged_layout(cfg: Config) -> _Ragged:
    rng = np.random.default_rng(cfg.seed + 200)
    sizes = ragged_sizes(RAGGED_B, RAGGED_MIN, RAGGED_MAX, rng)
    flat = rng.standard_normal(RAGGED_B).astype(np.float32)
    ids = np.repeat(np.arange(sizes.size), sizes)
    cols = np.arange(RAGGED_B) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    padded = np.zeros((sizes.size, RAGGED_MAX), dtype=np.float32)
    mask = np.zeros((sizes.size, RAGGED_MAX), dtype=bool)
    padded[ids, cols] = flat
    mask[ids, cols] = True
    return _Ragged(flat=flat, ids=ids, padded=padded, mask=mask, sizes=sizes)


def _ragged_reference(r: _Ragged) -> np.ndarray:
    y = r.flat.astype(np.float64)
    w = rankgrad.parse("mean").weights
    bounds = np.concatenate([[0], np.cumsum(r.sizes)])
    return np.concatenate([naive_advantages(y[a:b], w) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


def _ragged_row(backend: Backend, r: _Ragged, ref: np.ndarray, cfg: Config) -> dict[str, Any]:
    row: dict[str, Any] = {
        "case": f"B={RAGGED_B} G={r.sizes.size} sizes {RAGGED_MIN}..{RAGGED_MAX}",
        "objective": "mean",
        "backend": backend.name,
    }
    try:
        ids = backend.convert(r.ids)

        def flat_fn(y: Any) -> Any:
            return rankgrad.advantages(y, "mean", group_ids=ids)

        def padded_fn(y: Any, m: Any) -> Any:
            return rankgrad.advantages(y, "mean", mask=m)

        x, xp, m = backend.convert(r.flat), backend.convert(r.padded), backend.convert(r.mask)
        flat_ms = time_call(lambda: backend.sync(flat_fn(x)), budget_s=cfg.budget_s).median_ms
        pad_ms = time_call(lambda: backend.sync(padded_fn(xp, m)), budget_s=cfg.budget_s).median_ms
        out_flat = backend.to_numpy(flat_fn(backend.convert(r.flat.astype(np.float64))))
        out_pad = backend.to_numpy(padded_fn(backend.convert(r.padded.astype(np.float64)), m))[r.mask]
        pad_check = _check(out_pad, ref, "naive f64")
        row.update(
            status="ok",
            ms=flat_ms,
            padded_ms=pad_ms,
            ratio=flat_ms / pad_ms,
            padded_check_diff=pad_check["check_diff"],
            padded_check_ok=pad_check["check_ok"],
            **_check(out_flat, ref, "naive f64"),
        )
        row["targets"] = _targets(("flat <= 2x padded", row["ratio"] <= 2))
    except Exception as exc:
        return _error_row(row, exc, backend)
    return row


def run_ragged(cfg: Config, backends: tuple[str, ...], log: Callable[[str], None]) -> list[dict]:
    """Case 3: flat rewards + group ids (ragged sizes) vs the same groups padded to [G, 64] + mask."""
    r = _ragged_layout(cfg)
    ref = _ragged_reference(r)
    rows = []
    for name in backends:
        log(f"  ragged {name}")
        rows.append(_ragged_row(make_backend(name), r, ref, cfg))
    return rows


# -------------------------------------------------------------------------- 4. cache
def _cache_row(backend: Backend, y32: np.ndarray, obj: str, cfg: Config) -> dict[str, Any]:
    g, n = y32.shape
    row: dict[str, Any] = {"case": f"G={g} N={n} {obj}", "objective": obj, "backend": backend.name}
    try:
        x = backend.convert(y32)
        _warm_up(backend)

        def call() -> Any:
            return backend.sync(rankgrad.advantages(x, obj))

        cold = time_cold(call, repeats=max(3, 2 * cfg.cold_repeats))
        warm = time_call(call, budget_s=cfg.budget_s)
        row.update(
            status="ok",
            ms=warm.median_ms,
            cold_ms=cold.median_ms,
            ratio=cold.median_ms / warm.median_ms,
            sort_ms=_sorted_ms(backend, x, cfg),
        )
    except Exception as exc:
        return _error_row(row, exc, backend)
    return row


def run_cache(cfg: Config, backends: tuple[str, ...], log: Callable[[str], None]) -> list[dict]:
    """Case 4: cold (all rankgrad caches cleared) vs warm calls, G=1024 N=16 max@4, eager backends."""
    y32 = _rewards((1024, 16), cfg.seed + 300)
    rows = []
    for name in backends:
        log(f"  cache {name}")
        rows.append(_cache_row(make_backend(name), y32, "max@4", cfg))
    return rows


# -------------------------------------------------------------------- 5. mixed sizes
def _mixed_layout(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat rewards [B], shuffled group ids [B], and the float64 reference advantages."""
    rng = np.random.default_rng(cfg.seed + 400)
    sizes = np.concatenate([[MIXED_BIG], np.full(MIXED_SMALL, MIXED_SMALL_N)])
    ids = np.repeat(np.arange(sizes.size), sizes)
    flat = rng.standard_normal(ids.size).astype(np.float32)
    w = rankgrad.parse(MIXED_OBJ).weights
    y = flat.astype(np.float64)
    ref = np.empty(ids.size)
    ref[:MIXED_BIG] = naive_advantages(y[:MIXED_BIG], w)
    small = y[MIXED_BIG:].reshape(MIXED_SMALL, MIXED_SMALL_N)
    ref[MIXED_BIG:] = naive_advantages_rows(small, w).reshape(-1)
    perm = rng.permutation(ids.size)
    return flat[perm], ids[perm], ref[perm]


def _mixed_row(
    backend: Backend, flat: np.ndarray, ids: np.ndarray, ref: np.ndarray, cfg: Config
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "case": f"B={flat.size:,}: 1 group of {MIXED_BIG:,} + {MIXED_SMALL:,} of {MIXED_SMALL_N}",
        "objective": MIXED_OBJ,
        "backend": backend.name,
    }
    try:
        gid = backend.convert(ids)

        def fn(y: Any) -> Any:
            return rankgrad.advantages(y, MIXED_OBJ, group_ids=gid)

        x = backend.convert(flat)
        _warm_up(backend)
        warm = time_call(lambda: backend.sync(fn(x)), warmup=1, min_repeats=3, budget_s=cfg.budget_s)
        peak, method = _memory(backend, fn, x)
        row.update(
            status="ok",
            ms=warm.median_ms,
            peak_mb=peak,
            mem_method=method,
            padded_mb=(MIXED_SMALL + 1) * MIXED_BIG * 8 / 1e6,
            **_check(_f64_output(backend, fn, flat.astype(np.float64)), ref, "naive f64"),
        )
        row["targets"] = _targets((f"<= {MIXED_TARGET_MB} MB", peak is not None and peak <= MIXED_TARGET_MB))
    except Exception as exc:
        return _error_row(row, exc, backend)
    return row


def run_mixed(cfg: Config, backends: tuple[str, ...], log: Callable[[str], None]) -> list[dict]:
    """Case 5: flat group ids mixing one group of 20,000 with 20,000 groups of 4 (memory O(B))."""
    flat, ids, ref = _mixed_layout(cfg)
    rows = []
    for name in backends:
        log(f"  mixed {name}")
        rows.append(_mixed_row(make_backend(name), flat, ids, ref, cfg))
    return rows


# ------------------------------------------------------------------ 6. flat string uids
def factorise_dict(uids: Any) -> np.ndarray:
    """The baseline factorisation: one plain dict pass over the labels (first appearance → 0, 1, ...)."""
    table: dict = {}
    put = table.setdefault
    return np.fromiter([put(u, len(table)) for u in uids], dtype=np.int64, count=len(uids))


def _flat_uids_layout(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense [P, N] 0/1 rewards (float32), the same rewards flat [B] in shuffled order, their string uids
    (object array, as verl's ``non_tensor_batch["uid"]``) and the float64 reference for the flat order."""
    rng = np.random.default_rng(cfg.seed + 500)
    dense = rng.integers(0, 2, size=(FLAT_P, FLAT_N)).astype(np.float32)
    ids = np.array([f"{p:08x}-uid" for p in range(FLAT_P) for _ in range(FLAT_N)], dtype=object)
    perm = rng.permutation(ids.size)
    w = rankgrad.parse(FLAT_OBJ).weights
    ref = naive_advantages_rows(dense.astype(np.float64), w).reshape(-1)[perm]
    return dense, dense.reshape(-1)[perm], ids[perm], ref


def _flat_uids_row(
    backend: Backend, dense: np.ndarray, flat: np.ndarray, ids: np.ndarray, ref: np.ndarray, cfg: Config
) -> dict[str, Any]:
    from rankgrad.integrations import group_advantages

    row: dict[str, Any] = {
        "case": f"P={FLAT_P} × N={FLAT_N}, 0/1 rewards, shuffled str uids",
        "objective": FLAT_OBJ,
        "backend": backend.name,
    }
    threads = None
    try:
        if backend.name.startswith("torch"):
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
        xd, xf = backend.convert(dense), backend.convert(flat)
        _warm_up(backend)

        def flat_call() -> Any:
            return backend.sync(group_advantages(xf, ids, FLAT_OBJ))

        def dense_call() -> Any:
            return backend.sync(rankgrad.advantages(xd, FLAT_OBJ))

        budget = dict(warmup=3, min_repeats=20, budget_s=cfg.budget_s)
        # interleaved twice, the smaller median of each kept: the three numbers come from one stretch
        times: dict[str, list[float]] = {"flat": [], "dense": [], "fact": []}
        for _ in range(2):
            times["flat"].append(time_call(flat_call, **budget).median_ms)
            times["dense"].append(time_call(dense_call, **budget).median_ms)
            times["fact"].append(time_call(lambda: factorise_dict(ids), **budget).median_ms)
        flat_ms, dense_ms, fact_ms = (min(times[k]) for k in ("flat", "dense", "fact"))
        ratio = flat_ms / (dense_ms + fact_ms)
        row.update(
            status="ok",
            ms=flat_ms,
            dense_ms=dense_ms,
            factorise_ms=fact_ms,
            ratio=ratio,
            threads=1 if threads is not None else None,
            **_check(_f64_output(backend, lambda y: group_advantages(y, ids, FLAT_OBJ),
                                 flat.astype(np.float64)), ref, "naive f64"),
        )
        row["targets"] = _targets((f"<= {FLAT_TARGET:g}x", ratio <= FLAT_TARGET))
    except Exception as exc:
        return _error_row(row, exc, backend)
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
    return row


def run_flat_uids(cfg: Config, backends: tuple[str, ...], log: Callable[[str], None]) -> list[dict]:
    """Case 6: ``group_advantages`` on flat rewards with shuffled string uids vs the dense ``[P, N]`` call
    plus one plain dict factorisation of the uids (ratio = flat / (dense + factorisation))."""
    dense, flat, ids, ref = _flat_uids_layout(cfg)
    rows = []
    for name in backends:
        log(f"  flat uids {name}")
        rows.append(_flat_uids_row(make_backend(name), dense, flat, ids, ref, cfg))
    return rows
