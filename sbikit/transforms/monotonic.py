r"""Element-wise monotonic transforms defined by a function, inverted by bisection.

:class:`MonotonicTransform` wraps any increasing function :math:`f` (e.g. a
:class:`~sbikit.nn.MonotonicMLP`); :class:`UnconstrainedMonotonicTransform` integrates a
positive function. Both invert by bisection with implicit-differentiation gradients
(:func:`~sbikit.numerics.bisection`), so their inverses are trainable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.distributions import constraints

from .._validation import (
    as_parameter,
    broadcast_shapes,
    check_count,
    check_number,
    check_tensor,
    describe,
)
from ..numerics.quadrature import gauss_legendre
from ..numerics.roots import bisection
from .base import Transform

__all__ = ["MonotonicTransform", "UnconstrainedMonotonicTransform"]


def value_and_derivative(f: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Returns :math:`f(x)` and :math:`f'(x)` for an element-wise function :math:`f`, by
    automatic differentiation, in one evaluation of :math:`f`.

    With grad mode on, the derivative keeps its graph (``create_graph=True``), so a loss
    that involves it trains whatever :math:`f` depends on. With grad mode off, both outputs
    are detached; in inference mode, forward-mode differentiation gives them.
    """

    if torch.is_inference_mode_enabled():
        # Autograd records nothing in inference mode, but forward-mode differentiation works.
        return torch.func.jvp(f, (x,), (torch.ones_like(x),))

    training = torch.is_grad_enabled()
    with torch.enable_grad():
        x_ = x.clone().requires_grad_()
        y = f(x_)
        if y.shape != x_.shape:  # parameters broadcast x: differentiate each element alone
            x_ = x.expand(y.shape).clone().requires_grad_()
            y = f(x_)
        if y.requires_grad:
            (dy,) = torch.autograd.grad(
                y, x_, torch.ones_like(y), create_graph=training, allow_unused=True
            )
        else:
            dy = None
    if dy is None:  # f does not depend on x
        dy = torch.zeros_like(y)
    if not training:
        y, dy = y.detach(), dy.detach()
    return y, dy


class MonotonicTransform(Transform):
    r"""The transform :math:`y = f(x)` of a monotonically increasing function, element-wise.

    The log-determinant is the log-derivative, computed by automatic differentiation in the
    same pass as :math:`f(x)`,

    .. math:: \log |\det J_f(x)| = \log f'(x) .

    The inverse solves :math:`f(x) = y` by bisection on :math:`[-B, B]` in
    :math:`n = \lceil \log_2 (2 B / \epsilon) \rceil` steps, so it is accurate to
    :math:`\epsilon` whenever :math:`f^{-1}(y) \in [-B, B]`; targets outside
    :math:`f([-B, B])` saturate at :math:`\pm (B - \epsilon)`, which keeps them strictly
    inside the bracket (and finite through a
    :class:`~sbikit.transforms.elementwise.SoftclipTransform` of bound :math:`B`).
    Gradients of the inverse reach :math:`y` and every tensor :math:`\phi` that :math:`f`
    uses by the implicit function theorem,

    .. math:: \frac{\partial x}{\partial y} = \frac{1}{f'(x)}, \quad
        \frac{\partial x}{\partial \phi} = -\frac{\partial f / \partial \phi}{f'(x)} .

    References:
        | Neural Autoregressive Flows (Huang et al., 2018)
        | https://arxiv.org/abs/1804.00779

    Arguments:
        f: An element-wise, strictly increasing function :math:`f`. It maps a tensor of
            shape :math:`(*)` to one of the same shape (or of a shape that :math:`(*)`
            broadcasts to).
        phi: The tensors :math:`\phi` that :math:`f` depends on, e.g. the parameters of a
            network, kept as ``self.phi``. Listing them is optional: the inverse's gradients
            reach every tensor that :math:`f` uses, by ordinary autograd through one
            evaluation of :math:`f` at the root.
        bound: The bound :math:`B > 0` of the bisection bracket :math:`[-B, B]`.
        eps: The absolute tolerance :math:`\epsilon` of the inverse, in :math:`(0, B)`.

    Example:
        >>> t = MonotonicTransform(lambda x: x + x**3 / 3, bound=5.0)
        >>> x = torch.tensor([-1.0, 0.5, 2.0])
        >>> y, ladj = t.call_and_ladj(x)
        >>> torch.allclose(ladj, torch.log(1 + x**2))  # f'(x) = 1 + x^2
        True
        >>> torch.allclose(t.inv(y), x, atol=1e-5)
        True
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(
        self,
        f: Callable[[Tensor], Tensor],
        phi: Iterable[Tensor] = (),
        bound: float = 10.0,
        eps: float = 1e-6,
    ):
        super().__init__()
        owner = type(self).__name__
        if not callable(f):
            raise TypeError(
                f"{owner} expects f to be a callable that maps a tensor to a tensor (e.g. an "
                f"nn.Module), but received {describe(f)}."
            )
        if isinstance(phi, Tensor):
            phi = (phi,)
        phi = tuple(phi)
        for i, p in enumerate(phi):
            check_tensor(p, f"{owner}'s phi[{i}]")
        self.f = f
        self.phi = tuple(p for p in phi if p.requires_grad)
        self.bound = check_number(bound, "bound", owner, 0.0)
        self.eps = check_number(eps, "eps", owner, 0.0, self.bound)
        self.steps = math.ceil(math.log2(2 * self.bound / self.eps))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bound={self.bound}, eps={self.eps})"

    def _solve(self, f: Callable[[Tensor], Tensor], y: Tensor) -> Tensor:
        r"""Solves :math:`f(x) = y` on :math:`[-B, B]` by bisection, with implicit
        gradients."""

        return bisection(f, y, -self.bound, self.bound, self.steps)

    def _bisect(self, f: Callable[[Tensor], Tensor], y: Tensor) -> Tensor:
        r"""Solves :math:`f(x) = y` on :math:`[-B, B]`, kept within
        :math:`[-B + \epsilon, B - \epsilon]`, with implicit gradients."""

        edge = self.bound - self.eps
        return self._solve(f, y).clamp(-edge, edge)

    def _call(self, x: Tensor) -> Tensor:
        x = check_tensor(x, f"the input of {type(self).__name__}")
        return self.f(x)

    def _inverse(self, y: Tensor) -> Tensor:
        y = check_tensor(y, f"the input of {type(self).__name__}'s inverse")
        return self._bisect(self.f, y)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = check_tensor(x, f"the input of {type(self).__name__}")
        y, dy = value_and_derivative(self.f, x)
        return y, torch.log(dy)


class UnconstrainedMonotonicTransform(MonotonicTransform):
    r"""The integral of a positive function, :math:`y = f(x) = \int_0^x g(u) \, du + C`,
    element-wise.

    Any network with a positive output (e.g. :math:`\mathrm{ELU} + 1`) gives an increasing
    :math:`f`, with no constraint on its weights. The integral is computed by an
    :math:`n`-point Gauss–Legendre quadrature (:func:`~sbikit.numerics.gauss_legendre`) and

    .. math:: \log |\det J_f(x)| = \log g(x) .

    The inverse solves :math:`\int_0^x g(u) \, du = y - C` by bisection on :math:`[-B, B]`,
    as in :class:`MonotonicTransform`.

    References:
        | Unconstrained Monotonic Neural Networks (Wehenkel et al., 2019)
        | https://arxiv.org/abs/1908.05164

    Arguments:
        g: An element-wise, positive function :math:`g` (the caller guarantees positivity).
            It receives tensors of shape :math:`(n, *)`, the quadrature nodes of inputs of
            shape :math:`(*)`.
        C: The integration constant :math:`C`, with shape :math:`(*)`, or a number.
        phi: The tensors :math:`\phi` that :math:`g` depends on (optional, see
            :class:`MonotonicTransform`).
        n: The number of quadrature nodes :math:`n`.
        bound: The bound :math:`B > 0` of the bisection bracket.
        eps: The absolute tolerance :math:`\epsilon` of the inverse, in :math:`(0, B)`.

    Example:
        >>> t = UnconstrainedMonotonicTransform(lambda u: 1 + u**2, C=1.0, bound=5.0)
        >>> x = torch.tensor([-1.0, 0.5, 2.0])
        >>> y, ladj = t.call_and_ladj(x)
        >>> torch.allclose(y, 1 + x + x**3 / 3)
        True
        >>> torch.allclose(t.inv(y), x, atol=1e-5)
        True
    """

    def __init__(
        self,
        g: Callable[[Tensor], Tensor],
        C: Tensor | float,
        phi: Iterable[Tensor] = (),
        n: int = 32,
        bound: float = 10.0,
        eps: float = 1e-6,
    ):
        owner = type(self).__name__
        if not callable(g):
            raise TypeError(
                f"{owner} expects g to be a callable that maps a tensor to a positive tensor "
                f"(e.g. an nn.Module), but received {describe(g)}."
            )
        super().__init__(self.integral, phi, bound, eps)
        self.g = g
        self.n = check_count(n, "n", owner, 1)
        self.constant = as_parameter(C, f"{owner}'s C")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, bound={self.bound}, eps={self.eps})"

    def integral(self, x: Tensor) -> Tensor:
        r"""Returns :math:`\int_0^x g(u) \, du`, by Gauss–Legendre quadrature."""

        return gauss_legendre(self.g, torch.zeros_like(x), x, self.n)

    def _call(self, x: Tensor) -> Tensor:
        x = check_tensor(x, f"the input of {type(self).__name__}")
        return self.integral(x) + self.constant

    def _inverse(self, y: Tensor) -> Tensor:
        y = check_tensor(y, f"the input of {type(self).__name__}'s inverse")
        return self._bisect(self.integral, y - self.constant)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.log(self.g(x)).expand(broadcast_shapes(x.shape, y.shape))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = self._call(x)
        return y, torch.log(self.g(x)).expand(y.shape)
