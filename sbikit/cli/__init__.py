r"""The ``sbikit`` command (also ``python -m sbikit``).

=============  =================================================================
``simulate``   simulate (θ, x) pairs of a task or of ``module:function`` to HDF5
``merge``      join shard files
``train``      train a neural posterior estimator, saved in a run directory
``sample``     draw the posterior of a run for an observation
``check``      check the calibration of a run's posterior (exit code 3: overconfident)
``info``       describe a simulation file, a samples file or a run directory
``tasks``      list the benchmark tasks
``demo``       the whole workflow on a benchmark task
=============  =================================================================

Errors print one line, ``sbikit: error: ...``, and exit with code 1 (``--debug`` prints the
traceback); usage errors exit with code 2. The command lets its process keep the memory it
frees (:func:`sbikit.utils.keep_freed_memory`): large batches of draws then reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..utils import keep_freed_memory
from .errors import CommandError, run
from .parser import build_parser

__all__ = ["CommandError", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    r"""Runs the ``sbikit`` command with the arguments ``argv`` (default: ``sys.argv[1:]``)
    and returns its exit code.

    Arguments:
        argv: The arguments, without the program name.

    Returns:
        0 on success, 1 on an error (printed as one line on stderr), 3 when ``check`` finds
        the posterior overconfident, 130 when interrupted. Usage errors raise
        :class:`SystemExit` with code 2, as with any argparse program.

    Example:
        >>> main(["info", "missing.h5"])  # prints "sbikit: error: ..." on stderr
        1
    """

    keep_freed_memory()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return run(args.command, args)
