r"""slcp_distractors: SLCP with 92 uninformative values from a Student-t mixture."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from .slcp import SLCP, slcp_log_likelihood, slcp_posterior, slcp_simulate

INFORMATIVE = 8
DISTRACTORS = 92
COMPONENTS = 20
DEGREES_OF_FREEDOM = 2.0
MIXTURE_SEED = 20_210_104  # the fixed mixture and permutation


@cache
def distractor_mixture() -> tuple[Tensor, Tensor, Tensor]:
    r"""The task's fixed constants, from ``numpy.random.RandomState(MIXTURE_SEED)`` (stable
    across numpy versions): the locations (20, 92) ~ U(-20, 20) and scales (20, 92)
    ~ U(0.5, 2) of the equal-weight mixture of 92-dimensional Student-t distributions
    (2 degrees of freedom, diagonal scales), and the permutation (100,) of the values."""

    rng = np.random.RandomState(MIXTURE_SEED)
    locations = rng.uniform(-20, 20, size=(COMPONENTS, DISTRACTORS))
    scales = rng.uniform(0.5, 2.0, size=(COMPONENTS, DISTRACTORS))
    permutation = rng.permutation(INFORMATIVE + DISTRACTORS)
    return torch.from_numpy(locations), torch.from_numpy(scales), torch.from_numpy(permutation)


@cache
def stored_observations() -> list[list[float]]:
    text = resources.files("simulators").joinpath("data/slcp-distractors-observations.json")
    return json.loads(text.read_text())["observations"]


def draw_distractors(n: int, generator: torch.Generator | None) -> Tensor:
    r"""``n`` draws of the distractor mixture: ``(n, 92)``, float64."""

    locations, scales, _ = distractor_mixture()
    k = torch.randint(COMPONENTS, (n,), generator=generator)
    z = torch.randn(n, DISTRACTORS, generator=generator, dtype=torch.float64)
    # a chi-square with nu degrees of freedom is a Gamma(nu / 2, 1 / 2): for nu = 2, an
    # exponential with mean 2, drawn by inversion so that the generator is honoured
    u = torch.rand(n, 1, generator=generator, dtype=torch.float64)
    chi2 = -2 * torch.log1p(-u)
    return locations[k] + scales[k] * z / torch.sqrt(chi2 / DEGREES_OF_FREEDOM)


class SLCPDistractors(SLCP):
    r"""slcp_distractors: the 8 SLCP values concatenated with 92 distractors from a fixed
    20-component mixture of Student-t distributions (see :func:`distractor_mixture`), the
    100 values permuted by a fixed permutation.

    The posterior equals SLCP's for the same 8 informative values.

    Example:
        >>> task = SLCPDistractors()
        >>> x = task.simulate(task.prior.sample((3,)))
        >>> x.shape, task.informative(x).shape
        (torch.Size([3, 100]), torch.Size([3, 8]))
    """

    name = "slcp_distractors"
    x_shape = (INFORMATIVE + DISTRACTORS,)

    @staticmethod
    def informative(x: Tensor) -> Tensor:
        r"""The 8 SLCP values of observations ``x`` (*, 100): ``(*, 8)``."""

        permutation = distractor_mixture()[2]
        return x[..., torch.argsort(permutation)[:INFORMATIVE]]

    @staticmethod
    def join(informative: Tensor, distractors: Tensor) -> Tensor:
        return torch.cat((informative, distractors), dim=-1)[..., distractor_mixture()[2]]

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        informative = slcp_simulate(theta, generator)
        return self.join(informative, draw_distractors(len(theta), generator))

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError(
            "the distractors' density is not part of task 'slcp_distractors': use "
            "simulators.get('slcp').log_likelihood(theta, task.informative(x)) for the "
            "likelihood of the informative values"
        )

    def observation(self, k: int) -> Tensor:
        r"""slcp's observation ``k`` joined with 92 distractors drawn once from the mixture,
        permuted by the task's permutation: shape ``(100,)``. The ten observations are
        stored with the task (``data/slcp-distractors-observations.json``), so they never
        depend on a random number generator's version."""

        k = self.check_k(k)
        return torch.tensor(stored_observations()[k - 1], dtype=torch.float32)

    def true_parameters(self, k: int) -> Tensor:
        return SLCP().true_parameters(self.check_k(k))

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        informative = self.informative(x_obs)[None]
        return slcp_posterior(
            lambda theta: slcp_log_likelihood(theta, informative), self.prior, self.mcmc_settings
        )
