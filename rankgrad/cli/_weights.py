"""``rankgrad weights``: what an objective weights, and the advantages it gives a group."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

import numpy as np

import rankgrad
from rankgrad.cli._common import (
    EXIT_DATA,
    EXIT_OK,
    N_MAX,
    CliError,
    estimator_name,
    objective_arg,
    objective_k,
    positive_int,
    require,
)
from rankgrad.cli._files import STDIO, Transaction

HELP = "show an objective's rank weights and the advantages it gives a group (table, JSON or plot)"

DESCRIPTION = """\
Two views of an objective J_K = E[sum_j w_j * (j-th largest of K rewards)]:

  1. its K rank weights w, TOP-FIRST (rank 1 = the largest of the K draws);
  2. the advantages it gives a group of N distinct, equally spaced rewards 1, ..., 0 listed
     top-first (rank 1 = the best sample of the group), with rankgrad.advantages, and for ordergrad
     its two parts: the include-one value q_i and the leave-one-out value v_i (a_i = q_i - v_i).

Advantages are linear in the rewards, so for other reward values the curve changes shape; ranks
alone matter only for rank-based estimators (gopo). The objective's K comes from its @K suffix or
--k (they must agree when both are given)."""

EPILOG = """\
examples:
  rankgrad weights --objective max@8                       # table on stdout
  rankgrad weights --objective cvar:0.2 --k 16 --n 64 -o cvar.png
  rankgrad weights --objective median@5 --n 12 --format json
  rankgrad weights --objective mean --n 8 --estimator grpo --format json -o grpo.json

--format auto: from -o's extension (.png/.pdf/.svg plot, .json JSON, else text); text to stdout
without -o (or with -o -). Plots need matplotlib: pip install 'rankgrad[cli]'.

-o FILE is checked first (its folder must exist; a directory, FIFO or device is refused; a symbolic
link or read-only file only with --force), written to a temporary file next to it and renamed at the
end, only on success. N is at most 100000. A non-finite number is never written."""

_PLOT_EXT = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", "-O", required=True, metavar="SPEC",
                   help="objective preset, e.g. max@4, cvar:0.2 (with --k), median@5")
    p.add_argument("--k", type=positive_int, help="K, for an objective given without @K")
    p.add_argument("--n", type=positive_int,
                   help="group size N for the advantages, N > K (default: max(2K, K + 4))")
    p.add_argument("--estimator", default="ordergrad", metavar="NAME",
                   help="advantage estimator (default: ordergrad)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout (a plot needs it)")
    p.add_argument("--format", choices=("auto", "png", "json", "text"), default="auto",
                   help="output kind (default: auto, see below); png means any matplotlib image format")
    p.add_argument("--force", action="store_true",
                   help="replace -o FILE even if it is a symbolic link (the link itself is replaced) or "
                        "read-only")
    p.set_defaults(func=run)


def compute(obj: rankgrad.Objective, n: int, estimator: str) -> dict[str, Any]:
    """The numbers behind every output format (all per-rank lists top-first).

    Raises:
      ValueError: a fractional-K objective (it has no rank weights).
    """
    if obj.weights is None:
        raise ValueError(f"--objective: {obj.name!r} has fractional K; the rank weights need an integer K.")
    rewards = np.arange(n - 1, -1, -1) / (n - 1)  # 1, ..., 0 top-first: rank 1 is the best sample
    info = rankgrad.ESTIMATORS[estimator]
    adv = rankgrad.advantages(rewards, obj, estimator=estimator)
    out: dict[str, Any] = {
        "objective": obj.name,
        "k": int(obj.k),
        "n": n,
        "order": "top-first (index 0 = rank 1 = the largest)",
        "weights": obj.weights.tolist(),
        "estimator": estimator,
        "rewards": rewards.tolist(),
        "advantage_by_rank": adv.tolist(),
        "include_one": rankgrad.include_one(rewards, obj).tolist(),
        "leave_one_out": rankgrad.leave_one_out(rewards, obj).tolist(),
        "value": float(rankgrad.value(rewards, obj)),
        "gradient_scale": None if info.gradient_scale is None else float(info.gradient_scale(n, int(obj.k))),
        "unbiased": info.unbiased,
    }
    return out


def run(args: argparse.Namespace) -> int:
    k = objective_k(args.objective, args.k)
    if args.n is not None and args.n > N_MAX:
        raise CliError(f"--n: at most {N_MAX} (a table or plot of more ranks shows nothing more), got "
                       f"{args.n}.")
    if k >= N_MAX:
        raise CliError(f"--objective: K = {k} needs groups of N > K, but N is at most {N_MAX}.")
    n = args.n if args.n is not None else min(max(2 * k, k + 4), N_MAX)
    if n <= k:
        raise CliError(f"--n: advantages need a group larger than K (N >= K + 1 = {k + 1}), got N = {n}.")
    obj = objective_arg(args.objective, args.k)
    est = estimator_name(args.estimator)
    fmt = args.format
    ext = os.path.splitext(args.output or "")[1].lower()
    if fmt == "auto":
        fmt = "png" if ext in _PLOT_EXT else "json" if ext == ".json" else "text"
    if fmt == "png" and not args.output:
        raise CliError("--format png: give the image file with -o/--output (e.g. -o weights.png).")
    with Transaction(args.force) as tx:
        out = tx.output(args.output, "-o", stdout_ok=fmt != "png") if args.output else None
        tx.begin()
        try:
            data = compute(obj, n, est)
        except (ValueError, OverflowError) as err:
            raise CliError(str(err)) from None
        _require_finite(data)
        if fmt == "png":
            assert out is not None
            _plot(data, out.tmp, ext[1:] if ext in _PLOT_EXT else "png")
        else:
            text = json.dumps(data, indent=2, allow_nan=False) + "\n" if fmt == "json" else _table(data)
            if out is None:
                sys.stdout.write(text)
            else:
                with open(out.tmp, "w", encoding="utf-8") as f:
                    f.write(text)
        tx.commit()
    if fmt == "png" or (args.output and args.output != STDIO):
        print(f"rankgrad weights: wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def _require_finite(d: dict[str, Any]) -> None:
    """Never write a non-finite number: fail naming the first value that is not finite."""
    for key, value in d.items():
        values = value if isinstance(value, list) else [value]
        for i, v in enumerate(values):
            if isinstance(v, float) and not math.isfinite(v):
                at = f"{key}[{i}]" if isinstance(value, list) else key
                raise CliError(f"the library returned {at} = {v!r} for {d['objective']} at N = {d['n']}, "
                               "not a finite number; nothing was written.", EXIT_DATA)


def _table(d: dict[str, Any]) -> str:
    lines = [f"objective {d['objective']}: K = {d['k']}, rank weights top-first (rank 1 = largest of K)",
             "rank  weight"]
    lines += [f"{j + 1:>4}  {w:.6g}" for j, w in enumerate(d["weights"])]
    scale = d["gradient_scale"]
    # q and v are the two parts of ordergrad's advantage; other estimators are shown alone
    parts_head = f"  {'include-one q':>13}  {'leave-one-out v':>15}" if d["estimator"] == "ordergrad" else ""
    grad = ("biased: no unbiased scale" if scale is None
            else f"gradient = {scale:.6g} * sum_i a_i grad log p_i")
    lines += ["", f"group of N = {d['n']} equally spaced rewards 1..0, top-first; value V = "
                  f"{d['value']:.6g}; estimator {d['estimator']} ({grad})",
              f"{'rank':>4}  {'reward':>8}  {'advantage':>11}" + parts_head]
    for j in range(d["n"]):
        parts = f"  {d['include_one'][j]:>13.6f}  {d['leave_one_out'][j]:>15.6f}" if parts_head else ""
        lines.append(f"{j + 1:>4}  {d['rewards'][j]:>8.4f}  {d['advantage_by_rank'][j]:>11.6f}{parts}")
    return "\n".join(lines) + "\n"


def _plot(d: dict[str, Any], path: str, image_format: str) -> None:
    mpl = require("matplotlib", "cli", "rankgrad weights plots")
    mpl.use("Agg")
    plt = require("matplotlib.pyplot", "cli", "rankgrad weights plots")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    k, n = d["k"], d["n"]
    ax1.bar(np.arange(1, k + 1), d["weights"], color="tab:blue")
    ax1.axhline(0, color="k", lw=0.6)
    ax1.set_xlabel("rank among the K draws (1 = largest)")
    ax1.set_ylabel("weight")
    ax1.set_title(f"{d['objective']}: rank weights (K = {k})")
    ranks = np.arange(1, n + 1)
    ax2.plot(ranks, d["advantage_by_rank"], "o-", ms=3, color="tab:red",
             label=f"advantage ({d['estimator']})")
    if d["estimator"] == "ordergrad":
        ax2.plot(ranks, d["include_one"], "--", color="tab:green", label="include-one q")
        ax2.plot(ranks, d["leave_one_out"], ":", color="tab:gray", label="leave-one-out v")
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_xlabel(f"rank in the group (1 = best of N = {n}; rewards 1..0 equally spaced)")
    ax2.set_ylabel("per-sample value")
    ax2.set_title(f"advantages, N = {n}")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format=image_format)  # path is a temporary name without the extension
    plt.close(fig)
