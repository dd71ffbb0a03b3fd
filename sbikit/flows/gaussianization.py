r"""Gaussianization flows (GF) and the lazy element-wise transform they are made of."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor
from torch.distributions import Transform

from .._validation import check_count, check_input
from ..distributions import DiagNormal
from ..lazy import (
    Flow,
    LazyTransform,
    UnconditionalDistribution,
    UnconditionalTransform,
    check_context,
)
from ..nn import MLP
from ..transforms.base import DependentTransform, call_and_ladj, sum_rightmost
from ..transforms.elementwise import MonotonicAffineTransform
from ..transforms.gaussianization import GaussianizationTransform
from ..transforms.linear import RotationTransform
from ..utils import unpack

__all__ = ["GF", "ElementWiseTransform"]

MLP_KEYWORDS = ("hidden_features", "activation", "normalize")


class FeatureTransform(DependentTransform):
    r"""A univariate transform applied to each of :math:`D` features, as one transform of
    vectors: :class:`~sbikit.transforms.DependentTransform` that checks the number of
    features of its inputs and inverts with the univariate inverse's ``call_and_ladj``."""

    def __init__(self, base: Transform, features: int, owner: str):
        super().__init__(base, 1)
        self.features = features
        self.owner = owner

    def _check(self, x: Tensor) -> Tensor:
        return check_input(x, x, self.owner, features=self.features)

    def _call(self, x: Tensor) -> Tensor:
        return self.base(self._check(x))

    def _inverse(self, y: Tensor) -> Tensor:
        return self.base.inv(self._check(y))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, ladj = call_and_ladj(self.base, self._check(x))
        return y, sum_rightmost(ladj, 1)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x, ladj = call_and_ladj(self.base.inv, self._check(y))
        return x, sum_rightmost(ladj, 1)


class ElementWiseTransform(LazyTransform):
    r"""A lazy element-wise transform: each feature has its own univariate transform, whose
    parameters depend on the context only.

    .. math:: y_i = f(x_i; \phi_i(c)), \quad i = 1, \dots, D ,

    with :math:`\phi(c)` the output of an :class:`~sbikit.nn.MLP` of the context, or free
    parameters (initialized from :math:`\mathcal{N}(0, 1)`) when ``context=0``. The
    log-determinant is the sum of the univariate ones, and the inverse is the univariate
    inverse, feature by feature.

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        univariate: The univariate transform constructor, called with the parameters, each
            of shape :math:`(*, D, *S_j)`.
        shapes: The shapes :math:`S_j` of the univariate transform's parameters, one per
            argument.
        kwargs: Keyword arguments of :class:`~sbikit.nn.MLP` (``hidden_features``,
            ``activation``, ``normalize``), unused when ``context=0``.

    Example:
        >>> t = ElementWiseTransform(3, context=4)
        >>> f = t(torch.randn(4))
        >>> x = torch.randn(3)
        >>> torch.allclose(f.inv(f(x)), x, atol=1e-5)
        True
        >>> f.call_and_ladj(torch.randn(10, 3))[1].shape
        torch.Size([10])
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        univariate: Callable[..., Transform] = MonotonicAffineTransform,
        shapes: Sequence[Sequence[int]] = ((), ()),
        **kwargs: Any,
    ):
        super().__init__()
        owner = type(self).__name__
        self.features = check_count(features, "features", owner, 1)
        self.context = check_count(context, "context", owner, 0)
        unknown = sorted(set(kwargs) - set(MLP_KEYWORDS))
        if unknown:
            raise TypeError(
                f"{owner} received unexpected keyword argument(s) {unknown}. It accepts the "
                f"keyword arguments of sbikit.nn.MLP: {list(MLP_KEYWORDS)}."
            )
        self.univariate = univariate
        self.shapes = [tuple(s) for s in shapes]
        self.total = sum(math.prod(s) for s in self.shapes)

        if context > 0:
            self.hyper = MLP(context, features * self.total, **kwargs)
        else:
            self.phi = nn.ParameterList(
                [nn.Parameter(torch.randn(features, *s)) for s in self.shapes]
            )

    def extra_repr(self) -> str:
        name = getattr(self.univariate, "__name__", self.univariate)
        return f"(univariate): {name}, features={self.features}"

    def forward(self, c: Tensor | None = None) -> Transform:
        owner = type(self).__name__
        c = check_context(c, self.context, owner)
        if c is None:
            phi = list(self.phi)
        else:
            phi = self.hyper(c).unflatten(-1, (self.features, self.total))
            phi = unpack(phi, self.shapes)
        return FeatureTransform(self.univariate(*phi), self.features, owner)


class GF(Flow):
    r"""A Gaussianization flow: element-wise Gaussianization transforms alternating with
    learnable rotations, over a standard normal base.

    Each element-wise layer maps every feature by a
    :class:`~sbikit.transforms.GaussianizationTransform` with :math:`K` components (whose
    parameters depend on the context), and a learnable rotation
    :class:`~sbikit.transforms.RotationTransform`, :math:`R = \exp(A - A^\top)`, mixes the
    features between two of them:

    .. math:: f = g_T \circ R_{T - 1} \circ \dots \circ R_1 \circ g_1 .

    Sampling inverts each Gaussianization transform by bisection, in a bracket derived from
    its parameters (so there is no fixed domain outside of which the inverse fails). As for
    any flow, standardizing the features (zero mean, unit variance) helps training.

    References:
        | Gaussianization Flows (Meng et al., 2020)
        | https://arxiv.org/abs/2003.01941

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        transforms: The number :math:`T` of element-wise Gaussianization transforms.
        components: The number of components :math:`K` of each Gaussianization transform.
        kwargs: Keyword arguments of :class:`ElementWiseTransform` (the MLP's
            ``hidden_features``, ``activation``, ``normalize``).

    Example:
        >>> flow = GF(3, context=4, transforms=2, components=4, hidden_features=(32,))
        >>> q = flow(torch.randn(8, 4))  # a batch of 8 contexts
        >>> q.batch_shape, q.event_shape
        (torch.Size([8]), torch.Size([3]))
        >>> q.sample((100,)).shape
        torch.Size([100, 8, 3])
        >>> GF(2)().log_prob(torch.randn(10, 2)).shape
        torch.Size([10])
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        transforms: int = 3,
        components: int = 8,
        **kwargs: Any,
    ):
        owner = type(self).__name__
        check_count(features, "features", owner, 1)
        check_count(context, "context", owner, 0)
        check_count(transforms, "transforms", owner, 1)
        check_count(components, "components", owner, 1)
        layers: list[LazyTransform] = []
        for i in range(transforms):
            if i > 0:
                A = torch.randn(features, features)
                layers.append(UnconditionalTransform(RotationTransform, A=A))
            layers.append(
                ElementWiseTransform(
                    features,
                    context,
                    univariate=GaussianizationTransform,
                    shapes=((components,), (components,)),
                    **kwargs,
                )
            )
        base = UnconditionalDistribution(
            DiagNormal, torch.zeros(features), torch.ones(features), buffer=True
        )
        super().__init__(layers, base, context=context)
