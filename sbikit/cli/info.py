r"""``sbikit info`` and ``sbikit tasks``: what a file or run holds, and the tasks."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import h5py

import simulators
from sbikit import data

from .common import seconds
from .errors import CommandError
from .runs import CONFIG, load_run
from .specs import RECORDED


def configure_info(parser: argparse.ArgumentParser) -> None:
    r"""Adds the arguments of ``sbikit info``."""

    parser.add_argument(
        "path", metavar="FILE_OR_RUN", help="a simulation or samples file, or a run directory"
    )


def info_command(args: argparse.Namespace) -> int:
    r"""Prints what a simulation file, a samples file or a run directory holds."""

    path = Path(args.path)
    if not path.exists():
        raise CommandError(f"{str(path)!r} does not exist.")
    if path.is_dir():
        print(run_info(path))
    elif h5py.is_hdf5(path) and samples_format(path):
        print(samples_info(path))
    else:
        held = data.info(path)
        named = {key: held[value] for key, value in RECORDED.items() if value in held}
        if named:
            named = ", ".join(f"{key} {value}" for key, value in named.items())
            print(f"  as the command line names them: {named}")
    return 0


def samples_format(path: Path) -> bool:
    r"""Whether an HDF5 file holds draws written by ``sbikit sample``."""

    with h5py.File(path, "r") as f:
        return f.attrs.get("format") == "sbikit-samples"


def samples_info(path: Path) -> str:
    r"""A few lines about a file of draws written by ``sbikit sample``."""

    with h5py.File(path, "r") as f:
        shape = f["theta"].shape
        found = dict(f.attrs)
    return (
        f"{path}: {shape[0]:,} posterior draws of theta ({shape[1]},)\n"
        f"  run {found.get('run')}, observation {found.get('observation')}, seed "
        f"{found.get('seed')}, written by sbikit {found.get('sbikit_version')}"
    )


def run_info(path: Path) -> str:
    r"""A few lines about a run directory: architecture, prior, data and training."""

    run = load_run(path)
    posterior, described = run.posterior, run.described
    config = posterior.config
    flow, embedding, support = config["flow"], config["embedding"], config["support"]
    versions = json.loads((path / CONFIG).read_text()).get("versions", {})
    lines = [
        f"{path}: NPE posterior q(theta | x), theta ({config['theta_dim']},), "
        f"x {tuple(config['x_shape'])}",
        f"  flow {flow['name'] or flow['factory']} {json.dumps(flow['options'])}, embedding "
        f"{'none' if embedding is None else embedding['name'] or embedding['module']}",
        f"  support {'real' if support is None else support_text(support)}",
    ]
    if described.get("simulator"):
        prior = described.get("prior") or "the task's"
        lines.append(f"  simulator {described['simulator']}, prior {prior}")
    if described.get("data"):
        lines.append(f"  data {described['data']} ({described.get('data_rows', 0):,} pairs)")
    history = posterior.history
    if history:
        lines.append(
            f"  trained {len(history['epoch'])} epochs on {history['train_rows']:,} pairs "
            f"(+ {history['validation_rows']:,} for validation) in "
            f"{seconds(sum(history['time']))}: best epoch {history['best_epoch']}, "
            f"validation loss {history['best_validation_loss']:.4f}, stopped: "
            f"{history['stopped']}"
        )
    if versions:
        lines.append("  saved by " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return "\n".join(lines)


def support_text(support: dict) -> str:
    r"""The support of a prior as a config describes it.

    Example:
        >>> support_text({"kind": "interval", "lower": [0.0], "upper": [1.0]})
        'interval, lower [0.0], upper [1.0]'
    """

    bounds = [f"{key} {support[key]}" for key in ("lower", "upper") if support[key] is not None]
    return ", ".join([support["kind"].replace("_", " "), *bounds])


def tasks_command(args: argparse.Namespace) -> int:
    r"""Lists the tasks: name, parameter dimension, observation shape, description."""

    rows = []
    for name in simulators.names():
        task = simulators.get(name)
        rows.append((name, str(task.theta_dim), str(tuple(task.x_shape)), description(task)))
    widths = [max(len(row[i]) for row in [*rows, ("task", "θ dim", "x shape")]) for i in range(3)]
    header = ("task", "θ dim", "x shape", "description")
    for row in [header, *rows]:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0


def description(task: simulators.Task) -> str:
    r"""The one-line description of a task, from its module's docstring.

    Example:
        >>> description(simulators.get("two_moons"))
        'a crescent-shaped likelihood with a bimodal posterior'
    """

    doc = (sys.modules[type(task).__module__].__doc__ or "").strip().splitlines()
    line = doc[0] if doc else ""
    line = line.removeprefix(f"{task.name}:").strip().rstrip(".")
    line = re.sub(r":math:`([^`]*)`", r"\1", line)
    return line.replace("\\theta", "θ")
