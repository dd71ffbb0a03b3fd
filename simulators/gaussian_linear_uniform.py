r"""gaussian_linear_uniform: a uniform prior on a box and a Gaussian likelihood."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, Normal

from sbikit.distributions import BoxUniform, Independent, Truncated

from .gaussian_linear import NOISE_VARIANCE, add_noise, noise_log_likelihood
from .task import Task


class GaussianLinearUniform(Task):
    r"""gaussian_linear_uniform: :math:`\theta \sim U[-1, 1]^{10}` and
    :math:`x \sim \mathcal{N}(\theta, 0.1 I_{10})`.

    The posterior is :math:`\mathcal{N}(x_o, 0.1 I)` truncated to the prior's box, sampled
    exactly (by the inverse CDF of each truncated coordinate).

    Example:
        >>> task = GaussianLinearUniform()
        >>> theta = task.reference_posterior(k=1).sample((1000,))
        >>> bool(theta.abs().max() <= 1)
        True
    """

    name = "gaussian_linear_uniform"
    theta_dim = 10
    x_shape = (10,)
    labels = tuple(f"theta_{i + 1}" for i in range(10))

    def build_prior(self) -> Distribution:
        return BoxUniform(-torch.ones(10), torch.ones(10))

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return add_noise(theta, generator)

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return noise_log_likelihood(theta, x)

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        normal = Normal(x_obs, math.sqrt(NOISE_VARIANCE))
        return Independent(Truncated(normal, -1.0, 1.0), 1)
