"""The ``rankgrad`` command line (``python -m rankgrad.cli``).

Commands: ``advantages`` (add an advantage column to JSONL / CSV / Parquet rollouts), ``weights``
(an objective's rank weights and advantages), ``check`` (Monte-Carlo self-test of every estimator's
unbiasedness claim), ``prompts`` (next epoch's objective-aware prompt sampling probabilities from
scored rollouts), ``objectives``, ``estimators`` and ``demo``. Every command is a thin layer over
the public API; matplotlib, pyarrow, tqdm and torch are imported only by the commands that use them.

Exit status: 0 success, 1 bad data or a failed check, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import rankgrad
from rankgrad.cli import _advantages, _check, _demo, _info, _prompts, _weights
from rankgrad.cli._common import EXIT_USAGE, CliError

__all__ = ["main", "build_parser"]

EPILOG = """\
examples:
  rankgrad advantages rollouts.jsonl scored.jsonl --objective max@4 --group-key prompt_id
  rankgrad weights --objective cvar:0.2 --k 16 --n 64 -o weights.png
  rankgrad check --objective max@4 --n 8
  rankgrad prompts rollouts.jsonl probs.csv --objective max@4 --score gradient
  rankgrad objectives
  rankgrad estimators

`rankgrad COMMAND --help` shows each command's options and examples.
exit status: 0 success; 1 bad data or a failed check; 2 bad arguments."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="rankgrad",
        description="Order-statistic policy gradients from the command line: advantages for best-of-K, "
                    "pass@K, CVaR, quantiles and trimmed means.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rankgrad {rankgrad.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _advantages.add_parser(sub)
    _weights.add_parser(sub)
    _check.add_parser(sub)
    _prompts.add_parser(sub)
    _info.add_parsers(sub)
    _demo.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) and usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except CliError as err:
        print(f"rankgrad {args.command}: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(f"rankgrad {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rankgrad ... | head`
        sys.stderr.close()
        return 0
