r"""Neural spline flows: autoregressive rational-quadratic splines, also on the circle."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._validation import check_count
from ..distributions import BoxUniform
from ..lazy import UnconditionalDistribution
from ..transforms import CircularShiftTransform, ComposedTransform, MonotonicRQSTransform
from .autoregressive import MAF

__all__ = ["NCSF", "NSF"]


class NSF(MAF):
    r"""A neural spline flow: a MAF whose univariate transforms are monotonic
    rational-quadratic splines on :math:`[-5, 5]` (the identity outside).

    References:
        | Neural Spline Flows (Durkan et al., 2019)
        | https://arxiv.org/abs/1906.04032

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        bins: The number of bins :math:`K` of the splines.
        kwargs: Keyword arguments of :class:`~sbikit.flows.MAF` (``transforms``,
            ``randperm``, ``hidden_features``, ...).

    Example:
        >>> flow = NSF(2, context=3, bins=4)
        >>> flow(torch.randn(3)).log_prob(torch.randn(10, 2)).shape
        torch.Size([10])
    """

    def __init__(self, features: int, context: int = 0, bins: int = 8, **kwargs: Any):
        check_count(bins, "bins", type(self).__name__, 1)
        super().__init__(
            features,
            context,
            univariate=MonotonicRQSTransform,
            shapes=((bins,), (bins,), (bins - 1,)),
            **kwargs,
        )


def circular_spline(widths: Tensor, heights: Tensor, derivatives: Tensor) -> ComposedTransform:
    r"""Returns a circular rational-quadratic spline on :math:`[-\pi, \pi)`: a half-turn
    shift followed by a spline whose end derivatives match (both 1)."""

    return ComposedTransform(
        CircularShiftTransform(bound=math.pi),
        MonotonicRQSTransform(widths, heights, derivatives, bound=math.pi),
    )


class NCSF(MAF):
    r"""A neural circular spline flow, for angles in :math:`[-\pi, \pi)^D`.

    Each univariate transform shifts the circle by half a turn and applies a
    rational-quadratic spline on :math:`[-\pi, \pi]` whose derivatives at both ends are
    equal, so the map is a diffeomorphism of the circle. The base is uniform on the torus.

    References:
        | Normalizing Flows on Tori and Spheres (Rezende et al., 2020)
        | https://arxiv.org/abs/2002.02428

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        bins: The number of bins :math:`K` of the splines.
        kwargs: Keyword arguments of :class:`~sbikit.flows.MAF`.

    Example:
        >>> flow = NCSF(2, bins=4)
        >>> x = flow().sample((100,))
        >>> bool(((x >= -torch.pi) & (x < torch.pi)).all())
        True
    """

    def __init__(self, features: int, context: int = 0, bins: int = 8, **kwargs: Any):
        check_count(bins, "bins", type(self).__name__, 1)
        super().__init__(
            features,
            context,
            univariate=circular_spline,
            shapes=((bins,), (bins,), (bins - 1,)),
            **kwargs,
        )
        self.base = UnconditionalDistribution(
            BoxUniform,
            torch.full((features,), -math.pi),
            torch.full((features,), math.pi),
            buffer=True,
        )
