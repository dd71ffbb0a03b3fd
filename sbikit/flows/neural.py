r"""Neural autoregressive flows: monotonic networks (NAF) and integrals of positive
networks (UNAF) as univariate transforms."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .._validation import check_count, check_number, describe
from ..distributions import DiagNormal
from ..lazy import Flow, LazyTransform, UnconditionalDistribution, UnconditionalTransform
from ..nn import MLP, MonotonicMLP
from ..transforms.elementwise import SoftclipTransform
from ..transforms.monotonic import MonotonicTransform, UnconstrainedMonotonicTransform
from ..utils import broadcast
from .autoregressive import MaskedAutoregressiveTransform

__all__ = ["MNN", "NAF", "UMNN", "UNAF"]

# The bisection bracket [-B, B] of the univariate transforms, also the bound of the soft
# clips that keep the inputs of every transform but the first inside it. The soft clips
# compress their inputs: with B = 10, the composed transforms of untrained flows fail to
# cover up to about 2% of the base's samples in our checks, where B = 20 covers them.
BOUND = 20.0
# The minimum slope of the unconstrained monotonic networks, g >= SLOPE > 0.
SLOPE = 1e-3
# Monotonic networks start with a mean slope of one on [-SPAN, SPAN], standardized data.
SPAN = 10.0


def signal_input(x: Tensor, signal: Tensor) -> Tensor:
    r"""Returns :math:`[x, s]`, with shape :math:`(*, 1 + S)`, for :math:`x` of shape
    :math:`(*)` and a signal :math:`s` of shape :math:`(*, S)` (broadcast together)."""

    return torch.cat(broadcast(x.unsqueeze(-1), signal, ignore=1), dim=-1)


class MNN(nn.Module):
    r"""A monotonic neural network: a univariate transform
    :math:`y = f(x; s) = \mathrm{MLP}_+([x, s])` modulated by a signal :math:`s`.

    A :class:`~sbikit.nn.MonotonicMLP` (non-negative weights, monotonic activations) is
    increasing in each input, so in :math:`x` for any fixed signal :math:`s`. Its weights are
    shared by all features and contexts; the hyper-network of the flow predicts the signal
    :math:`s \in \mathbb{R}^S` of each feature. The last layer is scaled at initialization
    so that :math:`f(10; 0) - f(-10; 0) = 20`: the transform starts with a mean slope of one
    on the range of standardized data. ``forward(s)`` returns a
    :class:`~sbikit.transforms.monotonic.MonotonicTransform` whose inverse (bisection on
    :math:`[-B, B]`) trains both the signal and the weights.

    References:
        | Neural Autoregressive Flows (Huang et al., 2018)
        | https://arxiv.org/abs/1804.00779

    Arguments:
        signal: The number of signal features :math:`S`.
        bound: The bound :math:`B` of the inverse's bisection bracket.
        kwargs: Keyword arguments of :class:`~sbikit.nn.MonotonicMLP` (``hidden_features``).

    Example:
        >>> mnn = MNN(signal=4, hidden_features=(16,))
        >>> t = mnn(torch.randn(3, 4))  # one signal per element
        >>> x = torch.randn(3)
        >>> torch.allclose(t.inv(t(x)), x, atol=1e-4)
        True
    """

    def __init__(self, signal: int = 16, bound: float = BOUND, **kwargs: Any):
        super().__init__()
        self.signal = check_count(signal, "signal", type(self).__name__, 1)
        self.bound = check_number(bound, "bound", type(self).__name__, 0.0)
        self.network = MonotonicMLP(1 + signal, 1, **kwargs)

        # Start with a mean slope of one on [-10, 10] (for a zero signal), so that the
        # transform covers about [-10, 10], as the base and the next transforms need. The
        # network's default initialization alone gives slopes of about 0.3.
        with torch.no_grad():
            ends = self.f(torch.zeros(signal), torch.tensor([-SPAN, SPAN]))
            slope = (ends[1] - ends[0]) / (2 * SPAN)
            if slope > 0:
                self.network[-1].weight.div_(slope)

    def f(self, signal: Tensor, x: Tensor) -> Tensor:
        r"""Returns :math:`f(x; s)`, with the shape of :math:`x` broadcast with
        ``signal.shape[:-1]``."""

        return self.network(signal_input(x, signal)).squeeze(-1)

    def forward(self, signal: Tensor) -> MonotonicTransform:
        return MonotonicTransform(partial(self.f, signal), bound=self.bound)


class UMNN(nn.Module):
    r"""An unconstrained monotonic neural network: a univariate transform
    :math:`y = f(x; s, C) = \int_0^x g(u; s) \, du + C` modulated by a signal :math:`s`.

    The integrand :math:`g(u; s) = \mathrm{ELU}(\mathrm{MLP}([u, s])) + 1 + \lambda` is
    positive for any weights, with a minimum :math:`\lambda = 10^{-3}` that keeps it so in
    floating point. Its weights are shared by all features and contexts; the hyper-network
    of the flow predicts the signal :math:`s \in \mathbb{R}^S` and the constant :math:`C` of
    each feature. ``forward(s, C)`` returns an
    :class:`~sbikit.transforms.monotonic.UnconstrainedMonotonicTransform`.

    References:
        | Unconstrained Monotonic Neural Networks (Wehenkel et al., 2019)
        | https://arxiv.org/abs/1908.05164

    Arguments:
        signal: The number of signal features :math:`S`.
        bound: The bound :math:`B` of the inverse's bisection bracket.
        kwargs: Keyword arguments of :class:`~sbikit.nn.MLP` (``hidden_features``,
            ``activation``, default :class:`torch.nn.ELU`).

    Example:
        >>> umnn = UMNN(signal=4, hidden_features=(16,))
        >>> t = umnn(torch.randn(3, 4), torch.zeros(3))
        >>> x = torch.randn(3)
        >>> torch.allclose(t.inv(t(x)), x, atol=1e-4)
        True
    """

    def __init__(self, signal: int = 16, bound: float = BOUND, **kwargs: Any):
        super().__init__()
        self.signal = check_count(signal, "signal", type(self).__name__, 1)
        self.bound = check_number(bound, "bound", type(self).__name__, 0.0)
        kwargs.setdefault("activation", nn.ELU)
        self.integrand = MLP(1 + signal, 1, **kwargs)

    def g(self, signal: Tensor, x: Tensor) -> Tensor:
        r"""Returns :math:`g(x; s) > 0`, with the shape of :math:`x` broadcast with
        ``signal.shape[:-1]``."""

        return F.elu(self.integrand(signal_input(x, signal)).squeeze(-1)) + 1 + SLOPE

    def forward(self, signal: Tensor, constant: Tensor) -> UnconstrainedMonotonicTransform:
        return UnconstrainedMonotonicTransform(partial(self.g, signal), constant, bound=self.bound)


def check_network(network: object, owner: str) -> dict[str, Any]:
    r"""Returns the keyword arguments ``network`` as a dict, or raises a :class:`TypeError`."""

    if network is None:
        return {}
    if not isinstance(network, Mapping):
        raise TypeError(
            f"{owner} expects network to be a dict of keyword arguments of its univariate "
            f"network, e.g. network={{'hidden_features': (32, 32)}}, but received "
            f"{describe(network)}."
        )
    return dict(network)


def neural_layers(
    features: int,
    context: int,
    transforms: int,
    randperm: bool,
    univariate: type[nn.Module],
    signal: int,
    shapes: tuple[tuple[int, ...], ...],
    network: dict[str, Any],
    **kwargs: Any,
) -> list[LazyTransform]:
    r"""Returns autoregressive transforms with a new univariate network each, separated by
    soft clips onto :math:`(-B, B)`, the bisection bracket of the next transform."""

    orders = [torch.arange(features), torch.arange(features).flip(0)]
    layers: list[LazyTransform] = []
    for i in range(transforms):
        if i > 0:
            layers.append(UnconditionalTransform(SoftclipTransform, bound=BOUND))
        layers.append(
            MaskedAutoregressiveTransform(
                features,
                context,
                order=torch.randperm(features) if randperm else orders[i % 2],
                univariate=univariate(signal=signal, bound=BOUND, **network),
                shapes=shapes,
                **kwargs,
            )
        )
    return layers


class NAF(Flow):
    r"""A neural autoregressive flow: autoregressive transforms whose univariate transforms
    are monotonic neural networks (:class:`MNN`), over a standard normal base.

    Feature :math:`x_i` is transformed by :math:`y_i = f(x_i; s_i(x_{<i}, c))`, an
    increasing network of :math:`x_i` and of a signal :math:`s_i \in \mathbb{R}^S` that a
    masked hyper-network predicts from the preceding features and the context. Each
    transform has its own monotonic network, shared by all features. Soft clips
    :math:`x \mapsto x / (1 + |x| / B)` between transforms keep their inputs inside the
    bisection bracket :math:`[-B, B]`, :math:`B = 20`, of the inverse.

    Warning:
        Sampling inverts the first transform by bisection on :math:`[-20, 20]`: standardize
        the features (zero mean, unit variance), so that the data lie well inside. The soft
        clips make the image of the transform a bounded region of the base space; a base
        sample outside it (in the far tails, or more often before training) has no
        preimage, and its inverse saturates near the bracket.

    References:
        | Neural Autoregressive Flows (Huang et al., 2018)
        | https://arxiv.org/abs/1804.00779

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        transforms: The number of autoregressive transforms.
        randperm: Whether the orders are random permutations (otherwise they alternate
            between the identity and its reverse).
        signal: The number of signal features :math:`S` of the monotonic networks.
        network: Keyword arguments of :class:`MNN` (``hidden_features``).
        kwargs: Keyword arguments of
            :class:`~sbikit.flows.autoregressive.MaskedAutoregressiveTransform`
            (``hidden_features`` of the hyper-network, ``passes``, ...).

    Example:
        >>> flow = NAF(3, context=4, transforms=2, signal=8, network={"hidden_features": (16,)})
        >>> q = flow(torch.randn(4))
        >>> x = q.sample((10,))
        >>> x.shape, q.log_prob(x).shape
        (torch.Size([10, 3]), torch.Size([10]))
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        transforms: int = 3,
        randperm: bool = False,
        signal: int = 16,
        network: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        owner = type(self).__name__
        check_count(features, "features", owner, 1)
        check_count(context, "context", owner, 0)
        check_count(transforms, "transforms", owner, 1)
        check_count(signal, "signal", owner, 1)
        layers = neural_layers(
            features,
            context,
            transforms,
            randperm,
            MNN,
            signal,
            ((signal,),),
            check_network(network, owner),
            **kwargs,
        )
        base = UnconditionalDistribution(
            DiagNormal, torch.zeros(features), torch.ones(features), buffer=True
        )
        super().__init__(layers, base, context=context)


class UNAF(Flow):
    r"""An unconstrained neural autoregressive flow: autoregressive transforms whose
    univariate transforms integrate positive networks (:class:`UMNN`), over a standard
    normal base.

    Feature :math:`x_i` is transformed by

    .. math:: y_i = \int_0^{x_i} g(u; s_i) \, du + C_i, \quad
        g(u; s) = \mathrm{ELU}(\mathrm{MLP}([u, s])) + 1 + 10^{-3} > 0 ,

    where a masked hyper-network predicts the signal :math:`s_i \in \mathbb{R}^S` and the
    constant :math:`C_i` from the preceding features and the context. The integral uses a
    32-point Gauss–Legendre quadrature, and :math:`\log |\det J| = \sum_i \log g(x_i; s_i)`.
    Each transform has its own integrand network, shared by all features. Soft clips
    between transforms keep their inputs inside the bisection bracket :math:`[-20, 20]` of
    the inverse.

    Warning:
        Sampling inverts the first transform by bisection on :math:`[-20, 20]`: standardize
        the features (zero mean, unit variance), so that the data lie well inside. The soft
        clips make the image of the transform a bounded region of the base space; a base
        sample outside it (in the far tails, or more often before training) has no
        preimage, and its inverse saturates near the bracket.

    References:
        | Unconstrained Monotonic Neural Networks (Wehenkel et al., 2019)
        | https://arxiv.org/abs/1908.05164

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        transforms: The number of autoregressive transforms.
        randperm: Whether the orders are random permutations (otherwise they alternate
            between the identity and its reverse).
        signal: The number of signal features :math:`S` of the integrand networks.
        network: Keyword arguments of :class:`UMNN` (``hidden_features``, ``activation``).
        kwargs: Keyword arguments of
            :class:`~sbikit.flows.autoregressive.MaskedAutoregressiveTransform`.

    Example:
        >>> flow = UNAF(2, transforms=2, signal=8, network={"hidden_features": (16,)})
        >>> x = flow().sample((10,))
        >>> flow().log_prob(x).shape
        torch.Size([10])
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        transforms: int = 3,
        randperm: bool = False,
        signal: int = 16,
        network: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        owner = type(self).__name__
        check_count(features, "features", owner, 1)
        check_count(context, "context", owner, 0)
        check_count(transforms, "transforms", owner, 1)
        check_count(signal, "signal", owner, 1)
        layers = neural_layers(
            features,
            context,
            transforms,
            randperm,
            UMNN,
            signal,
            ((signal,), ()),
            check_network(network, owner),
            **kwargs,
        )
        base = UnconditionalDistribution(
            DiagNormal, torch.zeros(features), torch.ones(features), buffer=True
        )
        super().__init__(layers, base, context=context)
