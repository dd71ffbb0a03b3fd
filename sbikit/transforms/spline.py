r"""Monotonic rational-quadratic spline transforms."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from .._validation import (
    broadcast_batch,
    broadcast_shapes,
    check_compatible,
    check_float_tensor,
    check_input,
    check_number,
)
from ..numerics import softmax
from .base import Transform

__all__ = ["MonotonicRQSTransform"]


def spline_knots(sizes: Tensor, bound: float, slope: float) -> Tensor:
    r"""Returns the :math:`K + 1` knots, from :math:`-B` to :math:`B`, of :math:`K` bins
    whose unnormalized sizes are ``sizes``, with shape :math:`(*, K)`.

    The sizes are normalized by a softmax and mixed with a uniform share ``slope`` so that
    every bin spans at least ``slope / K`` of :math:`[-B, B]`. The end knots are exact.
    """

    K = sizes.shape[-1]
    sizes = (1 - slope) * softmax(sizes) + slope / K
    cumulative = F.pad(torch.cumsum(sizes, dim=-1), (1, 0), value=0.0)
    cumulative = cumulative / cumulative[..., -1:]
    return bound * (2 * cumulative - 1)


class MonotonicRQSTransform(Transform):
    r"""The monotonic rational-quadratic spline transform, element-wise.

    On :math:`[-B, B]`, :math:`f` is a monotonic spline of :math:`K` rational-quadratic
    bins with knots :math:`(x_k, y_k)` and knot derivatives :math:`d_k`. In the bin
    :math:`x_k \le x < x_{k+1}`, with :math:`s_k = (y_{k+1} - y_k) / (x_{k+1} - x_k)` and
    :math:`\xi = (x - x_k) / (x_{k+1} - x_k)`,

    .. math:: f(x) = y_k + \frac{(y_{k+1} - y_k) \left[ s_k \xi^2 + d_k \xi (1 - \xi)
        \right]}{s_k + (d_{k+1} + d_k - 2 s_k) \xi (1 - \xi)} .

    The boundary derivatives are :math:`d_0 = d_K = 1`, so the spline joins the identity,
    which :math:`f` is outside :math:`[-B, B]` (where :math:`\log |\det J_f(x)| = 0`). The
    inverse is closed-form: :math:`\xi` is the root in :math:`[0, 1]` of a quadratic,
    computed as :math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})` for numerical stability.

    The parameters are unconstrained. The bin widths and heights are normalized by a
    softmax, mixed with a uniform share :math:`\lambda` (``slope``) so that every bin spans
    at least :math:`2 B \lambda / K`, and cumulated into knots from :math:`-B` to :math:`B`.
    The interior derivatives :math:`d_k = \exp(u_k / (1 + |u_k / \beta|))`, with
    :math:`\beta = -\log \lambda`, lie in :math:`(\lambda, 1 / \lambda)`.

    References:
        | Neural Spline Flows (Durkan et al., 2019)
        | https://arxiv.org/abs/1906.04032

    Arguments:
        widths: The unnormalized bin widths, with shape :math:`(*, K)`.
        heights: The unnormalized bin heights, with shape :math:`(*, K)`.
        derivatives: The unconstrained interior-knot derivatives :math:`u`, with shape
            :math:`(*, K - 1)`.
        bound: The spline's domain bound :math:`B > 0`.
        slope: The minimum slope :math:`\lambda`, in :math:`(0, 1)`.

    The batch shapes :math:`(*)` of the parameters broadcast against each other and
    against the shape of the inputs.

    Example:
        >>> K = 8
        >>> t = MonotonicRQSTransform(torch.randn(3, K), torch.randn(3, K), torch.randn(3, K - 1))
        >>> x = torch.tensor([-6.0, 0.5, 6.0])
        >>> y, ladj = t.call_and_ladj(x)
        >>> y[0], y[2], ladj[0]  # the identity outside [-5, 5]
        (tensor(-6.), tensor(6.), tensor(0.))
        >>> torch.allclose(t.inv(y), x, atol=1e-5)
        True
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(
        self,
        widths: Tensor,
        heights: Tensor,
        derivatives: Tensor,
        bound: float = 5.0,
        slope: float = 1e-3,
    ):
        super().__init__()
        owner = type(self).__name__
        widths = check_float_tensor(widths, "widths", owner, min_dim=1)
        heights = check_float_tensor(heights, "heights", owner, min_dim=1)
        derivatives = check_float_tensor(derivatives, "derivatives", owner, min_dim=1)
        check_compatible(widths=widths, heights=heights, derivatives=derivatives)
        K = widths.shape[-1]
        if K < 1 or heights.shape[-1] != K or derivatives.shape[-1] != K - 1:
            raise ValueError(
                f"{owner} expects widths and heights of shape (*, K) and derivatives of shape "
                f"(*, K - 1) with K >= 1 bins, but received widths {tuple(widths.shape)}, "
                f"heights {tuple(heights.shape)} and derivatives {tuple(derivatives.shape)}. "
                "Give the network K outputs for each of widths and heights, K - 1 for "
                "derivatives."
            )
        self.batch_shape = broadcast_batch(
            owner,
            widths=widths.shape[:-1],
            heights=heights.shape[:-1],
            derivatives=derivatives.shape[:-1],
        )
        self.bins = K
        self.bound = check_number(bound, "bound", owner, 0.0)
        self.slope = check_number(slope, "slope", owner, 0.0, 1.0)

        beta = -math.log(self.slope)
        derivatives = torch.exp(derivatives / (1 + (derivatives / beta).abs()))
        self.horizontal = spline_knots(widths, self.bound, self.slope)
        self.vertical = spline_knots(heights, self.bound, self.slope)
        self.derivatives = F.pad(derivatives, (1, 1), value=1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bins={self.bins}, bound={self.bound})"

    def _spline(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`f(x)` and its ladj, or :math:`f^{-1}(x)` and its ladj."""

        x = check_input(x, self.horizontal, type(self).__name__)
        shape = broadcast_shapes(x.shape, self.batch_shape)
        x = x.expand(shape)
        knots = (*shape, self.bins + 1)
        horizontal = self.horizontal.expand(knots)
        vertical = self.vertical.expand(knots)
        derivatives = self.derivatives.expand(knots)

        # Clamping keeps every computation finite (and its gradient free of NaN) outside.
        inside = (x >= -self.bound) & (x <= self.bound)
        z = x.clamp(-self.bound, self.bound)
        sorted_knots = vertical if inverse else horizontal
        k = torch.searchsorted(sorted_knots.contiguous(), z.unsqueeze(-1), right=True) - 1
        k = k.clamp(0, self.bins - 1)
        k = torch.cat((k, k + 1), dim=-1)

        x0, x1 = horizontal.gather(-1, k).unbind(-1)
        y0, y1 = vertical.gather(-1, k).unbind(-1)
        d0, d1 = derivatives.gather(-1, k).unbind(-1)
        width, height = x1 - x0, y1 - y0
        s = height / width
        curvature = d0 + d1 - 2 * s

        if inverse:
            dy = z - y0
            a = height * (s - d0) + dy * curvature
            b = height * d0 - dy * curvature
            c = -s * dy
            discriminant = (b.square() - 4 * a * c).clamp(min=0.0)
            xi = (2 * c / (-b - discriminant.sqrt())).clamp(0.0, 1.0)
        else:
            xi = (z - x0) / width

        xi_1m = xi * (1 - xi)
        denominator = s + curvature * xi_1m
        ladj = (
            2 * torch.log(s)
            + torch.log(d1 * xi.square() + 2 * s * xi_1m + d0 * (1 - xi).square())
            - 2 * torch.log(denominator)
        )
        if inverse:
            out, ladj = x0 + width * xi, -ladj
        else:
            out = y0 + height * (s * xi.square() + d0 * xi_1m) / denominator

        return torch.where(inside, out, x), torch.where(inside, ladj, torch.zeros_like(ladj))

    def _call(self, x: Tensor) -> Tensor:
        return self._spline(x, inverse=False)[0]

    def _inverse(self, y: Tensor) -> Tensor:
        return self._spline(y, inverse=True)[0]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self._spline(x, inverse=False)[1]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(x, inverse=False)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(y, inverse=True)
