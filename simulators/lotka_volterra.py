r"""lotka_volterra: predator-prey dynamics observed with log-normal noise."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, LogNormal, constraints

from ._ode import solve_batch
from .task import Task, log_normal_pdf

TIMES = 2.1 * torch.arange(10, dtype=torch.float64)  # 0, 2.1, ..., 18.9
INITIAL = (30.0, 1.0)
NOISE = 0.1
RTOL = 1e-8
ATOL = 1e-12  # stricter than RTOL: the prey can fall to 1e-6, where 1e-8 is not accurate


def lotka_volterra_dynamics(t: Tensor, y: Tensor, params: Tensor) -> Tensor:
    u, v = y[:, 0], y[:, 1]
    alpha, beta, gamma, delta = params.unbind(dim=-1)
    return torch.stack((alpha * u - beta * u * v, -gamma * v + delta * u * v), dim=-1)


def log_populations(theta: Tensor) -> Tensor:
    r"""The log of the clamped populations, :math:`\log \mathrm{clamp}(\cdot, 10^{-10},
    10^4)`, u at the 10 times then v: ``(N, 20)``, NaN rows where the solve failed."""

    y0 = torch.tensor(INITIAL, dtype=torch.float64)
    y = solve_batch(lotka_volterra_dynamics, y0, TIMES, theta, rtol=RTOL, atol=ATOL)
    values = y.transpose(-1, -2).reshape(len(theta), 20)  # (N, 2, 10) -> u then v
    return torch.log(torch.clamp(values, 1e-10, 1e4))


class LotkaVolterra(Task):
    r"""lotka_volterra: :math:`u' = \alpha u - \beta u v`, :math:`v' = -\gamma v + \delta u v`
    with :math:`(u, v)(0) = (30, 1)`, solved to relative tolerance :math:`10^{-8}`; the data
    are u and v at :math:`t = 0, 2.1, \dots, 18.9` (u at the 10 times, then v), each with
    log-normal noise: :math:`x \sim \mathrm{LogNormal}(\log \mathrm{clamp}(\cdot, 10^{-10},
    10^4), 0.1)`.

    The prior is log-normal with locations :math:`(-0.125, -3, -0.125, -3)` and scale 0.5.
    A failed solve gives a row of NaN. The reference posterior is sampled by MCMC on the
    exact likelihood.

    Example:
        >>> task = LotkaVolterra()
        >>> task.simulate(task.prior.sample((3,))).shape
        torch.Size([3, 20])
    """

    name = "lotka_volterra"
    theta_dim = 4
    x_shape = (20,)
    labels = ("alpha", "beta", "gamma", "delta")
    domain = constraints.positive
    mcmc_reference = True
    # a likelihood evaluation is an ODE solve whose cost hardly depends on the batch, so
    # the cost is the number of steps. The chains' integrated autocorrelation time is about
    # 70 Metropolis steps here (1.8 kept steps at thin 40), and the split R-hat of T kept
    # steps is about 1 + (tau - 1) / T: 120 kept steps bring it below 1.01 (1.009 measured
    # for observation 1, in 13 minutes on 2 cores).
    mcmc_settings: ClassVar[dict] = {
        "chains": 200,
        "warmup": 500,
        "thin": 40,
        "method": "metropolis",
        "min_steps": 120,
    }

    def build_prior(self) -> Distribution:
        loc = torch.tensor([-0.125, -3.0, -0.125, -3.0])
        return Independent(LogNormal(loc, torch.full((4,), 0.5)), 1)

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        log_values = log_populations(theta)
        noise = torch.randn(log_values.shape, generator=generator, dtype=log_values.dtype)
        return torch.exp(log_values + NOISE * noise)

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        log_x = torch.log(x)
        log_l = (log_normal_pdf(log_x, log_populations(theta), NOISE) - log_x).sum(dim=-1)
        return log_l.nan_to_num(-math.inf)

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        return self.mcmc_posterior(x_obs)
