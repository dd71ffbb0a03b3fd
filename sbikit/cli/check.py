r"""``sbikit check``: the calibration of a run's posterior on held-out simulations."""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import torch

from sbikit import data, diagnostics

from .common import natural, note, output_file, positive, require_file
from .errors import CommandError
from .observations import read_observation
from .runs import Run, load_run

EXIT_CODES = {"calibrated": 0, "conservative": 0, "overconfident": 3}
r"""The exit code of each verdict."""

EPILOG = """\
exit status:
  0  calibrated, or conservative (the posterior is wider than it needs to be; flagged)
  1  an error (a missing file, a file of another shape, ...)
  2  a usage error
  3  overconfident: the posterior is narrower than it should be; do not trust it
"""


def configure(parser: argparse.ArgumentParser) -> None:
    r"""Adds the arguments of ``sbikit check``."""

    parser.add_argument("run", metavar="RUN", help="a run directory written by 'sbikit train'")
    parser.add_argument(
        "test", metavar="TEST.h5", help="held-out pairs, simulated with another seed"
    )
    parser.add_argument("-o", "--output", metavar="REPORT.html", help="write the HTML report there")
    parser.add_argument("--json", metavar="REPORT.json", help="write the report as JSON there")
    parser.add_argument(
        "--num-samples",
        type=positive,
        default=1000,
        metavar="L",
        help="posterior draws per test pair (default: 1000)",
    )
    parser.add_argument(
        "--num-pairs", type=positive, metavar="N", help="use the first N pairs (default: all)"
    )
    parser.add_argument(
        "--obs", metavar="OBS", help="an observation to show in the report: TASK:k or a file"
    )
    parser.add_argument("--seed", type=natural, default=0, help="(default: 0)")


def read_pairs(path: Path, run: Run, num_pairs: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The first ``num_pairs`` pairs of a simulation file, checked against the posterior."""

    held = data.info(path, verbose=False)
    posterior = run.posterior
    expected = ((posterior.theta_dim,), tuple(posterior.x_shape))
    if (held["theta_shape"], held["x_shape"]) != expected:
        raise CommandError(
            f"{path} holds theta {held['theta_shape']} and x {held['x_shape']}, but the "
            f"posterior of {run.path} takes theta {expected[0]} and x {expected[1]}."
        )
    rows = held["rows"] if num_pairs is None else min(num_pairs, held["rows"])
    if rows < 2:
        raise CommandError(f"{path} holds {held['rows']} pairs; the check needs at least 2.")
    with h5py.File(path, "r") as f:
        theta, x = (torch.from_numpy(f[key][:rows]) for key in ("theta", "x"))
    return theta, x


def warn_training_data(args: argparse.Namespace, run: Run, path: Path) -> None:
    r"""Notes when the test file is, or repeats, the training data."""

    trained = run.described.get("data")
    if trained is None:
        return
    if Path(trained) == path.resolve():
        note(args, f"sbikit: warning: {path} is the training data; the check is biased.")
        return
    held = data.info(path, verbose=False)
    seed = run.described.get("data_seed")
    if seed is not None and held.get("seed") == seed and Path(trained).exists():
        if data.info(trained, verbose=False)["simulator"] == held["simulator"]:
            note(
                args,
                f"sbikit: warning: {path} was simulated with the seed of the training data "
                f"({seed}), so its pairs repeat training pairs and the check is biased. "
                f"Simulate the test set with another --seed.",
            )


def check_command(args: argparse.Namespace) -> int:
    r"""Checks the calibration of a run's posterior and prints the verdict; returns 3 for an
    overconfident posterior."""

    html = output_file(args.output, (".html", ".htm")) if args.output else None
    report_json = output_file(args.json, (".json",)) if args.json else None
    run = load_run(args.run)
    path = require_file(args.test, "test file")
    theta, x = read_pairs(path, run, args.num_pairs)
    warn_training_data(args, run, path)
    observation = None
    if args.obs is not None:
        observation = read_observation(args.obs, run.posterior.x_shape)
    prior = None
    if run.source is not None:
        try:
            prior = run.load_prior()
        except CommandError as error:
            note(args, f"sbikit: note: the report goes without the prior: {error}")
    check = getattr(diagnostics, "check", None)
    if check is None:
        raise CommandError("this installation of sbikit has no sbikit.diagnostics.check.")
    described = {
        "run": str(run.path),
        "test data": str(path),
        "test pairs": len(theta),
        **{k: v for k, v in run.described.items() if k in ("simulator", "prior", "data")},
    }
    if observation is not None:
        described["observation"] = observation.spec
    report = check(
        run.posterior,
        theta,
        x,
        num_samples=args.num_samples,
        seed=args.seed,
        x_obs=None if observation is None else observation.x,
        theta_obs=None if observation is None else observation.theta,
        prior=prior,
        history=run.posterior.history,
        description=described,
        progress=not args.quiet,
    )
    print(report.summary())
    if html is not None:
        report.to_html(html)
        print(f"report: {html}")
    if report_json is not None:
        report.to_json(report_json)
        print(f"report (JSON): {report_json}")
    verdict = args.verdict = report.verdict
    if verdict not in EXIT_CODES:
        raise CommandError(f"the check returned an unknown verdict {verdict!r}.")
    print(f"verdict: {verdict}")
    if verdict == "conservative":
        print("flag: the posterior is conservative (wider than it needs to be): it can be trusted")
        print("  but is less precise than it could be; more simulations or training may help.")
    elif verdict == "overconfident":
        print("the posterior is overconfident: its credible regions hold the true parameters")
        print("  less often than they claim. Do not trust it; see the report, and what to try")
        print("  in docs/diagnostics.md ('When the verdict is overconfident').")
    return EXIT_CODES[verdict]
