"""``rankgrad prompts IN [OUT]``: next epoch's prompt sampling probabilities from scored rollouts."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import time
from typing import Any

import numpy as np

import rankgrad
from rankgrad.cli import _io
from rankgrad.cli._common import (
    EXIT_DATA,
    EXIT_OK,
    CliError,
    fmt_count,
    fmt_seconds,
    nonneg_int,
    objective_arg,
    objective_k,
    positive_int,
    progress_enabled,
    require,
    seed_arg,
)
from rankgrad.cli._files import STDIO, Transaction
from rankgrad.sampling import SCORES, PromptSampler, prompt_scores

HELP = "prompt sampling probabilities for the next epoch from a file of scored rollouts"

DESCRIPTION = """\
Read rollouts (one row per sampled completion, with a group key such as the prompt id and a reward
in [0, 1]: a pass/fail outcome or a pass rate), estimate each prompt's pass rate, and give every prompt
a sampling probability that favours the prompts whose rollouts will carry the most gradient for the
objective (rankgrad.sampling.PromptSampler fed the whole file with one update call).

Per prompt, in order of first appearance in IN:
  prompt       the group key as found in IN
  rollouts     its number of rows n
  successes    the sum s of its rewards
  pass_rate    the Beta(A, B)-smoothed estimate (A + s) / (A + B + n)   (--prior A,B)
  score        rankgrad.sampling.prompt_scores(pass_rate, --score, objective, --group-size)
  probability  (1 - U) * score / sum(score) + U / P   (U = --uniform, P = number of prompts;
               uniform over the prompts if every score is 0)

OUT by its extension (or --output-format): .csv / .tsv (a header row, then one row per prompt), .jsonl
(one object per prompt), .json ({"objective", "score", ..., "prompts": [...], "draws": [...]}); '-'
writes it to stdout (CSV unless --output-format says otherwise). Without OUT: a table of the 20 most
probable prompts and a summary on stdout.

Files: OUT and --draws-out are checked before IN is read (folders must exist; a directory, FIFO or
device is refused; a symbolic link or read-only file only with --force); neither may be IN, nor may
they be one file. Both are written to temporary files and renamed at the end together, only on
success; on an error, Ctrl-C or SIGTERM/SIGHUP the temporary files are removed. IN '-' reads stdin
(give --format).

--draw M draws M prompt keys from the probabilities, with replacement (--seed S for a fixed draw).
They go to --draws-out FILE (one key per line, in draw order) and, when OUT is .json, also to its
"draws" list (else []); --draw needs one of the two.

Formats of IN come from the extension (.jsonl/.ndjson, .csv, .tsv, each optionally .gz; .parquet/.pq)
or --format. Bad data is never used: every bad row is reported on stderr as FILE:LINE: message (as in
`rankgrad advantages`; Parquet: 0-based row index), then the command exits 1 and writes nothing. Bad
rows are: malformed JSON / CSV rows, a missing, empty, null or NaN group key, a missing, null,
non-numeric, NaN, infinite or out-of-range reward, and a reward outside [0, 1]. Group keys keep their
JSON type ("1", 1 and true are three prompts; 1 and 1.0 one); CSV keys are strings."""

EPILOG = """\
scores (p = a prompt's pass rate): uniform = 1; variance = p(1-p), right for the mean objective;
nondegenerate = 1 - p^N - (1-p)^N, the chance a group of N (--group-size) is not all-equal;
gradient = |dJ/dp| * p(1-p), the expected gradient scale of the objective, for max@K equal to
K(1-p)^(K-1) * p(1-p): it favours hard-but-reachable prompts. Reweighting prompts changes the prompt
mixture of the objective (hard prompts count more), not the unbiasedness of each prompt's own gradient
estimate; --uniform keeps every prompt reachable and its estimate fresh.

examples:
  rankgrad prompts rollouts.jsonl                                   # top-20 table on stdout
  rankgrad prompts rollouts.jsonl probs.csv --objective pass@8 --score gradient
  rankgrad prompts runs.parquet probs.json --score variance --uniform 0.2 --draw 512 --seed 0
  rankgrad prompts runs.csv probs.tsv --draw 1024 --seed 1 --draws-out next_epoch.txt
  rankgrad prompts runs.jsonl --score nondegenerate --group-size 8 --prior 0.5,0.5

exit status: 0 written; 1 bad data (nothing written); 2 bad arguments."""

_OUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json"}
_COLUMNS = ("prompt", "rollouts", "successes", "pass_rate", "score", "probability")
_TOP = 20  # rows of the stdout table


def prior_arg(text: str) -> tuple[float, float]:
    """``A,B`` → (a, b), the Beta(a, b) smoothing of the pass rates (an argparse ``type=``)."""
    parts = re.split(r"[,\s]+", text.strip())
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A,B (Beta prior pseudo-counts), e.g. 1,1; got {text!r}"
                                         ) from None
    if not (math.isfinite(a) and math.isfinite(b) and a >= 0 and b >= 0):
        raise argparse.ArgumentTypeError(f"expected finite A, B >= 0, got {text!r}")
    return a, b


def share_arg(text: str) -> float:
    """A share in [0, 1] (an argparse ``type=``)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= v <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}")
    return v


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompts", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN",
                   help="rollout file (.jsonl, .csv, .tsv, .parquet; text may be .gz; '-' = stdin)")
    p.add_argument("output", metavar="OUT", nargs="?",
                   help="where to write (.csv, .tsv, .jsonl, .json; '-' = stdout); replaced atomically, only "
                        "on success (default: a table on stdout)")
    p.add_argument("--objective", "-O", metavar="SPEC",
                   help="objective whose gradient the prompts are chosen for, e.g. max@4, pass@8, mean "
                        "(default: max@4, or max@K with --k)")
    p.add_argument("--k", type=positive_int, help="K, for an objective given without @K (must agree with @K)")
    p.add_argument("--score", choices=SCORES, default="gradient",
                   help="what a prompt's probability is proportional to (default: gradient; see below)")
    p.add_argument("--group-size", type=positive_int, default=16, metavar="N",
                   help="rollouts per prompt, for --score nondegenerate (default: 16)")
    p.add_argument("--prior", type=prior_arg, default=(1.0, 1.0), metavar="A,B",
                   help="Beta(A, B) smoothing of the pass rates, (A + s) / (A + B + n); 0,0 = the raw rates "
                        "(default: 1,1)")
    p.add_argument("--uniform", type=share_arg, default=0.1, metavar="SHARE",
                   help="share of the probability spread uniformly over all prompts (default: 0.1)")
    p.add_argument("--draw", type=positive_int, metavar="M",
                   help="also draw M prompt keys from the probabilities, with replacement")
    p.add_argument("--seed", type=seed_arg, metavar="S",
                   help="seed of --draw, 0 <= S < 2**64 (default: fresh randomness)")
    p.add_argument("--draws-out", metavar="FILE",
                   help="write the --draw keys here, one per line (needed unless OUT is .json)")
    p.add_argument("--group-key", default="prompt_id", metavar="KEY",
                   help="column that identifies a prompt (verl's uid) (default: prompt_id)")
    p.add_argument("--reward-key", default="reward", metavar="KEY", help="reward column (default: reward)")
    p.add_argument("--format", choices=("auto", *_io.FORMATS), default="auto",
                   help="format of IN (default: from its extension)")
    p.add_argument("--output-format", choices=("auto", *_OUT_FORMATS.values()), default="auto",
                   help="format of OUT (default: from its extension; csv for '-')")
    p.add_argument("--max-errors", type=nonneg_int, default=100, metavar="N",
                   help="list at most N bad rows (all are counted; 0 = list all) (default: 100)")
    p.add_argument("--force", action="store_true",
                   help="replace OUT / --draws-out even if a symbolic link (the link itself is replaced) or "
                        "read-only")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary line")
    p.set_defaults(func=run)


def _sampler(n: int, obj: rankgrad.Objective, args: argparse.Namespace) -> PromptSampler:
    try:
        return PromptSampler(n, score=args.score, objective=obj, group_size=args.group_size,
                             prior=args.prior, uniform=args.uniform, seed=args.seed)
    except ValueError as err:
        raise CliError(str(err)) from None


def _check_combination(obj: rankgrad.Objective, args: argparse.Namespace) -> None:
    """Fail fast (before reading a large file) on settings the library rejects, on one small prompt."""
    probe = _sampler(1, obj, args)
    try:
        probe.update([0], [0.5])
        probe.probabilities()
    except (ValueError, OverflowError) as err:
        raise CliError(f"--objective {obj.name} with --score {args.score}: {err}") from None


def _out_format(path: str, override: str) -> str:
    if override != "auto":
        return override
    if path == STDIO:
        return "csv"
    ext = os.path.splitext(path)[1].lower()
    if ext not in _OUT_FORMATS:
        raise CliError(f"OUT {path!r}: cannot tell the format from the extension (known: "
                       f"{', '.join(_OUT_FORMATS)}).")
    return _OUT_FORMATS[ext]


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    spec = args.objective if args.objective is not None else "max" if args.k is not None else "max@4"
    objective_k(spec, args.k)  # a bad or huge K is a usage error naming --objective, before any work
    obj = objective_arg(spec, args.k)
    _check_combination(obj, args)
    if args.input == STDIO and args.format == "auto":
        raise CliError("IN '-' (stdin): give its format with --format (jsonl, csv, tsv or parquet).")
    src_fmt = args.format if args.input == STDIO else _io.file_spec(args.input, args.format, "IN").fmt
    out_fmt = _out_format(args.output, args.output_format) if args.output else "text"
    if args.draws_out and args.draw is None:
        raise CliError("--draws-out: give the number of draws with --draw M.")
    if args.draw is not None and not args.draws_out and out_fmt != "json":
        raise CliError("--draw: give --draws-out FILE (one key per line) or a .json OUT for the draws.")
    if src_fmt == "parquet":
        require("pyarrow.parquet", "parquet", "reading Parquet")

    with Transaction(args.force) as tx:
        target = tx.output(args.output, "OUT", stdout_ok=True) if args.output else None
        drawn = tx.output(args.draws_out, "--draws-out") if args.draws_out else None
        tx.protect(args.input, "IN")
        tx.begin()
        src = _io.open_input(args.input, args.format, tx)
        # no advantage column is written, so no key can clash: overwrite=True turns that check off
        scan = _io.scan(src, args.group_key, args.reward_key, "", overwrite=True, want_columns=False,
                        want_kinds=False, max_errors=args.max_errors, progress=progress_enabled(args.quiet))
        if scan.n_rows == 0:
            raise CliError(f"{src.display}: no rows.", EXIT_DATA)
        problems = _validate(scan, args.reward_key)
        if problems or sum(scan.counts.values()):
            _io.report_problems(scan, problems, max_errors=args.max_errors, command="prompts",
                                group_key=args.group_key)
            return EXIT_DATA

        sampler = _sampler(len(scan.labels), obj, args)
        sampler.update(scan.codes, scan.rewards)
        rates = sampler.pass_rates
        table: dict[str, Any] = {
            "prompt": scan.labels,
            "rollouts": sampler.trials.astype(np.int64),
            "successes": sampler.successes,
            "pass_rate": rates,
            "score": prompt_scores(rates, args.score, objective=obj, group_size=args.group_size),
            "probability": sampler.probabilities(),
        }
        _require_finite(scan, table)
        draws = [scan.labels[i] for i in sampler.sample(args.draw)] if args.draw is not None else None

        if target is not None:
            _write(target.tmp, out_fmt, table, draws, obj, args, scan.n_rows)
        if drawn is not None and draws is not None:
            with open(drawn.tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write("".join(_key_text(k) + "\n" for k in draws))
        text = _text(table, obj, args) if target is None else ""
        tx.commit()
    sys.stdout.write(text)  # the table only once every file is in place

    if not args.quiet:
        n = table["rollouts"]
        where = "stdout" if args.output in (None, STDIO) else args.output
        drawn_note = "" if draws is None else f", {fmt_count(args.draw)} draws" + (
            f" -> {args.draws_out}" if args.draws_out else "")
        print(
            f"rankgrad prompts: {fmt_count(scan.n_rows)} rows, {fmt_count(n.size)} prompts "
            f"(rollouts {n.min()}-{n.max()}, mean {n.mean():.1f}), {obj.name}, score {args.score} -> {where}"
            f"{drawn_note} in {fmt_seconds(time.perf_counter() - t0)}",
            file=sys.stderr,
        )
    return EXIT_OK


def _require_finite(scan: _io.Scan, table: dict[str, Any]) -> None:
    """Never write a non-finite number: fail naming the first prompt (and its first row) that has one."""
    for col in _COLUMNS[2:]:
        bad = np.flatnonzero(~np.isfinite(np.asarray(table[col], dtype=np.float64)))
        if bad.size:
            code = int(bad[0])
            first = int(scan.locs[np.flatnonzero(scan.codes == code)[0]])
            raise CliError(f"{scan.spec.loc(first)}: prompt {_io.key_text(scan.labels[code])} got a {col} of "
                           f"{float(table[col][code])!r}, not a finite number; nothing was written.",
                           EXIT_DATA)


def _validate(scan: _io.Scan, rk: str) -> list[tuple[int, str]]:
    """Every row problem beyond what the scan reported, as (location, message)."""
    problems: list[tuple[int, str]] = []
    has_group = scan.codes >= 0  # rows without a group key were reported by the scan
    for i in np.flatnonzero(has_group & np.isin(scan.status, _io.UNSCORABLE)):
        st = int(scan.status[i])
        scan.counts[_io.STATUS_TEXT[st]] += 1
        what = _io.reward_problem(st, rk) + ("; see --reward-key" if st == _io.MISSING else "")
        problems.append((int(scan.locs[i]), what))
    ok = has_group & (scan.status == _io.OK)
    for i in np.flatnonzero(ok & ((scan.rewards < 0) | (scan.rewards > 1))):
        scan.counts["reward outside [0, 1]"] += 1
        problems.append((int(scan.locs[i]), f"reward {rk!r} = {scan.rewards[i]:g} is outside [0, 1] "
                                            "(expected a pass/fail outcome or a pass rate)"))
    return problems


def _key_text(key: Any) -> str:
    """A prompt key as text: strings unchanged, anything else as JSON (1, 2.5, true)."""
    return _io._cell(key)


def _records(table: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"prompt": key, "rollouts": int(table["rollouts"][i]),
             **{c: float(table[c][i]) for c in _COLUMNS[2:]}} for i, key in enumerate(table["prompt"])]


def _write(path: str, fmt: str, table: dict[str, Any], draws: list[Any] | None, obj: rankgrad.Objective,
           args: argparse.Namespace, n_rows: int) -> None:
    """The table (and the draws, in JSON) to ``path``, a temporary file the caller renames on success."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        if fmt in ("csv", "tsv"):
            w = csv.writer(f, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
            w.writerow(_COLUMNS)
            for i, key in enumerate(table["prompt"]):
                w.writerow([_key_text(key), int(table["rollouts"][i]),
                            *(_io._num(table[c][i]) for c in _COLUMNS[2:])])
        elif fmt == "jsonl":
            for rec in _records(table):
                f.write(json.dumps(rec, ensure_ascii=False, allow_nan=False, default=_io._json_default)
                        + "\n")
        else:
            doc = {"objective": obj.name, "score": args.score, "group_size": args.group_size,
                   "prior": list(args.prior), "uniform": args.uniform, "rows": n_rows,
                   "seed": args.seed, "prompts": _records(table), "draws": draws or []}
            f.write(json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False, default=_io._json_default)
                    + "\n")


def _text(table: dict[str, Any], obj: rankgrad.Objective, args: argparse.Namespace) -> str:
    prob, rate = table["probability"], table["pass_rate"]
    n = prob.size
    order = np.argsort(-prob, kind="stable")[:_TOP]  # ties keep the order of first appearance
    keys = [_key_text(table["prompt"][i]) for i in order]
    keys = [k if len(k) <= 40 else k[:37] + "..." for k in keys]
    kw = max(len("prompt"), *(len(k) for k in keys))
    a, b = args.prior
    lines = [f"objective {obj.name}, score {args.score}, prior Beta({a:g},{b:g}), uniform share "
             f"{args.uniform:g}: the {min(n, _TOP)} most probable of {fmt_count(n)} prompts",
             f"{'prompt':<{kw}}  {'rollouts':>8}  {'successes':>9}  {'pass_rate':>9}  {'score':>10}  "
             f"{'probability':>11}"]
    for k, i in zip(keys, order, strict=True):
        lines.append(f"{k:<{kw}}  {table['rollouts'][i]:>8}  {table['successes'][i]:>9.4g}  {rate[i]:>9.4f}  "
                     f"{table['score'][i]:>10.4g}  {prob[i]:>11.6f}")
    if n > _TOP:
        lines.append(f"... and {fmt_count(n - _TOP)} more prompts (give OUT, e.g. probs.csv, for all)")
    succ, n_roll = table["successes"], table["rollouts"]
    low, high = succ == 0, succ == n_roll  # every rollout in IN failed / passed
    lines += ["",
              f"{fmt_count(n)} prompts, {fmt_count(int(table['rollouts'].sum()))} rollouts; uniform sampling "
              f"would give each {1 / n:.6g}",
              f"probability mass on prompts never solved in IN: {prob[low].sum():.1%} "
              f"({fmt_count(int(low.sum()))} prompts); always solved: {prob[high].sum():.1%} "
              f"({fmt_count(int(high.sum()))} prompts)"]
    return "\n".join(lines) + "\n"
