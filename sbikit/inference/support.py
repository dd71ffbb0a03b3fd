r"""The support of a prior: its description as JSON and the bijection onto the real space.

A posterior estimator for a bounded prior learns the density of the unconstrained
parameters :math:`u = b^{-1}(\theta)`, where :math:`b` (:func:`bijection`) maps the real
space onto the prior's support, and maps its samples back with :math:`b`: they lie in the
support by construction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, biject_to, constraints
from torch.distributions.transforms import CatTransform, IndependentTransform

from .._validation import describe
from ..distributions.composite import JointSupport
from ..lazy import LazyTransform
from ..transforms import SoftBoxTransform, Transform
from ..transforms.base import sum_rightmost

__all__ = ["SupportTransform", "Unconstrain", "bijection", "describe_support"]

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
            an event constraint by :func:`~torch.distributions.constraints.independent`;
            or blocks of these, as the support of a :class:`~sbikit.distributions.Joint`
            or a :func:`~torch.distributions.constraints.cat` over the last dimension.

    Returns:
        ``{"kind", "lower", "upper", "reinterpreted"}`` with the bounds as numbers or nested
        lists, or ``None`` if the support is the whole real space. Blocks give the kind
        ``"joint"``, with ``"parts"`` (the description of each block) and ``"sizes"``.

    Example:
        >>> from torch.distributions import LogNormal
        >>> from sbikit.distributions import BoxUniform, Joint
        >>> describe_support(BoxUniform(torch.zeros(2), torch.ones(2)))
        {'kind': 'interval', 'lower': [0.0, 0.0], 'upper': [1.0, 1.0], 'reinterpreted': 1}
        >>> box = BoxUniform(-torch.ones(2), torch.ones(2))
        >>> joint = describe_support(Joint(LogNormal(0.0, 1.0), box))
        >>> joint["kind"], joint["sizes"], [part["kind"] for part in joint["parts"]]
        ('joint', [1, 2], ['greater_than', 'interval'])
    """

    constraint = support.support if isinstance(support, Distribution) else support
    if isinstance(constraint, JointSupport):
        blocks = [element_wise(s) for s in constraint.supports]
        constraint = constraints.independent(constraints.cat(blocks, -1, constraint.sizes), 1)
    reinterpreted = 0
    while isinstance(constraint, constraints.independent):
        reinterpreted += constraint.reinterpreted_batch_ndims
        constraint = constraint.base_constraint
    if isinstance(constraint, constraints._Cat) and constraint.dim == -1:
        return describe_blocks(constraint, reinterpreted, support)
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
    lower, upper = (getattr(constraint, name, None) for name in ("lower_bound", "upper_bound"))
    if (
        lower is not None
        and upper is not None
        and not bool((torch.as_tensor(lower) < torch.as_tensor(upper)).all())
    ):
        raise ValueError(
            f"NPE expects an interval support with lower < upper, but received lower {lower} "
            f"and upper {upper}. Check the bounds of the prior."
        )
    return {
        "kind": kind,
        "lower": bound(lower),
        "upper": bound(upper),
        "reinterpreted": reinterpreted,
    }


def element_wise(constraint: constraints.Constraint) -> constraints.Constraint:
    r"""Returns a constraint without its :func:`~torch.distributions.constraints.independent`
    wrappers: the constraint of each element."""

    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    return constraint


def describe_blocks(constraint: constraints._Cat, reinterpreted: int, support: object) -> dict:
    r"""Describes the blocks of a support (a :func:`~torch.distributions.constraints.cat`
    over the last dimension) as JSON, or ``None`` if every block is the real space."""

    parts = [describe_support(element_wise(block)) for block in constraint.cseq]
    if any(part is not None and part["kind"] == "joint" for part in parts):
        raise ValueError(
            f"NPE supports one level of blocks in a prior's support, but received {support!r}. "
            "Flatten the nested Joint into one Joint of all the marginals."
        )
    if all(part is None for part in parts):
        return None
    return {
        "kind": "joint",
        "lower": None,
        "upper": None,
        "reinterpreted": reinterpreted,
        "parts": parts,
        "sizes": list(constraint.lengths),
    }


def build_support(kind: str, lower: Tensor | None, upper: Tensor | None) -> constraints.Constraint:
    r"""Returns the element-wise constraint of a kind of :data:`KINDS` with its bounds."""

    if kind == "real":
        return constraints.real
    return getattr(constraints, kind)(*(b for b in (lower, upper) if b is not None))


def bijection(support: constraints.Constraint) -> torch.distributions.Transform:
    r"""Returns the bijection :math:`b` from the real space onto a support.

    An interval (closed or half-open) gets a :class:`~sbikit.transforms.SoftBoxTransform`,
    affine on most of the interval, so that a posterior inside it keeps its shape in the
    unconstrained space (the logistic sigmoid of :func:`torch.distributions.biject_to`
    bends it everywhere: on two_moons, slcp and gaussian_linear_uniform it costs the
    trained posteriors 0.03 to 0.13 nats of validation loss). Other supports get
    :func:`torch.distributions.biject_to`; :func:`~torch.distributions.constraints.cat`
    and :func:`~torch.distributions.constraints.independent` supports are handled block
    by block.

    Example:
        >>> b = bijection(constraints.independent(constraints.interval(0.0, 10.0), 1))
        >>> b(torch.tensor([-2.0, 0.0, 0.5]))  # about 10 (u + 1) / 2 in the middle
        tensor([2.0963e-04, 5.0000e+00, 7.4887e+00])
    """

    if isinstance(support, constraints.independent):
        return IndependentTransform(
            bijection(support.base_constraint), support.reinterpreted_batch_ndims
        )
    if isinstance(support, constraints._Cat):
        return CatTransform(
            [bijection(block) for block in support.cseq], support.dim, support.lengths
        )
    if isinstance(support, constraints._Interval | constraints._HalfOpenInterval):
        # describe_support has checked the bounds: no check (a device sync) per posterior
        return SoftBoxTransform(support.lower_bound, support.upper_bound, validate=False)
    return biject_to(support)


class SupportTransform(Transform):
    r"""The bijection :math:`u = b^{-1}(\theta)` from a support onto the real space.

    :math:`b` is :func:`bijection` of the support. Unlike ``bijection(support).inv``,
    this transform's domain is the support itself, so a
    :class:`~sbikit.distributions.NormalizingFlow` that starts with it gives the
    log-density :math:`-\infty` outside the support.

    Arguments:
        support: The support, a constraint over the last dimension of :math:`\theta`
            (event dimension 0 or 1).

    Example:
        >>> t = SupportTransform(constraints.independent(constraints.interval(0.0, 1.0), 1))
        >>> t.inv(torch.tensor([-2.0, 0.0, 0.5]))
        tensor([2.0963e-05, 5.0000e-01, 7.4887e-01])
        >>> t(torch.tensor([0.0, 0.5, 0.9]))  # the bound 0: as if just inside it
        tensor([-11.5705,   0.0000,   0.8282])
    """

    bijective = True
    sign = +1
    codomain = constraints.independent(constraints.real, 1)

    def __init__(self, support: constraints.Constraint):
        super().__init__()
        self.support = support
        self.bijection = bijection(support)

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
        self.register_bounds("", description)
        self.sizes = description.get("sizes")
        self.kinds = []  # of the blocks of a joint support, whose bounds are lower_i, upper_i
        for i, part in enumerate(description.get("parts", [])):
            self.kinds.append("real" if part is None else part["kind"])
            self.register_bounds(f"_{i}", part or {"lower": None, "upper": None})

    def register_bounds(self, suffix: str, description: dict) -> None:
        r"""Registers the bounds of a description as the buffers ``lower``, ``upper`` with
        a suffix."""

        for name in ("lower", "upper"):
            value = description[name]
            self.register_buffer(name + suffix, None if value is None else torch.tensor(value))

    def extra_repr(self) -> str:
        blocks = f", blocks={self.kinds}, sizes={self.sizes}" if self.kinds else ""
        return f"kind={self.kind}, reinterpreted={self.reinterpreted}{blocks}"

    def forward(self, c: Tensor | None = None) -> SupportTransform:
        if self.kind == "joint":
            blocks = [
                build_support(kind, getattr(self, f"lower_{i}"), getattr(self, f"upper_{i}"))
                for i, kind in enumerate(self.kinds)
            ]
            support = constraints.cat(blocks, -1, self.sizes)
        else:
            support = build_support(self.kind, self.lower, self.upper)
        if self.reinterpreted:
            support = constraints.independent(support, self.reinterpreted)
        return SupportTransform(support)
