r"""Structured transforms built from a hyper-network: autoregressive and coupling.

A *meta* function maps (part of) the input to an element-wise transform whose parameters it
predicts. The structure of the dependence keeps the Jacobian triangular, so the
log-determinant is the sum of the element-wise ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.distributions import constraints
from torch.distributions import transforms as torch_transforms

from .._validation import broadcast_shapes, check_input, check_tensor, describe
from .base import Transform, call_and_ladj, sum_rightmost

__all__ = ["AutoregressiveTransform", "CouplingTransform"]

Meta = Callable[[Tensor], torch_transforms.Transform]


def check_meta(meta: object, owner: str) -> Meta:
    r"""Returns ``meta`` if it is callable, or raises a :class:`TypeError`."""

    if not callable(meta):
        raise TypeError(
            f"{owner} expects meta to be a callable that maps a tensor to a transform (e.g. "
            f"an nn.Module), but received {describe(meta)}."
        )
    return meta


def summed_ladj(transform: torch_transforms.Transform, x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Returns :math:`y = f(x)` and its ladj summed over the last dimension of :math:`x`."""

    y, ladj = call_and_ladj(transform, x)
    return y, sum_rightmost(ladj, 1 - transform.domain.event_dim)


class AutoregressiveTransform(Transform):
    r"""The autoregressive transform :math:`y_i = f(x_i; \phi_i(x_{<i}))`.

    A hyper-network ``meta`` maps :math:`x` to an element-wise transform
    :math:`f(\cdot; \phi(x))` whose :math:`i`-th parameters depend only on the
    :math:`x_j` that come before :math:`x_i` in some order. The Jacobian is then triangular
    (up to a permutation) and

    .. math:: \log |\det J_f(x)| = \sum_{i=1}^D \log \left| \frac{\partial y_i}{\partial x_i}
        \right| .

    The inverse is computed by fixed-point sweeps from :math:`x^{(0)} = 0`,

    .. math:: x^{(k + 1)} = f^{-1}(y; \phi(x^{(k)})) ,

    which are exact after :math:`D` sweeps for an autoregressive ``meta``, since the sweep
    :math:`k` fixes the :math:`k`-th element in the order. When the features come in
    levels, each depending only on lower ones, ``sweeps`` may give for each level its
    features and a ``meta`` of their parameters alone: sweep :math:`k` then computes and
    inverts only the features of level :math:`k`, which is all it can fix.

    References:
        | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017)
        | https://arxiv.org/abs/1705.07057

    Arguments:
        meta: A callable that maps :math:`x`, with shape :math:`(*, D)`, to an element-wise
            transform (or one with event dimension 1) that acts on tensors of shape
            :math:`(*, D)`.
        passes: The number of inverse sweeps (:math:`D` for an exact inverse, fewer when
            ``meta`` has fewer autoregressive steps, e.g. 1 when it ignores :math:`x`).
        sweeps: Optionally, for each of the ``passes`` levels in order, a pair: the indices
            of its features, with shape :math:`(D_k,)`, and a callable that maps :math:`x`,
            with shape :math:`(*, D)`, to the element-wise transform of those features
            alone, acting on tensors of shape :math:`(*, D_k)`.

    Example:
        >>> from sbikit.transforms import MonotonicAffineTransform
        >>> W = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # y_1 = x_1, y_2 = x_2 + x_1
        >>> t = AutoregressiveTransform(lambda x: MonotonicAffineTransform(x @ W.T, 0.0), 2)
        >>> y, ladj = t.call_and_ladj(torch.tensor([1.0, 2.0]))
        >>> y, ladj
        (tensor([1., 3.]), tensor(0.))
        >>> t.inv(y)
        tensor([1., 2.])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(
        self, meta: Meta, passes: int, sweeps: Sequence[tuple[Tensor, Meta]] | None = None
    ):
        super().__init__()
        owner = type(self).__name__
        self.meta = check_meta(meta, owner)
        if not isinstance(passes, int) or isinstance(passes, bool):
            raise TypeError(
                f"{owner} expects passes to be an int, but received {describe(passes)}. Pass "
                "the number of features D for an exact inverse."
            )
        if passes < 1:
            raise ValueError(
                f"{owner} expects passes >= 1, but received {passes}. Pass the number of "
                "features D for an exact inverse."
            )
        self.passes = passes
        if sweeps is not None and len(sweeps) != passes:
            raise ValueError(
                f"{owner} expects one sweep per pass, but received {len(sweeps)} sweeps for "
                f"passes={passes}. Give the features of each level and their meta."
            )
        self.sweeps = sweeps

    def __repr__(self) -> str:
        return f"{type(self).__name__}(passes={self.passes})"

    def _call(self, x: Tensor) -> Tensor:
        return self.meta(x)(x)

    def _inverse(self, y: Tensor) -> Tensor:
        if self.sweeps is not None:
            return self._inverse_by_level(y)[0]
        x = self._first_sweep(y)
        for _ in range(self.passes - 1):
            x = self.meta(x).inv(y)
        return x

    def _first_sweep(self, y: Tensor) -> Tensor:
        r"""The first sweep of the inverse, from :math:`x = 0`. Its parameters are the same
        for every row, so ``meta`` sees one row of zeros, not a batch of them: for a batch
        of samples of one context, this sweep costs one row of the hyper-network."""

        return self.meta(y.new_zeros(y.shape[-1:])).inv(y)

    def _inverse_by_level(self, y: Tensor) -> tuple[Tensor, Tensor]:
        r"""The inverse and its ladj, one level of features per sweep. The first level's
        parameters depend on no feature, so its meta sees one row of zeros."""

        x, ladj = torch.zeros_like(y), 0
        for k, (features, meta) in enumerate(self.sweeps):
            features = features.to(y.device)
            inputs = x if k > 0 else y.new_zeros(y.shape[-1:])
            x_k, ladj_k = summed_ladj(meta(inputs).inv, y[..., features])
            x, ladj = x.index_copy(-1, features, x_k), ladj + ladj_k
        return x, ladj

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return summed_ladj(self.meta(x), x)[1]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return summed_ladj(self.meta(x), x)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # The last sweep's parameters are those of the solution (exact after D sweeps), so
        # its ladj is the inverse's: no extra evaluation of meta is needed.
        if self.sweeps is not None:
            return self._inverse_by_level(y)
        if self.passes == 1:
            return summed_ladj(self.meta(torch.zeros_like(y)).inv, y)
        x = self._first_sweep(y)
        for _ in range(self.passes - 2):
            x = self.meta(x).inv(y)
        return summed_ladj(self.meta(x).inv, y)


class CouplingTransform(Transform):
    r"""The coupling transform: :math:`y_a = x_a` and :math:`y_b = f(x_b; \phi(x_a))`.

    The coordinates where ``mask`` is ``True``, :math:`x_a`, pass through unchanged and
    condition an element-wise transform of the others, :math:`x_b`; every coordinate keeps
    its position. The Jacobian is block-triangular, so

    .. math:: \log |\det J_f(x)| = \log |\det J_{f(\cdot; \phi(x_a))}(x_b)|

    and the inverse is :math:`x_b = f^{-1}(y_b; \phi(y_a))` with :math:`x_a = y_a`.

    References:
        | Density estimation using Real NVP (Dinh et al., 2017)
        | https://arxiv.org/abs/1605.08803

    Arguments:
        meta: A callable that maps :math:`x_a`, with shape :math:`(*, D_a)`, to an
            element-wise transform (or one with event dimension 1) that acts on tensors of
            shape :math:`(*, D_b)`.
        mask: A boolean tensor of shape :math:`(D,)`, ``True`` for the :math:`D_a`
            conditioning coordinates and ``False`` for the :math:`D_b` transformed ones; it
            needs at least one of each.

    Example:
        >>> from sbikit.transforms import AdditiveTransform
        >>> mask = torch.tensor([True, False, True])
        >>> t = CouplingTransform(lambda x_a: AdditiveTransform(x_a.sum(-1, keepdim=True)), mask)
        >>> y = t(torch.tensor([1.0, 10.0, 2.0]))
        >>> y
        tensor([ 1., 13.,  2.])
        >>> t.inv(y)
        tensor([ 1., 10.,  2.])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, meta: Meta, mask: Tensor):
        super().__init__()
        owner = type(self).__name__
        self.meta = check_meta(meta, owner)
        mask = check_tensor(mask, f"{owner}'s mask")
        if mask.dtype != torch.bool:
            raise TypeError(
                f"{owner} expects mask to be a bool tensor, but received {describe(mask)}. "
                "Build it with a comparison, e.g. torch.arange(D) % 2 == 0."
            )
        if mask.dim() != 1 or not bool(mask.any()) or bool(mask.all()):
            raise ValueError(
                f"{owner} expects mask to be a 1-d tensor of shape (D,) with at least one "
                f"True and one False, but received {describe(mask)} with "
                f"{int(mask.sum())} True. Mark the conditioning coordinates True and the "
                "transformed ones False."
            )
        self.mask = mask
        self.index_a = mask.nonzero().squeeze(-1)
        self.index_b = (~mask).nonzero().squeeze(-1)
        self.order = torch.argsort(torch.cat((self.index_a, self.index_b)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mask={self.mask.int().tolist()})"

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = check_input(x, x, type(self).__name__, features=self.mask.numel())
        return x[..., self.index_a], x[..., self.index_b]

    def _join(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        batch = broadcast_shapes(x_a.shape[:-1], x_b.shape[:-1])
        x_a = x_a.expand(batch + x_a.shape[-1:])
        x_b = x_b.expand(batch + x_b.shape[-1:])
        return torch.cat((x_a, x_b), dim=-1)[..., self.order]

    def _call(self, x: Tensor) -> Tensor:
        x_a, x_b = self._split(x)
        return self._join(x_a, self.meta(x_a)(x_b))

    def _inverse(self, y: Tensor) -> Tensor:
        y_a, y_b = self._split(y)
        return self._join(y_a, self.meta(y_a).inv(y_b))

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_a, x_b = self._split(x)
        y_b, ladj = summed_ladj(self.meta(x_a), x_b)
        return self._join(x_a, y_b), ladj

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        y_a, y_b = self._split(y)
        x_b, ladj = summed_ladj(self.meta(y_a).inv, y_b)
        return self._join(y_a, x_b), ladj
