r"""One block of simulations: its random streams, its faults and its valid pairs.

Block :math:`k` draws ``block_size`` parameters from the prior and simulates them with
random streams that derive only from ``(seed, k)``, through
``numpy.random.SeedSequence([seed, k])``: the same block gives the same pairs in any
process, on any worker, in any order.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from .format import ERRORS_KEPT

GLOBAL_RNG = threading.Lock()
r"""Held while a block uses torch's and numpy's global generators, so that blocks run in
threads of one process (a threaded executor) never interleave their draws."""


@dataclass(frozen=True)
class Job:
    r"""What every block of a run needs; sent to the executor with each block index."""

    prior: Distribution
    simulator: Callable
    seed: int
    block_size: int
    x_shape: tuple[int, ...]
    vectorized: bool
    takes_generator: bool


@dataclass
class Block:
    r"""The valid pairs of block ``index`` and the count of its dropped draws."""

    index: int
    theta: np.ndarray  # (n, D), float32
    x: np.ndarray  # (n, *x_shape), float32
    dropped_exception: int = 0
    dropped_nonfinite: int = 0
    dropped_shape: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return self.dropped_exception + self.dropped_nonfinite + self.dropped_shape


def takes_generator(simulator: Callable) -> bool:
    r"""Whether ``simulator`` accepts a ``generator`` keyword argument."""

    try:
        parameters = inspect.signature(simulator).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in parameters


def block_seeds(seed: int, k: int) -> tuple[int, int]:
    r"""The seeds of the prior's and of the simulator's streams of block ``k``."""

    prior_seed, simulator_seed = np.random.SeedSequence([seed, k]).generate_state(2, np.uint64)
    return int(prior_seed), int(simulator_seed)


@contextmanager
def seeded_globals(seed: int) -> Iterator[None]:
    r"""Seeds torch's and numpy's global generators, and restores them on exit."""

    with GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        state = np.random.get_state()  # noqa: NPY002 (seeded for simulators that use it)
        torch.default_generator.manual_seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002
        try:
            yield
        finally:
            np.random.set_state(state)  # noqa: NPY002


@contextmanager
def randomness(job: Job, seed: int) -> Iterator[torch.Generator | None]:
    r"""A seeded generator for a simulator that takes one, or else seeded global ones."""

    if job.takes_generator:
        yield torch.Generator().manual_seed(seed)
    else:
        with seeded_globals(seed):
            yield None


class WrongShape(ValueError):
    r"""The simulator returned an output of the wrong shape."""


def call(job: Job, theta: Tensor, generator: torch.Generator | None, shape: tuple | None) -> Tensor:
    r"""Runs the simulator and returns its output as a float32 tensor of shape ``shape``
    (any shape if None), or raises :class:`WrongShape`."""

    out = job.simulator(theta, generator=generator) if job.takes_generator else job.simulator(theta)
    out = torch.as_tensor(out).detach()
    if shape is not None and tuple(out.shape) != shape:
        raise WrongShape(f"the simulator returned shape {tuple(out.shape)}, expected {shape}")
    return out.to(torch.float32)


def run_block(job: Job, k: int) -> Block:
    r"""Simulates block ``k`` and returns its valid pairs.

    A vectorised simulator runs on the whole block; if it raises (or returns the wrong
    shape), the block is simulated again row by row to isolate the rows that fail. A row is
    dropped if the simulator raises on it, returns NaN or inf, or returns the wrong shape.
    """

    prior_seed, simulator_seed = block_seeds(job.seed, k)
    with seeded_globals(prior_seed):
        theta = job.prior.sample((job.block_size,)).detach()
    block = Block(k, np.empty(0), np.empty(0))
    x = None
    if job.vectorized:
        try:
            with randomness(job, simulator_seed) as generator:
                x = call(job, theta, generator, (job.block_size, *job.x_shape))
        except Exception:
            x = None
    if x is None:
        x = run_rows(job, theta, simulator_seed, block)
    block.theta, block.x = theta.to(torch.float32).numpy(), x.numpy()
    finite = np.isfinite(block.x).reshape(len(block.x), -1).all(axis=1)
    if not finite.all():
        block.theta, block.x = block.theta[finite], block.x[finite]
    block.dropped_nonfinite = len(finite) - len(block.x) - block.dropped_exception
    block.dropped_nonfinite -= block.dropped_shape
    return block


def run_rows(job: Job, theta: Tensor, seed: int, block: Block) -> Tensor:
    r"""Simulates the rows of ``theta`` one at a time with one stream, counting the rows
    that raise or have the wrong shape in ``block``; their rows of the result are NaN."""

    x = torch.full((len(theta), *job.x_shape), torch.nan, dtype=torch.float32)
    shape = (1, *job.x_shape) if job.vectorized else job.x_shape
    with randomness(job, seed) as generator:
        for i in range(len(theta)):
            row = theta[i : i + 1] if job.vectorized else theta[i]
            try:
                x[i] = call(job, row, generator, shape).reshape(job.x_shape)
            except WrongShape:
                block.dropped_shape += 1
            except Exception as error:
                record(block, i, error)
    return x


def record(block: Block, row: int, error: Exception) -> None:
    r"""Counts an exception of ``row`` in ``block`` and keeps its message."""

    block.dropped_exception += 1
    if len(block.errors) < ERRORS_KEPT:
        block.errors.append(f"block {block.index}, row {row}: {type(error).__name__}: {error}")
