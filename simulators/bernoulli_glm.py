r"""bernoulli_glm: a generalised linear model of a spiking neuron, with summary statistics."""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, MultivariateNormal

from .task import Task

STEPS = 100
FILTER = 9


@cache
def stimulus() -> Tensor:
    r"""The white-noise stimulus :math:`I_t`, ``RandomState(42).randn(100)`` as float32."""

    return torch.from_numpy(np.random.RandomState(42).randn(STEPS).astype(np.float32))


@cache
def design_matrix() -> Tensor:
    r"""The design matrix :math:`X` (100, 10), float64: :math:`X_{t,0} = 1` and
    :math:`X_{t,j+1} = I_{t-j}` for :math:`t \ge j`, else 0."""

    stim = stimulus().double()
    X = torch.zeros(STEPS, FILTER + 1, dtype=torch.float64)
    X[:, 0] = 1
    for j in range(FILTER):
        X[j:, j + 1] = stim[: STEPS - j]
    return X


def prior_precision() -> Tensor:
    r"""The prior precision :math:`B` (10, 10): :math:`B_{00} = 0.5`,
    :math:`B_{1:,1:} = F^\top F`, :math:`F = D D + \mathrm{diag}(\sqrt{i / 9})` with
    :math:`D` the identity minus ones on the first sub-diagonal."""

    D = torch.eye(FILTER, dtype=torch.float64) - torch.diag(
        torch.ones(FILTER - 1, dtype=torch.float64), -1
    )
    F_ = D @ D + torch.diag(torch.sqrt(torch.arange(FILTER, dtype=torch.float64) / FILTER))
    B = torch.zeros(FILTER + 1, FILTER + 1, dtype=torch.float64)
    B[0, 0] = 0.5
    B[1:, 1:] = F_.T @ F_
    return B


def spikes(theta: Tensor, generator: torch.Generator | None) -> Tensor:
    r"""Draws :math:`y_t \sim \mathrm{Bernoulli}(\sigma((X\theta)_t))`: ``(N, 100)``."""

    p = torch.sigmoid(theta @ design_matrix().T)
    return (torch.rand(p.shape, generator=generator, dtype=p.dtype) < p).to(p.dtype)


def glm_log_likelihood(theta: Tensor, summaries: Tensor) -> Tensor:
    r"""The Bernoulli GLM log-likelihood from the sufficient statistics :math:`X^\top y`:
    :math:`\theta^\top X^\top y - \sum_t \log(1 + e^{(X\theta)_t})`; ``(N,)``."""

    return (theta * summaries).sum(-1) - F.softplus(theta @ design_matrix().T).sum(-1)


class BernoulliGLM(Task):
    r"""bernoulli_glm: :math:`\theta \sim \mathcal{N}(0, B^{-1})` (a smoothness prior on
    the filter), spikes :math:`y_t \sim \mathrm{Bernoulli}(\sigma((X\theta)_t))` for 100
    steps, and the summary :math:`x = X^\top y` = (spike count, stimulus-triggered sums).

    The summaries are sufficient statistics of the GLM, so the posterior given them equals
    the posterior given the spikes; it is sampled by MCMC on the exact likelihood.
    :meth:`log_likelihood` is exact up to an additive constant that does not depend on
    :math:`\theta` (the log-number of spike trains with these summaries).

    Example:
        >>> task = BernoulliGLM()
        >>> task.simulate(task.prior.sample((3,))).shape
        torch.Size([3, 10])
    """

    name = "bernoulli_glm"
    theta_dim = 10
    x_shape = (10,)
    labels = ("bias", *(f"filter_{i + 1}" for i in range(FILTER)))
    mcmc_reference = True

    def build_prior(self) -> Distribution:
        return MultivariateNormal(
            torch.zeros(10), precision_matrix=prior_precision().to(torch.float32)
        )

    def summaries(self, x: Tensor) -> Tensor:
        r"""The sufficient statistics :math:`X^\top y` of an observation."""

        return x

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return spikes(theta, generator) @ design_matrix()

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return glm_log_likelihood(theta, self.summaries(x))

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        prior = MultivariateNormal(
            torch.zeros(10, dtype=torch.float64), precision_matrix=prior_precision()
        )
        return self.mcmc_posterior(x_obs, prior)
