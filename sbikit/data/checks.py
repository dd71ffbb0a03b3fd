r"""The checks that run before a simulation: the arguments, the simulator and prior, and
an existing file. Each raises an error that says what was expected, what was received and
how to fix it, before any block runs and before the file is touched."""

from __future__ import annotations

from collections.abc import Callable

import h5py
import torch
from torch.distributions import Distribution

from .._validation import check_count, describe
from .blocks import Job, call, seeded_globals
from .format import THETA, X, attributes

PROBE = 8
r"""The number of prior draws on which the simulator is tried before a run starts."""


def resolve(source: object, simulator: Callable | None, owner: str):
    r"""The prior, the simulator, its name and the task's ``x_shape`` (or None), after
    checking the arguments."""

    if isinstance(source, Distribution):
        if not callable(simulator):
            raise TypeError(
                f"{owner} received a prior, and expects simulator to be a callable, but "
                f"received {describe(simulator)}. Pass simulator=f with f(theta) -> x."
            )
        prior = source
        name = getattr(simulator, "name", None) or qualified_name(simulator)
        x_hint = None
    elif isinstance(getattr(source, "prior", None), Distribution) and callable(
        getattr(source, "simulate", None)
    ):
        if simulator is not None:
            raise TypeError(
                f"{owner} received a task, which brings its own simulator, and simulator="
                f"{describe(simulator)}. Pass simulator=None, or the task's prior instead."
            )
        prior, simulator = source.prior, source.simulate
        name = str(getattr(source, "name", type(source).__name__))
        x_hint = getattr(source, "x_shape", None)
    else:
        raise TypeError(
            f"{owner} expects a prior (a torch Distribution) or a task (with .prior and "
            f".simulate), but received {describe(source)}."
        )
    if len(prior.event_shape) != 1 or prior.batch_shape != ():
        raise ValueError(
            f"{owner} expects a prior with event shape (D,) and batch shape (), but received "
            f"event shape {tuple(prior.event_shape)} and batch shape {tuple(prior.batch_shape)}. "
            f"Wrap it with torch.distributions.Independent(prior, n) to move batch dimensions "
            f"into the event, or give a scalar prior parameters of shape (1,)."
        )
    return prior, simulator, name, None if x_hint is None else tuple(x_hint)


def qualified_name(simulator: Callable) -> str:
    r"""The module and qualified name of a function, or of the class of a callable."""

    obj = simulator if hasattr(simulator, "__qualname__") else type(simulator)
    return f"{obj.__module__}.{obj.__qualname__}"


def check_shard(shard: int | None, num_shards: int | None, owner: str) -> tuple[int, int]:
    r"""Returns ``(shard, num_shards)``, ``(0, 1)`` for an unsharded run, or raises."""

    if shard is None and num_shards is None:
        return 0, 1
    if shard is None or num_shards is None:
        raise ValueError(
            f"{owner} expects shard and num_shards together, but received shard={shard} and "
            f"num_shards={num_shards}. Pass both (e.g. shard=0, num_shards=4) or neither."
        )
    num_shards = check_count(num_shards, "num_shards", owner)
    shard = check_count(shard, "shard", owner, minimum=0)
    if shard >= num_shards:
        raise ValueError(
            f"{owner} expects 0 <= shard < num_shards, but received shard={shard} and "
            f"num_shards={num_shards}. Number the shards 0 to {num_shards - 1}."
        )
    return shard, num_shards


def probe(job: Job, x_hint: tuple[int, ...] | None, owner: str) -> tuple[int, ...]:
    r"""Tries the simulator on up to :data:`PROBE` prior draws, one at a time, and returns
    the shape of one observation, or raises a :class:`ValueError`."""

    with seeded_globals(job.seed):
        theta = job.prior.sample((PROBE,)).detach()
    dim = job.prior.event_shape[0]
    errors = []
    for row in theta[:, None] if job.vectorized else theta:
        generator = torch.Generator().manual_seed(job.seed) if job.takes_generator else None
        try:
            x = call(job, row, generator, None)
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
            continue
        if job.vectorized and (x.dim() == 0 or len(x) != 1):
            raise ValueError(
                f"{owner} expects a vectorised simulator to map theta of shape (N, {dim}) to "
                f"x of shape (N, *x_shape), but for theta of shape (1, {dim}) it returned "
                f"shape {tuple(x.shape)}. Pass vectorized=False for a simulator of one "
                f"parameter vector at a time."
            )
        x_shape = tuple(x.shape[1:] if job.vectorized else x.shape)
        if x_hint is not None and x_shape != x_hint:
            raise ValueError(
                f"{owner} expects observations of shape {x_hint} (the task's x_shape), but "
                f"the simulator returned shape {x_shape}."
            )
        if torch.isfinite(x).all():
            return x_shape
        errors.append("non-finite output")
    raise ValueError(
        f"{owner} tried the simulator on {PROBE} parameter vectors drawn from the prior (shape "
        f"({dim},)), and every one failed; the first: {errors[0]}. Check that the prior's "
        f"dimension matches the simulator's and that it simulates "
        f"{'batches (N, D)' if job.vectorized else 'one vector (D,)'} as the vectorized "
        f"argument says."
    )


def check_continuation(
    f: h5py.File,
    identity: dict,
    theta_shape: tuple[int, ...],
    x_shape: tuple[int, ...],
    num_simulations: int,
    owner: str,
) -> None:
    r"""Checks that this run may continue the open file ``f``, or raises."""

    found = attributes(f)
    name = repr(f.filename)
    if found.get("joined"):
        raise ValueError(
            f"{owner} cannot extend {name}: it joins shard files. Extend the shards and join "
            f"them again, or write to another path."
        )
    expected = {**identity, "theta shape": theta_shape, "x shape": x_shape}
    found = {**found, "theta shape": f[THETA].shape[1:], "x shape": f[X].shape[1:]}
    different = [
        f"{key} {found.get(key)!r} (this call: {value!r})"
        for key, value in expected.items()
        if found.get(key) != value
    ]
    if different:
        raise ValueError(
            f"{owner} would continue {name}, but it was written with different arguments: "
            f"{'; '.join(different)}. Pass the same arguments to continue it, another path, "
            f"or overwrite=True to replace it."
        )
    if found["committed"] > num_simulations:
        raise ValueError(
            f"{owner} expects num_simulations >= the {found['committed']} pairs {name} "
            f"already holds, but received {num_simulations}. Pass a larger number to append, "
            f"or overwrite=True to start again."
        )
