"""The ``rankgrad`` command line (``python -m rankgrad.cli``).

Commands: ``advantages`` (add an advantage column to JSONL / CSV / Parquet rollouts), ``weights``
(an objective's rank weights and advantages), ``check`` (Monte-Carlo self-test of every estimator's
unbiasedness claim), ``prompts`` (next epoch's objective-aware prompt sampling probabilities from
scored rollouts), ``objectives``, ``estimators`` and ``demo``. Every command is a thin layer over
the public API; matplotlib, pyarrow, tqdm and torch are imported only by the commands that use them.

Exit status: 0 success, 1 bad data or a failed check, 2 bad arguments, 70 an internal error (a bug:
please report it), 128 + N stopped by signal N (130 for Ctrl-C). Every failure is one message on
stderr naming the file or argument; ``--debug`` (or the environment variable ``RANKGRAD_DEBUG=1``)
adds the traceback of an internal error. Files are written only on success (see
:mod:`rankgrad.cli._files`).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

import rankgrad
from rankgrad.cli import _advantages, _check, _demo, _info, _prompts, _weights
from rankgrad.cli._common import EXIT_DATA, EXIT_INTERNAL, EXIT_USAGE, CliError
from rankgrad.cli._files import Terminated, signals_raise

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
exit status: 0 success; 1 bad data or a failed check; 2 bad arguments; 70 internal error (please
report it, with the output of --debug); 128+N stopped by signal N. Files are written only on success:
outputs are checked before any input is read, written to temporary files next to them and renamed
at the end; an input is never overwritten; '-' is stdin (IN) or stdout (OUT)."""

_DEBUG_HELP = "on an internal error, print the traceback (also: environment variable RANKGRAD_DEBUG=1)"


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
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _advantages.add_parser(sub)
    _weights.add_parser(sub)
    _check.add_parser(sub)
    _prompts.add_parser(sub)
    _info.add_parsers(sub)
    _demo.add_parser(sub)
    for command in sub.choices.values():  # also after the command; SUPPRESS keeps a --debug given before
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
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
    command = f"rankgrad {args.command}"
    debug = bool(getattr(args, "debug", False)) or os.environ.get("RANKGRAD_DEBUG", "") not in ("", "0")
    try:
        with signals_raise():
            return int(args.func(args))
    except CliError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return err.code
    except Terminated as sig:
        print(f"{command}: stopped by {sig.name}; temporary files removed", file=sys.stderr)
        return 128 + sig.signum
    except KeyboardInterrupt:
        print(f"{command}: interrupted; temporary files removed", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rankgrad ... | head`
        sys.stderr.close()
        return 0
    except MemoryError:
        print(f"{command}: error: out of memory; nothing was written. Try a smaller input or objective.",
              file=sys.stderr)
        return EXIT_DATA
    except OSError as err:  # the system refused a read or write (disk full, I/O error, permissions)
        where = f" ({err.filename!r})" if err.filename else ""
        print(f"{command}: error: {err.strerror or err}{where}; nothing was written.", file=sys.stderr)
        return EXIT_DATA
    except Exception as err:  # last line of defence: one line instead of a traceback
        if debug:
            traceback.print_exc()
        first = (str(err).splitlines() or [""])[0][:300]
        print(f"{command}: internal error ({type(err).__name__}: {first}); nothing was written. This is a "
              "bug in rankgrad: please report it with the command line"
              + ("" if debug else " and the output of --debug") + ".", file=sys.stderr)
        return EXIT_INTERNAL
