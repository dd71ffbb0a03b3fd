r"""Continuous-time transforms: the flow of an ordinary differential equation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn as nn
from torch import Tensor
from torch.distributions import constraints

from .._validation import (
    broadcast_shapes,
    check_count,
    check_input,
    check_number,
    check_tensor,
    describe,
)
from ..numerics.ode import odeint
from .base import Transform

__all__ = ["FreeFormJacobianTransform"]

VectorField = Callable[[Tensor, Tensor], Tensor]


def exact_trace(dx: Tensor, x: Tensor, create_graph: bool) -> Tensor:
    r"""Returns :math:`\mathrm{tr}(\partial f / \partial x)` row-wise, by :math:`D`
    vector-Jacobian products with the basis vectors."""

    trace = torch.zeros_like(dx[..., 0])
    if not dx.requires_grad:
        return trace
    for i in range(x.shape[-1]):
        (row,) = torch.autograd.grad(
            dx[..., i],
            x,
            torch.ones_like(dx[..., i]),
            retain_graph=True,
            create_graph=create_graph,
            allow_unused=True,
        )
        if row is not None:
            trace = trace + row[..., i]
    return trace


def hutchinson_trace(dx: Tensor, x: Tensor, probe: Tensor, create_graph: bool) -> Tensor:
    r"""Returns Hutchinson's estimate :math:`v^\top (\partial f / \partial x) v` row-wise."""

    if not dx.requires_grad:
        return torch.zeros_like(dx[..., 0])
    (vjp,) = torch.autograd.grad(dx, x, probe, create_graph=create_graph, allow_unused=True)
    return torch.zeros_like(dx[..., 0]) if vjp is None else (vjp * probe).sum(dim=-1)


class FreeFormJacobianTransform(Transform):
    r"""The free-form Jacobian transform (FFJORD): the flow of an ODE over :math:`[t_0, t_1]`.

    The output is the solution at :math:`t_1` of the ODE started at :math:`x` at
    :math:`t_0`, and the log-determinant follows the instantaneous change of variables,
    integrated jointly with the state (one integration gives both):

    .. math:: y = x(t_1), \quad \frac{dx}{dt} = f_\phi(t, x), \quad x(t_0) = x,

    .. math:: \log |\det J(x)| = \int_{t_0}^{t_1}
        \mathrm{tr} \left( \frac{\partial f_\phi(t, x(t))}{\partial x(t)} \right) dt .

    The inverse integrates the same ODE from :math:`t_1` back to :math:`t_0`. With
    ``exact=True`` the trace costs :math:`D` vector-Jacobian products per evaluation of
    :math:`f`; with ``exact=False`` it is Hutchinson's unbiased estimate
    :math:`v^\top (\partial f / \partial x) v`, one product, with a Rademacher probe
    :math:`v` drawn (from torch's global generator) once per call of ``call_and_ladj`` or
    ``inverse_and_ladj`` and kept fixed over that integration, so the log-determinant is then
    a random, unbiased estimate of the exact one. Both directions are differentiable with
    respect to the input and :math:`\phi`, by the adjoint method of
    :func:`~sbikit.numerics.ode.odeint`.

    :math:`f` must act on the rows of :math:`x` (the last dimension) independently, as any
    transform of event dimension 1. If it broadcasts :math:`x` to a larger batch shape
    (e.g. a batch of contexts), the input is broadcast first; one evaluation of :math:`f`
    before the integration finds that shape. Rows with non-finite values give NaN outputs
    and leave the other rows unaffected.

    References:
        | FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models
          (Grathwohl et al., 2018)
        | https://arxiv.org/abs/1810.01367

        | Neural Ordinary Differential Equations (Chen et al., 2018)
        | https://arxiv.org/abs/1806.07366

    Arguments:
        f: The vector field :math:`f_\phi(t, x)`, mapping a 0-d time tensor and a state of
            shape :math:`(*, D)` to a tensor of the same shape.
        t0: The initial time :math:`t_0`.
        t1: The final time :math:`t_1`.
        phi: The tensors :math:`\phi` that :math:`f` depends on and that need gradients (an
            iterable, e.g. ``module.parameters()``, or a module). Gradients reach no tensor
            left out.
        atol: The absolute tolerance of the integration.
        rtol: The relative tolerance of the integration.
        exact: Whether the trace is exact or Hutchinson's estimate.
        features: The number of features :math:`D`, if known; inputs are then checked
            against it.

    Example:
        >>> A = torch.tensor([[-1.0, 2.0], [0.0, 0.5]])
        >>> t = FreeFormJacobianTransform(lambda t, x: x @ A.T, 0.0, 1.0)
        >>> x = torch.tensor([1.0, 1.0])
        >>> y, ladj = t.call_and_ladj(x)
        >>> torch.allclose(y, torch.linalg.matrix_exp(A) @ x, atol=1e-4)
        True
        >>> ladj  # tr(A) (t1 - t0) = -0.5
        tensor(-0.5000)
        >>> torch.allclose(t.inv(y), x, atol=1e-4)
        True
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self,
        f: VectorField,
        t0: float | Tensor = 0.0,
        t1: float | Tensor = 1.0,
        phi: Iterable[Tensor] | nn.Module = (),
        atol: float = 1e-6,
        rtol: float = 1e-5,
        exact: bool = True,
        *,
        features: int | None = None,
    ):
        super().__init__()
        owner = type(self).__name__
        if not callable(f):
            raise TypeError(
                f"{owner} expects f to be a callable vector field f(t, x), but received "
                f"{describe(f)}."
            )
        for name, t in (("t0", t0), ("t1", t1)):
            if isinstance(t, Tensor):
                if t.numel() != 1:
                    raise ValueError(
                        f"{owner} expects {name} to be a number or a one-element tensor, but "
                        f"received {describe(t)}."
                    )
            else:
                check_number(t, name, owner)
        if isinstance(phi, nn.Module):
            phi = phi.parameters()
        phi = tuple(phi)
        for p in phi:
            check_tensor(p, f"{owner}'s phi")
        self.f = f
        self.t0, self.t1 = t0, t1
        self.phi = phi
        self.atol = check_number(atol, "atol", owner, low=0.0)
        self.rtol = check_number(rtol, "rtol", owner, low=0.0)
        self.exact = bool(exact)
        self.features = None if features is None else check_count(features, "features", owner)

    def __repr__(self) -> str:
        t0, t1 = (float(t) for t in (self.t0, self.t1))
        return f"{type(self).__name__}(t0={t0:g}, t1={t1:g}, exact={self.exact})"

    def _check(self, x: Tensor) -> Tensor:
        owner = type(self).__name__
        reference = self.phi[0] if self.phi else check_tensor(x, f"the input of {owner}")
        x = check_input(x, reference, owner, features=self.features)
        if x.dim() == 0:
            raise ValueError(
                f"{owner} expects inputs of shape (*, D), but received {describe(x)}. Add "
                "the feature dimension, e.g. with .unsqueeze(-1)."
            )
        return x

    def _prepare(self, x: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor]:
        r"""Checks ``x``, broadcasts it like :math:`f(t, x)` and zeroes its non-finite rows;
        returns it with the mask of the finite rows."""

        x = self._check(x)
        time = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(())
        with torch.no_grad():
            dx = self.f(time, x)
        shape = dx.shape if isinstance(dx, Tensor) else None
        try:
            valid = shape is not None and broadcast_shapes(shape, x.shape) == shape
        except RuntimeError:
            valid = False
        if not valid or shape[-1:] != x.shape[-1:]:
            raise ValueError(
                f"{type(self).__name__} expects f(t, x) to return a tensor of the shape of x, "
                f"{tuple(x.shape)}, or of a batch shape that x broadcasts to, but received "
                f"{describe(dx)}."
            )
        x = x.expand(shape)
        finite = torch.isfinite(x).all(dim=-1, keepdim=True)
        return torch.where(finite, x, torch.zeros_like(x)), finite

    def _solve(self, x: Tensor, t0: float | Tensor, t1: float | Tensor) -> Tensor:
        x, finite = self._prepare(x, t0)
        y = odeint(self.f, x, t0, t1, self.phi, self.atol, self.rtol)
        return torch.where(finite, y, torch.nan)

    def _solve_and_ladj(
        self, x: Tensor, t0: float | Tensor, t1: float | Tensor
    ) -> tuple[Tensor, Tensor]:
        x, finite = self._prepare(x, t0)
        f = self.f
        probe = None if self.exact else torch.empty_like(x).bernoulli_(0.5).mul_(2).sub_(1)

        def augmented(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            x, _ = state
            create_graph = torch.is_grad_enabled()  # True inside the adjoint pass
            with torch.enable_grad():
                if not x.requires_grad:
                    x = x.detach().requires_grad_()
                dx = f(t, x)
                if probe is None:
                    trace = exact_trace(dx, x, create_graph)
                else:
                    trace = hutchinson_trace(dx, x, probe, create_graph)
            if not create_graph:
                dx, trace = dx.detach(), trace.detach()
            return dx, trace

        ladj = torch.zeros_like(x[..., 0])
        y, ladj = odeint(augmented, (x, ladj), t0, t1, self.phi, self.atol, self.rtol)
        y = torch.where(finite, y, torch.nan)
        ladj = torch.where(finite[..., 0], ladj, torch.nan)
        return y, ladj

    def _call(self, x: Tensor) -> Tensor:
        return self._solve(x, self.t0, self.t1)

    def _inverse(self, y: Tensor) -> Tensor:
        return self._solve(y, self.t1, self.t0)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self._solve_and_ladj(x, self.t0, self.t1)[1]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._solve_and_ladj(x, self.t0, self.t1)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._solve_and_ladj(y, self.t1, self.t0)
