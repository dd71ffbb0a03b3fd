r"""Element-wise bijections: shifts, bounded affine maps, soft clipping, circular shifts and
signed powers.

Every transform here acts independently on each element of its input; its
log-absolute-determinant has the (broadcast) shape of the input.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import constraints

from .._validation import as_parameter, check_compatible, check_number
from .base import Transform

__all__ = [
    "AdditiveTransform",
    "CircularShiftTransform",
    "MonotonicAffineTransform",
    "SignedPowerTransform",
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
        shape = torch.broadcast_shapes(x.shape, y.shape, self.log_scale.shape)
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
