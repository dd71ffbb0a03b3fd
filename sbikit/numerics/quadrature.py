r"""Gauss–Legendre quadrature."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = ["gauss_legendre"]


@lru_cache(maxsize=32)
def legendre_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Returns the :math:`n` Gauss–Legendre nodes and weights on :math:`[-1, 1]`."""

    return np.polynomial.legendre.leggauss(n)


def gauss_legendre(f: Callable[[Tensor], Tensor], a: Tensor, b: Tensor, n: int = 3) -> Tensor:
    r"""Integrates :math:`f` from :math:`a` to :math:`b` with an :math:`n`-point
    Gauss–Legendre rule, element-wise.

    .. math:: \int_a^b f(x) \, dx \approx \frac{b - a}{2} \sum_{i=1}^n w_i \,
        f\Big(\frac{b - a}{2} \xi_i + \frac{a + b}{2}\Big)

    The rule is exact for polynomials of degree :math:`2n - 1`. The result is
    differentiable with respect to :math:`a`, :math:`b` and anything :math:`f` depends on.

    Arguments:
        f: An element-wise function; it receives tensors of shape :math:`(n, *)`.
        a: The lower bounds, with shape :math:`(*)`.
        b: The upper bounds, with shape :math:`(*)`.
        n: The number of nodes.

    Returns:
        The integrals, with shape :math:`(*)`.

    Example:
        >>> a, b = torch.tensor(0.0), torch.tensor([1.0, 2.0])
        >>> gauss_legendre(lambda x: x**5, a, b, n=3)  # exact: b^6 / 6
        tensor([ 0.1667, 10.6667])
    """

    nodes, weights = legendre_nodes(n)
    a, b = torch.broadcast_tensors(torch.as_tensor(a), torch.as_tensor(b))
    shape = (n,) + (1,) * a.dim()
    nodes = torch.as_tensor(nodes, dtype=a.dtype, device=a.device).reshape(shape)
    weights = torch.as_tensor(weights, dtype=a.dtype, device=a.device).reshape(shape)
    half = (b - a) / 2
    x = half * nodes + (a + b) / 2
    return half * (weights * f(x)).sum(dim=0)
