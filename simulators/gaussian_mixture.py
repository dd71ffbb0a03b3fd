r"""gaussian_mixture: a mixture of a broad and a narrow Gaussian around :math:`\theta`."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, Normal

from sbikit.distributions import BoxUniform, Independent, Mixture, Truncated

from .task import Task, log_normal_pdf

BOUND = 10.0
SCALES = (1.0, 0.1)  # standard deviations of the two components


class GaussianMixture(Task):
    r"""gaussian_mixture: :math:`\theta \sim U[-10, 10]^2` and, for each row independently,
    :math:`x \sim \mathcal{N}(\theta, I)` or :math:`\mathcal{N}(\theta, 0.01 I)` with
    probability 1/2 each.

    The posterior is the same mixture centred on :math:`x_o`, truncated to the prior's box;
    it is sampled exactly (the components' weights account for their mass in the box).

    Example:
        >>> task = GaussianMixture()
        >>> task.reference_posterior(k=1).sample((5,)).shape
        torch.Size([5, 2])
    """

    name = "gaussian_mixture"
    theta_dim = 2
    x_shape = (2,)
    labels = ("theta_1", "theta_2")

    def build_prior(self) -> Distribution:
        return BoxUniform(torch.full((2,), -BOUND), torch.full((2,), BOUND))

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        broad = torch.rand(len(theta), 1, generator=generator, dtype=theta.dtype) < 0.5
        scale = torch.where(broad, SCALES[0], SCALES[1])
        return theta + scale * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        components = [log_normal_pdf(x, theta, s).sum(dim=-1) for s in SCALES]
        return torch.logsumexp(torch.stack(components), dim=0) - math.log(2)

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        scales = torch.tensor(SCALES, dtype=x_obs.dtype)[:, None]  # (K, 1)
        normal = Normal(x_obs.expand(2, 2), scales.expand(2, 2))
        inside = normal.cdf(torch.tensor(BOUND)) - normal.cdf(torch.tensor(-BOUND))
        base = Independent(Truncated(normal, -BOUND, BOUND), 1)
        return Mixture(base, inside.log().sum(dim=-1))
