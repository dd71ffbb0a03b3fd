r"""``sbikit demo``: the whole workflow on a benchmark task, in a few minutes on a laptop."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import numpy as np
import torch

from sbikit.diagnostics import c2st

from .common import natural, note, positive, seconds
from .specs import get_task

BUDGET = {
    "simulations": 10_000,
    "test pairs": 1000,
    "epochs": 100,
    "transforms": 3,
    "hidden features": 64,
    "draws per test pair": 1000,
    "samples": 10_000,
}
r"""The demo's budget: simulations for training and testing, the training (NSF with 3
transforms and hidden layers (64, 64), at most 100 epochs), and the draws of the check and
of the posterior samples."""


def configure(parser: argparse.ArgumentParser) -> None:
    r"""Adds the arguments of ``sbikit demo``."""

    parser.add_argument("--task", default="two_moons", help="a task (default: two_moons)")
    parser.add_argument(
        "--out", default="sbikit-demo", metavar="DIR", help="(default: ./sbikit-demo)"
    )
    parser.add_argument(
        "--observation",
        type=positive,
        default=1,
        metavar="K",
        help="the task's observation to infer (default: 1)",
    )
    parser.add_argument("--seed", type=natural, default=0, help="(default: 0)")


def steps(args: argparse.Namespace) -> list[list[str]]:
    r"""The commands the demo runs, in order.

    Example:
        >>> args = argparse.Namespace(task="two_moons", out="demo", observation=1, seed=0)
        >>> [step[0] for step in steps(args)]
        ['simulate', 'simulate', 'train', 'sample', 'check']
    """

    out, seed, b = Path(args.out), str(args.seed), BUDGET
    observation = f"{args.task}:{args.observation}"
    hidden = str(b["hidden features"])
    train, test, run = str(out / "train.h5"), str(out / "test.h5"), str(out / "run")
    return [
        ["simulate", args.task, "-n", str(b["simulations"]), "-o", train, "--seed", seed,
         "--overwrite"],
        ["simulate", args.task, "-n", str(b["test pairs"]), "-o", test, "--seed",
         str(args.seed + 1), "--overwrite"],
        ["train", train, "-o", run, "--overwrite", "--epochs", str(b["epochs"]),
         "--transforms", str(b["transforms"]), "--hidden-features", hidden, hidden, "--seed",
         seed],
        ["sample", run, "--obs", observation, "-n", str(b["samples"]), "-o",
         str(out / "samples.npy"), "--seed", seed],
        ["check", run, test, "-o", str(out / "report.html"), "--json",
         str(out / "report.json"), "--obs", observation, "--num-samples",
         str(b["draws per test pair"]), "--seed", seed],
    ]  # fmt: skip


def dispatch(argv: list[str]) -> argparse.Namespace:
    r"""Runs one step of the demo as the command line would, and returns its arguments,
    with the step's exit code as ``exit_code``."""

    from .parser import build_parser  # the parser knows the demo: import it late

    args = build_parser().parse_args(argv)
    args.exit_code = args.command(args)
    return args


def demo_command(args: argparse.Namespace) -> int:
    r"""Runs simulate, train, sample and check on a task, then compares the samples with
    the task's reference posterior (C2ST); returns 0 once every step has run, whatever the
    verdict (``sbikit check`` is the command whose exit code gates on it)."""

    task = get_task(args.task)
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for step in steps(args):
        print(f"\n$ sbikit {shlex.join(step)}", flush=True)
        last = dispatch(step + (["--quiet"] if args.quiet else []))
    observation = f"{task.name}:{args.observation}"
    print(f"\n# C2ST of the samples against the reference posterior of {observation}")
    note(args, "(drawing the reference samples; an MCMC reference may take minutes)")
    with torch.random.fork_rng(devices=[]):  # the same reference draws every time
        torch.manual_seed(args.seed)
        reference = task.reference_samples(args.observation, BUDGET["samples"], out / "cache")
    samples = torch.from_numpy(np.load(out / "samples.npy"))
    accuracy = c2st(reference, samples, seed=args.seed)
    print(f"C2ST {accuracy:.3f} (0.5: indistinguishable from the reference, 1: told apart)")
    print(
        f"\ndemo finished in {seconds(time.perf_counter() - started)}; everything is in "
        f"{out}:\n"
        f"  training data  {out / 'train.h5'}\n"
        f"  test data      {out / 'test.h5'}\n"
        f"  posterior      {out / 'run'} (sbikit.load('{out / 'run'}') in Python)\n"
        f"  samples        {out / 'samples.npy'}\n"
        f"  report         {out / 'report.html'} and {out / 'report.json'}\n"
        f"  verdict        {last.verdict}\n"
        f"  C2ST           {accuracy:.3f}"
    )
    return 0
