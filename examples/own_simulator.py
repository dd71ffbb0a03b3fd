r"""Your own simulator: a damped harmonic oscillator, from the prior to a checked posterior.

A mass on a spring, released from rest at a displacement x0, oscillates with natural
angular frequency ω (rad/s) and damping ratio ζ:

    x(t) = x0 · exp(-ζωt) · (cos(ω_d t) + ζω / ω_d · sin(ω_d t)),   ω_d = ω √(1 - ζ²).

A sensor records the displacement at 50 times over 10 seconds, with Gaussian noise of
0.05. Its range is ±2: a run whose reading leaves it is lost, and the simulator returns a
row of NaN for it, which sbikit counts and drops. The parameters θ = (ω, ζ, x0) are
positive, with log-normal prior beliefs truncated to a physically admissible box.

The module defines what sbikit needs, ``prior`` and ``simulate``, at the top level, so the
command line can use it too (from this directory)::

    sbikit simulate own_simulator:simulate -n 10000 -o oscillator.h5
    sbikit train oscillator.h5 -o oscillator-run/

Run it with ``python examples/own_simulator.py`` (one to two minutes on a laptop CPU); the
files go into ``oscillator-run/`` (``--out`` to change it). ``--quick`` runs the same steps
on a tiny budget in seconds, to try the code: its numbers mean nothing.

With 10,000 simulations the point estimates are good, yet the check can find the credible
regions too narrow (verdict ``overconfident``): that is what the check is for, and
``docs/own-simulator.md`` says what to do about it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.distributions import LogNormal

import sbikit
from sbikit.data import simulate as simulate_to_file
from sbikit.diagnostics import check
from sbikit.distributions import Truncated
from sbikit.inference import NPE

LABELS = ("omega", "zeta", "x0")
TIMES = torch.linspace(0.0, 10.0, 50)  # seconds
NOISE = 0.05  # the sensor's noise, in the units of x0
SENSOR_RANGE = 2.0  # a run whose reading leaves [-2, 2] is lost

# Prior beliefs: ω around 1.5 rad/s, light damping (ζ around 0.1), x0 around 1, each
# log-normal, truncated to the box where the model holds (0 < ζ < 1: underdamped).
prior = Truncated(
    LogNormal(torch.tensor([1.5, 0.1, 1.0]).log(), torch.tensor([0.5, 0.8, 0.4])),
    lower=torch.tensor([0.3, 0.01, 0.3]),
    upper=torch.tensor([6.0, 0.9, 3.0]),
).to_event(1)  # a distribution over vectors: event shape (3,), support the box


def simulate(theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Simulates the sensor's readings: θ = (ω, ζ, x0) of shape (*, 3) to x of shape
    (*, 50), float32, with a row of NaN for each lost run. All randomness comes from
    ``generator``, so sbikit can make the simulations reproducible."""

    theta = theta.double()  # float64 inside, float32 out
    omega, zeta, x0 = theta[..., 0:1], theta[..., 1:2], theta[..., 2:3]  # each (*, 1)
    t = TIMES.double()
    omega_d = omega * torch.sqrt(1 - zeta**2)
    phase = torch.cos(omega_d * t) + zeta * omega / omega_d * torch.sin(omega_d * t)
    x = x0 * torch.exp(-zeta * omega * t) * phase
    x = x + NOISE * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    lost = x.abs().amax(dim=-1) > SENSOR_RANGE
    x[lost] = float("nan")  # a failed run: sbikit counts it and drops it
    return x.float()


BUDGETS = {
    "full": {"simulations": 10_000, "test pairs": 1000, "epochs": 100, "transforms": 3,
             "hidden features": (64, 64), "draws per test pair": 1000},
    "quick": {"simulations": 1000, "test pairs": 100, "epochs": 2, "transforms": 1,
              "hidden features": (16,), "draws per test pair": 100},
}  # fmt: skip


def main(out: str | Path = "oscillator-run", quick: bool = False, progress: bool = True) -> dict:
    r"""Simulates, trains, samples the posterior of one recording and checks the
    calibration; returns the ``samples`` (10000, 3), the ``report`` and the ``info`` of the
    simulation file."""

    budget = BUDGETS["quick" if quick else "full"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # Simulate (θ, x) pairs into HDF5. Lost runs are counted in the file and never stored.
    info = simulate_to_file(
        prior,
        budget["simulations"],
        out / "oscillator.h5",
        simulator=simulate,
        seed=0,
        overwrite=True,
        progress=progress,
    )
    print(
        f"{info['rows']} pairs stored; {info['dropped_nonfinite']} of the {info['simulated']} "
        "runs simulated were lost, and dropped"
    )

    # Train q(θ | x): the prior's box is built into the flow, so samples never leave it.
    torch.manual_seed(0)
    posterior = NPE(
        3,
        len(TIMES),
        prior=prior,
        transforms=budget["transforms"],
        hidden_features=budget["hidden features"],
    )
    history = sbikit.fit(
        posterior, out / "oscillator.h5", epochs=budget["epochs"], progress=progress
    )
    print(f"trained: best epoch {history['best_epoch']} of {len(history['epoch'])}")

    # One recording, from known parameters, and its posterior.
    generator = torch.Generator().manual_seed(1)
    theta_true = torch.tensor([1.2, 0.15, 1.0])
    x_obs = simulate(theta_true, generator)
    with torch.no_grad():
        samples = posterior(x_obs).sample((10000,))  # (10000, 3)
    low, high = samples.quantile(torch.tensor([0.05, 0.95]), dim=0)
    print("posterior of the recording, 90 % intervals:")
    for d, label in enumerate(LABELS):
        print(
            f"  {label:>5}: mean {samples[:, d].mean():.3f}, [{low[d]:.3f}, {high[d]:.3f}], "
            f"true {theta_true[d]:.3f}"
        )

    # Check the calibration on fresh pairs from the prior (lost runs are dropped and counted).
    torch.manual_seed(2)
    theta_test = prior.sample((budget["test pairs"],))
    report = check(
        posterior,
        theta_test,
        simulate(theta_test, generator),
        num_samples=budget["draws per test pair"],
        x_obs=x_obs,
        theta_obs=theta_true,
        prior=prior,
        history=history,
        description="damped harmonic oscillator: ω, ζ, x0 from 50 noisy readings",
        labels=LABELS,
        progress=progress,
    )
    print(report.summary())
    html = report.to_html(out / "report.html")
    print(f"report: {html}")
    return {"samples": samples, "report": report, "info": info, "html": html}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="oscillator-run", help="where the files go")
    parser.add_argument("--quick", action="store_true", help="a tiny budget, to try the code")
    main(**vars(parser.parse_args()))
