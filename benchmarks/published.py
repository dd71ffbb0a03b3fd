r"""The published reference posteriors: the draws the published C2ST figures were computed
against, and a comparison of sbikit's own references with them.

"Benchmarking Simulation-Based Inference" (Lueckmann et al., 2021) ships, for each task and
each of its ten observations, 10,000 reference draws in the wheel of its ``sbibm`` package.
The wheel is not a dependency and nothing is imported from it: download it once,

    pip download sbibm==1.1.0 --no-deps -d refs/

and pass its path. This module reads the draws and the observations straight from the zip
file. slcp_distractors and bernoulli_glm_raw share the references of slcp and
bernoulli_glm (their observations hold the same information about the parameters).

Run as a script, it compares the tasks' own references (analytic, or MCMC cached in
``--cache-dir``) with the published draws by C2ST (the published protocol): about 0.5 when
they agree. The MCMC references of slcp, bernoulli_glm, sir and lotka_volterra take
minutes per observation when they are not cached yet.

Usage::

    python benchmarks/published.py refs/sbibm-1.1.0-py2.py3-none-any.whl
    python benchmarks/published.py WHEEL --tasks slcp sir --observations 1 2 --cache-dir refs
"""

from __future__ import annotations

import argparse
import bz2
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from machine import machine_info, machine_line  # benchmarks/machine.py
from torch import Tensor

import simulators
from sbikit.diagnostics import c2st

SHARED = {"slcp_distractors": "slcp", "bernoulli_glm_raw": "bernoulli_glm"}
r"""Tasks whose reference posteriors are those of another task."""


class PublishedReferences:
    r"""The reference draws and observations in the wheel of ``sbibm``.

    Arguments:
        wheel: The path of ``sbibm-1.1.0-py2.py3-none-any.whl``.

    Example:
        >>> refs = PublishedReferences("refs/sbibm-1.1.0-py2.py3-none-any.whl")  # doctest: +SKIP
        >>> refs.samples("slcp", 1).shape  # doctest: +SKIP
        torch.Size([10000, 5])
    """

    def __init__(self, wheel: str | Path):
        wheel = Path(wheel)
        if not wheel.is_file():
            raise FileNotFoundError(
                f"no file at {wheel}: download the wheel of the published benchmark with "
                "'pip download sbibm==1.1.0 --no-deps -d refs/' and pass its path."
            )
        self.wheel = zipfile.ZipFile(wheel)

    def read(self, task: str, k: int, name: str) -> np.ndarray:
        r"""A CSV file of observation ``k`` of ``task`` (or of the task it shares them with),
        as a float array with one row per line."""

        path = f"sbibm/tasks/{SHARED.get(task, task)}/files/num_observation_{k}/{name}"
        try:
            data = self.wheel.read(path)
        except KeyError:
            raise KeyError(f"{self.wheel.filename} has no {path}: is it the sbibm wheel?") from None
        text = bz2.decompress(data) if name.endswith(".bz2") else data
        return np.loadtxt(io.BytesIO(text), delimiter=",", skiprows=1, ndmin=2)

    def samples(self, task: str, k: int) -> Tensor:
        r"""The published reference draws of observation ``k``, float32 of shape
        ``(10000, theta_dim)``; raises if the task's observation is not the published one."""

        self.check_observation(task, k)
        draws = self.read(task, k, "reference_posterior_samples.csv.bz2")
        return torch.from_numpy(draws).to(torch.float32)

    def check_observation(self, task: str, k: int) -> None:
        r"""Raises unless the task's observation ``k`` (for a task that shares references,
        that of the task it shares them with) is the published one."""

        name = SHARED.get(task, task)
        ours = simulators.get(name).observation(k).double().flatten()
        theirs = torch.from_numpy(self.read(task, k, "observation.csv")).flatten()
        if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6):
            raise ValueError(
                f"observation {k} of {name} differs from the published one, so the published "
                "reference draws do not apply to it."
            )


def compare(refs: PublishedReferences, task: str, k: int, cache_dir: str | None) -> float:
    r"""The C2ST between the task's own reference draws and the published ones."""

    theirs = refs.samples(task, k)
    ours = simulators.get(task).reference_samples(k, len(theirs), cache_dir)
    return c2st(theirs, ours)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="the path of sbibm-1.1.0-py2.py3-none-any.whl")
    parser.add_argument(
        "--tasks", nargs="+", default=simulators.names(), choices=simulators.names()
    )
    parser.add_argument("--observations", nargs="+", type=int, default=list(range(1, 11)))
    parser.add_argument("--cache-dir", help="where the MCMC references are cached")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line(machine_info()), flush=True)
    refs = PublishedReferences(args.wheel)
    for task in args.tasks:
        scores = [compare(refs, task, k, args.cache_dir) for k in args.observations]
        each = " ".join(f"{s:.3f}" for s in scores)
        print(f"{task:>24}: C2ST own vs published {np.mean(scores):.3f} ({each})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
