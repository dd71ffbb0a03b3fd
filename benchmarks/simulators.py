r"""Time 10,000 simulations of each benchmark task.

For each task in :func:`simulators.names`, draws 10,000 parameters from the prior and times
``task.simulate(theta)`` (the median of ``--repeats`` runs after one warm-up run, wall
clock). The targets on 2 cores: the closed-form tasks well under a second each,
bernoulli_glm under a second, sir and lotka_volterra under a minute each.

This is a benchmark, not a test: nothing is asserted about the timings.

Usage::

    python benchmarks/simulators.py
    python benchmarks/simulators.py --tasks sir lotka_volterra --repeats 1
    python benchmarks/simulators.py --json simulators.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from machine import machine_info, machine_line  # benchmarks/machine.py

# this script's own name would shadow the simulators package: drop its folder from the path
HERE = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]
import simulators  # noqa: E402

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
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
