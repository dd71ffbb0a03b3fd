r"""Runs the ``sbikit`` command: ``python -m sbikit``."""

from .cli import main

raise SystemExit(main())
