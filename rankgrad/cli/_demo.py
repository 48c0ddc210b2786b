"""``rankgrad demo``: the reduced experiments of ``rankgrad.experiments.demo``."""

from __future__ import annotations

import argparse
import importlib
import os

from rankgrad.cli._common import EXIT_OK, CliError, positive_int, seed_arg

HELP = "run the demo experiments (risk-sensitive gridworld, pass@K language model)"

EPILOG = """\
examples:
  rankgrad demo --quick                 # seconds: reduced sizes, used by the smoke tests
  rankgrad demo --out results/ --seed 1
  rankgrad demo --threads 1             # on a loaded machine: no thread contention

Each experiment writes a PNG and a JSON into --out. Needs the experiments extra:
pip install 'rankgrad[experiments]'."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP[0].upper() + HELP[1:] + ".", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", metavar="DIR", help="folder for the PNGs and JSONs (default: the demo's own)")
    p.add_argument("--quick", action="store_true", help="a reduced run (seconds)")
    p.add_argument("--seed", type=seed_arg, help="base random seed, 0 <= S < 2**64")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=positive_int, metavar="T",
                   help="torch CPU threads (default: torch's choice; 1 on a loaded machine)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CliError(f"--out {args.out!r}: exists and is not a folder; give a folder for the results.")
    try:
        demo = importlib.import_module("rankgrad.experiments.demo")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("rankgrad"):
            raise CliError("rankgrad.experiments.demo is not part of this installation.") from None
        raise CliError(f"the demo needs {err.name}, which is not installed; install it with: "
                       "pip install 'rankgrad[experiments]'") from None
    argv: list[str] = []
    if args.out is not None:
        argv += ["--out", args.out]
    if args.quick:
        argv.append("--quick")
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    if args.no_progress:
        argv.append("--no-progress")
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    rc = demo.main(argv)
    return EXIT_OK if rc is None else int(rc) if isinstance(rc, int) else EXIT_OK
