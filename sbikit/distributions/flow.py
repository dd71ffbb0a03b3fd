r"""Normalizing flows as torch distributions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions import transforms as torch_transforms

from ..transforms.base import call_and_ladj, sum_rightmost
from ._helpers import support_mask
from .base import DistributionMixin, Independent, reference_tensor

__all__ = ["NormalizingFlow"]


class NormalizingFlow(DistributionMixin, Distribution):
    r"""A distribution defined by a bijective transform of a base distribution.

    The transform :math:`f` maps data :math:`x` to the base space, :math:`z = f(x)`, so the
    density needs no inversion:

    .. math:: \log p(X = x) = \log p(Z = f(x)) + \log |\det J_f(x)|

    and sampling applies the inverse, :math:`x = f^{-1}(z)` with :math:`z \sim p(Z)`.

    References:
        | Normalizing Flows for Probabilistic Modeling and Inference (Papamakarios et al.,
          2021)
        | https://arxiv.org/abs/1912.02762

    Arguments:
        transform: A transform :math:`f` from data to base space (any
            :class:`torch.distributions.Transform`).
        base: The base distribution :math:`p(Z)`.

    Example:
        >>> from torch.distributions import ExpTransform
        >>> from sbikit.distributions import DiagNormal
        >>> flow = NormalizingFlow(ExpTransform().inv, DiagNormal(torch.zeros(3), torch.ones(3)))
        >>> flow.sample((2,)).shape
        torch.Size([2, 3])
        >>> flow.log_prob(torch.ones(3)).shape
        torch.Size([])
    """

    has_rsample = True

    def __init__(self, transform: torch_transforms.Transform, base: Distribution):
        if not isinstance(transform, torch_transforms.Transform):
            raise TypeError(
                "NormalizingFlow expects a torch.distributions.Transform as transform, but "
                f"received an object of type {type(transform).__name__}."
            )
        if not isinstance(base, Distribution):
            raise TypeError(
                "NormalizingFlow expects a torch.distributions.Distribution as base, but "
                f"received an object of type {type(base).__name__}."
            )
        reinterpreted = transform.codomain.event_dim - len(base.event_shape)
        if reinterpreted > 0:
            base = Independent(base, reinterpreted)
        self.transform = transform
        self.base = base
        # Number of element-wise dimensions of the transform's ladj that belong to the event.
        self.reinterpreted = max(-reinterpreted, 0)

        shape = transform.inverse_shape(base.batch_shape + base.event_shape)
        event_dim = max(transform.domain.event_dim, len(base.event_shape))
        # A transform with batched parameters widens the batch: so must the base, to sample.
        base_shape = transform.forward_shape(shape)
        base_batch = base_shape[: len(base_shape) - len(base.event_shape)]
        if base.batch_shape != base_batch:
            self.base = base = base.expand(base_batch)
        super().__init__(
            batch_shape=shape[: len(shape) - event_dim],
            event_shape=shape[len(shape) - event_dim :],
            validate_args=False,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(\n  (transform): {self.transform}\n  (base): {self.base}\n)"

    @property
    def reference(self) -> Tensor | None:
        return reference_tensor(self.base)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        domain = self.transform.domain
        reinterpreted = len(self.event_shape) - domain.event_dim
        return constraints.independent(domain, reinterpreted) if reinterpreted > 0 else domain

    def expand(self, batch_shape: Sequence[int], _instance=None) -> NormalizingFlow:
        batch_shape = torch.Size(batch_shape)
        base_event = self.base.event_shape
        base_shape = self.transform.forward_shape(batch_shape + self.event_shape)
        base_batch = base_shape[: len(base_shape) - len(base_event)]
        new = NormalizingFlow.__new__(NormalizingFlow)
        new.transform = self.transform
        new.base = self.base.expand(base_batch)
        new.reinterpreted = self.reinterpreted
        Distribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        return new

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        inside = support_mask(self, x)  # values outside the transform's domain give -inf
        z, ladj = call_and_ladj(self.transform, x)
        log_p = self.base.log_prob(z) + sum_rightmost(ladj, self.reinterpreted)
        return log_p if inside is None else torch.where(inside, log_p, -torch.inf)

    def rsample(self, shape: Sequence[int] = ()) -> Tensor:
        shape = torch.Size(shape)
        z = self.base.rsample(shape) if self.base.has_rsample else self.base.sample(shape)
        return self.transform.inv(z)

    def rsample_and_log_prob(self, shape: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
        r"""Draws reparameterized samples and returns them with their log-density, in one pass.

        A base distribution that is itself a flow (as in a posterior estimator, whose base
        is the conditional flow) draws its own samples with their log-density in one pass
        too: no sample is ever mapped back to evaluate its density.

        Arguments:
            shape: The sample shape :math:`S`.

        Returns:
            The samples, with shape :math:`S + B + E`, and their log-density, with shape
            :math:`S + B`.
        """

        shape = torch.Size(shape)
        if hasattr(self.base, "rsample_and_log_prob"):
            z, log_p = self.base.rsample_and_log_prob(shape)
        else:
            z = self.base.rsample(shape) if self.base.has_rsample else self.base.sample(shape)
            log_p = self.base.log_prob(z)
        x, ladj = call_and_ladj(self.transform.inv, z)
        return x, log_p - sum_rightmost(ladj, self.reinterpreted)
