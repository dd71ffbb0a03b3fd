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
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flows import interleaved, timed  # benchmarks/flows.py
from machine import machine_info, machine_line  # benchmarks/machine.py

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


# --------------------------------------------------------------------------- timing


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


def checked(epochs: dict[str, Callable[[], int]], pairs: int) -> dict[str, Callable[[], None]]:
    r"""The epochs, each raising if it does not yield ``pairs`` pairs."""

    def check(name: str, epoch: Callable[[], int]) -> Callable[[], None]:
        def run() -> None:
            seen = epoch()
            if seen != pairs:
                raise RuntimeError(f"{name} yielded {seen} pairs in an epoch, not {pairs}")

        return run

    return {name: check(name, epoch) for name, epoch in epochs.items()}


# --------------------------------------------------------------------------- measure

LABELS = {
    "simulator": "(a) simulator alone",
    "blocks": "(b) blocks, no file",
    "simulate": "(c) simulate to HDF5",
    "stream": "(d) streaming",
    "fine": "(d') 256-row segments",
    "memory": "(e) in memory",
    "floor": "(f) floor",
    "lampe": "(g) lampe",
}
r"""The labels of the rows, by key."""


def measure(
    quick: bool = False,
    *,
    peer: bool = True,
    pairs: int | None = None,
    block_size: int = 10_000,
    repeats: int | None = None,
    directory: str | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    r"""Writes the file and times the rows (a) to (g), on torch's current number of threads.

    Arguments:
        quick: 100,000 pairs and 3 repeats by default, instead of 1,000,000 and 5.
        peer: Whether to time lampe's ``H5Dataset`` too (when lampe is installed).
        pairs: The number of pairs written and read in an epoch.
        block_size: The rows of a simulation block.
        repeats: The timed epochs of each loader.
        directory: Where the temporary file goes (default: the system's temporary folder).
        seed: The seed of the simulations and of the shuffles.

    Returns:
        One dict per row and library: ``area`` ("data"), ``operation`` (the same label for
        sbikit and lampe where they do the same work), ``library`` ("sbikit", "lampe", or
        "numpy" for the floor), ``seconds`` (one write, or the median epoch), ``times_s``
        (every epoch), ``pairs``, ``key`` and, for (c), ``bytes`` (the file's size).
        lampe reads 256-row chunks, so its epochs are listed twice: against (d) and (d').
    """

    pairs = pairs or (100_000 if quick else 1_000_000)
    repeats = repeats or (3 if quick else 5)
    prior = DiagNormal(torch.zeros(THETA_DIM), torch.ones(THETA_DIM))
    blocks = range(-(-pairs // block_size))
    job = Job(prior, simulator, seed, block_size, (X_DIM,), True, False)
    alone = timed(lambda: [simulator(prior.sample((block_size,))) for _ in blocks])
    bare = timed(lambda: [run_block(job, k) for k in blocks])
    with tempfile.TemporaryDirectory(dir=directory) as folder:
        path = Path(folder) / "pairs.h5"
        written = timed(
            lambda: simulate(
                prior,
                pairs,
                path,
                simulator=simulator,
                seed=seed,
                block_size=block_size,
                progress=False,
            )
        )
        size = path.stat().st_size
        stream = SimulationDataset(path, BATCH, seed=seed)
        fine = SimulationDataset(path, BATCH, seed=seed, segment=LAMPE_CHUNK)
        memory = SimulationDataset(path, BATCH, seed=seed, in_memory=True)
        arrays = memory.memory()
        rng = np.random.default_rng(seed)
        epochs = {
            "stream": lambda: epoch(stream),
            "fine": lambda: epoch(fine),
            "memory": lambda: epoch(memory),
            "floor": lambda: floor_epoch(*arrays, rng),
        }
        if peer and lampe is not None:
            reference = H5Dataset(path, batch_size=BATCH, shuffle=True)
            epochs["lampe"] = lambda: epoch(reference)
        # one warm-up round: the page cache, the loaders' first epoch
        times = interleaved(checked(epochs, pairs), repeats, 1)
        if "lampe" in epochs:
            reference.file.close()

    operations = {
        "simulator": f"(a) simulator alone, {pairs:,} pairs",
        "blocks": "(b) the same in simulation blocks, no file",
        "simulate": "(c) the same, simulate to HDF5",
        "stream": f"(d) shuffled epoch of {pairs:,} pairs, batch {BATCH}",
        "fine": "(d') the same, 256-row segments",
        "memory": "(e) the same, in memory",
        "floor": "(f) the same, arrays in memory (floor)",
    }
    libraries = {"floor": "numpy", "lampe": "lampe"}
    rows = [
        {"key": key, "operation": operations[key], "library": "sbikit", "seconds": seconds}
        for key, seconds in (("simulator", alone), ("blocks", bare), ("simulate", written))
    ]
    rows[-1]["bytes"] = size
    for key, t in times.items():
        rows.append(
            {
                "key": key,
                "operation": operations.get(key, operations["stream"]),
                "library": libraries.get(key, "sbikit"),
                "seconds": statistics.median(t),
                "times_s": t,
            }
        )
    if "lampe" in times:
        rows.append(rows[-1] | {"key": "lampe_fine", "operation": operations["fine"]})
    return [{"area": "data", **row, "pairs": pairs} for row in rows]


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
    print(machine_line(machine_info(peers=("lampe",)), peers=("lampe",)))
    print(
        f"pairs {args.pairs:,} | theta ({THETA_DIM},), x ({X_DIM},) float32 | block size "
        f"{args.block_size:,} | batch {BATCH} | median of {args.repeats} interleaved epochs"
    )
    if lampe is None and not args.no_lampe:
        print("lampe is not installed: sbikit rows only (pip install lampe to compare)")
    print(flush=True)

    rows = measure(
        peer=use_lampe,
        pairs=args.pairs,
        block_size=args.block_size,
        repeats=args.repeats,
        directory=args.dir,
        seed=args.seed,
    )
    by_key = {row["key"]: row for row in rows}

    def rate(seconds: float) -> str:
        return f"{args.pairs / seconds / 1e6:7.2f} M pairs/s"

    print(f"write ({by_key['simulate']['bytes'] / 2**20:,.0f} MiB on disk)")
    for key in ("simulator", "blocks", "simulate"):
        seconds = by_key[key]["seconds"]
        print(f"  {LABELS[key]:<26}{rate(seconds)}   {seconds:7.2f} s")
    ratio = by_key["simulate"]["seconds"] / by_key["simulator"]["seconds"]
    print(f"      (c)/(a) time ratio    {ratio:7.2f}   (1 = bound by the simulator)")
    print(f"read: one shuffled epoch, batch {BATCH} (median; spread = IQR / median)")
    medians = {}
    for key in ("stream", "fine", "memory", "floor", "lampe"):
        if key not in by_key:
            continue
        seconds, times = by_key[key]["seconds"], by_key[key]["times_s"]
        medians[key] = seconds
        spread = ""
        if len(times) >= 3:
            q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
            spread = f"   spread {(q3 - q1) / seconds:5.2f}"
        print(f"  {LABELS[key]:<24}{rate(seconds)}   {seconds:7.3f} s{spread}")
    print(f"      (d) / (f) floor       {medians['floor'] / medians['stream']:7.2f} of the floor")
    if "lampe" in medians:
        print(f"      (d) / (g) lampe       {medians['lampe'] / medians['stream']:7.2f}x lampe")
        print(f"      (d') / (g) lampe      {medians['lampe'] / medians['fine']:7.2f}x lampe")
    return 0


if __name__ == "__main__":
    sys.exit(main())
