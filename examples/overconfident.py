r"""What failure looks like: the calibration report of an overconfident posterior.

gaussian_linear has θ ~ N(0, 0.1 I) and x | θ ~ N(θ, 0.1 I) in 10 dimensions, so its
posterior is known exactly: N(x / 2, 0.05 I). The script checks two posteriors on the same
held-out pairs (θ*, x) with ``sbikit.diagnostics.check``:

- the exact posterior, whose credible regions hold θ* as often as they claim;
- the same posterior with its standard deviation shrunk to 70 %: the centre is right, but the
  regions are too narrow, the typical failure of an estimator that has overfitted.

It prints both verdicts and writes both HTML reports: open them side by side to see what an
overconfident posterior looks like (coverage curves below the diagonal, ∪-shaped rank
histograms, z-scores spread wider than 1).

Run it with ``python examples/overconfident.py`` (under a minute); the reports go into
``overconfident-run/`` (``--out`` to change it). ``--quick`` uses fewer test pairs and
draws (300 and 200), which are still enough to tell the two apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import simulators
from sbikit.diagnostics import check
from sbikit.distributions import DiagNormal

SHRINK = 0.7
r"""The overconfident posterior's standard deviation, relative to the exact one."""


def exact_posterior(x: torch.Tensor) -> DiagNormal:
    r"""gaussian_linear's posterior N(x / 2, 0.05 I): observations (N, 10), batch shape (N,)."""

    return DiagNormal(x / 2, torch.full_like(x, 0.05**0.5))


def overconfident_posterior(x: torch.Tensor) -> DiagNormal:
    r"""The exact posterior with its standard deviation shrunk to 70 %."""

    exact = exact_posterior(x)
    return DiagNormal(exact.mean, SHRINK * exact.stddev)


def main(out: str | Path = "overconfident-run", quick: bool = False, progress: bool = True) -> dict:
    r"""Checks both posteriors and returns their reports, ``{"exact": ..., "overconfident":
    ...}``."""

    num_pairs, num_samples = (300, 200) if quick else (1000, 1000)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = simulators.get("gaussian_linear")

    # Held-out test pairs, drawn from the prior and the simulator.
    torch.manual_seed(0)
    theta = task.prior.sample((num_pairs,))
    x = task.simulate(theta, generator=torch.Generator().manual_seed(0))

    reports = {}
    for name, posterior in [("exact", exact_posterior), ("overconfident", overconfident_posterior)]:
        report = check(
            posterior,
            theta,
            x,
            num_samples=num_samples,
            x_obs=task.observation(1),
            theta_obs=task.true_parameters(1),
            prior=task.prior,
            description=f"gaussian_linear, the {name} posterior",
            progress=progress,
        )
        path = report.to_html(out / f"{name}.html")
        print(f"\n=== the {name} posterior: {report.verdict} (report: {path})")
        print(report.summary().split("\nParameters")[0])  # the verdict and its reasons
        print(f"  z-scores: sd {report.summaries.std_z.mean():.2f} on average (1 when calibrated)")
        reports[name] = report

    print(
        f"\nverdicts: exact {reports['exact'].verdict}, "
        f"shrunk to {SHRINK:.0%} {reports['overconfident'].verdict}"
    )
    return reports


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="overconfident-run", help="where the files go")
    parser.add_argument("--quick", action="store_true", help="fewer test pairs and draws")
    main(**vars(parser.parse_args()))
