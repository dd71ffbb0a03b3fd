r"""Simulators and priors named on the command line: a task of the ``simulators`` package
(``two_moons``) or an object of the user's own module (``mymodule:simulate``).

A module is imported with the current directory first on ``sys.path``, so that
``mymodule:simulate`` finds ``./mymodule.py``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from torch.distributions import Distribution

import simulators

from .errors import CommandError


@dataclass
class Source:
    r"""A simulator and its prior, and how the command line names them.

    Attributes:
        simulator: ``"two_moons"`` (a task) or ``"module:function"``.
        prior: ``"module:name"``, or None for the task's own prior.
    """

    simulator: str
    prior: str | None = None

    @property
    def task(self) -> simulators.Task | None:
        r"""The task, if the simulator is one."""

        return None if ":" in self.simulator else get_task(self.simulator)

    def load_prior(self) -> Distribution:
        r"""The prior distribution, imported or built by the task."""

        if self.prior is not None:
            return import_prior(self.prior)
        return self.task.prior

    def load_simulator(self) -> Callable:
        r"""The simulator, a task's ``simulate`` or the user's function."""

        task = self.task
        return task.simulate if task is not None else import_object(self.simulator, "simulator")

    def describe(self) -> dict:
        r"""The JSON description: ``{"simulator": ..., "prior": ...}``."""

        return {"simulator": self.simulator, "prior": self.prior}

    def prior_text(self) -> str:
        r"""How the prior is named, for messages."""

        return self.prior if self.prior is not None else f"the prior of task {self.simulator}"


def source(simulator: str, prior: str | None = None) -> Source:
    r"""The source named by a ``TASK`` or ``module:function`` and an optional
    ``module:name`` prior (default: the task's prior, or ``module:prior``).

    Example:
        >>> source("two_moons")
        Source(simulator='two_moons', prior=None)
        >>> source("mymodule:simulate")
        Source(simulator='mymodule:simulate', prior='mymodule:prior')
    """

    if ":" in simulator:
        module, _, name = simulator.partition(":")
        if not module or not name:
            raise CommandError(
                f"expected a simulator as TASK or MODULE:FUNCTION, but received {simulator!r}."
            )
        return Source(simulator, prior or f"{module}:prior")
    get_task(simulator)
    return Source(simulator, prior)


def get_task(name: str) -> simulators.Task:
    r"""The task called ``name``, or a :class:`CommandError` that lists the tasks."""

    if name not in simulators.names():
        raise CommandError(
            f"unknown task {name!r}; the tasks are {', '.join(simulators.names())} (see "
            f"'sbikit tasks'), or give your simulator as MODULE:FUNCTION."
        )
    return simulators.get(name)


def import_object(spec: str, what: str) -> object:
    r"""The object ``name`` of the module ``module`` for ``spec = "module:name"``, imported
    with the current directory first on ``sys.path``."""

    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise CommandError(f"expected the {what} as MODULE:NAME, but received {spec!r}.")
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    importlib.invalidate_caches()  # a module written since the last import
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            raise CommandError(
                f"cannot import the {what} {spec!r}: there is no module {error.name!r} in the "
                f"current directory ({here}) or on the Python path."
            ) from error
        raise CommandError(f"importing module {module_name!r} failed: {error}") from error
    except Exception as error:
        raise CommandError(
            f"importing module {module_name!r} failed: {type(error).__name__}: {error}"
        ) from error
    if not hasattr(module, name):
        raise CommandError(
            f"cannot find the {what} {spec!r}: module {module_name!r} "
            f"({getattr(module, '__file__', '?')}) has no attribute {name!r}."
        )
    return getattr(module, name)


def import_prior(spec: str) -> Distribution:
    r"""The prior ``module:name``: a torch Distribution, or a callable without arguments
    that returns one."""

    prior = import_object(spec, "prior")
    if callable(prior) and not isinstance(prior, Distribution):
        try:
            prior = prior()
        except TypeError as error:
            raise CommandError(
                f"the prior {spec!r} is a callable; it should take no arguments and return a "
                f"torch Distribution, but calling it failed: {error}"
            ) from error
    if not isinstance(prior, Distribution):
        raise CommandError(
            f"the prior {spec!r} should be a torch Distribution (or a function without "
            f"arguments that returns one), but it is a {type(prior).__name__}."
        )
    return prior


RECORDED = {"simulator": "cli_simulator", "prior": "cli_prior"}
r"""The attributes of a simulation file that name its simulator and prior as the command
line does (the file's ``simulator`` attribute holds the simulator's qualified name)."""


def recorded_source(held: dict, prior: str | None = None) -> Source:
    r"""The source of a simulation file, from what :func:`sbikit.data.info` returns: the
    attributes the ``simulate`` command records, else the file's ``simulator`` attribute (a
    task name, or the qualified name of a module-level function). ``prior`` overrides the
    recorded prior.

    Example:
        >>> recorded_source({"simulator": "two_moons"})
        Source(simulator='two_moons', prior=None)
        >>> recorded_source({"simulator": "mymodule.simulate"})
        Source(simulator='mymodule:simulate', prior='mymodule:prior')
    """

    simulator = held.get(RECORDED["simulator"])
    if simulator is None:
        name = str(held.get("simulator"))
        module, _, function = name.rpartition(".")
        if name in simulators.names():
            simulator = name
        elif module and function:
            simulator = f"{module}:{function}"
        else:
            raise CommandError(
                f"cannot tell which simulator wrote {held.get('path')!r} (its simulator "
                f"attribute is {name!r}). Pass the prior with --prior MODULE:NAME."
            )
    return source(simulator, prior or held.get(RECORDED["prior"]))
