r"""The support of a prior: its description as JSON and the bijection onto the real space.

A posterior estimator for a bounded prior learns the density of the unconstrained
parameters :math:`u = b^{-1}(\theta)`, where :math:`b` is
:func:`torch.distributions.biject_to` of the prior's support, and maps its samples back
with :math:`b`: they lie in the support by construction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, biject_to, constraints

from .._validation import describe
from ..lazy import LazyTransform
from ..transforms import Transform
from ..transforms.base import sum_rightmost

__all__ = ["SupportTransform", "Unconstrain", "describe_support"]

KINDS = {
    constraints._Real: "real",
    constraints._GreaterThan: "greater_than",
    constraints._GreaterThanEq: "greater_than_eq",
    constraints._LessThan: "less_than",
    constraints._Interval: "interval",
    constraints._HalfOpenInterval: "half_open_interval",
}


def bound(value: Any) -> float | list | None:
    r"""Returns a bound of a constraint as a JSON number or nested list."""

    return value.tolist() if isinstance(value, Tensor) else None if value is None else float(value)


def describe_support(support: object) -> dict | None:
    r"""Describes a support constraint as JSON, or ``None`` for the whole real space.

    Arguments:
        support: A prior distribution or its ``support``, a
            :class:`torch.distributions.constraints.Constraint`: the real space, an interval,
            a half-open interval, a lower or an upper bound, each possibly reinterpreted as
            an event constraint by :func:`~torch.distributions.constraints.independent`.

    Returns:
        ``{"kind", "lower", "upper", "reinterpreted"}`` with the bounds as numbers or nested
        lists, or ``None`` if the support is the whole real space.

    Example:
        >>> from sbikit.distributions import BoxUniform
        >>> describe_support(BoxUniform(torch.zeros(2), torch.ones(2)))
        {'kind': 'interval', 'lower': [0.0, 0.0], 'upper': [1.0, 1.0], 'reinterpreted': 1}
    """

    constraint = support.support if isinstance(support, Distribution) else support
    reinterpreted = 0
    while isinstance(constraint, constraints.independent):
        reinterpreted += constraint.reinterpreted_batch_ndims
        constraint = constraint.base_constraint
    kind = KINDS.get(type(constraint))
    if kind is None:
        raise ValueError(
            "NPE supports priors whose support is the real space, an interval, a half-open "
            "interval or a one-sided bound (element-wise), but received the support "
            f"{support!r} ({describe(support)}). Pass prior=None to learn an unconstrained "
            "posterior, or a prior with one of these supports."
        )
    if kind == "real":
        return None
    return {
        "kind": kind,
        "lower": bound(getattr(constraint, "lower_bound", None)),
        "upper": bound(getattr(constraint, "upper_bound", None)),
        "reinterpreted": reinterpreted,
    }


class SupportTransform(Transform):
    r"""The bijection :math:`u = b^{-1}(\theta)` from a support onto the real space.

    :math:`b` is :func:`torch.distributions.biject_to` of the support. Unlike
    ``biject_to(support).inv``, this transform's domain is the support itself, so a
    :class:`~sbikit.distributions.NormalizingFlow` that starts with it gives the
    log-density :math:`-\infty` outside the support.

    Arguments:
        support: The support, a constraint over the last dimension of :math:`\theta`
            (event dimension 0 or 1).

    Example:
        >>> t = SupportTransform(constraints.independent(constraints.interval(0.0, 1.0), 1))
        >>> t.inv(torch.tensor([-100.0, 0.0, 100.0]))
        tensor([1.1755e-38, 5.0000e-01, 1.0000e+00])
    """

    bijective = True
    sign = +1
    codomain = constraints.independent(constraints.real, 1)

    def __init__(self, support: constraints.Constraint):
        super().__init__()
        self.support = support
        self.bijection = biject_to(support)

    @property
    def domain(self) -> constraints.Constraint:
        extra = 1 - self.support.event_dim
        return constraints.independent(self.support, extra) if extra > 0 else self.support

    def _call(self, theta: Tensor) -> Tensor:
        return self.bijection.inv(theta)

    def _inverse(self, u: Tensor) -> Tensor:
        return self.bijection(u)

    def log_abs_det_jacobian(self, theta: Tensor, u: Tensor) -> Tensor:
        ladj = self.bijection.inv.log_abs_det_jacobian(theta, u)
        return sum_rightmost(ladj, ladj.dim() - theta.dim() + 1)


class Unconstrain(LazyTransform):
    r"""A lazy :class:`SupportTransform` whose bounds are buffers, so they follow ``.to()``.

    Arguments:
        description: A support described by :func:`describe_support` (not ``None``).

    Example:
        >>> from sbikit.distributions import BoxUniform
        >>> t = Unconstrain(describe_support(BoxUniform(-torch.ones(2), torch.ones(2))))
        >>> t()(torch.zeros(2))
        tensor([0., 0.])
    """

    def __init__(self, description: dict):
        super().__init__()
        self.kind = description["kind"]
        self.reinterpreted = description["reinterpreted"]
        for name in ("lower", "upper"):
            value = description[name]
            self.register_buffer(name, None if value is None else torch.tensor(value))

    def extra_repr(self) -> str:
        return f"kind={self.kind}, reinterpreted={self.reinterpreted}"

    def forward(self, c: Tensor | None = None) -> SupportTransform:
        build = getattr(constraints, self.kind)
        bounds = [b for b in (self.lower, self.upper) if b is not None]
        support = build(*bounds)
        if self.reinterpreted:
            support = constraints.independent(support, self.reinterpreted)
        return SupportTransform(support)
