r"""Speed of sbikit.data: simulating pairs into HDF5, and shuffled epochs over the file.

It writes ``--pairs`` pairs (θ 10-D from a standard normal, x 100-D, float32) from a trivial
vectorised simulator (x = θ repeated 10 times) with :func:`sbikit.data.simulate`, and times

    (a) simulator   the prior draws and the simulator alone, block by block, in memory;
    (b) blocks      the same blocks as simulate runs them (seeding, fault checks, float32),
                    without the file;
    (c) simulate    the whole write: (b) plus HDF5 writes, flushes and commits;
    (d) stream      a shuffled epoch of :class:`sbikit.data.SimulationDataset` with batch
                    1024 (the file in the page cache: an untimed epoch reads it first);
    (d') fine       the same with 256-row segments, the granularity of lampe's shuffle;
    (e) in memory   the same with ``in_memory=True`` (after a first epoch loads the file);
    (f) floor       a shuffled epoch over arrays already in memory: a permutation and one
                    gather per batch (``np.take``), the least any shuffled loader must do;
    (g) lampe       ``lampe.data.H5Dataset(path, batch_size=1024, shuffle=True)`` on the
                    same file, when lampe is installed (``pip install -e ".[bench]"``).

The epochs (d) to (g) are timed interleaved, the first one alternating, and the figure is the
median over ``--repeats``; each timed epoch consumes every batch (its length is summed).
Writing and reading run in this process, on torch's default threads unless ``--threads``
is given.

This is a benchmark, not a test: nothing is asserted about the timings.

Usage::

    python benchmarks/data.py                  # 1,000,000 pairs (about 440 MB on disk)
    python benchmarks/data.py --quick          # 100,000 pairs, a few seconds
    python benchmarks/data.py --pairs 4000000 --dir /scratch --repeats 5
    python benchmarks/data.py --no-lampe       # sbikit only
    python benchmarks/data.py --threads 1      # on a machine shared with other jobs
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flows import cpu_model  # this folder's flow benchmark: the same machine line

import sbikit
from sbikit.data import SimulationDataset, simulate
from sbikit.data.blocks import Job, run_block
from sbikit.distributions import DiagNormal

try:
    import lampe
    from lampe.data import H5Dataset
except ImportError:  # the optional peer: only the sbikit rows then
    lampe = None

THETA_DIM, X_DIM, BATCH = 10, 100, 1024
LAMPE_CHUNK = 256  # lampe's default chunk_size: the rows it reads and shuffles together


def simulator(theta: torch.Tensor) -> torch.Tensor:
    r"""A trivial vectorised simulator: ``(N, 10)`` to ``(N, 100)``."""

    return theta.repeat(1, X_DIM // THETA_DIM)


# --------------------------------------------------------------------------- machine


def machine_line() -> str:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    lampe_version = getattr(lampe, "__version__", "unknown") if lampe else "not installed"
    return (
        f"machine: {cpu_model()} | {os.cpu_count()} cores (torch threads "
        f"{torch.get_num_threads()}) | load {load} | python {platform.python_version()} | "
        f"torch {torch.__version__} | sbikit {sbikit.__version__} | lampe {lampe_version}"
    )


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def epoch(batches: Iterable) -> int:
    r"""Consumes an epoch and returns the number of pairs."""

    return sum(len(theta) for theta, _ in batches)


def floor_epoch(theta: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> int:
    r"""A shuffled epoch over in-memory arrays: one gather per batch."""

    order = rng.permutation(len(theta))
    total = 0
    for i in range(0, len(order), BATCH):
        rows = order[i : i + BATCH]
        batch = torch.from_numpy(np.take(theta, rows, 0)), torch.from_numpy(np.take(x, rows, 0))
        total += len(batch[0])
    return total


def interleaved(epochs: dict[str, Callable[[], int]], repeats: int, pairs: int) -> dict:
    r"""Times each epoch ``repeats`` times, alternating which goes first; returns the
    seconds of each."""

    times: dict[str, list[float]] = {name: [] for name in epochs}
    names = list(epochs)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            seen = epochs[name]()
            times[name].append(time.perf_counter() - start)
            if seen != pairs:
                raise RuntimeError(f"{name} yielded {seen} pairs in an epoch, not {pairs}")
    return times


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time sbikit.data's writing and reading.")
    parser.add_argument("--quick", action="store_true", help="100,000 pairs, 3 repeats")
    parser.add_argument("--pairs", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--block-size", type=int, default=10_000, help="default 10,000")
    parser.add_argument("--repeats", type=int, default=None, help="timed epochs (default 5)")
    parser.add_argument("--dir", default=None, help="where to write the file (default: temp)")
    parser.add_argument("--no-lampe", action="store_true", help="time sbikit only")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) before timing (default: torch's default, untouched)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.pairs is None:
        args.pairs = 100_000 if args.quick else 1_000_000
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.pairs < BATCH or args.block_size < 1 or args.repeats < 1 or args.threads == 0:
        parser.error(
            f"expects --pairs >= {BATCH}, --block-size >= 1, --repeats >= 1, --threads >= 1"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    use_lampe = lampe is not None and not args.no_lampe
    print(machine_line())
    print(
        f"pairs {args.pairs:,} | theta ({THETA_DIM},), x ({X_DIM},) float32 | block size "
        f"{args.block_size:,} | batch {BATCH} | median of {args.repeats} interleaved epochs"
    )
    if lampe is None and not args.no_lampe:
        print("lampe is not installed: sbikit rows only (pip install lampe to compare)")
    print(flush=True)

    prior = DiagNormal(torch.zeros(THETA_DIM), torch.ones(THETA_DIM))
    blocks = range(-(-args.pairs // args.block_size))
    job = Job(prior, simulator, args.seed, args.block_size, (X_DIM,), True, False)
    alone = timed(lambda: [simulator(prior.sample((args.block_size,))) for _ in blocks])
    bare = timed(lambda: [run_block(job, k) for k in blocks])
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "pairs.h5"
        written = timed(
            lambda: simulate(
                prior,
                args.pairs,
                path,
                simulator=simulator,
                seed=args.seed,
                block_size=args.block_size,
                progress=False,
            )
        )
        size = path.stat().st_size
        stream = SimulationDataset(path, BATCH, seed=args.seed)
        fine = SimulationDataset(path, BATCH, seed=args.seed, segment=LAMPE_CHUNK)
        memory = SimulationDataset(path, BATCH, seed=args.seed, in_memory=True)
        arrays = memory.memory()
        rng = np.random.default_rng(args.seed)
        epochs = {
            "stream": lambda: epoch(stream),
            "fine": lambda: epoch(fine),
            "in memory": lambda: epoch(memory),
            "floor": lambda: floor_epoch(*arrays, rng),
        }
        if use_lampe:
            reference = H5Dataset(path, batch_size=BATCH, shuffle=True)
            epochs["lampe"] = lambda: epoch(reference)
        for fn in epochs.values():  # warm-up: the page cache, the loaders' first epoch
            fn()
        times = interleaved(epochs, args.repeats, args.pairs)
        if use_lampe:
            reference.file.close()

    def rate(seconds: float) -> str:
        return f"{args.pairs / seconds / 1e6:7.2f} M pairs/s"

    print(f"write ({size / 2**20:,.0f} MiB on disk)")
    print(f"  (a) simulator alone       {rate(alone)}   {alone:7.2f} s")
    print(f"  (b) blocks, no file       {rate(bare)}   {bare:7.2f} s")
    print(f"  (c) simulate to HDF5      {rate(written)}   {written:7.2f} s")
    print(f"      (c)/(a) time ratio    {written / alone:7.2f}   (1 = bound by the simulator)")
    print(f"read: one shuffled epoch, batch {BATCH} (median; spread = IQR / median)")
    medians = {name: statistics.median(t) for name, t in times.items()}
    labels = {
        "stream": "(d) streaming",
        "fine": "(d') 256-row segments",
        "in memory": "(e) in memory",
        "floor": "(f) floor",
        "lampe": "(g) lampe",
    }
    for name, seconds in medians.items():
        spread = ""
        if len(times[name]) >= 3:
            q1, _, q3 = statistics.quantiles(times[name], n=4, method="inclusive")
            spread = f"   spread {(q3 - q1) / seconds:5.2f}"
        print(f"  {labels[name]:<24}{rate(seconds)}   {seconds:7.3f} s{spread}")
    print(f"      (d) / (f) floor       {medians['floor'] / medians['stream']:7.2f} of the floor")
    if use_lampe:
        print(f"      (d) / (g) lampe       {medians['lampe'] / medians['stream']:7.2f}x lampe")
        print(f"      (d') / (g) lampe      {medians['lampe'] / medians['fine']:7.2f}x lampe")
    return 0


if __name__ == "__main__":
    sys.exit(main())
