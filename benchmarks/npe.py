r"""Neural posterior estimation on benchmark tasks: sbikit's NPE, side by side with sbi's.

For each task (two_moons and slcp by default) and 10^4 simulations it measures

    train      the wall time of training with the default settings (until early stopping);
    sample     posterior(x_o).sample((10000,)) for one observation;
    batch      1000 samples for each of 1000 observations;
    c2st       the C2ST of 10^4 samples against task.reference_samples(k), mean over the
               observations k (0.5 is perfect);

for sbikit, and, when the ``sbi`` package is importable, for sbi's NPE (its defaults) in the
same process and on the same simulations, with the ratios sbikit / sbi. The C2ST of both
uses sbikit.diagnostics.c2st. slcp's reference posterior is an MCMC run of several minutes
per observation, cached by ``task.reference_samples`` in ``--cache-dir``.

This is a benchmark, not a test: nothing is asserted.

Usage::

    python benchmarks/npe.py --tasks two_moons --observations 1 2 3
    python benchmarks/npe.py                         # two_moons and slcp, observations 1..10
    python benchmarks/npe.py --no-sbi --json npe.json
    python benchmarks/npe.py --threads 1             # on a machine shared with other jobs
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import sbikit
from sbikit.diagnostics import c2st
from sbikit.inference import NPE

HERE = Path(__file__).resolve().parent  # benchmarks/simulators.py would shadow the package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]
import simulators  # noqa: E402

try:
    import sbi
    import sbi.inference
    import sbi.utils
    from torch.utils.tensorboard import SummaryWriter
except ImportError:  # the optional peer: only the sbikit column then
    sbi = None


def timed(f: Callable[[], object]) -> tuple[object, float]:
    r"""Returns ``f()`` and its wall time in seconds."""

    start = time.perf_counter()
    result = f()
    return result, time.perf_counter() - start


def train_sbikit(task, theta, x, seed):
    torch.manual_seed(seed)
    posterior = NPE(task.theta_dim, task.x_shape, prior=task.prior)
    history = sbikit.fit(posterior, (theta, x), seed=seed, progress=False)

    def sample(x_o, n):
        with torch.no_grad():
            return posterior(x_o).sample((n,))

    return sample, len(history["epoch"])


def train_sbi(task, theta, x, seed):
    torch.manual_seed(seed)
    support = task.prior.support.base_constraint
    prior = sbi.utils.BoxUniform(support.lower_bound, support.upper_bound)
    with tempfile.TemporaryDirectory() as logs:  # sbi's tensorboard logs, not in the cwd
        writer = SummaryWriter(logs)
        inference = sbi.inference.NPE(prior=prior, show_progress_bars=False, summary_writer=writer)
        inference.append_simulations(theta, x)
        inference.train()
        writer.close()
    posterior = inference.build_posterior()
    epochs = inference._summary["epochs_trained"][-1]

    def sample(x_o, n):
        if x_o.dim() == 1:
            return posterior.sample((n,), x=x_o, show_progress_bars=False)
        return posterior.sample_batched((n,), x=x_o, show_progress_bars=False)

    return sample, epochs


def run_task(name, args) -> dict:
    task = simulators.get(name)
    generator = torch.Generator().manual_seed(args.seed)
    theta = task.prior.sample((args.simulations,))
    x = task.simulate(theta, generator=generator)
    observations = task.simulate(task.prior.sample((1000,)), generator=generator)
    references = {
        k: task.reference_samples(k, 10000, cache_dir=args.cache_dir) for k in args.observations
    }
    libraries = {"sbikit": train_sbikit}
    if sbi is not None and not args.no_sbi:
        libraries["sbi"] = train_sbi
    results = {}
    for library, train in libraries.items():
        (sample, epochs), seconds = timed(functools.partial(train, task, theta, x, args.seed))
        x_o = task.observation(1)
        sample(x_o, 100)  # warm-up
        _, single = timed(functools.partial(sample, x_o, 10000))
        _, batch = timed(functools.partial(sample, observations, 1000))
        scores = [
            c2st(references[k], sample(task.observation(k), 10000).reshape(10000, -1))
            for k in args.observations
        ]
        results[library] = {
            "train_s": seconds,
            "epochs": epochs,
            "sample_s": single,
            "batch_s": batch,
            "c2st": sum(scores) / len(scores),
            "c2st_each": scores,
        }
        print(f"  {name} {library}: {results[library]}", flush=True)
    return results


def report(results: dict) -> None:
    rows = [
        ("train (s)", "train_s"),
        ("epochs", "epochs"),
        ("sample 10^4 (s)", "sample_s"),
        ("1000 x 1000 (s)", "batch_s"),
        ("C2ST", "c2st"),
    ]
    for task, libraries in results.items():
        print(f"\n{task}")
        print(f"{'':<18}" + "".join(f"{lib:>10}" for lib in libraries) + "  sbikit/sbi")
        for label, key in rows:
            values = [libraries[lib][key] for lib in libraries]
            line = f"{label:<18}" + "".join(f"{v:>10.3f}" for v in values)
            if "sbi" in libraries and libraries["sbi"][key]:
                line += f"{libraries['sbikit'][key] / libraries['sbi'][key]:>12.2f}"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["two_moons", "slcp"])
    parser.add_argument("--simulations", type=int, default=10000)
    parser.add_argument("--observations", nargs="+", type=int, default=list(range(1, 11)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None, help="where reference samples are cached")
    parser.add_argument("--no-sbi", action="store_true", help="sbikit only")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, load {os.getloadavg()[0]:.2f}, "
        f"sbikit {sbikit.__version__}, sbi {getattr(sbi, '__version__', 'absent')}",
        flush=True,
    )
    results = {name: run_task(name, args) for name in args.tasks}
    report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
