r"""Element-wise bijections: shifts, bounded affine maps, soft clipping, soft boxes, circular
shifts and signed powers.

Every transform here acts independently on each element of its input; its
log-absolute-determinant has the (broadcast) shape of the input.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import constraints

from .._validation import as_parameter, broadcast_shapes, check_compatible, check_number
from .base import Transform

__all__ = [
    "AdditiveTransform",
    "CircularShiftTransform",
    "MonotonicAffineTransform",
    "SignedPowerTransform",
    "SoftBoxTransform",
    "SoftclipTransform",
]


class AdditiveTransform(Transform):
    r"""The shift :math:`f(x) = x + b`, element-wise.

    .. math:: \log |\det J_f(x)| = 0

    Arguments:
        shift: The shift :math:`b`, a tensor with shape :math:`(*)` broadcastable against
            the inputs, or a number.

    Example:
        >>> t = AdditiveTransform(torch.tensor([1.0, -1.0]))
        >>> t.call_and_ladj(torch.zeros(2))
        (tensor([ 1., -1.]), tensor([0., 0.]))
        >>> t.inv(torch.zeros(2))
        tensor([-1.,  1.])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, shift: Tensor | float):
        super().__init__()
        self.shift = as_parameter(shift, "AdditiveTransform's shift")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shift: {tuple(self.shift.shape)})"

    def _call(self, x: Tensor) -> Tensor:
        return x + self.shift

    def _inverse(self, y: Tensor) -> Tensor:
        return y - self.shift

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.zeros_like(y)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = x + self.shift
        return y, torch.zeros_like(y)


class MonotonicAffineTransform(Transform):
    r"""The increasing affine map :math:`f(x) = \exp(a) x + b`, with a bounded slope.

    The log-scale :math:`a` is the raw ``scale`` :math:`s` softly clipped into
    :math:`(\log \lambda, -\log \lambda)`, where :math:`\lambda` is ``slope``,

    .. math:: a = \frac{s}{1 + |s / \beta|}, \quad \beta = -\log \lambda ,

    so the slope :math:`\exp(a)` lies in :math:`(\lambda, 1 / \lambda)` and the map stays
    invertible whatever the value of :math:`s`.

    .. math:: \log |\det J_f(x)| = a

    Arguments:
        shift: The shift :math:`b`, with shape :math:`(*)`, or a number.
        scale: The unconstrained log-scale :math:`s`, with shape :math:`(*)`, or a number.
        slope: The minimum slope :math:`\lambda`, in :math:`(0, 1)`.

    Example:
        >>> t = MonotonicAffineTransform(torch.tensor([1.0]), torch.tensor([0.0]))
        >>> t.call_and_ladj(torch.tensor([2.0]))
        (tensor([3.]), tensor([0.]))
        >>> big = MonotonicAffineTransform(0.0, 1e9, slope=1e-2)
        >>> big(torch.tensor(1.0))  # the slope never exceeds 1 / slope
        tensor(100.0000)
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, shift: Tensor | float, scale: Tensor | float, slope: float = 1e-3):
        super().__init__()
        owner = type(self).__name__
        shift = as_parameter(shift, f"{owner}'s shift")
        scale = as_parameter(scale, f"{owner}'s scale")
        check_compatible(shift=shift, scale=scale)
        self.slope = check_number(slope, "slope", owner, 0.0, 1.0)
        bound = -math.log(self.slope)
        self.shift = shift
        self.log_scale = scale / (1 + (scale / bound).abs())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shift: {tuple(self.shift.shape)}, slope={self.slope})"

    def _call(self, x: Tensor) -> Tensor:
        return x * self.log_scale.exp() + self.shift

    def _inverse(self, y: Tensor) -> Tensor:
        return (y - self.shift) * torch.exp(-self.log_scale)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        # x and y: one of them may lack the batch shape of the parameters (an inverse of
        # an unbatched y, for instance), so the ladj takes the shape all three broadcast to
        shape = broadcast_shapes(x.shape, y.shape, self.log_scale.shape)
        return self.log_scale.expand(shape)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = x * self.log_scale.exp() + self.shift
        return y, self.log_scale.expand(y.shape)


class SoftclipTransform(Transform):
    r"""The soft clip :math:`f(x) = \frac{x}{1 + |x / B|}`, a bijection from
    :math:`\mathbb{R}` onto :math:`(-B, B)`, element-wise.

    .. math:: f^{-1}(y) = \frac{y}{1 - |y / B|}, \quad
        \log |\det J_f(x)| = -2 \log (1 + |x / B|)

    Arguments:
        bound: The bound :math:`B > 0`.

    Example:
        >>> t = SoftclipTransform(bound=2.0)
        >>> t(torch.tensor([-2.0, 0.0, 2.0, 1e6]))
        tensor([-1.0000,  0.0000,  1.0000,  2.0000])
        >>> t.inv(torch.tensor([1.0]))
        tensor([2.])
    """

    domain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, bound: float = 1.0):
        super().__init__()
        self.bound = check_number(bound, "bound", type(self).__name__, 0.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bound={self.bound})"

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.interval(-self.bound, self.bound)

    def _call(self, x: Tensor) -> Tensor:
        return x / (1 + (x / self.bound).abs())

    def _inverse(self, y: Tensor) -> Tensor:
        return y / (1 - (y / self.bound).abs())

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return -2 * torch.log1p((x / self.bound).abs())

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r = (x / self.bound).abs()
        return x / (1 + r), -2 * torch.log1p(r)


class SoftBoxTransform(Transform):
    r"""A bijection from :math:`\mathbb{R}` onto the interval :math:`(a, b)` that is affine
    on most of it, element-wise: :math:`f(u) = a + (b - a)\, h_k(u)` with

    .. math:: h_k(u) = \frac{\operatorname{softplus}(k (u + 1))
        - \operatorname{softplus}(k (u - 1))}{2 k} ,

    the cumulative distribution function of a uniform variable on :math:`(-1, 1)` plus a
    logistic one of scale :math:`1 / k`. Away from the ends of :math:`(-1, 1)`, :math:`h_k`
    is :math:`(u + 1) / 2` to within :math:`e^{-k (1 - |u|)}`; the bend towards the bounds
    takes a width of a few :math:`1 / k`, with logistic tails beyond. Unlike the logistic
    sigmoid, whose slope varies across the whole interval, it leaves the shape of a
    density in the middle of the interval unchanged, which is what a normalizing flow
    learns best. The sharpness :math:`k` trades the width of the affine middle against
    the steepness of the ends. Far in the tails :math:`f(u)` rounds onto a bound; the
    inverse maps a bound to a finite :math:`u`, as if :math:`\theta` were just inside it.

    .. math:: f^{-1}(\theta) = 2 y - 1 + \frac{1}{k} \log
        \frac{1 - e^{-2 k y}}{1 - e^{-2 k (1 - y)}}, \quad y = \frac{\theta - a}{b - a}

    .. math:: \log |\det J_f(u)| = \log \frac{b - a}{2} + \log \sigma(k (u + 1))
        + \log \sigma(k (1 - u)) + \log (1 - e^{-2 k})

    Arguments:
        lower: The lower bound :math:`a`, a tensor broadcastable against the inputs, or a
            number.
        upper: The upper bound :math:`b > a`, likewise.
        sharpness: The sharpness :math:`k > 0`.
        validate: Whether to check that ``upper > lower``, which reads the bounds' values
            (a synchronisation on a GPU): callers that build the transform often from
            bounds checked once pass ``False``.

    Example:
        >>> t = SoftBoxTransform(-1.0, 1.0)
        >>> t(torch.tensor([-100.0, 0.0, 0.25, 0.5, 100.0]))
        tensor([-1.0000,  0.0000,  0.2497,  0.4977,  1.0000])
        >>> t.inv(torch.tensor([0.25]))
        tensor([0.2503])
    """

    domain = constraints.real
    bijective = True
    sign = +1

    def __init__(
        self,
        lower: Tensor | float,
        upper: Tensor | float,
        sharpness: float = 8.0,
        *,
        validate: bool = True,
    ):
        super().__init__()
        owner = type(self).__name__
        self.lower = as_parameter(lower, f"{owner}'s lower")
        self.upper = as_parameter(upper, f"{owner}'s upper")
        check_compatible(lower=self.lower, upper=self.upper)
        if validate and not bool((self.upper > self.lower).all()):
            raise ValueError(
                f"{owner} expects upper > lower everywhere, but received lower {self.lower} "
                f"and upper {self.upper}."
            )
        self.sharpness = check_number(sharpness, "sharpness", owner, 0.0)
        self.log_norm = math.log(-math.expm1(-2 * self.sharpness))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sharpness={self.sharpness})"

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.interval(self.lower, self.upper)

    def share(self, u: Tensor) -> Tensor:
        r"""Returns :math:`h_k(u)`, clamped into :math:`[\epsilon_{\min}, 1 - \epsilon]` of
        the dtype so that :math:`f(u)` stays off the upper bound."""

        # h(u) + h(-u) = 1: the share of the nearer bound, h(-|u|), is small and exact
        k, softplus, v = self.sharpness, torch.nn.functional.softplus, -u.abs()
        nearer = (softplus(k * (v + 1)) - softplus(k * (v - 1))) / (2 * k)
        info = torch.finfo(u.dtype)
        return torch.where(u <= 0, nearer, 1 - nearer).clamp(info.tiny, 1 - info.eps)

    def bounds(self, like: Tensor) -> tuple[Tensor, Tensor]:
        r"""Returns the lower bound and the width of the interval, in the dtype of ``like``
        (bounds given as numbers adapt to it)."""

        lower = self.lower.to(like)
        return lower, self.upper.to(like) - lower

    def _call(self, u: Tensor) -> Tensor:
        lower, width = self.bounds(u)
        return lower + width * self.share(u)

    def _inverse(self, theta: Tensor) -> Tensor:
        # y and 1 - y each from their own bound, exact near it, and kept above the dtype's
        # smallest normal number: a theta on a bound, where forward's rounding can put a
        # draw, maps to a finite u
        k, tiny = self.sharpness, torch.finfo(theta.dtype).tiny
        lower, width = self.bounds(theta)
        y = ((theta - lower) / width).clamp(tiny, 1.0)
        rest = ((self.upper.to(theta) - theta) / width).clamp(tiny, 1.0)
        ends = torch.log(-torch.expm1(-2 * k * y)) - torch.log(-torch.expm1(-2 * k * rest))
        return y - rest + ends / k

    def log_abs_det_jacobian(self, u: Tensor, theta: Tensor) -> Tensor:
        k = self.sharpness
        logsigmoid = torch.nn.functional.logsigmoid
        log_half_width = torch.log(self.bounds(u)[1] / 2)
        return log_half_width + logsigmoid(k * (u + 1)) + logsigmoid(k * (1 - u)) + self.log_norm


class CircularShiftTransform(Transform):
    r"""The circular shift :math:`f(x) = (x \bmod 2B) - B` on :math:`[-B, B)`, element-wise.

    It shifts the circle :math:`[-B, B)` by half a turn: :math:`f` is its own inverse and
    preserves volume, :math:`\log |\det J_f(x)| = 0`. Used between spline layers on
    circular (angular) variables.

    Arguments:
        bound: The half-period :math:`B > 0`.

    Example:
        >>> t = CircularShiftTransform(bound=1.0)
        >>> t(torch.tensor([-1.0, -0.5, 0.0, 0.5]))
        tensor([ 0.0000,  0.5000, -1.0000, -0.5000])
        >>> t(t(torch.tensor([0.25])))
        tensor([0.2500])
    """

    bijective = True

    def __init__(self, bound: float = math.pi):
        super().__init__()
        self.bound = check_number(bound, "bound", type(self).__name__, 0.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bound={self.bound})"

    @property
    def domain(self) -> constraints.Constraint:
        return constraints.half_open_interval(-self.bound, self.bound)

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.half_open_interval(-self.bound, self.bound)

    def _call(self, x: Tensor) -> Tensor:
        return torch.remainder(x, 2 * self.bound) - self.bound

    def _inverse(self, y: Tensor) -> Tensor:
        return torch.remainder(y, 2 * self.bound) - self.bound

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._call(x), torch.zeros_like(x)


class SignedPowerTransform(Transform):
    r"""The signed power :math:`f(x) = \operatorname{sign}(x) |x|^\alpha`, element-wise.

    .. math:: f^{-1}(y) = \operatorname{sign}(y) |y|^{1 / \alpha}, \quad
        \log |\det J_f(x)| = \log \alpha + (\alpha - 1) \log |x|

    Arguments:
        alpha: The exponent :math:`\alpha > 0`, with shape :math:`(*)`, or a number.

    Example:
        >>> t = SignedPowerTransform(torch.tensor(2.0))
        >>> t(torch.tensor([-3.0, 0.5]))
        tensor([-9.0000,  0.2500])
        >>> t.inv(torch.tensor([-9.0, 0.25]))
        tensor([-3.0000,  0.5000])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, alpha: Tensor | float):
        super().__init__()
        alpha = as_parameter(alpha, "SignedPowerTransform's alpha")
        if not bool((alpha > 0).all()):
            raise ValueError(
                "SignedPowerTransform expects a positive exponent alpha, but received values "
                f"as low as {alpha.min().item():.4g}. Make it positive, e.g. with "
                "torch.nn.functional.softplus(alpha) or alpha.exp()."
            )
        self.alpha = alpha

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha: {tuple(self.alpha.shape)})"

    def _call(self, x: Tensor) -> Tensor:
        return torch.copysign(x.abs() ** self.alpha, x)

    def _inverse(self, y: Tensor) -> Tensor:
        return torch.copysign(y.abs() ** (1 / self.alpha), y)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.log(self.alpha) + (self.alpha - 1) * torch.log(x.abs())

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        abs_x = x.abs()
        y = torch.copysign(abs_x**self.alpha, x)
        return y, torch.log(self.alpha) + (self.alpha - 1) * torch.log(abs_x)
