r"""Time 10,000 simulations of each benchmark task.

For each task in :func:`simulators.names`, draws 10,000 parameters from the prior and times
``task.simulate(theta)`` (the median of ``--repeats`` runs after one warm-up run, wall
clock). The targets on 2 cores: the closed-form tasks well under a second each,
bernoulli_glm under a second, sir and lotka_volterra under a minute each.

This is a benchmark, not a test: nothing is asserted about the timings.

Usage::

    python benchmarks/simulator_speed.py
    python benchmarks/simulator_speed.py --tasks sir lotka_volterra --repeats 1
    python benchmarks/simulator_speed.py --json simulator_speed.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import torch
from machine import machine_info, machine_line, write_results  # benchmarks/machine.py

import simulators

TARGETS_S = {"sir": 60.0, "lotka_volterra": 60.0}
DEFAULT_TARGET_S = 1.0


def time_task(name: str, n: int, repeats: int, seed: int) -> dict:
    task = simulators.get(name)
    torch.manual_seed(seed)
    theta = task.prior.sample((n,))
    task.simulate(theta[: min(n, 100)])  # warm-up: caches, lazy constants
    times, failed = [], 0
    for r in range(repeats):
        start = time.perf_counter()
        x = task.simulate(theta, generator=torch.Generator().manual_seed(seed + r))
        times.append(time.perf_counter() - start)
        failed = int((~torch.isfinite(x.reshape(n, -1)).all(dim=-1)).sum())
    target = TARGETS_S.get(name, DEFAULT_TARGET_S)
    median = statistics.median(times)
    return {
        "task": name,
        "simulations": n,
        "median_s": median,
        "per_simulation_us": median / n * 1e6,
        "target_s": target,
        "within_target": median < target,
        "failed_rows": failed,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", nargs="+", default=simulators.names(), choices=simulators.names()
    )
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="write the figures to a JSON file")
    args = parser.parse_args(argv)

    info = machine_info()
    print(machine_line(info))
    print(f"{args.simulations} simulations per task, median of {args.repeats} runs\n")
    header = f"{'task':<24} {'seconds':>9} {'us / sim':>9} {'target s':>9}  {'ok':<3} failed rows"
    print(header)
    print("-" * len(header))
    results = []
    for name in args.tasks:
        row = time_task(name, args.simulations, args.repeats, args.seed)
        results.append(row)
        print(
            f"{name:<24} {row['median_s']:>9.3f} {row['per_simulation_us']:>9.1f} "
            f"{row['target_s']:>9.1f}  {'yes' if row['within_target'] else 'NO':<3} "
            f"{row['failed_rows']}",
            flush=True,
        )
    if args.json:
        write_results(args.json, info, results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
