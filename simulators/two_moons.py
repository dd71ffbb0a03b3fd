r"""two_moons: a crescent-shaped likelihood with a bimodal posterior."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from sbikit.distributions import BoxUniform

from .task import Task, log_normal_pdf

RADIUS_MEAN = 0.1
RADIUS_STD = 0.01
OFFSET = 0.25


def moon_points(shape: torch.Size, generator: torch.Generator | None) -> Tensor:
    r"""Draws :math:`p = (r \cos a + 0.25, r \sin a)`, :math:`a \sim U(-\pi/2, \pi/2)`,
    :math:`r \sim \mathcal{N}(0.1, 0.01^2)`; returns shape ``(*shape, 2)``."""

    a = math.pi * (torch.rand(shape, generator=generator, dtype=torch.float64) - 0.5)
    r = RADIUS_MEAN + RADIUS_STD * torch.randn(shape, generator=generator, dtype=torch.float64)
    return torch.stack((r * torch.cos(a) + OFFSET, r * torch.sin(a)), dim=-1)


class TwoMoonsPosterior(Distribution):
    r"""The exact two_moons posterior for one observation, sampled by inverting the
    simulator: for a draw :math:`p` of the moon, :math:`q = x_o - p` gives
    :math:`\theta_1 + \theta_2 = \pm\sqrt{2} |q_1|` (each sign with probability 1/2) and
    :math:`-\theta_1 + \theta_2 = \sqrt{2} q_2`; draws outside the prior are rejected.
    """

    arg_constraints: dict = {}  # noqa: RUF012 (torch's own class attribute)
    support = constraints.independent(constraints.interval(-1.0, 1.0), 1)

    def __init__(self, x_obs: Tensor):
        self.x_obs = x_obs
        super().__init__(event_shape=torch.Size([2]), validate_args=False)

    #: The most rounds of proposals in a row that may all fall outside the prior before
    #: ``sample`` gives up (an observation the simulator cannot produce from the prior).
    max_empty_rounds = 20

    def sample(self, sample_shape: torch.Size | tuple = ()) -> Tensor:
        n = math.prod(sample_shape)
        accepted: list[Tensor] = []
        empty_rounds = 0
        while sum(len(a) for a in accepted) < n:
            if empty_rounds == self.max_empty_rounds:
                raise ValueError(
                    f"two_moons: no draw of the posterior for x_obs={self.x_obs.tolist()} "
                    f"falls inside the prior box [-1, 1]^2 in {empty_rounds} rounds of "
                    f"proposals: this observation is (nearly) impossible under the model. "
                    f"Pass an observation simulated from the prior, e.g. task.observation(k)."
                )
            q = self.x_obs - moon_points(torch.Size([2 * n + 16]), None)
            sign = torch.where(torch.rand(len(q), dtype=q.dtype) < 0.5, -1.0, 1.0)
            total = sign * math.sqrt(2) * q[:, 0].abs()  # theta_1 + theta_2
            difference = math.sqrt(2) * q[:, 1]  # theta_2 - theta_1
            theta = torch.stack(((total - difference) / 2, (total + difference) / 2), dim=-1)
            accepted.append(theta[(theta.abs() <= 1).all(dim=-1)])
            empty_rounds = 0 if len(accepted[-1]) else empty_rounds + 1
        return torch.cat(accepted)[:n].reshape(*sample_shape, 2)


class TwoMoons(Task):
    r"""two_moons: :math:`\theta \sim U[-1, 1]^2`,
    :math:`x = p + (-|\theta_1 + \theta_2| / \sqrt{2}, (-\theta_1 + \theta_2) / \sqrt{2})`
    with :math:`p` a point of a noisy half-circle (see :func:`moon_points`).

    The likelihood has a closed form: in polar coordinates around :math:`(0.25, 0)`,
    :math:`p` has density :math:`\mathcal{N}(r \mid 0.1, 0.01^2) / (\pi r)` on the right
    half-plane (the angle is uniform on :math:`(-\pi/2, \pi/2)`).

    Example:
        >>> task = TwoMoons()
        >>> theta = task.reference_posterior(k=1).sample((1000,))
        >>> theta.shape
        torch.Size([1000, 2])
        >>> task.log_likelihood(theta[:3], task.observation(1)).shape
        torch.Size([3])
    """

    name = "two_moons"
    theta_dim = 2
    x_shape = (2,)
    labels = ("theta_1", "theta_2")

    def build_prior(self) -> Distribution:
        return BoxUniform(-torch.ones(2), torch.ones(2))

    @staticmethod
    def shift(theta: Tensor) -> Tensor:
        total = (theta[..., 0] + theta[..., 1]).abs()
        return torch.stack((-total, theta[..., 1] - theta[..., 0]), dim=-1) / math.sqrt(2)

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return moon_points(theta.shape[:-1], generator) + self.shift(theta)

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        p = x - self.shift(theta)
        u, v = p[..., 0] - OFFSET, p[..., 1]
        distance = torch.hypot(u, v)
        # a radius r < 0 (probability ~1e-23) mirrors the point into the left half-plane
        radius = torch.where(u >= 0, distance, -distance)
        return log_normal_pdf(radius, RADIUS_MEAN, RADIUS_STD) - torch.log(math.pi * distance)

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        return TwoMoonsPosterior(x_obs)
