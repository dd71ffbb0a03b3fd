r"""Root finding for monotonic functions, with implicit-differentiation gradients."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["bisection", "implicit_step"]


def implicit_step(f: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> Tensor:
    r"""Returns a root :math:`x` of :math:`f(x) = y`, unchanged, carrying the gradients of the
    implicit function theorem.

    With the residual :math:`r = f(x) - y`, the output is
    :math:`x + (\bar{r} - r) / \bar{f'}(x)`, where bars stop gradients: its value is
    :math:`x`, and its gradients are :math:`\partial x / \partial y = 1 / f'(x)` and
    :math:`\partial x / \partial \phi = -(\partial f / \partial \phi) / f'(x)` for every tensor
    :math:`\phi` that :math:`f` uses, by ordinary autograd through one evaluation of
    :math:`f`. Every path is counted once, even when those tensors depend on each other (as
    in the passes of an autoregressive inverse). Only first derivatives are exact.

    Arguments:
        f: An element-wise increasing function.
        x: The roots, with shape :math:`(*)` (their own graph is ignored).
        y: The targets, with shape :math:`(*)`.

    Returns:
        The roots, with gradients towards :math:`y` and the tensors :math:`f` uses.

    Example:
        >>> k = torch.tensor(2.0, requires_grad=True)
        >>> x = implicit_step(lambda x: k * x, torch.tensor(3.0), torch.tensor(6.0))
        >>> x.backward()
        >>> k.grad  # x = y / k, dx/dk = -y / k^2
        tensor(-1.5000)
    """

    x = x.detach()
    with torch.enable_grad():
        x_ = x.clone().requires_grad_()
        value = f(x_)
        (slope,) = torch.autograd.grad(value, x_, torch.ones_like(value), retain_graph=True)
        residual = value - y
    return x + (residual.detach() - residual) / slope.detach()


def bisection(
    f: Callable[[Tensor], Tensor],
    y: Tensor,
    a: float | Tensor,
    b: float | Tensor,
    n: int = 16,
) -> Tensor:
    r"""Solves :math:`f(x) = y` element-wise for an increasing function :math:`f` on
    :math:`[a, b]`, by :math:`n` bisection steps.

    The error is at most :math:`(b - a) / 2^{n + 1}`. The iterations run without a graph;
    when grad mode is on, :func:`implicit_step` then gives the solution the gradients of the
    implicit function theorem, towards :math:`y` and every tensor :math:`f` uses.

    Arguments:
        f: An element-wise increasing function.
        y: The targets :math:`y`, with shape :math:`(*)`.
        a: The lower end of the bracket (a float or a tensor broadcastable to :math:`y`).
        b: The upper end of the bracket.
        n: The number of bisection steps.

    Returns:
        The solutions :math:`x`, with shape :math:`(*)`.

    Example:
        >>> y = torch.tensor([1.0, 8.0], requires_grad=True)
        >>> x = bisection(lambda x: x**3, y, 0.0, 4.0, n=40)
        >>> x.detach()
        tensor([1., 2.])
        >>> x.sum().backward()
        >>> y.grad  # d(y^(1/3))/dy = 1 / (3 x^2)
        tensor([0.3333, 0.0833])
    """

    with torch.no_grad():
        a, b = (torch.as_tensor(v, dtype=y.dtype, device=y.device) for v in (a, b))
        a, b = a.expand_as(y), b.expand_as(y)
        for _ in range(n):
            c = (a + b) / 2
            below = f(c) < y
            a = torch.where(below, c, a)
            b = torch.where(below, b, c)
        x = (a + b) / 2
    return implicit_step(f, x, y) if torch.is_grad_enabled() else x
