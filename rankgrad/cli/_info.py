"""``rankgrad objectives`` and ``rankgrad estimators``: what the strings mean, from the library itself."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

import rankgrad
from rankgrad.cli._common import EXIT_OK, CliError, positive_int
from rankgrad.objectives import PRESETS

EPILOG_OBJ = """\
examples:
  rankgrad objectives            # every form, with its top-first weights at K = 4
  rankgrad objectives --k 8
  rankgrad objectives --format json

Weights are top-first: weights[0] multiplies the largest of the K rewards. Presets combine across K:
--objective "0.5*mean + 0.5*max@8" is one objective at K = 8 (gradient scale K/N with that K)."""

EPILOG_EST = """\
examples:
  rankgrad estimators
  rankgrad estimators --n 16 --k 4 --format json

'scale' is the factor c(N, K) in the unbiased gradient c * sum_i a_i grad log p(x_i), evaluated at
--n and --k (for biased estimators: none)."""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("objectives", help="list the objective presets with their rank weights",
                       description="List every objective preset form, its meaning, and its rank weights "
                                   "(top-first) at one K.",
                       epilog=EPILOG_OBJ, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=positive_int, default=4, help="K used to show the weights (default: 4)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run_objectives)

    p = sub.add_parser("estimators", help="list the advantage estimators and their claims",
                       description="List rankgrad.ESTIMATORS: unbiasedness, centring, gradient scale, "
                                   "objectives, one-line summary.",
                       epilog=EPILOG_EST, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=positive_int, default=8, help="group size for the scale (default: 8)")
    p.add_argument("--k", type=positive_int, default=4, help="K for the scale (default: 4)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run_estimators)


def _weights(spec: str, k: int) -> list[float] | str:
    try:
        weights = rankgrad.parse(spec).weights
    except ValueError as err:
        return f"(not defined at K = {k}: {str(err).splitlines()[0]})"
    return "(no rank weights: fractional K)" if weights is None else weights.tolist()


def run_objectives(args: argparse.Namespace) -> int:
    k = args.k
    rows: list[dict[str, Any]] = []  # one JSON object per preset
    for p in PRESETS.values():
        example = p.example_at(k)
        rows.append({"form": p.form, "aliases": list(p.aliases), "meaning": p.help, "example": example,
                     "weights_top_first": _weights(example, k)})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    width = max(len(r["form"]) for r in rows)
    print(f"objective presets (K = {k} in the weights; weights top-first, [0] = largest of K):")
    for r in rows:
        w = r["weights_top_first"]
        ws = w if isinstance(w, str) else np.array2string(np.asarray(w), precision=3, suppress_small=True,
                                                          max_line_width=10_000)
        alias = f" (alias {', '.join(r['aliases'])})" if r["aliases"] else ""
        print(f"  {r['form']:<{width}}  {r['meaning']}{alias}")
        print(f"  {'':<{width}}    {r['example']}: {ws}")
    print("Mixtures: terms c*preset joined by + and -, e.g. \"0.5*mean + 0.5*max@8\" (K = the largest K).")
    print("Custom: rankgrad.Objective.from_weights([...]) (top-first) in Python.")
    return EXIT_OK


def run_estimators(args: argparse.Namespace) -> int:
    n, k = args.n, args.k
    if n <= k:
        raise CliError(f"--n must exceed --k (N >= K + 1), got N = {n}, K = {k}.")
    rows = []
    for name, info in rankgrad.ESTIMATORS.items():
        scale = None if info.gradient_scale is None else float(info.gradient_scale(n, k))
        rows.append({"name": name, "unbiased": info.unbiased, "centred": info.centred, "scale": scale,
                     "objectives": info.objectives, "summary": info.summary})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    head = f"scale@N={n},K={k}"
    print(f"{'estimator':<11} {'unbiased':<8} {'centred':<7} {head:>16}  objectives / summary")
    for r in rows:
        shown = "-" if r["scale"] is None else f"{r['scale']:.4g}"
        print(f"{r['name']:<11} {'yes' if r['unbiased'] else 'no':<8} {'yes' if r['centred'] else 'no':<7} "
              f"{shown:>16}  [{r['objectives']}]")
        print(f"{'':<46}{r['summary']}")
    sys.stdout.flush()
    return EXIT_OK
