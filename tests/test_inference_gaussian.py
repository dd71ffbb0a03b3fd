"""The full path on gaussian_linear: simulate to HDF5, fit NPE, sample, and compare with
the analytic posterior N(x_o / 2, 0.05 I)."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch

import sbikit
import simulators
from sbikit.data import simulate
from sbikit.diagnostics import c2st
from sbikit.inference import NPE

SAMPLES = 10000
VARIANCE = 0.05  # the posterior variance of each parameter


@pytest.mark.slow  # about 15 s on one idle core (training stops after about 60 epochs)
def test_npe_recovers_the_gaussian_linear_posterior(tmp_path):
    task = simulators.get("gaussian_linear")
    path = tmp_path / "gaussian_linear.h5"
    simulate(task, 10000, path, seed=0, progress=False)
    torch.manual_seed(0)
    posterior = NPE(10, 10, prior=task.prior, flow="maf", transforms=3, hidden_features=(64, 64))
    history = sbikit.fit(posterior, path, progress=False)
    assert history["stopped"] == "early_stopping"

    x_o = task.observation(1)
    with torch.no_grad():
        theta = posterior(x_o).sample((SAMPLES,))
    assert theta.shape == (SAMPLES, 10)

    # Tolerances: Monte-Carlo error of the estimates (standard errors below) plus what
    # 10^4 simulations can learn. For the mean, the shift that the C2ST bound below allows:
    # two Gaussians of one covariance whose means differ by delta standard deviations are
    # told apart with accuracy Phi(delta / 2), so C2ST < 0.6 means delta < 2 Phi^-1(0.6).
    # For the variances 15% (the published NPE reaches C2ST 0.55 here).
    mean_error = math.sqrt(VARIANCE / SAMPLES)  # 0.0022
    variance_error = VARIANCE * math.sqrt(2 / (SAMPLES - 1))  # 0.0007
    shift = 2 * NormalDist().inv_cdf(0.6)  # 0.51 posterior standard deviations
    mean = theta.mean(0)
    covariance = torch.cov(theta.T)
    assert (mean - x_o / 2).abs().max() < 4 * mean_error + shift * math.sqrt(VARIANCE)
    assert (covariance.diagonal() - VARIANCE).abs().max() < 4 * variance_error + 0.15 * VARIANCE
    off_diagonal = covariance - torch.diag(covariance.diagonal())
    assert off_diagonal.abs().max() < 4 * variance_error + 0.1 * VARIANCE

    reference = task.reference_posterior(x_o).sample((SAMPLES,))
    assert c2st(reference, theta) < 0.6
