r"""``sbikit simulate`` and ``sbikit merge``: simulation files."""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py

from sbikit import data

from .common import natural, output_file, positive, require_file
from .errors import CommandError
from .specs import RECORDED, Source, source

DEFAULTS = {"seed": 0, "block_size": 1000, "vectorized": True, "shard": None}


def shard(text: str) -> tuple[int, int]:
    r"""An argument type: ``i/n``, shard ``i`` (from 0) of ``n``.

    Example:
        >>> shard("2/8")
        (2, 8)
    """

    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n such as 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected 0 <= i < n in i/n, got {text!r}")
    return i, n


def configure_simulate(parser: argparse.ArgumentParser) -> None:
    r"""Adds the arguments of ``sbikit simulate``."""

    parser.add_argument(
        "simulator",
        metavar="TASK_OR_MODULE:FUNCTION",
        help="a task (see 'sbikit tasks') or a function of your module, e.g. "
        "mymodule:simulate (the current directory is searched first)",
    )
    parser.add_argument(
        "-n", "--num-simulations", type=positive, metavar="N", help="the pairs the file holds"
    )
    parser.add_argument("-o", "--output", required=True, metavar="FILE.h5", help="the file")
    parser.add_argument(
        "--prior",
        metavar="MODULE:NAME",
        help="the prior, a torch Distribution or a function without arguments that returns "
        "one (default: the task's, or MODULE:prior for MODULE:FUNCTION)",
    )
    parser.add_argument("--seed", type=natural, help="the seed of the stream (default: 0)")
    parser.add_argument(
        "--workers", type=positive, default=1, help="local worker processes (default: 1)"
    )
    parser.add_argument(
        "--block-size", type=positive, metavar="B", help="draws per block (default: 1000)"
    )
    parser.add_argument(
        "--shard", type=shard, metavar="i/n", help="write shard i (from 0) of n; see merge"
    )
    parser.add_argument(
        "--vectorized",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the simulator takes a batch (N, D) of parameters (default) or one "
        "vector (D,) at a time",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", action="store_true", help="continue an interrupted file up to -n pairs"
    )
    mode.add_argument("--more", type=positive, metavar="N", help="add N pairs to a file")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing file")


def simulate_command(args: argparse.Namespace) -> int:
    r"""Simulates pairs into a file, or continues or extends one."""

    named = source(args.simulator, args.prior)
    path = output_file(args.output)
    settings = {key: getattr(args, key) for key in DEFAULTS}
    if args.resume or args.more:
        if not path.exists():
            raise CommandError(
                f"{str(path)!r} does not exist: --resume and --more continue a file. Leave them "
                f"out to start it."
            )
        held = data.info(path, verbose=False)
        found = {key: held.get(key) for key in DEFAULTS}
        if held.get("num_shards", 1) > 1:
            found["shard"] = (held["shard"], held["num_shards"])
        settings = {key: found[key] if value is None else value for key, value in settings.items()}
        target = held["rows"] + args.more if args.more else args.num_simulations
        if args.more and args.num_simulations:
            raise CommandError("pass either -n (the total) or --more N (the pairs to add).", 2)
    else:
        if path.exists() and not args.overwrite:
            raise CommandError(
                f"{str(path)!r} exists. Pass --resume to continue it, --more N to add N "
                f"pairs, or --overwrite to replace it."
            )
        settings = {key: DEFAULTS[key] if v is None else v for key, v in settings.items()}
        target = args.num_simulations
    if target is None:
        raise CommandError("pass -n N, the number of pairs the file should hold.", 2)
    prior = named.load_prior()
    task = named.task if named.prior is None else None
    i, n = settings["shard"] or (None, None)
    try:
        held = data.simulate(
            task or prior,
            target,
            path,
            simulator=None if task else named.load_simulator(),
            seed=settings["seed"],
            block_size=settings["block_size"],
            workers=args.workers,
            vectorized=settings["vectorized"],
            progress=not args.quiet,
            overwrite=args.overwrite,
            shard=i,
            num_shards=n,
        )
    except KeyboardInterrupt:
        raise CommandError(
            f"interrupted: {path} holds {committed(path):,} of {target:,} pairs. Run the same "
            f"command with --resume to continue it.",
            130,
        ) from None
    record(path, named)
    print(described(held))
    return 0


def committed(path: Path) -> int:
    r"""The committed rows of a simulation file (0 if it cannot be read)."""

    try:
        return data.info(path, verbose=False)["rows"]
    except (OSError, ValueError):
        return 0


def record(path: Path, named: Source) -> None:
    r"""Records in a file's attributes how the command line names its simulator and prior."""

    with h5py.File(path, "r+") as f:
        for key, value in named.describe().items():
            if value is None:
                f.attrs.pop(RECORDED[key], None)
            else:
                f.attrs[RECORDED[key]] = value


def described(held: dict) -> str:
    r"""One line about a simulation file."""

    dropped = f", {held['dropped']:,} invalid draws dropped" if held["dropped"] else ""
    return (
        f"{held['path']}: {held['rows']:,} pairs, theta {held['theta_shape']}, "
        f"x {held['x_shape']}{dropped}"
    )


def configure_merge(parser: argparse.ArgumentParser) -> None:
    r"""Adds the arguments of ``sbikit merge``."""

    parser.add_argument("files", nargs="+", metavar="SHARD.h5", help="the files to join")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.h5", help="the result")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result")


def merge_command(args: argparse.Namespace) -> int:
    r"""Joins shard files into one file of virtual datasets."""

    files = [require_file(path, "shard file") for path in args.files]
    path = output_file(args.output)
    if path.exists() and not args.overwrite:
        raise CommandError(f"{str(path)!r} exists. Pass --overwrite to replace it.")
    held = data.join(files, path, overwrite=args.overwrite)
    names = []
    for file in files:
        with h5py.File(file, "r") as f:
            names.append({key: f.attrs.get(key) for key in RECORDED.values()})
    if all(name == names[0] for name in names):
        with h5py.File(path, "r+") as f:
            f.attrs.update({key: value for key, value in names[0].items() if value is not None})
    print(described(held))
    return 0
