"""``rankgrad advantages IN OUT``: add an advantage column to a rollout file."""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import rankgrad
from rankgrad.cli import _io
from rankgrad.cli._common import (
    EXIT_DATA,
    EXIT_OK,
    CliError,
    estimator_name,
    fmt_count,
    fmt_noise,
    fmt_seconds,
    noise_arg,
    objective_arg,
    positive_int,
    progress_enabled,
    require,
    require_folder,
)

HELP = "add a per-rollout advantage column to a JSONL / CSV / Parquet file of rollouts"

DESCRIPTION = """\
Read rollouts (one row per sampled completion, with a group key such as the prompt id and a scalar
reward), compute per-rollout advantages for the objective within each group with
rankgrad.advantages, and write the same rows, unchanged and in the same order, plus an advantage
column. The file is streamed twice (pass 1 keeps only group codes and rewards in memory).

Formats come from the extensions (.jsonl/.ndjson, .csv, .tsv, each optionally .gz; .parquet/.pq),
or --format / --output-format. IN and OUT may differ in format. CSV cells are kept as the exact
strings they were; JSONL rows keep their exact bytes (the key is spliced in before the closing brace).

Bad data is never written: every bad row is reported on stderr as FILE:LINE: message (1-based
physical line numbers, blank lines counted, the CSV header is line 1; Parquet: 0-based row index),
then the command exits 1 and OUT is not created (an existing OUT is left untouched). Bad rows are:
malformed JSON / CSV rows, a missing or empty group key, a non-numeric, missing, null, NaN or
infinite reward, and groups with fewer than K + 1 rows. Rewards may be numbers or true/false.

The gradient these advantages are unbiased for, per group g of N_g rollouts:
  (K / N_g) * sum_i a_i * grad log p(y_i)      (estimator ordergrad; see `rankgrad estimators`)."""

EPILOG = """\
examples:
  rankgrad advantages rollouts.jsonl scored.jsonl --objective max@4 --group-key prompt_id
  rankgrad advantages rollouts.parquet scored.parquet --objective cvar:0.25@8 --reward-key score
  rankgrad advantages runs.csv runs.parquet --objective pass@4 --noise 0.05,0.2
  rankgrad advantages runs.csv out.csv --objective mean --noise unknown,0.2
  rankgrad advantages in.jsonl.gz out.jsonl.gz --objective max@8 --unscorable zero --small-groups zero
  rankgrad advantages in.jsonl out.jsonl --objective mean --estimator rloo --advantage-key adv_rloo

exit status: 0 written; 1 bad data (nothing written); 2 bad arguments."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("advantages", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="rollout file (.jsonl, .csv, .tsv, .parquet; text may be .gz)")
    p.add_argument("output", metavar="OUT", help="where to write; replaced atomically, only on success")
    p.add_argument("--objective", "-O", required=True, metavar="SPEC",
                   help="objective preset with its K, e.g. max@4, pass@8, cvar:0.25@8, median@5 "
                        "(see `rankgrad objectives`)")
    p.add_argument("--k", type=positive_int, help="K, for an objective given without @K (must agree with @K)")
    p.add_argument("--group-key", default="prompt_id", metavar="KEY",
                   help="column that identifies a group (the prompt; verl's uid) (default: prompt_id)")
    p.add_argument("--reward-key", default="reward", metavar="KEY", help="reward column (default: reward)")
    p.add_argument("--advantage-key", default="advantage", metavar="KEY",
                   help="name of the new column (default: advantage)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the advantage column if the input already has one (else an error)")
    p.add_argument("--estimator", default="ordergrad", metavar="NAME",
                   help="advantage estimator (default: ordergrad; see `rankgrad estimators`)")
    p.add_argument("--eps", type=float, default=1e-6, help="std offset of --estimator grpo (default: 1e-6)")
    p.add_argument("--noise", type=noise_arg, metavar="RHO0,RHO1",
                   help="0/1 rewards from a verifier with false-positive rate RHO0 and false-negative rate "
                        "RHO1: advantages for the objective of the true labels (rankgrad.noisy); "
                        "'unknown,RHO1': the forward correction of the mean (needs only RHO1)")
    p.add_argument("--unscorable", choices=("error", "zero"), default="error",
                   help="rows whose reward is missing, null, empty, NaN or infinite: 'error' (default) "
                        "reports them; 'zero' gives them advantage 0 and leaves them out of their group "
                        "(the group's N shrinks accordingly)")
    p.add_argument("--small-groups", choices=("error", "zero"), default="error",
                   help="groups with fewer than K + 1 scorable rows: 'error' (default) reports them; "
                        "'zero' gives all their rows advantage 0 (no gradient from that prompt)")
    p.add_argument("--format", choices=("auto", *_io.FORMATS), default="auto",
                   help="format of IN (default: from its extension)")
    p.add_argument("--output-format", choices=("auto", *_io.FORMATS), default="auto",
                   help="format of OUT (default: from its extension)")
    p.add_argument("--max-errors", type=int, default=100, metavar="N",
                   help="list at most N bad rows (all are counted; 0 = list all) (default: 100)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary line")
    p.set_defaults(func=run)


def _check_combination(obj: rankgrad.Objective, estimator: str, args: argparse.Namespace) -> None:
    """Fail fast (before reading a large file) on objective/estimator/noise combinations the library
    rejects, by asking it about one small 0/1 group."""
    probe = (np.arange(obj.k + 1) % 2).astype(np.float64)
    try:
        rankgrad.advantages(probe, obj, estimator=estimator, eps=args.eps, noise=args.noise)
    except ValueError as err:
        raise CliError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    obj = objective_arg(args.objective, args.k)
    est = estimator_name(args.estimator)
    _check_combination(obj, est, args)
    src = _io.file_spec(args.input, args.format, "IN")
    out = _io.file_spec(args.output, args.output_format, "OUT")
    if "parquet" in (src.fmt, out.fmt):
        require("pyarrow.parquet", "parquet", "reading or writing Parquet")
    if not os.path.isfile(src.path):
        raise CliError(f"IN {src.path!r}: no such file.")
    require_folder(out.path, "OUT")
    progress = progress_enabled(args.quiet)

    scan = _io.scan(src, args.group_key, args.reward_key, args.advantage_key, overwrite=args.overwrite,
                    want_columns=src.fmt != out.fmt, want_kinds=src.fmt == "jsonl" and out.fmt == "parquet",
                    max_errors=args.max_errors, progress=progress)
    if scan.n_rows == 0:
        raise CliError(f"{src.path}: no rows.", EXIT_DATA)
    need = max(obj.k + 1, 2)
    valid, problems, notes = _validate(scan, obj, est, args, need)
    if problems or sum(scan.counts.values()):
        _io.report_problems(scan, problems, max_errors=args.max_errors, command="advantages",
                            written=f" to {out.path}")
        return EXIT_DATA

    adv = np.zeros(scan.n_rows)
    if valid.any():
        try:
            adv[valid] = _compute(scan.rewards[valid], scan.codes[valid], obj, est, args)
        except ValueError as err:  # the library refused the data: report, write nothing
            raise CliError(f"{src.path}: {err}", EXIT_DATA) from None
    _io.write(scan, out, adv, args.advantage_key, overwrite=args.overwrite, progress=progress)

    if not args.quiet:
        sizes = np.bincount(scan.codes, minlength=len(scan.labels))
        noise = f", noise {fmt_noise(args.noise)}" if args.noise else ""
        extra = "".join(f"; {n}" for n in notes)
        print(
            f"rankgrad advantages: {fmt_count(scan.n_rows)} rows, {fmt_count(len(sizes))} groups "
            f"(size {sizes.min()}-{sizes.max()}, mean {sizes.mean():.1f}), {obj.name}, {est}{noise}{extra} "
            f"-> {out.path} in {fmt_seconds(time.perf_counter() - t0)}",
            file=sys.stderr,
        )
    return EXIT_OK


def _validate(scan: _io.Scan, obj: rankgrad.Objective, est: str, args: argparse.Namespace,
              need: int) -> tuple[np.ndarray, list[tuple[int, str]], list[str]]:
    """Which rows get a computed advantage; every problem as (location, message); notes for the summary."""
    problems: list[tuple[int, str]] = []
    notes: list[str] = []
    has_group = scan.codes >= 0
    unscorable = has_group & np.isin(scan.status, _io.UNSCORABLE)
    if unscorable.any():
        if args.unscorable == "error":
            for i in np.flatnonzero(unscorable):
                st = int(scan.status[i])
                scan.counts[_io.STATUS_TEXT[st]] += 1
                problems.append((int(scan.locs[i]), _status_message(st, args.reward_key)))
        else:
            notes.append(f"{fmt_count(int(unscorable.sum()))} unscorable rows -> advantage 0")
    scorable = has_group & (scan.status == _io.OK)
    if args.noise is not None or est == "chen_passk":
        nonbinary = scorable & (scan.rewards != 0) & (scan.rewards != 1)
        why = "--noise" if args.noise is not None else "--estimator chen_passk"
        for i in np.flatnonzero(nonbinary):
            scan.counts["non-binary reward"] += 1
            problems.append((int(scan.locs[i]),
                             f"reward {scan.rewards[i]:g} is not 0 or 1 (needed by {why})"))
    g = len(scan.labels)
    sizes = np.bincount(scan.codes[scorable], minlength=g)
    small = np.flatnonzero(sizes < need)
    valid = scorable & (sizes[np.maximum(scan.codes, 0)] >= need)
    if small.size:
        if args.small_groups == "error":
            _small_group_problems(scan, obj, small, sizes, need, args.group_key, problems)
        else:
            notes.append(f"{fmt_count(small.size)} groups with < {need} scorable rows -> advantage 0")
    return valid, problems, notes


def _status_message(status: int, rk: str) -> str:
    return f"{_io.reward_problem(status, rk)}; see --reward-key, or --unscorable zero to give such rows " \
        "advantage 0"


def _small_group_problems(scan: _io.Scan, obj: rankgrad.Objective, small: np.ndarray, sizes: np.ndarray,
                          need: int, group_key: str, problems: list[tuple[int, str]]) -> None:
    rows = np.flatnonzero(np.isin(scan.codes, small))
    order = rows[np.argsort(scan.codes[rows], kind="stable")]
    cuts = np.flatnonzero(np.diff(scan.codes[order])) + 1
    unit = "lines" if scan.spec.is_text else "rows"
    for members in np.split(order, cuts):
        code = int(scan.codes[members[0]])
        locs = scan.locs[members]
        shown = ", ".join(str(x) for x in locs[:10]) + (", ..." if locs.size > 10 else "")
        scan.counts["group too small"] += 1
        problems.append((int(locs[0]), f"group {scan.labels[code]!r} has {sizes[code]} scorable row(s) of "
                                       f"{locs.size} ({unit} {shown}); {obj.name} needs at least {need} "
                                       "per group (K + 1)"))
    if np.median(sizes) < need:
        problems.append((-1, f"hint: most groups are too small for {obj.name} (median "
                                                 f"size {np.median(sizes):g} over {len(sizes)} groups); is "
                                                 f"--group-key {group_key!r} the prompt id?"))


def _compute(rewards: np.ndarray, codes: np.ndarray, obj: rankgrad.Objective, est: str,
             args: argparse.Namespace) -> np.ndarray:
    """rankgrad.advantages over flat rewards + group codes. Groups of very different sizes are handled
    one size at a time so that the padded [groups, max size] layout stays close to the row count."""
    sizes = np.bincount(codes)
    sizes = sizes[sizes > 0]
    kw = {"estimator": est, "eps": args.eps, "noise": args.noise}
    if sizes.size * sizes.max() <= 2 * rewards.size + 4096:
        return np.asarray(rankgrad.advantages(rewards, obj, group_ids=codes, **kw))
    row_size = np.bincount(codes)[codes]
    out = np.empty_like(rewards)
    for s in np.unique(row_size):
        sel = row_size == s
        out[sel] = rankgrad.advantages(rewards[sel], obj, group_ids=codes[sel], **kw)
    return out
