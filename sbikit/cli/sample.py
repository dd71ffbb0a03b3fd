r"""``sbikit sample``: draws of the posterior of a run for one observation."""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from sbikit import __version__
from sbikit.inference import NPE

from .common import natural, note, output_file, positive
from .observations import Observation, read_observation
from .runs import load_run

SUFFIXES = (".npy", ".csv", ".h5", ".hdf5")
CHUNK = 65536
r"""The draws per call of the posterior's ``sample``."""


def configure(parser: argparse.ArgumentParser) -> None:
    r"""Adds the arguments of ``sbikit sample``."""

    parser.add_argument("run", metavar="RUN", help="a run directory written by 'sbikit train'")
    parser.add_argument(
        "--obs",
        required=True,
        metavar="OBS",
        help="the observation: TASK:k (the task's k-th published observation) or a .npy, "
        ".csv, .pt or .json file holding one observation",
    )
    parser.add_argument(
        "-n", "--num-samples", type=positive, default=10000, help="(default: 10000)"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="where to write the draws: .npy, .csv (header theta_1,...) or .h5 (/theta)",
    )
    parser.add_argument("--seed", type=natural, default=0, help="(default: 0)")


def draw(posterior: NPE, x: Tensor, num_samples: int, seed: int, progress: bool) -> Tensor:
    r"""``num_samples`` draws of ``posterior(x)``, :math:`(n, D)`, from the seed (torch's
    global generator is left as it was).

    Example:
        >>> posterior = NPE(2, 3, transforms=1, hidden_features=(8,))
        >>> draw(posterior, torch.zeros(3), 100, seed=0, progress=False).shape
        torch.Size([100, 2])
    """

    q = posterior(x)
    chunks = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        with tqdm(total=num_samples, desc="sample", unit_scale=True, disable=not progress) as bar:
            for start in range(0, num_samples, CHUNK):
                size = min(CHUNK, num_samples - start)
                chunks.append(q.sample((size,)).cpu())
                bar.update(size)
    return torch.cat(chunks)


def write_samples(path: Path, theta: Tensor, attributes: dict) -> None:
    r"""Writes draws :math:`(n, D)` as ``.npy``, ``.csv`` or ``.h5`` (by the suffix)."""

    values = theta.numpy().astype(np.float32)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, values, allow_pickle=False)
    elif suffix == ".csv":
        header = ",".join(f"theta_{i + 1}" for i in range(values.shape[1]))
        np.savetxt(path, values, delimiter=",", header=header, comments="", fmt="%.7g")
    else:
        with h5py.File(path, "w") as f:
            f.create_dataset("theta", data=values)
            f.attrs.update({"format": "sbikit-samples", "sbikit_version": __version__})
            f.attrs.update({k: v for k, v in attributes.items() if v is not None})


def summary(theta: Tensor, observation: Observation) -> str:
    r"""The mean, standard deviation and 90 % interval of each parameter (and the true
    value, when known).

    Example:
        >>> obs = Observation("two_moons:1", torch.zeros(2), torch.tensor([0.5, -0.5]))
        >>> print(summary(torch.zeros(100, 2), obs))
        parameter      mean       std        5%       95%      true
        theta_1      0.0000    0.0000    0.0000    0.0000    0.5000
        theta_2      0.0000    0.0000    0.0000    0.0000   -0.5000
    """

    theta = theta.double()
    quantiles = torch.quantile(theta, torch.tensor([0.05, 0.95], dtype=theta.dtype), dim=0)
    columns = [theta.mean(0), theta.std(0), quantiles[0], quantiles[1]]
    names = ["mean", "std", "5%", "95%"]
    if observation.theta is not None:
        columns.append(observation.theta.double())
        names.append("true")
    lines = ["parameter" + "".join(f"{name:>10}" for name in names)]
    for i in range(theta.shape[1]):
        cells = "".join(f"{column[i].item():10.4f}" for column in columns)
        lines.append(f"{f'theta_{i + 1}':9}{cells}")
    return "\n".join(lines)


def sample_command(args: argparse.Namespace) -> int:
    r"""Draws samples of a run's posterior for one observation and writes them."""

    output = output_file(args.output, SUFFIXES)
    run = load_run(args.run)
    observation = read_observation(args.obs, run.posterior.x_shape)
    trained_on = run.described.get("simulator")
    if observation.task and trained_on and observation.task != trained_on:
        note(
            args,
            f"sbikit: note: {observation.spec} is an observation of task {observation.task}, "
            f"but the run was trained on {trained_on}.",
        )
    theta = draw(run.posterior, observation.x, args.num_samples, args.seed, not args.quiet)
    attributes = {
        "run": str(run.path.resolve()),
        "observation": observation.spec,
        "x_obs": observation.x.numpy(),
        "theta_true": None if observation.theta is None else observation.theta.numpy(),
        "seed": args.seed,
    }
    write_samples(output, theta, attributes)
    print(
        f"{output}: {len(theta):,} draws of theta ({theta.shape[1]},) from the posterior of "
        f"{run.path} given {observation.spec}"
    )
    print(summary(theta, observation))
    return 0
