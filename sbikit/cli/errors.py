r"""Errors of the ``sbikit`` command: one readable line on stderr and an exit code."""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Callable

EXPECTED = (ValueError, TypeError, OSError, RuntimeError)
r"""The exceptions by which sbikit reports a problem with the user's input or files; their
messages say what is wrong, so they are printed alone. Others print their type too."""


class CommandError(Exception):
    r"""A problem the command found in its arguments or files, with its exit code.

    Arguments:
        message: What is wrong and how to fix it, in one line.
        code: The exit code of the command.

    Example:
        >>> error = CommandError("run/ is not a run directory", code=1)
        >>> str(error), error.code
        ('run/ is not a run directory', 1)
    """

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def one_line(error: BaseException) -> str:
    r"""The message of an error on one line, with its type when it is not an expected one.

    Example:
        >>> one_line(ValueError("expected a file,\n  but received a directory"))
        'expected a file, but received a directory'
        >>> one_line(KeyError("theta"))
        "KeyError: 'theta' (run with --debug for the traceback)"
    """

    message = " ".join(str(error).split())
    if isinstance(error, (CommandError, *EXPECTED)):
        return message or type(error).__name__
    return f"{type(error).__name__}: {message} (run with --debug for the traceback)"


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    r"""Prints a warning as one line, ``sbikit: warning: ...``, on stderr."""

    print(f"sbikit: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    r"""Runs ``command(args)`` and returns its exit code; an error prints
    ``sbikit: error: <message>`` on stderr (after its traceback with ``--debug``) and
    returns 1 (or the :class:`CommandError`'s code), an interruption returns 130.

    Example:
        >>> import argparse
        >>> def command(args):
        ...     raise FileNotFoundError("data.h5 does not exist")
        >>> run(command, argparse.Namespace(debug=False))
        1
    """

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            return command(args)
        except KeyboardInterrupt:
            if args.debug:
                traceback.print_exc()
            print("sbikit: interrupted", file=sys.stderr)
            return 130
        except Exception as error:
            if args.debug:
                traceback.print_exc()
            print(f"sbikit: error: {one_line(error)}", file=sys.stderr)
            return error.code if isinstance(error, CommandError) else 1
