r"""What the commands share: argument types, messages and file checks.

Results go to stdout; progress bars and notes go to stderr, and ``--quiet`` silences them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import CommandError


def at_least(minimum: int) -> Callable[[str], int]:
    r"""An argument type: an int at least ``minimum``.

    Example:
        >>> at_least(1)("10")
        10
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


positive = at_least(1)
natural = at_least(0)


def note(args: argparse.Namespace, message: str) -> None:
    r"""Prints a note on stderr, unless ``--quiet``."""

    if not args.quiet:
        print(message, file=sys.stderr)


def require_file(path: str | Path, what: str) -> Path:
    r"""Returns ``path`` if it is a file, or raises a :class:`CommandError`.

    Example:
        >>> require_file("missing.h5", "data file")
        Traceback (most recent call last):
        ...
        sbikit.cli.errors.CommandError: the data file 'missing.h5' does not exist.
    """

    path = Path(path)
    if not path.exists():
        raise CommandError(f"the {what} {str(path)!r} does not exist.")
    if not path.is_file():
        raise CommandError(f"the {what} {str(path)!r} is not a file.")
    return path


def output_file(path: str | Path, suffixes: tuple[str, ...] | None = None) -> Path:
    r"""Returns the output file ``path`` after creating its directory, or raises a
    :class:`CommandError` if it is a directory or has none of ``suffixes``."""

    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise CommandError(
            f"cannot tell the format of {str(path)!r} from its name: expected a file ending "
            f"in {', '.join(suffixes)}."
        )
    if path.is_dir():
        raise CommandError(f"the output {str(path)!r} is a directory; expected a file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def seconds(value: float) -> str:
    r"""A duration for people.

    Example:
        >>> seconds(4.25), seconds(125.0)
        ('4.2 s', '2 min 5 s')
    """

    if value < 60:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {round(value % 60)} s"
