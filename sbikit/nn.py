r"""Neural networks: hyper-networks for flows and embedding networks for observations."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ._validation import broadcast_shapes, check_tensor, describe

__all__ = [
    "MLP",
    "Conv1dEmbedding",
    "DeepSetEmbedding",
    "MLPEmbedding",
    "MaskedLinear",
    "MaskedMLP",
    "MonotonicLinear",
    "MonotonicMLP",
    "ResMLP",
    "TwoWayELU",
]

Activation = Callable[[], nn.Module]


class MLP(nn.Sequential):
    r"""A multi-layer perceptron :math:`\mathbb{R}^{I} \to \mathbb{R}^{O}`.

    Linear layers separated by an activation (and a layer normalization with
    ``normalize=True``).

    Arguments:
        in_features: The number of input features :math:`I`.
        out_features: The number of output features :math:`O`.
        hidden_features: The numbers of hidden features.
        activation: The activation constructor (default :class:`torch.nn.ReLU`).
        normalize: Whether hidden features are normalized (:class:`torch.nn.LayerNorm`).

    Example:
        >>> net = MLP(3, 4, hidden_features=(16, 16))
        >>> net(torch.randn(10, 3)).shape
        torch.Size([10, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: Sequence[int] = (64, 64),
        activation: Activation | None = None,
        normalize: bool = False,
    ):
        activation = activation or nn.ReLU
        sizes = (in_features, *hidden_features, out_features)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                if normalize:
                    layers.append(nn.LayerNorm(b))
                layers.append(activation())
        super().__init__(*layers)
        self.in_features, self.out_features = in_features, out_features


class ResMLP(nn.Module):
    r"""A residual multi-layer perceptron :math:`\mathbb{R}^{I} \to \mathbb{R}^{O}`.

    A linear projection to the first hidden width, residual blocks
    :math:`h \gets h + W_2 \sigma(W_1 \sigma(\mathrm{LN}(h)))` between hidden widths (with a
    linear projection when the width changes) and a linear output layer.

    Arguments:
        in_features: The number of input features :math:`I`.
        out_features: The number of output features :math:`O`.
        hidden_features: The widths of the residual blocks.
        activation: The activation constructor (default :class:`torch.nn.ReLU`).

    Example:
        >>> net = ResMLP(3, 4, hidden_features=(32, 32, 32))
        >>> net(torch.randn(10, 3)).shape
        torch.Size([10, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: Sequence[int] = (64, 64),
        activation: Activation | None = None,
    ):
        super().__init__()
        activation = activation or nn.ReLU
        self.input = nn.Linear(in_features, hidden_features[0])
        self.blocks = nn.ModuleList()
        self.projections = nn.ModuleList()
        for a, b in zip(hidden_features, (*hidden_features[1:], hidden_features[-1]), strict=True):
            self.blocks.append(
                nn.Sequential(
                    nn.LayerNorm(a), activation(), nn.Linear(a, a), activation(), nn.Linear(a, b)
                )
            )
            self.projections.append(nn.Identity() if a == b else nn.Linear(a, b, bias=False))
        self.output = nn.Linear(hidden_features[-1], out_features)

    def forward(self, x: Tensor) -> Tensor:
        h = self.input(x)
        for block, projection in zip(self.blocks, self.projections, strict=True):
            h = projection(h) + block(h)
        return self.output(h)


class MaskedLinear(nn.Linear):
    r"""A linear layer whose weight is multiplied by a fixed binary mask.

    .. math:: y = x (A \odot W)^\top + b

    Arguments:
        adjacency: The mask :math:`A`, a boolean tensor of shape :math:`(O, I)`.
        bias: Whether the layer has a bias.

    Example:
        >>> layer = MaskedLinear(torch.tensor([[True, False], [True, True]]))
        >>> layer(torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    def __init__(self, adjacency: Tensor, bias: bool = True):
        super().__init__(adjacency.shape[1], adjacency.shape[0], bias)
        self.register_buffer("mask", adjacency.to(self.weight.dtype))

    def masked_weight(self) -> Tensor:
        r"""Returns :math:`A \odot W`."""

        return self.weight * self.mask

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


def check_adjacency(adjacency: object) -> Tensor:
    r"""Returns a boolean adjacency matrix of shape (O, I), or raises."""

    adjacency = check_tensor(adjacency, "adjacency")
    if adjacency.dim() != 2:
        raise ValueError(
            f"MaskedMLP expects an adjacency matrix of shape (O, I), but received "
            f"{describe(adjacency)}."
        )
    return adjacency.bool()


class MaskedMLP(nn.Sequential):
    r"""A multi-layer perceptron whose Jacobian sparsity is exactly an adjacency matrix.

    Output :math:`i` depends on input :math:`j` only if :math:`A_{ij}` (MADE). Each hidden
    unit is assigned one of the distinct rows of :math:`A` (the set of inputs it may see);
    a unit may feed another only if its set is contained in the other's. Construction costs
    one :math:`(R, I) \times (I, R)` product over the :math:`R` distinct rows, so it stays fast
    for thousands of features.

    References:
        | MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015)
        | https://arxiv.org/abs/1502.03509

    Arguments:
        adjacency: The adjacency matrix :math:`A`, a boolean tensor of shape :math:`(O, I)`.
        hidden_features: The numbers of hidden features.
        activation: The activation constructor (default :class:`torch.nn.ReLU`).

    Example:
        >>> A = torch.tril(torch.ones(3, 3, dtype=torch.bool), diagonal=-1)
        >>> A[0, 0] = True  # output 0 sees input 0 so that no row is empty
        >>> net = MaskedMLP(A, hidden_features=(16, 16))
        >>> J = torch.autograd.functional.jacobian(net, torch.randn(3))
        >>> bool(((J != 0) <= A).all())
        True
    """

    def __init__(
        self,
        adjacency: Tensor,
        hidden_features: Sequence[int] = (64, 64),
        activation: Activation | None = None,
    ):
        adjacency = check_adjacency(adjacency)
        activation = activation or nn.ReLU
        if not adjacency.any():
            raise ValueError("MaskedMLP expects an adjacency matrix with at least one True entry.")
        rows, inverse = torch.unique(adjacency, dim=0, return_inverse=True)
        rows_f = rows.float()
        # precedence[i, j]: the input set of row j is contained in the input set of row i.
        precedence = (rows_f @ rows_f.T) == rows_f.sum(dim=-1)
        reachable = rows.any(dim=-1).nonzero().squeeze(-1)  # rows with at least one input

        layers: list[nn.Module] = []
        assigned = None  # distinct row assigned to each unit of the previous layer
        for i, features in enumerate((*hidden_features, adjacency.shape[0])):
            last = i == len(hidden_features)
            if last:
                mask = adjacency if assigned is None else precedence[inverse][:, assigned]
            else:
                units = reachable[torch.arange(features) % len(reachable)]
                mask = rows[units] if assigned is None else precedence[units][:, assigned]
                assigned = units
            layers.append(MaskedLinear(mask))
            if not last:
                layers.append(activation())
        super().__init__(*layers)


class MonotonicLinear(nn.Linear):
    r"""A linear layer with non-negative weights :math:`|W|`, monotonically increasing.

    Example:
        >>> layer = MonotonicLinear(3, 2)
        >>> bool((layer.weight.abs() == layer.positive_weight()).all())
        True
    """

    def positive_weight(self) -> Tensor:
        r"""Returns :math:`|W|`."""

        return self.weight.abs()

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.positive_weight(), self.bias)


class TwoWayELU(nn.Module):
    r"""A monotonic activation that is convex on half of the features and concave on the
    other half: :math:`\mathrm{ELU}(x)` and :math:`-\mathrm{ELU}(-x)`.

    Example:
        >>> TwoWayELU()(torch.tensor([-1.0, -1.0]))
        tensor([-0.6321, -1.0000])
    """

    def forward(self, x: Tensor) -> Tensor:
        x0, x1 = x.chunk(2, dim=-1) if x.shape[-1] > 1 else (x, x[..., :0])
        return torch.cat((F.elu(x0), -F.elu(-x1)), dim=-1)


class MonotonicMLP(nn.Sequential):
    r"""A multi-layer perceptron whose outputs increase monotonically with each input.

    Non-negative weights (:class:`MonotonicLinear`) and monotonic activations
    (:class:`TwoWayELU`) make every entry of the Jacobian non-negative.

    Arguments:
        in_features: The number of input features.
        out_features: The number of output features.
        hidden_features: The numbers of hidden features.

    Example:
        >>> net = MonotonicMLP(2, 1)
        >>> J = torch.autograd.functional.jacobian(net, torch.randn(2))
        >>> bool((J >= 0).all())
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: Sequence[int] = (64, 64),
    ):
        sizes = (in_features, *hidden_features, out_features)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(MonotonicLinear(a, b))
            if i < len(sizes) - 2:
                layers.append(TwoWayELU())
        super().__init__(*layers)


class MLPEmbedding(nn.Module):
    r"""An embedding network for observations of any shape: flatten, then an MLP.

    Arguments:
        in_shape: The event shape of the observations, e.g. ``(10,)`` or ``(3, 64)``.
        out_features: The number of embedding features.
        hidden_features: The numbers of hidden features.
        activation: The activation constructor (default :class:`torch.nn.ReLU`).

    Example:
        >>> net = MLPEmbedding((3, 64), out_features=8)
        >>> net(torch.randn(5, 3, 64)).shape
        torch.Size([5, 8])
    """

    def __init__(
        self,
        in_shape: int | Sequence[int],
        out_features: int,
        hidden_features: Sequence[int] = (64, 64),
        activation: Activation | None = None,
    ):
        super().__init__()
        self.in_shape = torch.Size([in_shape] if isinstance(in_shape, int) else in_shape)
        self.mlp = MLP(self.in_shape.numel(), out_features, hidden_features, activation)

    def forward(self, x: Tensor) -> Tensor:
        n = len(self.in_shape)
        if x.shape[x.dim() - n :] != self.in_shape:
            raise ValueError(
                f"MLPEmbedding expects observations whose last dimensions are "
                f"{tuple(self.in_shape)}, but received shape {tuple(x.shape)}."
            )
        return self.mlp(x.flatten(x.dim() - n) if n else x.unsqueeze(-1))


class DeepSetEmbedding(nn.Module):
    r"""A permutation-invariant embedding of a set of i.i.d. trials.

    .. math:: e(x_{1:N}) = \rho \Big( \frac{1}{N} \sum_{n=1}^N \phi(x_n) \Big)

    References:
        | Deep Sets (Zaheer et al., 2017)
        | https://arxiv.org/abs/1703.06114

    Arguments:
        in_features: The number of features of one trial.
        out_features: The number of embedding features.
        hidden_features: The numbers of hidden features of :math:`\phi` and :math:`\rho`.
        pooled_features: The number of features after pooling.
        pooling: ``"mean"`` (default, invariant to the number of trials too) or ``"sum"``.

    Example:
        >>> net = DeepSetEmbedding(2, out_features=8)
        >>> x = torch.randn(5, 20, 2)  # 5 observations of 20 trials
        >>> net(x).shape
        torch.Size([5, 8])
        >>> torch.allclose(net(x), net(x[:, torch.randperm(20)]), atol=1e-6)
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: Sequence[int] = (64, 64),
        pooled_features: int = 64,
        pooling: str = "mean",
    ):
        super().__init__()
        if pooling not in ("mean", "sum"):
            raise ValueError(f"DeepSetEmbedding expects pooling 'mean' or 'sum', got {pooling!r}.")
        self.pooling = pooling
        self.phi = MLP(in_features, pooled_features, hidden_features)
        self.rho = MLP(pooled_features, out_features, hidden_features)

    def forward(self, x: Tensor) -> Tensor:
        h = self.phi(x)
        h = h.mean(dim=-2) if self.pooling == "mean" else h.sum(dim=-2)
        return self.rho(h)


class Conv1dEmbedding(nn.Module):
    r"""A 1-D convolutional embedding for time series.

    Convolution blocks (convolution, activation, max-pooling by 2) followed by an adaptive
    average pooling to ``pooled_length`` steps and an MLP head.

    Arguments:
        in_channels: The number of channels :math:`C`. Inputs have shape :math:`(*, C, L)`,
            or :math:`(*, L)` when ``in_channels`` is 1.
        out_features: The number of embedding features.
        channels: The numbers of channels of the convolution blocks.
        kernel_size: The (odd) kernel size of the convolutions.
        pooled_length: The number of steps kept by the adaptive pooling.
        hidden_features: The numbers of hidden features of the head.

    Example:
        >>> net = Conv1dEmbedding(1, out_features=8)
        >>> net(torch.randn(5, 100)).shape
        torch.Size([5, 8])
        >>> net(torch.randn(2, 3, 100)).shape  # a batch of (2, 3) series
        torch.Size([2, 3, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_features: int,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 5,
        pooled_length: int = 4,
        hidden_features: Sequence[int] = (64,),
    ):
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        for a, b in zip((in_channels, *channels[:-1]), channels, strict=True):
            layers += [
                nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2),
                nn.ReLU(),
                nn.MaxPool1d(2, ceil_mode=True),
            ]
        layers.append(nn.AdaptiveAvgPool1d(pooled_length))
        self.conv = nn.Sequential(*layers)
        self.head = MLP(channels[-1] * pooled_length, out_features, hidden_features)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_channels == 1:
            x = x.unsqueeze(-2)
        batch = x.shape[:-2]
        h = self.conv(x.reshape(-1, *x.shape[-2:]))
        return self.head(h.flatten(1)).reshape(*batch, -1)


def conditioned(
    network: nn.Sequential, c: Tensor | None, features: int
) -> Callable[[Tensor], Tensor]:
    r"""Returns :math:`x \mapsto \mathrm{network}([x, c])`, with the work that depends only on
    the context done once when the function is called repeatedly.

    The first call evaluates the network on :math:`[x, c]` as is (a density needs one
    call, so there is nothing to reuse). From the second call on, the first layer of
    ``network`` (a :class:`torch.nn.Linear` or :class:`MaskedLinear` over :math:`x` then
    :math:`c`) splits as :math:`W_x x + (W_c c + b)`: the context's share and every masked
    weight are computed once, so that the :math:`D` passes of an autoregressive inverse cost
    only the :math:`x`-dependent products.

    Arguments:
        network: A sequential network whose first layer is linear.
        c: The context :math:`c`, with shape :math:`(*, C)`, or ``None``.
        features: The number of features of :math:`x` (the first inputs of the first layer).

    Returns:
        A function mapping :math:`x`, with shape :math:`(*, D)`, to the network's output.

    Example:
        >>> net = MLP(3 + 2, 4)
        >>> x, c = torch.randn(10, 3), torch.randn(10, 2)
        >>> f = conditioned(net, c, features=3)
        >>> torch.allclose(f(x), net(torch.cat((x, c), dim=-1)), atol=1e-6)
        True
        >>> torch.allclose(f(x), net(torch.cat((x, c), dim=-1)), atol=1e-6)  # reuses c's share
        True
    """

    calls = 0
    split: Callable[[Tensor], Tensor] | None = None

    def f(x: Tensor) -> Tensor:
        nonlocal calls, split
        calls += 1
        if calls == 1:
            return network(x if c is None else join_context(x, c))
        if split is None:
            split = split_first_layer(network, c, features)
        return split(x)

    return f


def join_context(x: Tensor, c: Tensor) -> Tensor:
    r"""The concatenation :math:`[x, c]` over the broadcast batch shape of ``x`` (*, D) and
    ``c`` (*, C)."""

    batch = broadcast_shapes(x.shape[:-1], c.shape[:-1])
    return torch.cat((x.expand(*batch, -1), c.expand(*batch, -1)), dim=-1)


def split_first_layer(
    network: nn.Sequential, c: Tensor | None, features: int, outputs: Tensor | None = None
) -> Callable[[Tensor], Tensor]:
    r"""Returns :math:`x \mapsto \mathrm{network}([x, c])` with the context's share of the
    first layer, :math:`W_c c + b`, and every masked weight computed once, here.

    With ``outputs`` (indices of output units), the function returns only those outputs and
    computes only the hidden units they depend on, as the masks of the
    :class:`MaskedLinear` layers tell: in a MADE, the parameters of the first features of
    the order need a fraction of the network.
    """

    first, *rest = network
    units = dependencies(network, outputs)  # per linear layer
    weight = first.masked_weight() if isinstance(first, MaskedLinear) else first.weight
    weight_x = select(weight[:, :features], units[0]).contiguous()
    bias = select(first.bias, units[0])
    shift = bias if c is None else F.linear(c, select(weight[:, features:], units[0]), bias)
    pairs = iter(zip(units[1:], units[:-1], strict=True))  # each next layer: rows, columns
    layers = [
        restricted_linear(layer, *next(pairs)) if isinstance(layer, nn.Linear) else in_place(layer)
        for layer in rest
    ]

    def f(x: Tensor) -> Tensor:
        if shift is None or shift.dim() == 1:
            h = F.linear(x, weight_x, shift)
        else:
            h = F.linear(x, weight_x)
            # in place where the shapes allow it: one (*, H) buffer fewer
            grows = h.shape != broadcast_shapes(h.shape, shift.shape)
            h = h + shift if grows else h.add_(shift)
        for layer in layers:
            h = layer(h)
        return h

    return f


def dependencies(network: nn.Sequential, outputs: Tensor | None) -> list[Tensor | None]:
    r"""Returns, for each linear layer of ``network``, the indices of its units on which the
    ``outputs`` depend (``None``: all of them), from the masks of :class:`MaskedLinear`."""

    units: list[Tensor | None] = []
    rows = outputs
    for layer in reversed([layer for layer in network if isinstance(layer, nn.Linear)]):
        units.insert(0, rows)
        if rows is not None and isinstance(layer, MaskedLinear):
            rows = layer.mask[rows].any(dim=0).nonzero().squeeze(-1)
        else:
            rows = None
    return units


def restricted_linear(
    layer: nn.Linear, rows: Tensor | None, columns: Tensor | None
) -> Callable[[Tensor], Tensor]:
    r"""Returns the linear map of ``layer`` (its masked weight) restricted to ``rows`` of
    its outputs and ``columns`` of its inputs (all of them where ``None``)."""

    weight = layer.masked_weight() if isinstance(layer, MaskedLinear) else layer.weight
    weight, bias = select(weight, rows, columns), select(layer.bias, rows)
    return lambda h: F.linear(h, weight, bias)


def in_place(activation: nn.Module) -> nn.Module:
    r"""Returns a copy of ``activation`` that works in place if it can (``inplace``, as
    :class:`torch.nn.ReLU`): after a linear layer, its input is a fresh buffer."""

    if not hasattr(activation, "inplace"):
        return activation
    activation = copy.copy(activation)
    activation.inplace = True
    return activation


def select(weight: Tensor | None, rows: Tensor | None, columns: Tensor | None = None):
    r"""Returns the ``rows`` and ``columns`` of a weight (or the ``rows`` of a bias), all of
    them where ``None``."""

    if weight is None:
        return None
    if rows is not None:
        weight = weight[rows]
    return weight if columns is None else weight[:, columns]
