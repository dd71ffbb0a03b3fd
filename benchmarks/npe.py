r"""Neural posterior estimation on benchmark tasks: sbikit's NPE, side by side with sbi's.

For each task (two_moons and slcp by default) and 10^4 simulations it measures

    train      the wall time of training with the default settings (until early stopping);
    sample     posterior(x_o).sample((10000,)) for one observation (the fastest of 5 runs,
               the libraries taking turns once both are trained);
    batch      1000 samples for each of 1000 observations;
    c2st       the C2ST of 10^4 samples against task.reference_samples(k), mean over the
               observations k (0.5 is perfect);

for sbikit, and, when the ``sbi`` package is importable, for sbi's NPE (its defaults) in the
same process and on the same simulations, with the ratios sbikit / sbi. ``--max-epochs``
caps the training of both libraries (sbikit: ``epochs=``, sbi: ``max_num_epochs``). The C2ST of both
uses sbikit.diagnostics.c2st. slcp's reference posterior is an MCMC run of several minutes
per observation, cached by ``task.reference_samples`` in ``--cache-dir``.

This is a benchmark, not a test: nothing is asserted.

Usage::

    python benchmarks/npe.py --tasks two_moons --observations 1 2 3
    python benchmarks/npe.py                         # two_moons and slcp, observations 1..10
    python benchmarks/npe.py --no-sbi --json npe.json
    python benchmarks/npe.py --threads 1             # on a machine shared with other jobs
    python benchmarks/npe.py --keep-freed-memory     # see sbikit.utils.keep_freed_memory
    python benchmarks/npe.py --tasks two_moons --simulations 2000 --max-epochs 30 \
        --batch-observations 100 --observations 1   # a few minutes
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from flows import interleaved  # benchmarks/flows.py
from machine import (  # benchmarks/machine.py
    add_memory_option,
    keep_memory_if_asked,
    machine_info,
    machine_line,
    write_results,
)

import sbikit
import simulators
from sbikit.diagnostics import c2st
from sbikit.inference import NPE

try:
    import sbi
    import sbi.inference
    import sbi.utils
    from torch.utils.tensorboard import SummaryWriter
except ImportError:  # the optional peer: only the sbikit column then
    sbi = None

QUICK = {"tasks": ("two_moons",), "simulations": 2000, "max_epochs": 30, "batch_observations": 100}
r"""The smaller settings of ``measure(quick=True)``: one task, fewer simulations, training
capped for both libraries, fewer observations in the batched sampling."""


def timed(f: Callable[[], object]) -> tuple[object, float]:
    r"""Returns ``f()`` and its wall time in seconds."""

    start = time.perf_counter()
    result = f()
    return result, time.perf_counter() - start


def train_sbikit(task, theta, x, seed, max_epochs=None):
    torch.manual_seed(seed)
    posterior = NPE(task.theta_dim, task.x_shape, prior=task.prior)
    options = {} if max_epochs is None else {"epochs": max_epochs}
    history = sbikit.fit(posterior, (theta, x), seed=seed, progress=False, **options)

    def sample(x_o, n):
        with torch.no_grad():
            return posterior(x_o).sample((n,))

    return sample, len(history["epoch"])


def sbi_prior(task):
    r"""The task's prior for sbi: its BoxUniform for a box, else the prior itself."""

    box = getattr(task.prior.support, "base_constraint", None)
    if hasattr(box, "lower_bound"):
        return sbi.utils.BoxUniform(box.lower_bound, box.upper_bound)
    return task.prior


def sbi_trained(prior, theta, x, max_epochs=None, density_estimator="maf"):
    r"""sbi's NPE trained on the pairs, with sbi's defaults but ``density_estimator`` and
    at most ``max_epochs`` epochs; its tensorboard logs go to a temporary directory."""

    # sbi trains epochs 0 to max_num_epochs, one more than the number it is given
    options = {} if max_epochs is None else {"max_num_epochs": max_epochs - 1}
    with tempfile.TemporaryDirectory() as logs, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "summary_writer is deprecated", FutureWarning)
        warnings.filterwarnings("ignore", "Maximum number of epochs", UserWarning)
        writer = SummaryWriter(logs)  # sbi's tensorboard logs, not in the cwd
        inference = sbi.inference.NPE(prior=prior, density_estimator=density_estimator,
                                      show_progress_bars=False, summary_writer=writer)  # fmt: skip
        inference.append_simulations(theta, x)
        inference.train(**options)
        writer.close()
    return inference


def train_sbi(task, theta, x, seed, max_epochs=None):
    torch.manual_seed(seed)
    inference = sbi_trained(sbi_prior(task), theta, x, max_epochs)
    posterior = inference.build_posterior()
    epochs = inference._summary["epochs_trained"][-1]

    def sample(x_o, n):
        if x_o.dim() == 1:
            return posterior.sample((n,), x=x_o, show_progress_bars=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Capping max_sampling_batch_size", UserWarning)
            return posterior.sample_batched((n,), x=x_o, show_progress_bars=False)

    return sample, epochs


def measure(
    quick: bool = False,
    *,
    peer: bool = True,
    tasks: Sequence[str] | None = None,
    simulations: int | None = None,
    max_epochs: int | None = None,
    batch_observations: int | None = None,
    observations: Sequence[int] = (),
    seed: int = 0,
    cache_dir: str | None = None,
) -> list[dict[str, Any]]:
    r"""Trains and samples sbikit's NPE and, when ``peer`` and sbi is installed, sbi's, on
    the same simulations, on torch's current number of threads. Progress goes to stderr.

    Arguments:
        quick: The settings of :data:`QUICK` where no other is given.
        peer: Whether to measure sbi's NPE too.
        tasks: The benchmark tasks (default two_moons and slcp).
        simulations: The training pairs (default 10,000).
        max_epochs: The most epochs of training (default: until early stopping).
        batch_observations: The observations of the batched sampling, 1000 draws each.
        observations: The observations k of the C2ST; none: no C2ST.
        seed: The seed of the simulations and of the training.
        cache_dir: Where the reference samples of the C2ST are cached.

    Returns:
        One dict per task, operation and library: ``area`` ("npe"), ``operation``,
        ``library``, ``seconds`` (``None`` for the C2ST), ``task``, ``key`` (train, epoch,
        sample, batch, c2st); the training row has ``epochs`` and ``detail``, the C2ST row
        ``value`` (the mean over the observations) and ``each``.
    """

    defaults = QUICK if quick else {}
    tasks = tasks or defaults.get("tasks", ("two_moons", "slcp"))
    simulations = simulations or defaults.get("simulations", 10_000)
    max_epochs = max_epochs or defaults.get("max_epochs")
    batch_observations = batch_observations or defaults.get("batch_observations", 1000)
    libraries = {"sbikit": train_sbikit}
    if peer and sbi is not None:
        libraries["sbi"] = train_sbi
    training = f"train on {simulations:,} simulations, " + (
        f"at most {max_epochs} epochs" if max_epochs else "to early stopping"
    )
    # torch imports its compiler when a process builds its first optimizer (seconds): not
    # a cost of the library that happens to train first
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    rows = []
    for name in tasks:
        task = simulators.get(name)
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        theta = task.prior.sample((simulations,))
        x = task.simulate(theta, generator=generator)
        batch = task.simulate(task.prior.sample((batch_observations,)), generator=generator)
        references = {
            k: task.reference_samples(k, 10000, cache_dir=cache_dir) for k in observations
        }
        operations = {
            "train": f"{name}: {training}",
            "epoch": f"{name}: one epoch of that training (mean)",
            "sample": f"{name}: sample 10^4 for 1 observation (fastest of 5, in turns)",
            "batch": f"{name}: sample 1000 for each of {batch_observations} observations",
            "c2st": f"{name}: C2ST against the reference, observations {list(observations)}",
        }
        trained = {}
        for library, train in libraries.items():
            train = functools.partial(train, task, theta, x, seed, max_epochs)
            trained[library] = timed(train)
        x_o = task.observation(1)
        # the fastest of 5 runs, the libraries taking turns: one run of a tenth of a second
        # varies by tens of percent, and a slow spell of the machine then weighs on both
        calls = {
            lib: functools.partial(sample, x_o, 10000) for lib, ((sample, _), _) in trained.items()
        }
        singles = {lib: min(times) for lib, times in interleaved(calls, 5, 1).items()}
        for library, ((sample, epochs), seconds) in trained.items():
            _, batched = timed(functools.partial(sample, batch, 1000))
            figures = {
                "train": {"seconds": seconds, "epochs": epochs, "detail": f"{epochs} epochs"},
                "epoch": {"seconds": seconds / epochs},
                "sample": {"seconds": singles[library]},
                "batch": {"seconds": batched, "observations": batch_observations},
            }
            if observations:
                scores = [
                    c2st(references[k], sample(task.observation(k), 10000).reshape(10000, -1))
                    for k in observations
                ]
                figures["c2st"] = {"seconds": None, "value": sum(scores) / len(scores)}
                figures["c2st"]["each"] = scores
            for key, figure in figures.items():
                rows.append(
                    {"area": "npe", "operation": operations[key], "library": library}
                    | figure
                    | {"task": name, "key": key}
                )
            summary = ", ".join(
                f"{key} {figure['value']:.3f}"
                if key == "c2st"
                else f"{key} {figure['seconds']:.3f} s"
                for key, figure in figures.items()
            )
            print(f"  {name} {library}: {summary}, {epochs} epochs", file=sys.stderr, flush=True)
    return rows


def report(rows: list[dict[str, Any]]) -> None:
    lines = [
        ("train (s)", "train", "seconds"),
        ("epochs", "train", "epochs"),
        ("sample 10^4 (s)", "sample", "seconds"),
        ("1000 x {} (s)", "batch", "seconds"),
        ("C2ST", "c2st", "value"),
    ]
    for task in dict.fromkeys(row["task"] for row in rows):
        figures = {(row["library"], row["key"]): row for row in rows if row["task"] == task}
        libraries = list(dict.fromkeys(library for library, _ in figures))
        print(f"\n{task}")
        print(f"{'':<18}" + "".join(f"{lib:>10}" for lib in libraries) + "  sbikit/sbi")
        for label, key, field in lines:
            if ("sbikit", key) not in figures:
                continue
            values = [figures[lib, key][field] for lib in libraries]
            label = label.format(figures["sbikit", key].get("observations"))
            line = f"{label:<18}" + "".join(f"{v:>10.3f}" for v in values)
            if "sbi" in libraries and values[-1]:
                line += f"{values[0] / values[-1]:>12.2f}"
            print(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["two_moons", "slcp"])
    parser.add_argument("--simulations", type=int, default=10000)
    parser.add_argument("--observations", nargs="+", type=int, default=list(range(1, 11)))
    parser.add_argument("--max-epochs", type=int, help="cap the training (default: none)")
    parser.add_argument(
        "--batch-observations", type=int, default=1000, help="observations of the batched sampling"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None, help="where reference samples are cached")
    parser.add_argument("--no-sbi", action="store_true", help="sbikit only")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--json", help="write the results to this file")
    add_memory_option(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_memory_if_asked(args)

    info = machine_info(peers=("sbi",))
    print(machine_line(info, peers=("sbi",)), flush=True)
    options = ("tasks", "simulations", "max_epochs", "batch_observations", "observations")
    options += ("seed", "cache_dir")
    rows = measure(peer=not args.no_sbi, **{name: getattr(args, name) for name in options})
    report(rows)
    if args.json:
        write_results(args.json, info, rows, settings=vars(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
