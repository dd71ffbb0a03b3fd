r"""Masked autoregressive flows (MAF) and their transform."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Transform

from .._validation import check_count, check_tensor, describe
from ..distributions import DiagNormal
from ..lazy import Flow, LazyTransform, UnconditionalDistribution, check_context
from ..nn import MaskedMLP, conditioned, split_first_layer
from ..transforms import AutoregressiveTransform, MonotonicAffineTransform
from ..utils import unpack

__all__ = ["MAF", "MaskedAutoregressiveTransform"]


def autoregressive_levels(adjacency: Tensor) -> Tensor:
    r"""Returns the level of each feature of a DAG's autoregressive transform (the longest
    path that leads to it): a feature depends only on features of lower levels, so the
    inverse fixes one level per sequential pass. Raises if the graph has a cycle."""

    depth = torch.zeros(adjacency.shape[0])
    weights = adjacency.float()
    for _ in range(adjacency.shape[0] + 1):
        new = (weights * (depth + 1)).amax(dim=1)
        if torch.equal(new, depth):
            return depth.long()
        depth = new
    raise ValueError(
        "MaskedAutoregressiveTransform expects an acyclic adjacency matrix (a DAG), but the "
        "one received has a cycle. Make sure no feature depends on itself through others."
    )


def order_groups(features: int, passes: int | None, order: object) -> Tensor:
    r"""Returns the group of each feature: feature :math:`i` depends on :math:`j` iff
    ``group[i] > group[j]``."""

    if order is None:
        order = torch.arange(features)
    else:
        order = torch.as_tensor(order)
        if order.shape != (features,) or not torch.equal(
            order.sort().values, torch.arange(features)
        ):
            raise ValueError(
                f"MaskedAutoregressiveTransform expects order to be a permutation of "
                f"0..{features - 1}, but received {order.tolist()}."
            )
    passes = (
        features
        if passes is None
        else check_count(passes, "passes", "MaskedAutoregressiveTransform", 1)
    )
    return torch.div(order, math.ceil(features / min(passes, features)), rounding_mode="floor")


class MaskedAutoregressiveTransform(LazyTransform):
    r"""A lazy masked autoregressive transform.

    Feature :math:`x_i` is transformed by a univariate monotonic transform whose parameters
    a masked hyper-network (MADE) predicts from the features that precede it in an order,
    and from the context :math:`c`:

    .. math:: y_i = f(x_i; \phi_i(x_{<i}, c)) .

    The log-determinant is the sum of the univariate ones. The inverse takes one
    sequential network pass per group of the order (``passes``): :math:`D` for a fully
    autoregressive transform, 2 for a coupling-like one. Each pass computes only the
    parameters of its group, and only the hidden units they depend on, so that the
    :math:`D` passes of a fully autoregressive inverse cost about as much as
    :math:`D / 3` passes of the whole network. The context's share of the network is
    computed once per call of ``forward(c)``, and reused by every pass.

    References:
        | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017)
        | https://arxiv.org/abs/1705.07057

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        passes: The number of groups of the order (default :math:`D`). Features of a group
            depend only on features of earlier groups.
        order: The position of each feature in the autoregressive order, a permutation of
            :math:`0, \dots, D - 1` (default: the identity).
        adjacency: A boolean :math:`(D, D)` matrix, :math:`A_{ij}` when :math:`x_i` depends
            on :math:`x_j`, forming a directed acyclic graph; replaces ``passes`` and
            ``order``. The diagonal is ignored.
        univariate: The univariate transform constructor, called with the parameters.
        shapes: The shapes of the univariate transform's parameters, one per argument.
        kwargs: Keyword arguments of :class:`~sbikit.nn.MaskedMLP` (``hidden_features``,
            ``activation``).

    Example:
        >>> t = MaskedAutoregressiveTransform(3, context=4)
        >>> f = t(torch.randn(4))
        >>> x = torch.randn(3)
        >>> torch.allclose(f.inv(f(x)), x, atol=1e-5)
        True
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        passes: int | None = None,
        order: Sequence[int] | Tensor | None = None,
        adjacency: Tensor | None = None,
        univariate: Callable[..., Transform] = MonotonicAffineTransform,
        shapes: Sequence[Sequence[int]] = ((), ()),
        **kwargs: Any,
    ):
        super().__init__()
        owner = type(self).__name__
        self.features = check_count(features, "features", owner, 1)
        self.context = check_count(context, "context", owner, 0)
        self.univariate = univariate
        self.shapes = [tuple(s) for s in shapes]
        self.total = sum(math.prod(s) for s in self.shapes)

        if adjacency is None:
            groups = order_groups(features, passes, order)
            adjacency = groups[:, None] > groups
        else:
            adjacency = check_tensor(adjacency, "adjacency").bool()
            if adjacency.shape != (features, features):
                raise ValueError(
                    f"{owner} expects an adjacency of shape ({features}, {features}), but "
                    f"received {describe(adjacency)}."
                )
            adjacency = adjacency & ~torch.eye(features, dtype=torch.bool)
        self.register_buffer("adjacency", adjacency)
        levels = autoregressive_levels(adjacency)
        self.passes = int(levels.max()) + 1
        self.levels = [(levels == k).nonzero().squeeze(-1) for k in range(self.passes)]

        # Each feature's parameters see its parents and the context; a feature without
        # parents gets a constant input so that no row of the network is empty.
        inputs = torch.cat((adjacency, torch.ones(features, context, dtype=torch.bool)), dim=1)
        if context == 0:
            inputs = torch.cat((inputs, torch.ones(features, 1, dtype=torch.bool)), dim=1)
        self.hyper = MaskedMLP(inputs.repeat_interleave(self.total, dim=0), **kwargs)

    def extra_repr(self) -> str:
        name = getattr(self.univariate, "__name__", self.univariate)
        return f"(univariate): {name}, passes={self.passes}"

    def forward(self, c: Tensor | None = None) -> AutoregressiveTransform:
        c = check_context(c, self.context, type(self).__name__)
        if c is None:  # the constant input that keeps root features' rows non-empty
            c = self.hyper[0].weight.new_ones(1)
        network = conditioned(self.hyper, c, self.features)
        sweeps = [(features, self.level_meta(features, c)) for features in self.levels]
        return AutoregressiveTransform(lambda x: self.univariates(network(x)), self.passes, sweeps)

    def level_meta(self, features: Tensor, c: Tensor) -> Callable[[Tensor], Transform]:
        r"""Returns the hyper-network of the ``features`` of one level alone: it maps
        :math:`x` to their univariate transform and computes only the hidden units their
        parameters depend on. Its weights are gathered at the first call."""

        @functools.cache
        def network() -> Callable[[Tensor], Tensor]:
            rows = features[:, None] * self.total + torch.arange(self.total)
            return split_first_layer(self.hyper, c, self.features, rows.flatten().to(c.device))

        return lambda x: self.univariates(network()(x))

    def univariates(self, phi: Tensor) -> Transform:
        r"""Returns the univariate transform of features from their parameters ``phi``,
        with shape :math:`(*, F \times P)` for :math:`F` features of :math:`P` parameters."""

        return self.univariate(*unpack(phi.unflatten(-1, (-1, self.total)), self.shapes))


class MAF(Flow):
    r"""A masked autoregressive flow: autoregressive transforms over a standard normal base.

    Successive transforms alternate the order (identity, then reversed), or use random
    orders with ``randperm=True``.

    References:
        | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017)
        | https://arxiv.org/abs/1705.07057

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        transforms: The number of autoregressive transforms.
        randperm: Whether the orders are random permutations.
        kwargs: Keyword arguments of :class:`MaskedAutoregressiveTransform`.

    Example:
        >>> flow = MAF(3, context=4, transforms=2, hidden_features=(32, 32))
        >>> q = flow(torch.randn(8, 4))  # a batch of 8 contexts
        >>> q.batch_shape, q.event_shape
        (torch.Size([8]), torch.Size([3]))
        >>> q.sample((100,)).shape
        torch.Size([100, 8, 3])
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        transforms: int = 3,
        randperm: bool = False,
        **kwargs: Any,
    ):
        check_count(transforms, "transforms", type(self).__name__, 1)
        orders = [torch.arange(features), torch.arange(features).flip(0)]
        layers = [
            MaskedAutoregressiveTransform(
                features,
                context,
                order=torch.randperm(features) if randperm else orders[i % 2],
                **kwargs,
            )
            for i in range(transforms)
        ]
        base = UnconditionalDistribution(
            DiagNormal, torch.zeros(features), torch.ones(features), buffer=True
        )
        super().__init__(layers, base, context=context)
