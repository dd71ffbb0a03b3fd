r"""Diagonal Gaussian, box-uniform and generalized normal distributions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, Gamma, Normal, Uniform, constraints

from .._validation import as_parameter, check_compatible
from .base import DistributionMixin, Independent

__all__ = ["BoxUniform", "DiagNormal", "GeneralizedNormal"]


class DiagNormal(Independent):
    r"""A multivariate normal distribution with diagonal covariance.

    .. math:: p(x) = \prod_i \mathcal{N}(x_i \mid \mu_i, \sigma_i^2)

    Arguments:
        loc: The mean :math:`\mu`, with shape :math:`(*, D)`.
        scale: The standard deviation :math:`\sigma`, with shape :math:`(*, D)`.
        ndims: The number of rightmost dimensions that form the event.

    Example:
        >>> d = DiagNormal(torch.zeros(3), torch.ones(3))
        >>> d.event_shape, d.sample((5,)).shape
        (torch.Size([3]), torch.Size([5, 3]))
        >>> d.log_prob(torch.zeros(3))
        tensor(-2.7568)
    """

    def __init__(self, loc: Tensor | float, scale: Tensor | float, ndims: int = 1):
        loc = as_parameter(loc, "loc")
        scale = as_parameter(scale, "scale")
        check_compatible(loc=loc, scale=scale)
        loc, scale = torch.broadcast_tensors(loc, scale)
        if loc.dim() < ndims:
            raise ValueError(
                f"DiagNormal with ndims={ndims} expects loc and scale with at least {ndims} "
                f"dimension(s), but received shape {tuple(loc.shape)}."
            )
        super().__init__(Normal(loc, scale, validate_args=False), ndims)

    def __repr__(self) -> str:
        return f"DiagNormal(loc: {self.base_dist.loc.size()}, scale: {self.base_dist.scale.size()})"

    @property
    def reference(self) -> Tensor:
        return self.base_dist.loc

    def expand(self, batch_shape: Sequence[int], _instance=None) -> DiagNormal:
        shape = torch.Size(batch_shape) + self.event_shape
        return DiagNormal(
            self.base_dist.loc.expand(shape),
            self.base_dist.scale.expand(shape),
            self.reinterpreted_batch_ndims,
        )


class BoxUniform(Independent):
    r"""A uniform distribution over an axis-aligned box :math:`[l, u]`.

    .. math:: p(x) = \prod_i \frac{\mathbb{1}[l_i \le x_i < u_i]}{u_i - l_i}

    The log-density is :math:`-\infty` outside the box (never NaN, never an error).

    Arguments:
        lower: The lower bounds :math:`l`, with shape :math:`(*, D)`.
        upper: The upper bounds :math:`u`, with shape :math:`(*, D)`.
        ndims: The number of rightmost dimensions that form the event.

    Example:
        >>> d = BoxUniform(-torch.ones(2), torch.ones(2))
        >>> d.sample((4,)).shape
        torch.Size([4, 2])
        >>> d.log_prob(torch.tensor([0.0, 3.0]))
        tensor(-inf)
    """

    def __init__(self, lower: Tensor | float, upper: Tensor | float, ndims: int = 1):
        lower = as_parameter(lower, "lower")
        upper = as_parameter(upper, "upper")
        check_compatible(lower=lower, upper=upper)
        lower, upper = torch.broadcast_tensors(lower, upper)
        if lower.dim() < ndims:
            raise ValueError(
                f"BoxUniform with ndims={ndims} expects bounds with at least {ndims} "
                f"dimension(s), but received shape {tuple(lower.shape)}."
            )
        if not torch.all(lower < upper):
            raise ValueError(
                "BoxUniform expects lower < upper in every dimension, but received "
                f"lower={lower.tolist()} and upper={upper.tolist()}."
            )
        super().__init__(Uniform(lower, upper, validate_args=False), ndims)

    def __repr__(self) -> str:
        return (
            f"BoxUniform(lower: {self.base_dist.low.size()}, upper: {self.base_dist.high.size()})"
        )

    @property
    def reference(self) -> Tensor:
        return self.base_dist.low

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        box = constraints.interval(self.base_dist.low, self.base_dist.high)
        return constraints.independent(box, self.reinterpreted_batch_ndims)

    def expand(self, batch_shape: Sequence[int], _instance=None) -> BoxUniform:
        shape = torch.Size(batch_shape) + self.event_shape
        return BoxUniform(
            self.base_dist.low.expand(shape),
            self.base_dist.high.expand(shape),
            self.reinterpreted_batch_ndims,
        )


class GeneralizedNormal(DistributionMixin, Distribution):
    r"""The generalized normal distribution, with scalar events.

    .. math:: p(x) = \frac{\beta}{2 \Gamma(1 / \beta)} \exp(-|x|^\beta)

    The shape :math:`\beta > 0` interpolates between the Laplace (:math:`\beta = 1`), a
    normal (:math:`\beta = 2`) and the uniform on :math:`[-1, 1]` (:math:`\beta \to
    \infty`). Samples are reparameterized: :math:`|x|^\beta \sim \Gamma(1 / \beta, 1)`
    with a random sign.

    Arguments:
        beta: The shape :math:`\beta`, with shape :math:`(*)`, the batch shape.

    Example:
        >>> d = GeneralizedNormal(torch.tensor([1.0, 2.0, 8.0]))
        >>> d.batch_shape, d.sample((5,)).shape
        (torch.Size([3]), torch.Size([5, 3]))
        >>> d.log_prob(torch.zeros(3))
        tensor([-0.6931, -0.5724, -0.6331])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {"beta": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, beta: Tensor | float):
        beta = as_parameter(beta, "beta")
        if not torch.all(beta > 0):
            raise ValueError(
                f"GeneralizedNormal expects beta > 0, but received beta={beta.tolist()}."
            )
        self.beta = beta
        super().__init__(batch_shape=beta.shape, validate_args=False)

    def __repr__(self) -> str:
        return f"GeneralizedNormal(beta: {self.beta.size()})"

    @property
    def reference(self) -> Tensor:
        return self.beta

    def expand(self, batch_shape: Sequence[int], _instance=None) -> GeneralizedNormal:
        return GeneralizedNormal(self.beta.expand(torch.Size(batch_shape)))

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        beta = self.beta
        return beta.log() - math.log(2) - torch.lgamma(1 / beta) - x.abs() ** beta

    def cdf(self, x: Tensor) -> Tensor:
        r"""Returns :math:`F(x) = \frac{1}{2} + \frac{\mathrm{sign}(x)}{2}
        P(1 / \beta, |x|^\beta)`, with :math:`P` the regularized lower incomplete gamma
        function (not differentiable with respect to :math:`\beta`)."""

        x = self.check_value(x, "x")
        beta = self.beta
        p = torch.special.gammainc(1 / beta, x.abs() ** beta)
        return 0.5 + 0.5 * torch.sign(x) * p

    def rsample(self, shape: Sequence[int] = ()) -> Tensor:
        shape = self._extended_shape(shape)
        gamma = Gamma(1 / self.beta, torch.ones_like(self.beta), validate_args=False)
        x = gamma.rsample(shape[: len(shape) - len(self.batch_shape)]) ** (1 / self.beta)
        flip = torch.rand(shape, dtype=x.dtype, device=x.device) < 0.5
        return torch.where(flip, -x, x)

    @property
    def mean(self) -> Tensor:
        return torch.zeros_like(self.beta)

    @property
    def mode(self) -> Tensor:
        return torch.zeros_like(self.beta)

    @property
    def variance(self) -> Tensor:
        return torch.exp(torch.lgamma(3 / self.beta) - torch.lgamma(1 / self.beta))

    def entropy(self) -> Tensor:
        beta = self.beta
        return 1 / beta - beta.log() + math.log(2) + torch.lgamma(1 / beta)
