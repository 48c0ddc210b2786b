"""``rankgrad advantages IN OUT``: add an advantage column to a rollout file."""

from __future__ import annotations

import argparse
import dataclasses
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
    estimator_names,
    fmt_count,
    fmt_noise,
    fmt_seconds,
    noise_arg,
    nonneg_float,
    nonneg_int,
    objective_arg,
    objective_k,
    objective_name,
    positive_int,
    progress_enabled,
    require,
)
from rankgrad.cli._files import STDIO, Transaction

# Up to this K the objective is built and its combination with the estimator probed before IN is read
# (cheap); above it, only after the scan and only if some group has K + 1 rows (so the cost is bounded
# by the data): a K larger than every group fails fast with the usual small-group report.
_EAGER_K = 4096

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
malformed JSON / CSV rows, a missing, empty, null or NaN group key, a non-numeric, missing, null, NaN,
infinite or out-of-range reward, and groups with fewer than K + 1 rows. Rewards may be numbers or
true/false; in CSV a number is plain ASCII decimal (no spaces, no '1_000'). Group keys keep their JSON
type: "1", 1 and true are three groups, 1 and 1.0 one; CSV keys are strings. If any computed advantage
is not finite (rewards near the float64 limit), the command fails naming the first such row.

Files: OUT is checked before IN is read (its folder must exist; a directory, FIFO or device is refused;
a symbolic link or read-only file only with --force) and may not be IN. It is written to a temporary
file next to it and renamed at the end, only on success; on an error, Ctrl-C or SIGTERM/SIGHUP the
temporary file is removed. If IN changes between the two passes, nothing is written. IN '-' reads
stdin (give --format); OUT '-' writes stdout (format of --output-format, else that of IN).

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
    p.add_argument("input", metavar="IN",
                   help="rollout file (.jsonl, .csv, .tsv, .parquet; text may be .gz; '-' = stdin)")
    p.add_argument("output", metavar="OUT",
                   help="where to write ('-' = stdout); replaced atomically, only on success")
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
                   help=f"advantage estimator: {estimator_names()} (default: ordergrad; see "
                        "`rankgrad estimators`)")
    p.add_argument("--eps", type=nonneg_float, default=1e-6,
                   help="std offset of --estimator grpo, a finite number >= 0 (default: 1e-6)")
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
    p.add_argument("--max-errors", type=nonneg_int, default=100, metavar="N",
                   help="list at most N bad rows (all are counted; 0 = list all) (default: 100)")
    p.add_argument("--force", action="store_true",
                   help="replace OUT even if it is a symbolic link (the link itself is replaced) or "
                        "read-only")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary line")
    p.set_defaults(func=run)


def _check_combination(obj: rankgrad.Objective, estimator: str, args: argparse.Namespace) -> None:
    """Fail fast (before reading a large file) on objective/estimator/noise combinations the library
    rejects, by asking it about one small 0/1 group."""
    probe = (np.arange(obj.k + 1) % 2).astype(np.float64)
    try:
        rankgrad.advantages(probe, obj, estimator=estimator, eps=args.eps, noise=args.noise)
    except (ValueError, OverflowError) as err:
        raise CliError(str(err)) from None


def _out_spec(args: argparse.Namespace, src_fmt: str) -> _io.FileSpec:
    if args.output == STDIO:  # stdout: --output-format, else IN's format (uncompressed)
        fmt = args.output_format if args.output_format != "auto" else src_fmt
        return _io.FileSpec(STDIO, fmt, False, name="<stdout>")
    return _io.file_spec(args.output, args.output_format, "OUT")


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    k = objective_k(args.objective, args.k)
    est = estimator_name(args.estimator)
    obj = None
    if k <= _EAGER_K:
        obj = objective_arg(args.objective, args.k)
        _check_combination(obj, est, args)
    if args.input == STDIO and args.format == "auto":
        raise CliError("IN '-' (stdin): give its format with --format (jsonl, csv, tsv or parquet).")
    src_fmt = args.format if args.input == STDIO else _io.file_spec(args.input, args.format, "IN").fmt
    out = _out_spec(args, src_fmt)
    if "parquet" in (src_fmt, out.fmt):
        require("pyarrow.parquet", "parquet", "reading or writing Parquet")
    progress = progress_enabled(args.quiet)

    with Transaction(args.force) as tx:
        target = tx.output(args.output, "OUT", stdout_ok=True)
        tx.protect(args.input, "IN")
        tx.begin()
        src = _io.open_input(args.input, args.format, tx)
        scan = _io.scan(src, args.group_key, args.reward_key, args.advantage_key, overwrite=args.overwrite,
                        want_columns=src.fmt != out.fmt,
                        want_kinds=src.fmt == "jsonl" and out.fmt == "parquet",
                        max_errors=args.max_errors, progress=progress,
                        named_fields=out.fmt not in ("csv", "tsv") and src.fmt != out.fmt)
        if scan.n_rows == 0:
            raise CliError(f"{src.display}: no rows.", EXIT_DATA)
        need = max(k + 1, 2)
        name = obj.name if obj is not None else objective_name(args.objective, args.k)
        valid, problems, notes = _validate(scan, name, est, args, need)
        if problems or sum(scan.counts.values()):
            _io.report_problems(scan, problems, max_errors=args.max_errors, command="advantages",
                                written=f" to {out.display}", group_key=args.group_key)
            return EXIT_DATA

        adv = np.zeros(scan.n_rows)
        if valid.any():
            if obj is None:  # a large K: some group has K + 1 rows, so building it is bounded by the data
                obj = objective_arg(args.objective, args.k)
                _check_combination(obj, est, args)
            try:
                adv[valid] = _compute(scan.rewards[valid], scan.codes[valid], obj, est, args)
            except (ValueError, OverflowError) as err:  # the library refused the data: report, write nothing
                raise CliError(f"{src.display}: {err}", EXIT_DATA) from None
        _require_finite(scan, adv)
        _io.write(scan, dataclasses.replace(out, path=target.tmp), adv, args.advantage_key,
                  overwrite=args.overwrite, progress=progress)
        tx.commit()

    if not args.quiet:
        sizes = np.bincount(scan.codes[scan.codes >= 0], minlength=len(scan.labels))
        noise = f", noise {fmt_noise(args.noise)}" if args.noise else ""
        extra = "".join(f"; {n}" for n in notes)
        print(
            f"rankgrad advantages: {fmt_count(scan.n_rows)} rows, {fmt_count(len(sizes))} groups "
            f"(size {sizes.min()}-{sizes.max()}, mean {sizes.mean():.1f}), {name}, {est}{noise}{extra} "
            f"-> {out.display} in {fmt_seconds(time.perf_counter() - t0)}",
            file=sys.stderr,
        )
    return EXIT_OK


def _require_finite(scan: _io.Scan, adv: np.ndarray) -> None:
    """Never write a non-finite advantage: fail naming the first row that has one."""
    bad = np.flatnonzero(~np.isfinite(adv))
    if bad.size:
        i = int(bad[0])
        top = float(np.nanmax(np.abs(scan.rewards), initial=0.0))
        why = (f" Rewards this large (|reward| up to {top:.3g}) overflow float64: rescale them."
               if top > 1e150 else "")
        raise CliError(f"{scan.spec.loc(int(scan.locs[i]))}: the advantage computed for this row is "
                       f"{float(adv[i])!r}, not a finite number ({bad.size} row(s) like it); nothing was "
                       f"written.{why}", EXIT_DATA)


def _validate(scan: _io.Scan, name: str, est: str, args: argparse.Namespace,
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
    valid = scorable & (sizes[np.maximum(scan.codes, 0)] >= need) if g else np.zeros(scan.n_rows, bool)
    if small.size:
        if args.small_groups == "error":
            _small_group_problems(scan, name, small, sizes, need, args.group_key, problems)
        else:
            notes.append(f"{fmt_count(small.size)} groups with < {need} scorable rows -> advantage 0")
    return valid, problems, notes


def _status_message(status: int, rk: str) -> str:
    return f"{_io.reward_problem(status, rk)}; see --reward-key, or --unscorable zero to give such rows " \
        "advantage 0"


def _small_group_problems(scan: _io.Scan, name: str, small: np.ndarray, sizes: np.ndarray,
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
        label = _io.key_text(scan.labels[code])
        problems.append((int(locs[0]), f"group {label} has {sizes[code]} scorable row(s) of "
                                       f"{locs.size} ({unit} {shown}); {name} needs at least {need} "
                                       "per group (K + 1)"))
    if np.median(sizes) < need:
        problems.append((-1, f"hint: most groups are too small for {name} (median "
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
