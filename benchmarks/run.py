"""Run the rankgrad benchmarks and write ``results.json`` and ``results.md``.

    cd /work/main && .venv/bin/python -m benchmarks.run [--quick] [--out benchmarks/results]

Sections: (1) many small groups on numpy / torch / jax.jit / torch.compile, (2) one huge group
(N = 10^5, K = 10^3, cvar and max; N = 10^6, K = 10^4 max unless ``--quick``), (3) ragged flat input
with group ids vs the padded + mask layout, (4) cold vs warm calls, (5) one group of 20,000 beside
20,000 groups of 4 in one flat batch (memory must stay O(B)). Every row is checked in float64
against the dense naive reference in ``benchmarks/naive.py``. Targets are printed, never asserted.
``--quick`` trims repeats, skips N = 10^6 and compiles torch only once (< 60 s); the full run takes a
few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.backends import cuda_available
from benchmarks.cases import (
    CHECK_RTOL,
    FLAT_N,
    FLAT_P,
    FLAT_TARGET,
    MIXED_TARGET_MB,
    Config,
    run_cache,
    run_flat_uids,
    run_huge_group,
    run_mixed,
    run_ragged,
    run_small_groups,
)
from benchmarks.machine import describe_machine
from benchmarks.report import SECTIONS, markdown_table, write_results
from benchmarks.timing import caches_cleared_so_far, rss_method

__all__ = ["main", "run_all", "method_notes"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results"

Runner = Callable[[Config, tuple[str, ...], Callable[[str], None]], list[dict]]
_GPU = ("torch.cuda",) if cuda_available() else ()  # the GPU rows appear where torch sees a GPU

PLAN: dict[str, tuple[Runner, tuple[str, ...]]] = {
    "small_groups": (run_small_groups, ("numpy", "torch", "jax", "torch.compile", *_GPU)),
    "huge_group": (run_huge_group, ("numpy", "torch", "jax", *_GPU)),
    "ragged": (run_ragged, ("numpy", "torch", *_GPU)),
    "cache": (run_cache, ("numpy", "torch", "jax (eager)")),
    "mixed": (run_mixed, ("numpy", "torch", *_GPU)),
    "flat_uids": (run_flat_uids, ("numpy", "torch")),
}


def method_notes(cfg: Config, cleared: list[str]) -> list[str]:
    """How every number in the report was measured."""
    return [
        "Rewards: standard normal, float32 for every timing; objective max@K unless stated.",
        f"Times: median wall time of repeated calls after warm-up (about {cfg.budget_s:g} s of repeats "
        "per number, at least 5 calls, 3 for the huge group); jax outputs are `block_until_ready`-ed; "
        "torch CPU ops are synchronous.",
        "Sort baselines: numpy `np.argsort(x, axis=-1, kind=\"stable\")`; torch and torch.compile "
        "`torch.sort(x, dim=-1)` (values+indices, eager); jax `jax.jit(argsort + take_along_axis)`. "
        "ratio = rankgrad time / sort time. For numpy rows the sort column also gives, in parentheses, "
        "`np.argsort` with its default (unstable, SIMD) kind: rankgrad is free to sort unstably (it "
        "fixes ties afterwards), which is how a numpy ratio can fall below 1.",
        "jax rows time `jax.jit(lambda y: rankgrad.advantages(y, obj))`; torch.compile rows "
        "`torch.compile(lambda y: rankgrad.advantages(y, obj))`. Their 'compile/cold' column is trace + "
        "compile + first call (caches cleared first); for eager backends it is one call right after "
        f"clearing the caches (median of {cfg.cold_repeats} such calls; fewer for the huge group). "
        "Before any cold number the backend runs once on a tiny unrelated input (and, for compiled "
        "backends, compiles a trivial function), so one-time library start-up is not counted.",
        "Caches cleared for every cold number: " + (", ".join(cleared) or "none found") + ".",
        "Peak memory: numpy = tracemalloc peak during one cold call (table build included) above the "
        "traced size before it; torch / jax eager = " + rss_method() + ", during one cold call; "
        "jax.jit = the compiled executable's XLA `memory_analysis()` temp + output buffers (argument "
        "excluded); torch.compile = RSS as for torch, on a warm call. MB = 10^6 bytes.",
        f"Check: the same rewards in float64 through the same backend/wrapper, max |a − a_naive| "
        f"against the dense naive reference (benchmarks/naive.py, float64, extended-precision binomials), "
        f"ok when <= {CHECK_RTOL:g} · max(1, max |a_naive|). Every case fits the naive reference (it forms "
        "only the columns of the dense N×K table where the weights are nonzero), so no row falls back to "
        "comparing against numpy rankgrad. 'f32 err' = the float32 output against the same reference.",
        "Ragged: group sizes uniform in 2..64 (the last group cut to fit B = 65,536), ids contiguous "
        "per group (the verl/TRL `index` convention); the padded call gets the same groups as [G, 64] "
        "rewards + bool mask, built beforehand (not timed).",
        "Targets (printed, not asserted): torch CPU <= 3x sort; numpy <= 10x sort and <= 0.75 ms at "
        "G=1024 N=16; huge group (N = 10^5) prep+call <= 2 s and <= 200 MB (eager backends); ragged "
        "flat <= 2x padded; jax.jit / torch.compile: no recompilation on new reward values; mixed sizes "
        f"<= {MIXED_TARGET_MB} MB (padding every group to the largest would take the 'padded layout MB' "
        "column).",
        f"Flat uids: {FLAT_P} prompts × {FLAT_N} rollouts of 0/1 rewards (float32), the flat batch shuffled "
        "with string uids in an object array (verl's `uid`); torch with 1 thread. 'flat' = "
        "`rankgrad.integrations.group_advantages(rewards, uids, obj)`; 'dense' = `rankgrad.advantages` on "
        "the same rewards as [P, N]; 'factorise' = one plain dict pass over the uids "
        "(`benchmarks.cases.factorise_dict`). The three are timed in one run, interleaved twice (smaller "
        f"median kept); target flat <= {FLAT_TARGET:g}x (dense + factorise).",
        "Recompiles (compiled rows): new compilations triggered by 3 further calls on fresh float32 "
        "rewards of the same shape (jax: the jitted function's executable cache size; torch.compile: "
        "dynamo's unique-graph count).",
    ]


def run_all(cfg: Config, sections: tuple[str, ...], log: Callable[[str], None]) -> dict[str, Any]:
    """Run the chosen sections; returns the results (without the machine description)."""
    out: dict[str, list[dict]] = {}
    for key in sections:
        runner, backends = PLAN[key]
        log(f"[{key}]")
        out[key] = runner(cfg, backends, log)
        title, columns = SECTIONS[key]
        log(f"\n{title}\n{markdown_table(out[key], columns)}\n")
    return {"sections": out}


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, no N = 10^6 case (< 60 s)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default {DEFAULT_OUT}, or its quick/ subfolder with --quick)",
    )
    p.add_argument("--only", nargs="+", choices=tuple(PLAN), default=tuple(PLAN), help="sections to run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    cfg = Config.make(args.quick)
    out_dir = args.out or (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    command = shlex.join(["python", "-m", "benchmarks.run", *argv])
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, flush=True)

    results = run_all(cfg, tuple(args.only), log)
    cleared = caches_cleared_so_far()
    results.update(
        quick=cfg.quick,
        elapsed_s=time.perf_counter() - start,
        notes=method_notes(cfg, cleared),
        machine=describe_machine(command),
    )
    js, md = write_results(results, out_dir)
    log(f"wrote {js} and {md} ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
