r"""Monotonic polynomial transforms: sum-of-squares and Bernstein polynomials.

Both have closed-form values and log-determinants; their inverses use bisection with
implicit-differentiation gradients, as :class:`~sbikit.transforms.monotonic.MonotonicTransform`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import (
    as_parameter,
    broadcast_batch,
    broadcast_shapes,
    check_compatible,
    check_float_tensor,
    check_input,
    check_number,
)
from ..numerics import softmax
from .monotonic import MonotonicTransform

__all__ = ["BernsteinTransform", "BoundedBernsteinTransform", "SOSPolynomialTransform"]


def horner(coefficients: Tensor, x: Tensor) -> Tensor:
    r"""Returns :math:`\sum_k c_k x^k` for coefficients :math:`c` of shape :math:`(*, K)`."""

    y = coefficients[..., -1]
    for k in range(coefficients.shape[-1] - 2, -1, -1):
        y = y * x + coefficients[..., k]
    return y


def square_coefficients(a: Tensor) -> Tensor:
    r"""Returns the coefficients :math:`c_k = \sum_i \sum_{l + m = k} a_{il} a_{im}` of
    :math:`\sum_i p_i(u)^2`, with shape :math:`(*, 2L + 1)`, for :math:`p_i(u) = \sum_l a_{il}
    u^l` with coefficients :math:`a` of shape :math:`(*, K, L + 1)`."""

    L1 = a.shape[-1]
    products = torch.einsum("...il,...im->...lm", a, a).flatten(-2)
    degree = (torch.arange(L1)[:, None] + torch.arange(L1)).flatten()
    collect = F.one_hot(degree, 2 * L1 - 1).to(a)  # ((L + 1)^2, 2L + 1)
    return products @ collect


class SOSPolynomialTransform(MonotonicTransform):
    r"""The sum-of-squares polynomial transform, element-wise.

    With :math:`K` polynomials :math:`p_i(u) = \sum_{l=0}^L a_{il} u^l` of degree :math:`L`
    and a minimum slope :math:`\lambda \ge 0`,

    .. math:: f(x) = C + \int_0^x \Big( \lambda + \sum_{i=1}^K p_i(u)^2 \Big) du
        = C + \lambda x + \sum_{k=0}^{2L} \frac{c_k}{k + 1} x^{k + 1} ,

    where :math:`c_k = \sum_i \sum_{l + m = k} a_{il} a_{im}` are the coefficients of
    :math:`\sum_i p_i^2`. The integrand is a sum of squares, so :math:`f` is increasing,
    strictly when :math:`\lambda > 0`; :math:`\lambda = 0` gives the flow of the paper.
    The value and the log-determinant are closed-form,

    .. math:: \log |\det J_f(x)| = \log \Big( \lambda + \sum_{i=1}^K p_i(x)^2 \Big) ,

    and the inverse uses bisection on :math:`[-B, B]` (see
    :class:`~sbikit.transforms.monotonic.MonotonicTransform`).

    References:
        | Sum-of-Squares Polynomial Flow (Jaini et al., 2019)
        | https://arxiv.org/abs/1905.02325

    Arguments:
        a: The coefficients :math:`a`, with shape :math:`(*, K, L + 1)`.
        C: The constant :math:`C = f(0)`, with shape :math:`(*)`, or a number.
        slope: The minimum slope :math:`\lambda \ge 0`.
        bound: The bound :math:`B > 0` of the bisection bracket.
        eps: The absolute tolerance :math:`\epsilon` of the inverse, in :math:`(0, B)`.

    Example:
        >>> a = torch.tensor([[1.0, 1.0]])  # f(x) = C + ∫ (1 + u)^2 du, with slope 0
        >>> t = SOSPolynomialTransform(a, C=1.0, slope=0.0)
        >>> x = torch.tensor([-2.0, 0.0, 2.0])
        >>> y, ladj = t.call_and_ladj(x)
        >>> y  # 1 + ((1 + x)^3 - 1) / 3
        tensor([0.3333, 1.0000, 9.6667])
        >>> torch.allclose(ladj, 2 * torch.log((1 + x).abs()))
        True
        >>> torch.allclose(t.inv(y), x, atol=1e-5)
        True
    """

    def __init__(
        self,
        a: Tensor,
        C: Tensor | float,
        slope: float = 1e-3,
        bound: float = 10.0,
        eps: float = 1e-6,
    ):
        owner = type(self).__name__
        a = check_float_tensor(a, "a", owner, min_dim=2)
        C = as_parameter(C, f"{owner}'s C")
        check_compatible(a=a, C=C)
        slope = check_number(slope, "slope", owner)
        if slope < 0:
            raise ValueError(
                f"{owner} expects a minimum slope >= 0, but received slope={slope}. Pass "
                "slope=0.0 for the pure sum of squares, or a small positive value."
            )
        self.batch_shape = broadcast_batch(owner, a=a.shape[:-2], C=C.shape)

        # ∫_0^x λ + Σ_k c_k u^k du = x Σ_k q_k x^k with q_k = c_k / (k + 1), q_0 = c_0 + λ.
        c = square_coefficients(a)
        q = c / torch.arange(1, c.shape[-1] + 1, dtype=c.dtype, device=c.device)
        q = torch.cat((q[..., :1] + slope, q[..., 1:]), dim=-1)
        super().__init__(self.polynomial, (q,), bound, eps)
        self.a, self.constant, self.slope, self.q = a, C, slope, q
        self.polynomials, self.degree = a.shape[-2], a.shape[-1] - 1

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(polynomials={self.polynomials}, degree={self.degree}, "
            f"bound={self.bound})"
        )

    def polynomial(self, x: Tensor) -> Tensor:
        r"""Returns :math:`f(x) - C`, the integral of the sum of squares."""

        return x * horner(self.q, x)

    def derivative(self, x: Tensor) -> Tensor:
        r"""Returns :math:`f'(x) = \lambda + \sum_i p_i(x)^2`."""

        return horner(self.a, x.unsqueeze(-1)).square().sum(dim=-1) + self.slope

    def _call(self, x: Tensor) -> Tensor:
        x = check_input(x, self.q, type(self).__name__)
        return self.polynomial(x) + self.constant

    def _inverse(self, y: Tensor) -> Tensor:
        y = check_input(y, self.q, f"{type(self).__name__}'s inverse")
        return self._bisect(self.polynomial, y - self.constant)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        x = check_input(x, self.q, type(self).__name__)
        return torch.log(self.derivative(x))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = self._call(x)
        return y, torch.log(self.derivative(x)).expand(y.shape)


class BernsteinTransform(MonotonicTransform):
    r"""The monotonic Bernstein polynomial transform, extended linearly outside
    :math:`[-B, B]`, element-wise.

    On :math:`[-B, B]`, with :math:`t = (x + B) / 2B \in [0, 1]`, :math:`f` is the
    polynomial of degree :math:`M`

    .. math:: P(x) = \sum_{k=0}^M \beta_k \binom{M}{k} t^k (1 - t)^{M - k} ,

    whose coefficients increase, :math:`\beta_0 = \theta_0` and
    :math:`\beta_k = \beta_{k - 1} + \operatorname{softplus}(\theta_k)`, so that

    .. math:: P'(x) = \frac{M}{2B} \sum_{k=0}^{M - 1} (\beta_{k + 1} - \beta_k)
        \binom{M - 1}{k} t^k (1 - t)^{M - 1 - k} > 0 .

    Outside, :math:`f` continues along its tangent at the nearest bound,
    :math:`f(x) = P(x_c) + P'(x_c) (x - x_c)` with :math:`x_c = \min(\max(x, -B), B)`, so
    :math:`f` is a :math:`C^1` bijection of :math:`\mathbb{R}` and
    :math:`\log |\det J_f(x)| = \log P'(x_c)`. The inverse is linear outside
    :math:`[\beta_0, \beta_M]` and uses bisection inside.

    References:
        | Robust normalizing flows using Bernstein-type polynomials (Ramasinghe et al., 2021)
        | https://arxiv.org/abs/2102.03509

    Arguments:
        theta: The unconstrained parameters :math:`\theta`, with shape :math:`(*, M + 1)`,
            :math:`M \ge 1`.
        bound: The bound :math:`B > 0` of the polynomial's domain.
        eps: The absolute tolerance :math:`\epsilon` of the inverse, in :math:`(0, B)`.

    Example:
        >>> t = BernsteinTransform(torch.tensor([-1.0, 0.0, 2.0, 0.0]), bound=2.0)
        >>> x = torch.tensor([-3.0, 0.5, 3.0])
        >>> y, ladj = t.call_and_ladj(x)
        >>> torch.allclose(t.inv(y), x, atol=1e-5)
        True
        >>> bool((y.diff() > 0).all())
        True
    """

    _minimum = 2  # the smallest number of parameters
    _hint = "Give theta M + 1 entries for a polynomial of degree M."

    def __init__(self, theta: Tensor, bound: float = 10.0, eps: float = 1e-6):
        owner = type(self).__name__
        theta = check_float_tensor(theta, "theta", owner, min_dim=1)
        if theta.shape[-1] < self._minimum:
            raise ValueError(
                f"{owner} expects theta of shape (*, P) with P >= {self._minimum}, but received "
                f"shape {tuple(theta.shape)}. {self._hint}"
            )
        bound = check_number(bound, "bound", owner, 0.0)
        beta = self.coefficients(theta, bound)
        super().__init__(self.polynomial, (beta,), bound, eps)
        self.theta, self.beta = theta, beta
        self.degree = M = beta.shape[-1] - 1
        self.powers = torch.arange(M, dtype=beta.dtype, device=beta.device)
        binomials = [math.comb(M - 1, k) for k in range(M)]
        self.binomials = torch.tensor(binomials, dtype=beta.dtype, device=beta.device)
        self.batch_shape = beta.shape[:-1]

    @staticmethod
    def coefficients(theta: Tensor, bound: float) -> Tensor:
        r"""Returns the increasing coefficients :math:`\beta`, with shape :math:`(*, M + 1)`."""

        increments = F.softplus(theta[..., 1:])
        return torch.cat((theta[..., :1], theta[..., :1] + increments.cumsum(dim=-1)), dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(degree={self.degree}, bound={self.bound})"

    def bernstein(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`P(x)` and :math:`P'(x)` for :math:`x \in [-B, B]`.

        One step of de Casteljau's algorithm, :math:`\beta_k (1 - t) + \beta_{k + 1} t`,
        reduces both to sums over the basis of degree :math:`M - 1`.
        """

        t = ((x + self.bound) / (2 * self.bound)).unsqueeze(-1)
        basis = self.binomials * t**self.powers * (1 - t) ** self.powers.flip(-1)
        beta = self.beta
        increments = beta[..., 1:] - beta[..., :-1]
        value = (basis * (beta[..., :-1] + t * increments)).sum(dim=-1)
        slope = (basis * increments).sum(dim=-1) * (self.degree / (2 * self.bound))
        return value, slope

    def polynomial(self, x: Tensor) -> Tensor:
        r"""Returns :math:`P(x)`, for :math:`x \in [-B, B]`."""

        return self.bernstein(x)[0]

    def _evaluate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`f(x)` and :math:`f'(x)`."""

        x = check_input(x, self.beta, type(self).__name__)
        x_c = x.clamp(-self.bound, self.bound)
        p, dp = self.bernstein(x_c)
        return p + dp * (x - x_c), dp.expand(broadcast_shapes(dp.shape, x.shape))

    def _call(self, x: Tensor) -> Tensor:
        return self._evaluate(x)[0]

    def _inverse(self, y: Tensor) -> Tensor:
        y = check_input(y, self.beta, f"{type(self).__name__}'s inverse")
        low, high = self.beta[..., 0], self.beta[..., -1]
        y_c = torch.minimum(torch.maximum(y, low), high)
        x_c = self._solve(self.polynomial, y_c)
        # Outside [β_0, β_M], invert the tangent line at the nearest bound.
        below, above = y < low, y > high
        slope_low, slope_high = self.end_slopes()
        x_b = torch.where(below, -self.bound, self.bound).to(y_c)
        slope = torch.where(below, slope_low, slope_high)
        return torch.where(below | above, x_b + (y - y_c) / slope, x_c)

    def end_slopes(self) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`P'(-B)` and :math:`P'(B)`."""

        scale = self.degree / (2 * self.bound)
        beta = self.beta
        return scale * (beta[..., 1] - beta[..., 0]), scale * (beta[..., -1] - beta[..., -2])

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.log(self._evaluate(x)[1])

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, dy = self._evaluate(x)
        return y, torch.log(dy)


class BoundedBernsteinTransform(BernsteinTransform):
    r"""A Bernstein polynomial transform that maps :math:`[-B, B]` onto itself, and the
    identity outside, element-wise.

    The polynomial of :class:`BernsteinTransform`, of degree :math:`M = P + 2` for
    parameters :math:`\theta \in \mathbb{R}^P`, with coefficients

    .. math:: \beta_0 = -B, \quad \beta_1 = -B + \delta, \quad
        \beta_{k + 1} = \beta_k + (2B - 2\delta) \operatorname{softmax}(\theta)_k
        \ (1 \le k \le M - 2), \quad \beta_{M - 1} = B - \delta, \quad \beta_M = B ,

    where :math:`\delta = 2B / M`. Then :math:`f(\pm B) = \pm B` and
    :math:`f'(\pm B) = M \delta / 2B = 1`, so the identity outside :math:`[-B, B]` joins it
    with a continuous derivative (:math:`f` is a :math:`C^1` bijection of
    :math:`\mathbb{R}`, and :math:`\log |\det J_f(x)| = 0` outside). With :math:`\theta = 0`
    the coefficients are equally spaced and :math:`f` is the identity everywhere.

    References:
        | Robust normalizing flows using Bernstein-type polynomials (Ramasinghe et al., 2021)
        | https://arxiv.org/abs/2102.03509

    Arguments:
        theta: The unconstrained parameters :math:`\theta`, with shape :math:`(*, M - 2)`,
            :math:`M \ge 4`.
        bound: The bound :math:`B > 0` of the interval.
        eps: The absolute tolerance :math:`\epsilon` of the inverse, in :math:`(0, B)`.

    Example:
        >>> t = BoundedBernsteinTransform(torch.tensor([0.0, 2.0, -1.0]), bound=1.0)  # M = 5
        >>> t(torch.tensor([-2.0, -1.0, 1.0, 2.0]))  # fixed bounds, the identity outside
        tensor([-2., -1.,  1.,  2.])
        >>> t(torch.tensor([0.0])) != 0
        tensor([True])
        >>> BoundedBernsteinTransform(torch.zeros(3))(torch.tensor([0.25]))  # θ = 0: identity
        tensor([0.2500])
    """

    _minimum = 2
    _hint = "Give theta M - 2 entries for a polynomial of degree M."

    def __init__(self, theta: Tensor, bound: float = 5.0, eps: float = 1e-6):
        super().__init__(theta, bound, eps)

    @staticmethod
    def coefficients(theta: Tensor, bound: float) -> Tensor:
        M = theta.shape[-1] + 2
        delta = 2 * bound / M
        inner = (2 * bound - 2 * delta) * softmax(theta).cumsum(dim=-1)
        ends = [-bound, -bound + delta, bound - delta, bound]
        ends = torch.tensor(ends, dtype=theta.dtype, device=theta.device)
        ends = ends.expand((*theta.shape[:-1], 4))
        inner = -bound + delta + inner[..., :-1]
        return torch.cat((ends[..., :2], inner, ends[..., 2:]), dim=-1)

    def _evaluate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = check_input(x, self.beta, type(self).__name__)
        inside = (x >= -self.bound) & (x <= self.bound)
        p, dp = self.bernstein(x.clamp(-self.bound, self.bound))
        return torch.where(inside, p, x), torch.where(inside, dp, torch.ones_like(dp))

    def _inverse(self, y: Tensor) -> Tensor:
        y = check_input(y, self.beta, f"{type(self).__name__}'s inverse")
        inside = (y >= -self.bound) & (y <= self.bound)
        y_c = y.clamp(-self.bound, self.bound)
        x = self._solve(self.polynomial, y_c)
        return torch.where(inside, x.clamp(-self.bound, self.bound), y)
