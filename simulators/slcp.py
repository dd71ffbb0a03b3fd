r"""slcp: simple likelihood, complex posterior (four symmetric modes)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from sbikit.distributions import BoxUniform

from .task import Task, mcmc_distribution

DRAWS = 4
BOUND = 3.0
JITTER = 1e-6


def slcp_moments(theta: Tensor) -> tuple[Tensor, Tensor]:
    r"""The mean :math:`m = (\theta_1, \theta_2)`, shape ``(N, 2)``, and the covariance
    :math:`\Sigma = [[s_1^2, \rho s_1 s_2], [\rho s_1 s_2, s_2^2]] + 10^{-6} I` with
    :math:`s_1 = \theta_3^2`, :math:`s_2 = \theta_4^2`, :math:`\rho = \tanh \theta_5`,
    shape ``(N, 2, 2)``."""

    s1, s2, rho = theta[:, 2] ** 2, theta[:, 3] ** 2, torch.tanh(theta[:, 4])
    off = rho * s1 * s2
    cov = torch.stack((torch.stack((s1**2, off), -1), torch.stack((off, s2**2), -1)), -2)
    return theta[:, :2], cov + JITTER * torch.eye(2, dtype=theta.dtype)


def slcp_simulate(theta: Tensor, generator: torch.Generator | None) -> Tensor:
    r"""Four draws of :math:`\mathcal{N}(m, \Sigma)`, flattened draw by draw: ``(N, 8)``."""

    mean, cov = slcp_moments(theta)
    z = torch.randn(len(theta), DRAWS, 2, generator=generator, dtype=theta.dtype)
    x = mean[:, None] + (torch.linalg.cholesky(cov)[:, None] @ z[..., None])[..., 0]
    return x.reshape(len(theta), 2 * DRAWS)


def slcp_log_likelihood(theta: Tensor, x: Tensor) -> Tensor:
    r"""The exact log-likelihood of the 8 SLCP values ``x`` (N, 8); returns ``(N,)``."""

    mean, cov = slcp_moments(theta)
    residual = x.reshape(len(x), DRAWS, 2) - mean[:, None]
    chol = torch.linalg.cholesky(cov)
    white = torch.linalg.solve_triangular(chol[:, None], residual[..., None], upper=False)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    quadratic = white[..., 0].pow(2).sum(dim=(-1, -2))
    return -0.5 * quadratic - DRAWS / 2 * (log_det + 2 * math.log(2 * math.pi))


class SignSymmetric(Distribution):
    r"""A distribution symmetric under sign flips of some coordinates, sampled from its
    restriction to the non-negative half of those coordinates (``folded``) followed by an
    independent random sign for each."""

    arg_constraints: dict = {}  # noqa: RUF012 (torch's own class attribute)

    def __init__(self, folded: Distribution, dims: list[int], support: constraints.Constraint):
        self.folded, self.dims, self._support = folded, dims, support
        super().__init__(event_shape=folded.event_shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return self._support

    @property
    def diagnostics(self):
        r"""The convergence diagnostics of the last MCMC run."""

        return self.folded.diagnostics

    def sample(self, sample_shape: torch.Size | tuple = ()) -> Tensor:
        theta = self.folded.sample(sample_shape).clone()
        signs = torch.where(torch.rand(*theta.shape[:-1], len(self.dims)) < 0.5, -1.0, 1.0)
        theta[..., self.dims] = theta[..., self.dims].abs() * signs.to(theta.dtype)
        return theta


def slcp_posterior(log_likelihood, prior: Distribution, settings: dict) -> Distribution:
    r"""The SLCP posterior for a log-likelihood ``theta (N, 5) -> (N,)``: MCMC chains on the
    half box :math:`\theta_3, \theta_4 \ge 0` (the likelihood depends on their squares only),
    started by importance resampling from the prior, then random signs; ``settings`` are
    those of the MCMC."""

    lower = torch.tensor([-BOUND, -BOUND, 0.0, 0.0, -BOUND], dtype=torch.float64)
    upper = torch.full((5,), BOUND, dtype=torch.float64)
    half_box = BoxUniform(lower, upper)
    folded = mcmc_distribution(
        lambda theta: log_likelihood(theta) + half_box.log_prob(theta), half_box, settings
    )
    return SignSymmetric(folded, [2, 3], prior.support)


class SLCP(Task):
    r"""slcp: :math:`\theta \sim U[-3, 3]^5`; :math:`x` is four draws of a bivariate
    Gaussian whose mean and covariance depend on :math:`\theta` (see :func:`slcp_moments`).

    The reference posterior is sampled by MCMC on the exact likelihood.

    Example:
        >>> task = SLCP()
        >>> task.simulate(task.prior.sample((3,))).shape
        torch.Size([3, 8])
    """

    name = "slcp"
    theta_dim = 5
    x_shape = (8,)
    labels = ("theta_1", "theta_2", "theta_3", "theta_4", "theta_5")
    mcmc_reference = True

    def build_prior(self) -> Distribution:
        return BoxUniform(torch.full((5,), -BOUND), torch.full((5,), BOUND))

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return slcp_simulate(theta, generator)

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return slcp_log_likelihood(theta, x)

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        return slcp_posterior(
            lambda theta: slcp_log_likelihood(theta, x_obs[None]), self.prior, self.mcmc_settings
        )
