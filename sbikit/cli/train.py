r"""``sbikit train``: a neural posterior estimator trained on a simulation file."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import torch

import sbikit
from sbikit import data
from sbikit.inference import NPE

from .common import natural, positive, require_file, seconds
from .errors import CommandError
from .runs import CHECKPOINT, CONFIG, write_run
from .specs import recorded_source


def configure(parser: argparse.ArgumentParser) -> None:
    r"""Adds the arguments of ``sbikit train``."""

    parser.add_argument("data", metavar="DATA.h5", help="a file written by 'sbikit simulate'")
    parser.add_argument("-o", "--output", required=True, metavar="RUN", help="the run directory")
    parser.add_argument(
        "--prior",
        metavar="MODULE:NAME",
        help="the prior (default: the one the file records: its task's, or MODULE:prior)",
    )
    parser.add_argument("--flow", help="a flow of sbikit.flows (default: nsf)")
    parser.add_argument(
        "--transforms", type=positive, metavar="T", help="the flow's transforms (NSF: 5)"
    )
    parser.add_argument(
        "--hidden-features",
        type=positive,
        nargs="+",
        metavar="H",
        help="the hidden layers of its networks (NSF: 128 128)",
    )
    parser.add_argument("--epochs", type=positive, help=f"at most (default: {DEFAULTS['epochs']})")
    parser.add_argument("--batch-size", type=positive, help=f"(default: {DEFAULTS['batch_size']})")
    parser.add_argument(
        "--learning-rate",
        type=float,
        metavar="LR",
        help=f"(default: {DEFAULTS['learning_rate']:g})",
    )
    parser.add_argument(
        "--patience",
        type=positive,
        help=f"epochs without improvement (default: {DEFAULTS['patience']})",
    )
    parser.add_argument(
        "--reductions",
        type=natural,
        help="halvings of the learning rate on plateaus; the next plateau stops the training "
        f"(default: {DEFAULTS['reductions']})",
    )
    parser.add_argument(
        "--validation",
        type=float,
        metavar="FRACTION",
        help=f"the pairs held out for early stopping (default: {DEFAULTS['validation']})",
    )
    parser.add_argument("--device", help="where to train: cpu, cuda, ... (default: cpu)")
    parser.add_argument("--seed", type=natural, help=f"(default: {DEFAULTS['seed']})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help=f"continue the training from RUN/{CHECKPOINT}, with its architecture and "
        "settings unless given (a finished run trains on with a larger --epochs)",
    )
    mode.add_argument("--overwrite", action="store_true", help="replace the run")


FIT_OPTIONS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "patience",
    "reductions",
    "validation",
    "seed",
)
DEFAULTS = {
    "flow": "nsf",
    **{name: inspect.signature(sbikit.fit).parameters[name].default for name in FIT_OPTIONS},
}
r"""The training options the command line does not require (those of :func:`sbikit.fit`)."""


def recorded(run: Path) -> tuple[dict, dict]:
    r"""The architecture options and the settings of the training checkpointed in a run
    directory, as the arguments of ``sbikit train`` name them."""

    state = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)
    flow = state["config"]["flow"]
    return {"flow": flow["name"], **flow["options"]}, state["settings"]


def check_directory(run: Path, args: argparse.Namespace) -> None:
    r"""Checks that the run directory may be written, or raises a :class:`CommandError`."""

    if run.exists() and not run.is_dir():
        raise CommandError(f"the run directory {str(run)!r} is a file.")
    if args.resume and not (run / CHECKPOINT).is_file():
        raise CommandError(f"cannot resume: {run / CHECKPOINT} does not exist.")
    if args.resume or args.overwrite:
        return
    if (run / CONFIG).exists():
        raise CommandError(
            f"{str(run)!r} holds a trained posterior. Pass --overwrite to replace it, or "
            f"--resume to continue its training."
        )
    if (run / CHECKPOINT).exists():
        raise CommandError(
            f"{str(run)!r} holds the checkpoint of an unfinished training. Pass --resume to "
            f"continue it, or --overwrite to start again."
        )


def train_command(args: argparse.Namespace) -> int:
    r"""Trains an NPE on a simulation file and saves it in a run directory."""

    path = require_file(args.data, "data file")
    held = data.info(path, verbose=False)
    try:
        named = recorded_source(held, args.prior)
        prior = named.load_prior()
    except CommandError as error:
        raise CommandError(
            f"cannot find the prior of {path}: {error} Pass it with --prior MODULE:NAME."
        ) from None
    if tuple(prior.event_shape) != held["theta_shape"]:
        raise CommandError(
            f"the prior ({named.prior_text()}) has event shape {tuple(prior.event_shape)}, but "
            f"the parameters in {path} have shape {held['theta_shape']}."
        )
    run = Path(args.output)
    check_directory(run, args)
    if args.overwrite:
        (run / CHECKPOINT).unlink(missing_ok=True)
    run.mkdir(parents=True, exist_ok=True)

    given = {"flow": args.flow, "transforms": args.transforms}
    given = {**given, "hidden_features": args.hidden_features}
    found_options, found_settings = recorded(run) if args.resume else ({}, {})
    options = {"flow": DEFAULTS["flow"], **found_options}
    options |= {key: value for key, value in given.items() if value is not None}
    settings = {key: getattr(args, key) for key in DEFAULTS if key != "flow"}
    settings = {
        key: found_settings.get(key, DEFAULTS[key]) if value is None else value
        for key, value in settings.items()
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["seed"])
        posterior = NPE(held["theta_shape"][0], held["x_shape"], prior=prior, **options)
    try:
        sbikit.fit(
            posterior,
            path,
            **settings,
            device=args.device,
            checkpoint=run / CHECKPOINT,
            resume=args.resume,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        raise CommandError(
            f"interrupted: the training's checkpoint is {run / CHECKPOINT}. Run the same "
            f"command with --resume to continue it.",
            130,
        ) from None
    sbikit.save(posterior, run, overwrite=True)
    described = {**named.describe(), "data": str(path.resolve()), "data_rows": held["rows"]}
    write_run(run, {**described, "data_seed": held.get("seed")})
    print(trained(posterior, path))
    print(f"saved to {run}")
    return 0


def trained(posterior: NPE, path: Path) -> str:
    r"""What a training did, from the posterior's config and history."""

    flow, history = posterior.config["flow"], posterior.history
    options = ", ".join(f"{key} {value}" for key, value in flow["options"].items())
    epochs = len(history["epoch"])
    return (
        f"NPE ({flow['name']}: {options}) trained on {history['train_rows']:,} + "
        f"{history['validation_rows']:,} validation pairs of {path}\n"
        f"best epoch {history['best_epoch']} of {epochs} ({history['stopped']}), validation "
        f"loss {history['best_validation_loss']:.4f}, {seconds(sum(history['time']))}"
    )
