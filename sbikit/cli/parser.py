r"""The argument parser of the ``sbikit`` command: one sub-command per step."""

from __future__ import annotations

import argparse

from .. import __version__
from . import check, demo, info, sample, simulate, train

DESCRIPTION = """\
Simulation-based inference with normalizing flows: simulate (theta, x) pairs into HDF5,
train a neural posterior estimator, sample its posterior for an observation, and check its
calibration on held-out simulations."""

EPILOG = """\
a first run:  sbikit demo
exit status:  0 success, 1 error, 2 usage error, 3 overconfident posterior (check),
              130 interrupted
'sbikit COMMAND --help' describes each command."""

COMMANDS = [
    ("simulate", "simulate (theta, x) pairs into an HDF5 file", simulate.configure_simulate,
     simulate.simulate_command),
    ("merge", "join shard files into one file", simulate.configure_merge,
     simulate.merge_command),
    ("train", "train a neural posterior estimator on a file", train.configure,
     train.train_command),
    ("sample", "sample the posterior of a run for an observation", sample.configure,
     sample.sample_command),
    ("check", "check the calibration of a run's posterior on test pairs", check.configure,
     check.check_command),
    ("info", "describe a simulation file or a run directory", info.configure_info,
     info.info_command),
    ("tasks", "list the benchmark tasks", None, info.tasks_command),
    ("demo", "run the whole workflow on a benchmark task", demo.configure, demo.demo_command),
]  # fmt: skip


def add_common(parser: argparse.ArgumentParser, default: object) -> None:
    r"""Adds ``--quiet`` and ``--debug`` (accepted before and after the command)."""

    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="no progress bars or notes"
    )
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show the traceback of errors"
    )


def build_parser() -> argparse.ArgumentParser:
    r"""Returns the argument parser of the ``sbikit`` command.

    Example:
        >>> args = build_parser().parse_args(["train", "data.h5", "-o", "run", "--epochs", "5"])
        >>> args.data, args.output, args.epochs, args.quiet
        ('data.h5', 'run', 5, False)
    """

    parser = argparse.ArgumentParser(
        prog="sbikit",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sbikit {__version__}")
    add_common(parser, False)
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, summary, configure, command in COMMANDS:
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"sbikit {name}: {summary}.",
            epilog=check.EPILOG if name == "check" else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if configure is not None:
            configure(sub)
        add_common(sub, argparse.SUPPRESS)
        sub.set_defaults(command=command)
    return parser
