r"""Numerical building blocks: root finding, quadrature and ODE integration, all
differentiable."""

from .ode import odeint
from .quadrature import gauss_legendre
from .roots import bisection
from .softmax import softmax

__all__ = ["bisection", "gauss_legendre", "odeint", "softmax"]
