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
    every bin spans at least ``slope / K`` of :math:`[-B, B]`. The end knots are exact: the
    last bin takes what the others leave.
    """

    K = sizes.shape[-1]
    sizes = softmax(sizes) * (2 * bound * (1 - slope)) + 2 * bound * slope / K
    interior = torch.cumsum(sizes[..., :-1], dim=-1) - bound
    return F.pad(F.pad(interior, (1, 0), value=-bound), (0, 1), value=bound)


def unpack_bins(bins: Tensor) -> tuple[Tensor, ...]:
    r"""Returns :math:`x_k`, the width, :math:`y_k`, the height, :math:`d_k`,
    :math:`d_{k+1}` and the slope :math:`s_k` of bins given as :math:`(*, 3, 2)` tensors of
    their two knots' :math:`x`, :math:`y` and :math:`d`."""

    (x0, x1), (y0, y1), (d0, d1) = (pair.unbind(-1) for pair in bins.unbind(-2))
    width, height = x1 - x0, y1 - y0
    return x0, width, y0, height, d0, d1, height / width


def xi_terms(xi: Tensor, s: Tensor, d0: Tensor, d1: Tensor) -> tuple[Tensor, ...]:
    r"""Returns :math:`\xi'`, :math:`q`, :math:`n` and :math:`m` (see
    :class:`RationalQuadraticBins`) at the positions :math:`\xi` within bins."""

    xi_1m = xi * (1 - xi)
    q = s + (d0 + d1 - 2 * s) * xi_1m
    n = s * xi.square() + d0 * xi_1m
    m = d1 * xi.square() + 2 * s * xi_1m + d0 * (1 - xi).square()
    return xi_1m, q, n, m


def bin_terms(z: Tensor, bins: Tensor) -> tuple[Tensor, ...]:
    r"""Returns those of :func:`unpack_bins`, then :math:`\xi` and those of
    :func:`xi_terms`, at clamped inputs ``z``."""

    x0, width, y0, height, d0, d1, s = unpack_bins(bins)
    xi = (z - x0) / width
    return x0, width, y0, height, d0, d1, s, xi, *xi_terms(xi, s, d0, d1)


class RationalQuadraticBins(torch.autograd.Function):
    r"""The forward spline and its ladj at inputs :math:`x`, given each input's bin, with
    a closed-form backward: one graph node instead of some fifty.

    With :math:`\xi = (z - x_k) / w` for the clamped input :math:`z`, :math:`s` the bin's
    slope, :math:`c = d_k + d_{k+1} - 2 s`, :math:`\xi' = \xi (1 - \xi)`, the numerator
    :math:`n = s \xi^2 + d_k \xi'`, the denominator :math:`q = s + c \xi'` and
    :math:`m = d_{k+1} \xi^2 + 2 s \xi' + d_k (1 - \xi)^2`, the output is
    :math:`y_k + h n / q` and the ladj :math:`\log m + 2 \log (s / q)`; both are the
    identity (and 0) where the input is outside the bound.

    Arguments (of ``apply``):
        x: The inputs, with shape :math:`(*)`.
        inside: Whether each input is inside :math:`[-B, B]`, with shape :math:`(*)`.
        z: The inputs clamped into :math:`[-B, B]`, with shape :math:`(*)`; its gradient
            is given to ``x``.
        bins: The knots of each input's bin, with shape :math:`(*, 3, 2)`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, inside: Tensor, z: Tensor, bins: Tensor) -> tuple[Tensor, Tensor]:
        _, _, y0, height, _, _, s, _, _, q, n, m = bin_terms(z, bins)
        out = y0 + height * n / q
        ladj = torch.log(m) + 2 * torch.log(s / q)
        return torch.where(inside, out, x), torch.where(inside, ladj, 0.0)

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: tuple) -> None:
        _, inside, z, bins = inputs
        ctx.save_for_backward(inside, z, bins)

    @staticmethod
    def backward(ctx, grad_y: Tensor, grad_ladj: Tensor) -> tuple[Tensor | None, ...]:
        inside, z, bins = ctx.saved_tensors
        _, width, _, height, d0, d1, s, xi, xi_1m, q, n, m = bin_terms(z, bins)
        xi_2m, c = 1 - 2 * xi, d0 + d1 - 2 * s

        # The output is y_k + h n / q: g_n is the gradient it gives to n, g_q to q.
        g_y = torch.where(inside, grad_y, 0.0)
        g_l = torch.where(inside, grad_ladj, 0.0)
        g_n = g_y * height / q
        g_q = -g_n * n / q - 2 * g_l / q
        g_m = g_l / m
        # n, q and m as functions of xi, s, d_k and d_k+1 (with c through s and the d's)
        g_xi = (
            g_n * (2 * s * xi + d0 * xi_2m)
            + g_q * c * xi_2m
            + g_m * 2 * (d1 * xi + s * xi_2m - d0 * (1 - xi))
        )
        g_s = g_n * xi.square() + g_q * (1 - 2 * xi_1m) + g_m * 2 * xi_1m + 2 * g_l / s
        g_d0 = g_n * xi_1m + g_q * xi_1m + g_m * (1 - xi).square()
        g_d1 = g_q * xi_1m + g_m * xi.square()
        # xi = (z - x_k) / w and s = h / w
        g_z = g_xi / width
        g_height = g_y * n / q + g_s / width
        g_width = -(g_xi * xi + g_s * s) / width
        grad_bins = torch.stack(
            (-g_z - g_width, g_width, g_y - g_height, g_height, g_d0, g_d1), dim=-1
        ).unflatten(-1, (3, 2))
        return torch.where(inside, g_z, grad_y), None, None, grad_bins


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
        derivatives = torch.exp(derivatives / (1 + derivatives.abs() / beta))
        shape = self.batch_shape
        sizes = torch.stack((widths.expand(*shape, K), heights.expand(*shape, K)), dim=-2)
        knots = spline_knots(sizes, self.bound, self.slope)
        derivatives = F.pad(derivatives, (1, 1), value=1.0).unsqueeze(-2).expand(*shape, 1, K + 1)
        self.knots = torch.cat((knots, derivatives), dim=-2)  # x, y and d of each knot

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bins={self.bins}, bound={self.bound})"

    def _spline(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`f(x)` and its ladj, or :math:`f^{-1}(x)` and its ladj."""

        x = check_input(x, self.knots, type(self).__name__)
        shape = broadcast_shapes(x.shape, self.batch_shape)
        x = x.expand(shape)
        knots = self.knots.expand(*shape, 3, self.bins + 1)

        # Clamping keeps every computation finite (and its gradient free of NaN) outside.
        inside = (x >= -self.bound) & (x <= self.bound)
        z = x.clamp(-self.bound, self.bound)
        sorted_knots = knots[..., int(inverse), :].contiguous()
        k = torch.searchsorted(sorted_knots, z.unsqueeze(-1), right=True) - 1
        k = k.clamp(0, self.bins - 1)
        bins = knots.gather(-1, torch.cat((k, k + 1), dim=-1).unsqueeze(-2).expand(*shape, 3, 2))
        if not inverse:
            return RationalQuadraticBins.apply(x, inside, z, bins)

        x0, width, y0, height, d0, d1, s = unpack_bins(bins)
        curvature = d0 + d1 - 2 * s
        dy = z - y0
        a = height * (s - d0) + dy * curvature
        b = height * d0 - dy * curvature
        c = -s * dy
        discriminant = (b.square() - 4 * a * c).clamp(min=0.0)
        xi = (2 * c / (-b - discriminant.sqrt())).clamp(0.0, 1.0)
        _, q, _, m = xi_terms(xi, s, d0, d1)
        ladj = torch.log(m) + 2 * torch.log(s / q)
        out = x0 + width * xi
        return torch.where(inside, out, x), torch.where(inside, -ladj, 0.0)

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
