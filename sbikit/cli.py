r"""The ``sbikit`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    r"""Returns the argument parser of the ``sbikit`` command."""

    parser = argparse.ArgumentParser(
        prog="sbikit",
        description="Simulation-based inference with normalizing flows.",
    )
    parser.add_argument("--version", action="version", version=f"sbikit {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    r"""Runs the ``sbikit`` command with the arguments ``argv`` and returns its exit code.

    Example:
        >>> build_parser().prog
        'sbikit'
    """

    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
