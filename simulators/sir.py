r"""sir: the SIR epidemic model observed through binomial samples of the infected."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, LogNormal, constraints

from ._ode import solve_batch
from .task import Task

POPULATION = 1e6
TIMES = torch.arange(0.0, 160.0, 17.0, dtype=torch.float64)  # 0, 17, ..., 153
TESTED = 1000
TOLERANCE = 1e-8


def sir_dynamics(t: Tensor, y: Tensor, params: Tensor) -> Tensor:
    s, i = y[:, 0], y[:, 1]
    beta, gamma = params[:, 0], params[:, 1]
    infection = beta * s * i / POPULATION
    recovery = gamma * i
    return torch.stack((-infection, infection - recovery, recovery), dim=-1)


def infected_fraction(theta: Tensor) -> Tensor:
    r"""The fraction :math:`I(t_i) / N` at the 10 observation times, clamped to [0, 1];
    ``(N, 10)``, NaN rows where the solve failed."""

    y0 = torch.tensor([POPULATION - 1, 1.0, 0.0], dtype=torch.float64)
    y = solve_batch(sir_dynamics, y0, TIMES, theta, rtol=TOLERANCE, atol=TOLERANCE)
    return torch.clamp(y[..., 1] / POPULATION, 0.0, 1.0)


class SIR(Task):
    r"""sir: the SIR model :math:`S' = -\beta S I / N`, :math:`I' = \beta S I / N - \gamma I`,
    :math:`R' = \gamma I` with :math:`N = 10^6` and :math:`(S, I, R)(0) = (N - 1, 1, 0)`,
    solved to tolerance :math:`10^{-8}`; the data are
    :math:`x_i \sim \mathrm{Binomial}(1000, I(t_i) / N)` at :math:`t = 0, 17, \dots, 153`.

    :math:`\beta \sim \mathrm{LogNormal}(\log 0.4, 0.5)` and
    :math:`\gamma \sim \mathrm{LogNormal}(\log 0.125, 0.2)`. A failed solve gives a row of
    NaN. The reference posterior is sampled by MCMC on the exact likelihood.

    Example:
        >>> task = SIR()
        >>> task.simulate(task.prior.sample((3,))).shape
        torch.Size([3, 10])
    """

    name = "sir"
    theta_dim = 2
    x_shape = (10,)
    labels = ("beta", "gamma")
    domain = constraints.positive
    mcmc_reference = True
    # a likelihood evaluation is an ODE solve whose cost hardly depends on the batch: many
    # chains, one evaluation per step
    mcmc_settings: ClassVar[dict] = {
        "chains": 1000,
        "warmup": 500,
        "thin": 10,
        "method": "metropolis",
        "min_steps": 60,
    }

    def build_prior(self) -> Distribution:
        loc = torch.log(torch.tensor([0.4, 0.125]))
        return Independent(LogNormal(loc, torch.tensor([0.5, 0.2])), 1)

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        p = infected_fraction(theta)
        failed = p.isnan()
        counts = torch.full_like(p, float(TESTED))
        x = torch.binomial(counts, p.nan_to_num(0.0), generator=generator)
        return torch.where(failed.any(dim=-1, keepdim=True), torch.nan, x)

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        p = infected_fraction(theta)
        binomial = torch.distributions.Binomial(
            TESTED, probs=p.nan_to_num(0.5), validate_args=False
        )
        log_l = binomial.log_prob(x).sum(dim=-1)
        return torch.where(p.isnan().any(dim=-1), -torch.inf, log_l.nan_to_num(-torch.inf))

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        return self.mcmc_posterior(x_obs)
