r"""Accuracy of sbikit's NPE on the benchmark tasks, next to the published NPE figures.

For each task and simulation budget it

1. simulates the training pairs into an HDF5 file with ``sbikit.data.simulate``;
2. trains ``NPE(theta_dim, x_shape, prior=task.prior)`` with the default flow and
   ``sbikit.fit`` with its default settings (until early stopping);
3. draws 10,000 samples of ``posterior(x_o)`` at each observation k and computes the C2ST
   against 10,000 draws of the task's reference posterior (``sbikit.diagnostics.c2st``,
   the published protocol); the figure is the mean over the observations;
4. runs ``sbikit.diagnostics.check`` on held-out pairs from the prior (``--test-pairs``
   pairs, ``--draws`` draws each) and records the verdict and the HPD coverage.

The published figures are those of "Benchmarking Simulation-Based Inference" (Lueckmann
et al., 2021, https://arxiv.org/abs/2101.04653), NPE column: C2ST of 10,000 reference
against 10,000 approximate samples, mean over the ten observations (0.5 is perfect).

Results go to ``--json`` (every figure, the settings and the machine) and ``--markdown``
(the table). MCMC reference posteriors (slcp, bernoulli_glm, sir, lotka_volterra, ...)
take minutes per observation the first time and are cached in ``--cache-dir``; with
``--published-references WHEEL`` the C2ST is computed against the published reference
draws instead, read from the wheel of the published benchmark (see ``published.py``), and
no MCMC runs.

This is a benchmark, not a test: nothing is asserted.

Usage::

    python benchmarks/accuracy.py --quick                 # under 30 minutes on 2 cores
    python benchmarks/accuracy.py --tasks two_moons slcp --budgets 10000 100000
    python benchmarks/accuracy.py --json accuracy.json --markdown accuracy.md
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from machine import machine_info, machine_line, write_results  # benchmarks/machine.py
from published import PublishedReferences  # benchmarks/published.py

import sbikit
import simulators
from sbikit.data import simulate
from sbikit.diagnostics import c2st, check
from sbikit.inference import NPE

PUBLISHED = {
    "gaussian_linear": {1000: 0.69, 10000: 0.55, 100000: 0.51},
    "gaussian_linear_uniform": {1000: 0.70, 10000: 0.55, 100000: 0.51},
    "slcp": {1000: 0.98, 10000: 0.90, 100000: 0.83},
    "slcp_distractors": {1000: 0.98, 10000: 0.97, 100000: 0.86},
    "bernoulli_glm": {1000: 0.86, 10000: 0.68, 100000: 0.56},
    "bernoulli_glm_raw": {1000: 0.90, 10000: 0.76, 100000: 0.61},
    "gaussian_mixture": {1000: 0.72, 10000: 0.62, 100000: 0.55},
    "two_moons": {1000: 0.73, 10000: 0.61, 100000: 0.54},
    "sir": {1000: 0.82, 10000: 0.68, 100000: 0.58},
    "lotka_volterra": {1000: 1.00, 10000: 1.00, 100000: 0.98},
}
r"""The published NPE C2ST, task → simulations → mean over the ten observations."""

QUICK = {
    "tasks": ["two_moons", "gaussian_linear", "slcp"],
    "budgets": [1000, 10000],
    "observations": [1, 2, 3],
    "test_pairs": 500,
}
r"""What ``--quick`` runs: tasks with cheap references (slcp's is cached after one run)."""

NUM_SAMPLES = 10_000
r"""Posterior and reference draws per observation, as in the published protocol."""


def reference_samples(
    task, k: int, args: argparse.Namespace, published: PublishedReferences | None
) -> torch.Tensor:
    r"""The reference draws of observation ``k``: the ``published`` ones when given, else
    the task's own (MCMC ones cached in ``--cache-dir``)."""

    if published is None:
        return task.reference_samples(k, NUM_SAMPLES, cache_dir=args.cache_dir)
    return published.samples(task.name, k)


def run_one(
    task,
    budget: int,
    args: argparse.Namespace,
    workdir: Path,
    published: PublishedReferences | None = None,
) -> dict:
    r"""Simulates, trains, samples and checks one task at one budget; returns the figures."""

    path = workdir / f"{task.name}-{budget}.h5"
    started = time.perf_counter()
    simulate(task, budget, path, seed=args.seed, overwrite=True, progress=False)
    simulated = time.perf_counter() - started

    torch.manual_seed(args.seed)
    posterior = NPE(task.theta_dim, task.x_shape, prior=task.prior)
    started = time.perf_counter()
    history = sbikit.fit(posterior, path, seed=args.seed, progress=args.progress)
    trained = time.perf_counter() - started

    scores = []
    with torch.no_grad():
        for k in args.observations:
            samples = posterior(task.observation(k)).sample((NUM_SAMPLES,))
            reference = reference_samples(task, k, args, published)
            scores.append(c2st(reference, samples, seed=args.seed))

    generator = torch.Generator().manual_seed(args.seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed + 1)
        theta = task.prior.sample((args.test_pairs,))
    x = task.simulate(theta, generator=generator)
    report = check(
        posterior, theta, x, num_samples=args.draws, seed=args.seed, prior=task.prior,
        progress=False,
    )  # fmt: skip
    levels, coverage = report.coverage.nominal, report.coverage.hpd_nominal
    return {
        "c2st": sum(scores) / len(scores),
        "c2st_each": dict(zip(map(str, args.observations), scores, strict=True)),
        "published": PUBLISHED.get(task.name, {}).get(budget),
        "verdict": report.verdict,
        "hpd_coverage": {str(a): float(c) for a, c in zip(levels, coverage, strict=True)},
        "simulate_s": simulated,
        "train_s": trained,
        "epochs": len(history["epoch"]),
        "best_epoch": history["best_epoch"],
        "best_validation_loss": history["best_validation_loss"],
    }


def markdown(results: dict, info: dict, observations: Sequence[int]) -> str:
    r"""The results as a Markdown table, with the date and the machine."""

    lines = [
        f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores, torch "
        f"{info['torch']}, {info['torch_threads']} threads), sbikit {info['sbikit']}; C2ST "
        f"mean over observations {', '.join(map(str, observations))}.",
        "",
        "| task | simulations | sbikit NPE C2ST | published NPE | difference | coverage "
        "verdict | HPD coverage at 50 % / 90 % | training (s) | epochs |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for name, budgets in results.items():
        for budget, r in budgets.items():
            published = r["published"]
            difference = "" if published is None else f"{r['c2st'] - published:+.3f}"
            hpd = r["hpd_coverage"]
            lines.append(
                f"| {name} | {int(budget):,} | {r['c2st']:.3f} | "
                f"{'' if published is None else f'{published:.2f}'} | {difference} | "
                f"{r['verdict']} | {hpd.get('0.5', float('nan')):.3f} / "
                f"{hpd.get('0.9', float('nan')):.3f} | {r['train_s']:.0f} | {r['epochs']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(PUBLISHED), choices=list(PUBLISHED))
    parser.add_argument("--budgets", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--observations", nargs="+", type=int, default=list(range(1, 11)))
    parser.add_argument("--test-pairs", type=int, default=1000, help="pairs for the check")
    parser.add_argument("--draws", type=int, default=500, help="draws per test pair")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None, help="where reference samples are cached")
    parser.add_argument(
        "--published-references",
        metavar="WHEEL",
        help="compare with the published reference draws in this sbibm wheel (see published.py)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--progress", action="store_true", help="show the training bars")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--markdown", help="write the table to this file")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    published = args.published_references and PublishedReferences(args.published_references)

    info = machine_info() | {"date": datetime.date.today().isoformat()}
    print(machine_line(info), flush=True)
    started = time.perf_counter()
    results: dict[str, dict[int, dict]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.tasks:
            task = simulators.get(name)
            for budget in args.budgets:
                figures = run_one(task, budget, args, Path(workdir), published)
                results.setdefault(name, {})[budget] = figures
                print(
                    f"{name:>24} {budget:>7,}: C2ST {figures['c2st']:.3f} (published "
                    f"{figures['published']}), {figures['verdict']}, trained in "
                    f"{figures['train_s']:.0f} s ({figures['epochs']} epochs)",
                    flush=True,
                )
    info["total_s"] = time.perf_counter() - started
    table = markdown(results, info, args.observations)
    print("\n" + table + f"\ntotal {info['total_s'] / 60:.1f} min")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("json", "markdown")}
        write_results(args.json, info, results, settings=settings)
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
