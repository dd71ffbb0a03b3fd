r"""Root finding for monotonic functions, with implicit-differentiation gradients."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["bisection"]


class Bisection(torch.autograd.Function):
    r"""Bisection in the forward pass; gradients by the implicit function theorem."""

    @staticmethod
    def forward(ctx, f, y, a, b, n, *phi):
        with torch.no_grad():
            a, b = (torch.as_tensor(v, dtype=y.dtype, device=y.device).expand_as(y) for v in (a, b))
            for _ in range(n):
                c = (a + b) / 2
                below = f(c) < y
                a = torch.where(below, c, a)
                b = torch.where(below, b, c)
            x = (a + b) / 2
        ctx.f = f
        ctx.save_for_backward(x, *phi)
        return x

    @staticmethod
    def backward(ctx, grad_x):
        x, *phi = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            y = ctx.f(x)
            (slope,) = torch.autograd.grad(y, x, torch.ones_like(y), retain_graph=True)
            grad_y = grad_x / slope
            grad_phi = torch.autograd.grad(y, phi, -grad_y, allow_unused=True) if phi else ()
        return (None, grad_y, None, None, None, *grad_phi)


def bisection(
    f: Callable[[Tensor], Tensor],
    y: Tensor,
    a: float | Tensor,
    b: float | Tensor,
    n: int = 16,
    phi: Sequence[Tensor] = (),
) -> Tensor:
    r"""Solves :math:`f(x) = y` element-wise for an increasing function :math:`f` on
    :math:`[a, b]`, by :math:`n` bisection steps.

    The error is at most :math:`(b - a) / 2^{n + 1}`. Gradients flow to :math:`y` and to the
    parameters :math:`\phi` that :math:`f` depends on by the implicit function theorem,
    :math:`\partial x / \partial y = 1 / f'(x)` and
    :math:`\partial x / \partial \phi = -(\partial f / \partial \phi) / f'(x)`, without
    back-propagating through the iterations.

    Arguments:
        f: An element-wise increasing function.
        y: The targets :math:`y`, with shape :math:`(*)`.
        a: The lower end of the bracket (a float or a tensor broadcastable to :math:`y`).
        b: The upper end of the bracket.
        n: The number of bisection steps.
        phi: The tensors :math:`f` depends on that need gradients.

    Returns:
        The solutions :math:`x`, with shape :math:`(*)`.

    Example:
        >>> y = torch.tensor([1.0, 8.0], requires_grad=True)
        >>> x = bisection(lambda x: x**3, y, 0.0, 4.0, n=40)
        >>> x
        tensor([1., 2.], grad_fn=<BisectionBackward>)
        >>> x.sum().backward()
        >>> y.grad  # d(y^(1/3))/dy = 1 / (3 x^2)
        tensor([0.3333, 0.0833])
    """

    return Bisection.apply(f, y, a, b, n, *phi)
