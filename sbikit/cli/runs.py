r"""Run directories: what ``sbikit train`` writes and the other commands read.

A run directory holds the estimator saved by :func:`sbikit.save` (``config.json`` and
``weights.pt``, so that ``sbikit.load(run)`` works on it), the training checkpoint
``checkpoint.pt``, and ``run.json``: the simulator and prior as the command line names them
and the training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from torch.distributions import Distribution

import sbikit
from sbikit.inference import NPE

from .errors import CommandError
from .specs import Source, source

RUN, CONFIG, CHECKPOINT = "run.json", "config.json", "checkpoint.pt"
FORMAT, VERSION = "sbikit-run", 1


@dataclass
class Run:
    r"""A trained posterior and what the command line knows of its training."""

    path: Path
    posterior: NPE
    described: dict = field(default_factory=dict)

    @property
    def source(self) -> Source | None:
        r"""The simulator and prior of the training data, if the run records them."""

        if not self.described.get("simulator"):
            return None
        return source(self.described["simulator"], self.described.get("prior"))

    def load_prior(self) -> Distribution:
        r"""The prior of the training data, or a :class:`CommandError`."""

        if self.source is None:
            raise CommandError(f"{self.path} does not record its prior (it has no {RUN}).")
        return self.source.load_prior()


def write_run(path: Path, described: dict) -> None:
    r"""Writes ``run.json`` into a run directory."""

    text = json.dumps({"format": FORMAT, "format_version": VERSION, **described}, indent=2)
    (path / RUN).write_text(text + "\n")


def check_run_directory(path: str | Path) -> Path:
    r"""Returns ``path`` if it is a run directory, or raises a :class:`CommandError`."""

    path = Path(path)
    if not path.exists():
        raise CommandError(f"the run directory {str(path)!r} does not exist.")
    if not path.is_dir() or not (path / CONFIG).is_file():
        raise CommandError(
            f"{str(path)!r} is not a run directory: it has no {CONFIG}. Train one with "
            f"'sbikit train DATA.h5 -o {path}'."
        )
    return path


def load_run(path: str | Path) -> Run:
    r"""Loads the posterior of a run directory (on the CPU) and its ``run.json``."""

    path = check_run_directory(path)
    posterior = sbikit.load(path)
    described = {}
    if (path / RUN).is_file():
        try:
            described = json.loads((path / RUN).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CommandError(f"cannot read {path / RUN}: {error}") from None
    return Run(path, posterior, described)
