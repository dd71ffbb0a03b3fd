r"""Coupling flows: NICE, RealNVP and the general coupling transform."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Transform

from .._validation import check_count, check_tensor, describe
from ..distributions import DiagNormal
from ..lazy import (
    Flow,
    LazyTransform,
    UnconditionalDistribution,
    UnconditionalTransform,
    check_context,
)
from ..nn import MLP, conditioned
from ..transforms import AdditiveTransform, CouplingTransform, MonotonicAffineTransform
from ..utils import unpack

__all__ = ["NICE", "GeneralCouplingTransform", "RealNVP"]


class GeneralCouplingTransform(LazyTransform):
    r"""A lazy coupling transform with any univariate transform.

    The features where ``mask`` is ``True``, :math:`x_a`, pass through and condition (with
    the context :math:`c`) the univariate transforms of the others, :math:`x_b`:

    .. math:: y_a = x_a, \quad y_b = f(x_b; \phi(x_a, c)) .

    Both directions cost one network pass.

    References:
        | Density estimation using Real NVP (Dinh et al., 2017)
        | https://arxiv.org/abs/1605.08803

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        mask: A boolean tensor of shape :math:`(D,)` (default: the odd features are
            ``True``).
        univariate: The univariate transform constructor, called with the parameters.
        shapes: The shapes of the univariate transform's parameters, one per argument.
        kwargs: Keyword arguments of :class:`~sbikit.nn.MLP` (``hidden_features``,
            ``activation``, ``normalize``).

    Example:
        >>> t = GeneralCouplingTransform(4, context=2)
        >>> f = t(torch.randn(2))
        >>> x = torch.randn(4)
        >>> torch.allclose(f.inv(f(x)), x, atol=1e-5)
        True
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        mask: Tensor | None = None,
        univariate: Callable[..., Transform] = MonotonicAffineTransform,
        shapes: Sequence[Sequence[int]] = ((), ()),
        **kwargs: Any,
    ):
        super().__init__()
        owner = type(self).__name__
        self.features = check_count(features, "features", owner, 2)
        self.context = check_count(context, "context", owner, 0)
        if mask is None:
            mask = torch.arange(features) % 2 == 1
        mask = check_tensor(mask, "mask")
        if mask.dtype != torch.bool or mask.shape != (features,) or mask.all() or not mask.any():
            raise ValueError(
                f"{owner} expects mask to be a bool tensor of shape ({features},) with at least "
                f"one True and one False, but received {describe(mask)}."
            )
        self.register_buffer("mask", mask)
        self.univariate = univariate
        self.shapes = [tuple(s) for s in shapes]
        self.total = sum(math.prod(s) for s in self.shapes)
        self.features_a = int(mask.sum())
        self.features_b = features - self.features_a
        self.hyper = MLP(self.features_a + context, self.features_b * self.total, **kwargs)

    def extra_repr(self) -> str:
        name = getattr(self.univariate, "__name__", self.univariate)
        return f"(univariate): {name}, mask={self.mask.int().tolist()}"

    def forward(self, c: Tensor | None = None) -> CouplingTransform:
        c = check_context(c, self.context, type(self).__name__)
        network = conditioned(self.hyper, c, self.features_a)

        def meta(x_a: Tensor) -> Transform:
            phi = network(x_a).unflatten(-1, (self.features_b, self.total))
            return self.univariate(*unpack(phi, self.shapes))

        return CouplingTransform(meta, self.mask)


class NICE(Flow):
    r"""A non-linear independent components estimation flow: additive coupling transforms
    over a standard normal base.

    Successive transforms alternate the mask (odd features, then even ones), or draw
    random balanced masks with ``randmask=True``. Additive couplings preserve volume, so a
    final learnable diagonal rescaling lets the flow change it (Section 3.3 of the paper).

    References:
        | NICE: Non-linear Independent Components Estimation (Dinh et al., 2014)
        | https://arxiv.org/abs/1410.8516

    Arguments:
        features: The number of features :math:`D \geq 2`.
        context: The number of context features :math:`C` (0 if unconditional).
        transforms: The number of coupling transforms.
        randmask: Whether the masks are random.
        kwargs: Keyword arguments of :class:`GeneralCouplingTransform`.

    Example:
        >>> flow = NICE(4, context=2)
        >>> flow(torch.randn(5, 2)).sample().shape
        torch.Size([5, 4])
    """

    univariate: Callable[..., Transform] = AdditiveTransform
    shapes: Sequence[Sequence[int]] = ((),)
    rescale: bool = True

    def __init__(
        self,
        features: int,
        context: int = 0,
        transforms: int = 3,
        randmask: bool = False,
        **kwargs: Any,
    ):
        check_count(transforms, "transforms", type(self).__name__, 1)
        kwargs.setdefault("univariate", self.univariate)
        kwargs.setdefault("shapes", self.shapes)
        odd = torch.arange(features) % 2 == 1
        layers = []
        for i in range(transforms):
            if randmask:
                mask = torch.zeros(features, dtype=torch.bool)
                mask[torch.randperm(features)[: features // 2]] = True
            else:
                mask = odd if i % 2 == 0 else ~odd
            layers.append(GeneralCouplingTransform(features, context, mask, **kwargs))
        if self.rescale:
            zeros = torch.zeros(features)
            layers.append(UnconditionalTransform(MonotonicAffineTransform, zeros, zeros.clone()))
        base = UnconditionalDistribution(
            DiagNormal, torch.zeros(features), torch.ones(features), buffer=True
        )
        super().__init__(layers, base, context=context)


class RealNVP(NICE):
    r"""A real-valued non-volume preserving flow: affine coupling transforms over a standard
    normal base.

    References:
        | Density estimation using Real NVP (Dinh et al., 2017)
        | https://arxiv.org/abs/1605.08803

    Arguments:
        features: The number of features :math:`D \geq 2`.
        context: The number of context features :math:`C` (0 if unconditional).
        transforms: The number of coupling transforms.
        randmask: Whether the masks are random.
        kwargs: Keyword arguments of :class:`GeneralCouplingTransform`.

    Example:
        >>> flow = RealNVP(4)
        >>> flow().log_prob(torch.randn(10, 4)).shape
        torch.Size([10])
    """

    univariate = MonotonicAffineTransform
    shapes = ((), ())
    rescale = False  # affine couplings already change volume
