r"""bernoulli_glm_raw: the Bernoulli GLM observed through its raw spike train."""

from __future__ import annotations

import torch
from torch import Tensor

from .bernoulli_glm import BernoulliGLM, design_matrix, spikes


class BernoulliGLMRaw(BernoulliGLM):
    r"""bernoulli_glm_raw: :class:`~simulators.bernoulli_glm.BernoulliGLM` returning the
    spike train :math:`y \in \{0, 1\}^{100}` itself. :meth:`log_likelihood` is exact.

    Example:
        >>> task = BernoulliGLMRaw()
        >>> x = task.simulate(task.prior.sample((3,)))
        >>> x.shape, bool(((x == 0) | (x == 1)).all())
        (torch.Size([3, 100]), True)
    """

    name = "bernoulli_glm_raw"
    x_shape = (100,)

    def summaries(self, x: Tensor) -> Tensor:
        return x @ design_matrix()

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return spikes(theta, generator)
