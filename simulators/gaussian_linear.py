r"""gaussian_linear: a Gaussian prior and a Gaussian likelihood in 10 dimensions."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution

from sbikit.distributions import DiagNormal

from .task import Task, log_normal_pdf

NOISE_VARIANCE = 0.1


def add_noise(theta: Tensor, generator: torch.Generator | None) -> Tensor:
    r"""Draws :math:`x \sim \mathcal{N}(\theta, 0.1 I)`."""

    noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype)
    return theta + math.sqrt(NOISE_VARIANCE) * noise


def noise_log_likelihood(theta: Tensor, x: Tensor) -> Tensor:
    return log_normal_pdf(x, theta, math.sqrt(NOISE_VARIANCE)).sum(dim=-1)


class GaussianLinear(Task):
    r"""gaussian_linear: :math:`\theta \sim \mathcal{N}(0, 0.1 I_{10})` and
    :math:`x \sim \mathcal{N}(\theta, 0.1 I_{10})`.

    The posterior is Gaussian: :math:`\mathcal{N}(x_o / 2, 0.05 I)`.

    Example:
        >>> task = GaussianLinear()
        >>> task.reference_posterior(k=1).variance[:3]
        tensor([0.0500, 0.0500, 0.0500], dtype=torch.float64)
    """

    name = "gaussian_linear"
    theta_dim = 10
    x_shape = (10,)
    labels = tuple(f"theta_{i + 1}" for i in range(10))

    def build_prior(self) -> Distribution:
        return DiagNormal(torch.zeros(10), torch.full((10,), math.sqrt(0.1)))

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return add_noise(theta, generator)

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return noise_log_likelihood(theta, x)

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        return DiagNormal(x_obs / 2, torch.full_like(x_obs, math.sqrt(0.05)))
