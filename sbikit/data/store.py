r"""Simulating (θ, x) pairs into an HDF5 file: parallel, resumable and fault-tolerant."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from itertools import count
from pathlib import Path

import h5py
import numpy as np
from torch.distributions import Distribution
from tqdm import tqdm

from .._validation import check_count, describe
from .blocks import Block, Job, run_block, takes_generator
from .checks import check_continuation, check_shard, probe, resolve
from .executors import InProcessExecutor, in_order, local_pool
from .format import (
    COUNTS,
    ERRORS_KEPT,
    FORMAT,
    THETA,
    VERSION,
    X,
    attributes,
    check_directory,
    chunk_rows,
    now,
    open_file,
    versions,
)
from .info import info, summary

FAIL_FAST = 3
r"""A run stops if its first this many blocks hold no valid pair."""


def simulate(
    source: Distribution | object,
    num_simulations: int,
    path: str | Path,
    *,
    simulator: Callable | None = None,
    seed: int = 0,
    block_size: int = 1000,
    workers: int = 1,
    executor: Executor | None = None,
    vectorized: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    shard: int | None = None,
    num_shards: int | None = None,
) -> dict:
    r"""Simulates pairs :math:`(\theta, x)`, :math:`\theta \sim p(\theta)`,
    :math:`x \sim p(x \mid \theta)`, into an HDF5 file until it holds ``num_simulations``.

    Simulation runs in blocks of ``block_size`` draws. The random streams of block
    :math:`k` derive only from ``(seed, k)``, and the valid pairs of the blocks are written
    in block order, so the file is the same whatever the number of workers, the executor
    and the interruptions: it holds the first ``num_simulations`` valid pairs of the
    stream defined by the seed. A block's rows count only once they are written and
    flushed (the attribute ``committed``); running the same call again on an unfinished
    file continues it, and a call with a larger ``num_simulations`` appends to a finished
    one.

    A draw is dropped, counted and never stored if the simulator raises on it, returns
    NaN or inf, or returns the wrong shape. A vectorised simulator that raises on a block is
    run again on that block row by row to isolate the rows that fail. If the first blocks
    of a run hold no valid pair, it stops with a :class:`RuntimeError` and commits nothing.

    Before the run, the simulator is tried on one prior draw (up to 8 if it fails) to learn
    the shape of :math:`x`; this and every check of the arguments and of an existing file
    happen before any block runs and before the file is touched.

    Arguments:
        source: The prior, a torch distribution with event shape ``(D,)``, or a task: an
            object with ``.prior``, ``.simulate(theta, generator=None)`` and ``.name``
            (as in the ``simulators`` package).
        num_simulations: The number of pairs the file holds at the end.
        path: The HDF5 file. Its directory must exist.
        simulator: With a prior, the simulator: ``theta`` with shape ``(N, D)`` to ``x``
            with shape ``(N, *x_shape)`` (or ``(D,)`` to ``x_shape`` with
            ``vectorized=False``), a tensor or an array. If it takes a ``generator``
            argument, it gets a seeded :class:`torch.Generator` and must draw all its
            randomness from it; otherwise torch's and numpy's global generators are seeded
            for each block. Its name is its ``name`` attribute or its qualified name.
        seed: The seed of the stream, an int >= 0.
        block_size: The number of draws per block.
        workers: The number of local worker processes (1 runs in this process); with
            ``executor``, the number of its workers. At most ``2 * workers`` blocks are in
            flight.
        executor: Any :class:`concurrent.futures.Executor` (dask's
            ``client.get_executor()``, Ray's, ``mpi4py.futures.MPIPoolExecutor``), or None
            for a local pool of ``workers`` processes.
        vectorized: Whether the simulator takes a batch of parameters.
        progress: Whether to show a progress bar and a summary at the end.
        overwrite: Whether to replace a file written with other arguments (instead of
            refusing to touch it).
        shard: With ``num_shards``, write shard ``shard`` of ``num_shards``: the blocks
            :math:`k` with :math:`k \bmod` ``num_shards`` ``= shard``. Join shards with
            :func:`sbikit.data.join`.
        num_shards: The number of shards of the campaign.

    Returns:
        What the file holds, as :func:`sbikit.data.info` returns it.

    Example:
        >>> import tempfile
        >>> from sbikit.data import simulate
        >>> from sbikit.distributions import BoxUniform
        >>> prior = BoxUniform(-torch.ones(2), torch.ones(2))
        >>> def simulator(theta, generator=None):
        ...     return theta + 0.1 * torch.randn(theta.shape, generator=generator)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     held = simulate(prior, 500, f"{tmp}/pairs.h5", simulator=simulator, seed=1,
        ...                     block_size=200, progress=False)
        >>> held["rows"], held["theta_shape"], held["x_shape"], held["dropped"]
        (500, (2,), (2,), 0)
    """

    owner = "sbikit.data.simulate"
    prior, simulator, name, x_hint = resolve(source, simulator, owner)
    num_simulations = check_count(num_simulations, "num_simulations", owner)
    seed = check_count(seed, "seed", owner, minimum=0)
    block_size = check_count(block_size, "block_size", owner)
    workers = check_count(workers, "workers", owner)
    shard, num_shards = check_shard(shard, num_shards, owner)
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(
            f"{owner} expects executor to be a concurrent.futures.Executor or None, but "
            f"received {describe(executor)}. For dask, pass client.get_executor()."
        )
    path = check_directory(path, owner)
    job = Job(prior, simulator, seed, block_size, (), vectorized, takes_generator(simulator))
    job = dataclasses.replace(job, x_shape=probe(job, x_hint, owner))
    identity = {
        "simulator": name,
        "prior": repr(prior),
        "vectorized": bool(vectorized),
        "seed": seed,
        "block_size": block_size,
        "shard": shard,
        "num_shards": num_shards,
    }
    theta_shape = tuple(prior.event_shape)
    if path.exists() and not overwrite:
        with open_file(path, owner) as f:
            check_continuation(f, identity, theta_shape, job.x_shape, num_simulations, owner)
        f = h5py.File(path, "r+")
    else:
        f = create(path, identity, theta_shape, job.x_shape)

    own = executor is None and workers > 1
    if executor is None:
        executor = local_pool(workers) if own else InProcessExecutor()
    try:
        with f:
            Writer(f).run(job, num_simulations, executor, 2 * workers, progress)
    finally:
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
    held = info(path, verbose=False)
    if progress:
        print(summary(held), file=sys.stderr)
    return held


def create(
    path: Path, identity: dict, theta_shape: tuple[int, ...], x_shape: tuple[int, ...]
) -> h5py.File:
    r"""Creates an empty simulation file (replacing any file at ``path``)."""

    f = h5py.File(path, "w")
    rows = chunk_rows(x_shape)
    for name, shape in ((THETA, theta_shape), (X, x_shape)):
        f.create_dataset(
            name, (0, *shape), np.float32, maxshape=(None, *shape), chunks=(rows, *shape)
        )
    f.attrs.update(
        {
            "format": FORMAT,
            "format_version": VERSION,
            **identity,
            "chunk_rows": rows,
            "created": now(),
            **versions(),
            "committed": 0,
            "next_block": identity["shard"],
            "next_offset": 0,
            **dict.fromkeys(COUNTS, 0),
        }
    )
    f.flush()
    return f


class Writer:
    r"""Appends the valid pairs of blocks to an open file, one commit per block.

    Continuing a file starts at block ``next_block``, skipping its first ``next_offset``
    valid pairs (already stored); rows beyond ``committed`` are discarded first.
    """

    def __init__(self, f: h5py.File):
        self.f = f
        found = attributes(f)
        self.committed = found["committed"]
        self.start = (found["next_block"], found["next_offset"])
        self.step = found["num_shards"]
        self.counts = {key: found[key] for key in COUNTS}
        self.errors = list(found.get("errors", []))
        for name in (THETA, X):
            f[name].resize(self.committed, axis=0)

    def run(self, job: Job, target: int, executor: Executor, window: int, progress: bool):
        r"""Simulates blocks until the file holds ``target`` pairs."""

        blocks = in_order(
            executor,
            partial(run_block, job),
            count(self.start[0], self.step),
            window,
            lambda pending: self.committed + pending * job.block_size < target,
        )
        held: list[Block] = []
        with tqdm(
            total=target,
            initial=self.committed,
            unit="pair",
            unit_scale=True,
            disable=not progress,
            desc=Path(self.f.filename).name,
        ) as bar:
            for block in blocks:
                held.append(block)
                if all(len(b.theta) == 0 for b in held):
                    if len(held) == FAIL_FAST:
                        raise RuntimeError(failure(held, job.block_size))
                    continue
                for b in held:
                    bar.update(self.commit(b, target))
                held.clear()

    def commit(self, block: Block, target: int) -> int:
        r"""Writes the pairs of ``block`` the file still needs, flushes, then records them
        as committed; returns how many were written."""

        first = block.index == self.start[0]
        skip = self.start[1] if first else 0
        take = min(len(block.theta) - skip, target - self.committed)
        end = self.committed + take
        if take > 0:
            for name, data in ((THETA, block.theta), (X, block.x)):
                self.f[name].resize(end, axis=0)
                self.f[name][self.committed : end] = data[skip : skip + take]
            self.f.flush()
        if skip == 0:  # the first time this block is used: count its draws
            self.count(block)
        finished = skip + take == len(block.theta)
        self.committed = end
        self.f.attrs.update(
            {
                "committed": end,
                "next_block": block.index + self.step if finished else block.index,
                "next_offset": 0 if finished else skip + take,
                **self.counts,
            }
        )
        self.f.flush()
        return take

    def count(self, block: Block) -> None:
        self.counts["simulated"] += len(block.theta) + block.dropped
        for key in COUNTS[1:]:
            self.counts[key] += getattr(block, key)
        if block.errors and len(self.errors) < ERRORS_KEPT:
            self.errors = (self.errors + block.errors)[:ERRORS_KEPT]
            self.f.attrs["errors"] = np.array(self.errors, dtype=h5py.string_dtype())


def failure(blocks: list[Block], block_size: int) -> str:
    r"""The message of a run whose first blocks hold no valid pair."""

    errors = [e for b in blocks for e in b.errors][:ERRORS_KEPT]
    return (
        f"sbikit.data.simulate stopped: the simulator failed on all {len(blocks)} x "
        f"{block_size} draws of the first blocks of this run ("
        f"{sum(b.dropped_exception for b in blocks)} raised, "
        f"{sum(b.dropped_nonfinite for b in blocks)} returned NaN or inf, "
        f"{sum(b.dropped_shape for b in blocks)} had the wrong shape). "
        + (f"First errors: {' | '.join(errors)}. " if errors else "")
        + "Nothing was committed. Fix the simulator and run the same call again."
    )
