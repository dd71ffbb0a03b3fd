r"""Shape helpers and input checks shared by every sbikit distribution."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.distributions import Independent as TorchIndependent

from .._validation import broadcast_shapes, check_like, check_tensor, check_trailing_shape

__all__ = ["DistributionMixin", "Independent"]


def reference_tensor(distribution: Distribution) -> Tensor | None:
    r"""Returns a tensor whose dtype and device are those of ``distribution``, if known."""

    if isinstance(distribution, DistributionMixin):
        return distribution.reference
    try:
        return distribution.mean
    except (NotImplementedError, AttributeError):
        return None


class DistributionMixin:
    r"""Pyro-style shape helpers and boundary checks for sbikit distributions.

    Mixed into every sbikit :class:`torch.distributions.Distribution` (never patched onto
    torch's own classes). It provides :meth:`to_event`, :meth:`expand_by` and
    :meth:`check_value`, the check that sbikit distributions run on the values given to
    ``log_prob``, ``cdf`` and friends.

    Example:
        >>> from sbikit.distributions import DiagNormal
        >>> d = DiagNormal(torch.zeros(2, 3), torch.ones(2, 3)).to_event(1)
        >>> d.event_shape
        torch.Size([2, 3])
        >>> d.log_prob(torch.zeros(5))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
          ...
        ValueError: Independent expects value whose last dimension(s) are (2, 3), but received ...
    """

    @property
    def reference(self) -> Tensor | None:
        r"""A tensor with the dtype and device of the distribution's parameters."""

        return None

    def to_event(self, reinterpreted: int = 1) -> Independent:
        r"""Reinterprets the ``reinterpreted`` rightmost batch dimensions as event dimensions.

        Example:
            >>> from sbikit.distributions import BoxUniform
            >>> d = BoxUniform(torch.zeros(4, 3), torch.ones(4, 3)).to_event(1)
            >>> d.batch_shape, d.event_shape
            (torch.Size([]), torch.Size([4, 3]))
        """

        if reinterpreted == 0:
            return self
        return Independent(self, reinterpreted)

    def expand_by(self, shape: Sequence[int]) -> Distribution:
        r"""Expands the batch shape on the left by ``shape``.

        Example:
            >>> from sbikit.distributions import DiagNormal
            >>> DiagNormal(torch.zeros(3), torch.ones(3)).expand_by((5,)).batch_shape
            torch.Size([5])
        """

        return self.expand(torch.Size(shape) + self.batch_shape)

    def check_value(self, value: object, name: str = "value") -> Tensor:
        r"""Checks the type, trailing shape, dtype and device of ``value``, or raises.

        Raises:
            TypeError: if ``value`` is not a tensor or has the wrong dtype.
            ValueError: if its trailing shape is not the event shape, its shape does not
                broadcast with the batch and event shapes, or it is on another device.
        """

        owner = getattr(self, "name", None) or type(self).__name__
        value = check_tensor(value, name)
        check_trailing_shape(value, self.event_shape, name, owner)
        shape = self.batch_shape + self.event_shape
        try:
            broadcast_shapes(value.shape, shape)
        except RuntimeError:
            raise ValueError(
                f"{owner} expects {name} whose shape broadcasts with its batch and event shape "
                f"{tuple(shape)}, but received shape {tuple(value.shape)}."
            ) from None
        reference = self.reference
        if reference is not None:
            check_like(value, reference, name, owner)
        return value


class Independent(DistributionMixin, TorchIndependent):
    r"""Reinterprets batch dimensions of a distribution as event dimensions.

    :class:`torch.distributions.Independent` with the sbikit shape helpers, the
    boundary checks, and ``enumerate_support`` when the base has a finite support: the
    Cartesian product of the base's values along the reinterpreted dimensions.

    Arguments:
        base_distribution: The base distribution.
        reinterpreted_batch_ndims: The number of rightmost batch dimensions to reinterpret.

    Example:
        >>> from torch.distributions import Bernoulli
        >>> d = Independent(Bernoulli(torch.tensor([0.5, 0.5])), 1)
        >>> d.enumerate_support().shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        base_distribution: Distribution,
        reinterpreted_batch_ndims: int,
        validate_args: bool | None = False,
    ):
        super().__init__(base_distribution, reinterpreted_batch_ndims, validate_args)

    @property
    def reference(self) -> Tensor | None:
        return reference_tensor(self.base_dist)

    def expand(self, batch_shape: Sequence[int], _instance=None) -> Independent:
        batch_shape = torch.Size(batch_shape)
        base = self.base_dist.expand(
            batch_shape + self.event_shape[: self.reinterpreted_batch_ndims]
        )
        return Independent(base, self.reinterpreted_batch_ndims)

    def log_prob(self, value: Tensor) -> Tensor:
        return super().log_prob(self.check_value(value))

    @property
    def has_enumerate_support(self) -> bool:
        return self.base_dist.has_enumerate_support

    def enumerate_support(self, expand: bool = True) -> Tensor:
        r"""Returns every value of the finite support, with shape ``(K,) + batch + event``.

        The base must have scalar events whose support values are shared by all its batch
        elements (as for :class:`~torch.distributions.Bernoulli` or
        :class:`~torch.distributions.Categorical`).
        """

        if self.base_dist.event_shape:
            raise NotImplementedError(
                "Independent.enumerate_support needs a base distribution with scalar events."
            )
        values = self.base_dist.enumerate_support(expand=False).reshape(-1)
        slots = self.event_shape.numel()
        grid = torch.cartesian_prod(*[values] * slots) if slots > 1 else values.unsqueeze(-1)
        grid = grid.reshape(-1, *[1] * len(self.batch_shape), *self.event_shape)
        return grid.expand(-1, *self.batch_shape, *self.event_shape) if expand else grid
