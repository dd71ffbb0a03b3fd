r"""Private helpers shared by the composite distributions of sbikit."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .._validation import as_parameter, check_like, describe


def check_distribution(value: object, name: str, owner: str) -> Distribution:
    r"""Returns ``value`` if it is a torch distribution, or raises a :class:`TypeError`."""

    if not isinstance(value, Distribution):
        raise TypeError(
            f"{owner} expects a torch.distributions.Distribution as {name}, but received "
            f"{describe(value)}."
        )
    return value


def check_univariate(base: object, owner: str) -> Distribution:
    r"""Returns ``base`` if it is a distribution with scalar events, or raises."""

    base = check_distribution(base, "base", owner)
    if base.event_shape:
        raise ValueError(
            f"{owner} expects a univariate base distribution (event shape ()), but received "
            f"one with event shape {tuple(base.event_shape)}. Use a distribution over scalars."
        )
    return base


def implements(distribution: Distribution, method: str) -> bool:
    r"""Whether the class of ``distribution`` overrides ``Distribution.<method>``."""

    return getattr(type(distribution), method) is not getattr(Distribution, method)


def adapt(value: object, reference: Tensor | None, name: str, owner: str) -> Tensor:
    r"""Returns a parameter with the dtype and device of ``reference``, or raises.

    Python numbers and 0-d tensors that do not require gradients adapt to the reference;
    other tensors must already share its dtype and device.
    """

    value = as_parameter(value, name)
    if reference is None:
        return value
    if value.dim() > 0 or value.requires_grad:
        check_like(value, reference, name, owner)
        return value
    return value.to(dtype=reference.dtype, device=reference.device)


def check_same_kind(references: Sequence[tuple[str, Tensor | None]], owner: str) -> None:
    r"""Checks that the named reference tensors share one dtype and one device, or raises."""

    known = [(name, ref) for name, ref in references if ref is not None]
    for name, ref in known[1:]:
        check_like(ref, known[0][1], name, owner)


def is_real(constraint: constraints.Constraint) -> bool:
    r"""Whether ``constraint`` is the whole real space (possibly reinterpreted as events)."""

    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    return type(constraint) is type(constraints.real)


def support_mask(distribution: Distribution, value: Tensor) -> Tensor | None:
    r"""Returns the boolean mask of the events of ``value`` inside the support, with the
    shape of ``value`` without its event dimensions, or ``None`` if the support is unknown
    or the whole real space."""

    try:
        support = distribution.support
    except NotImplementedError:
        return None
    if support is None or constraints.is_dependent(support) or is_real(support):
        return None
    ok = support.check(value)
    extra = len(distribution.event_shape) - support.event_dim  # dimensions left to reduce
    if extra > 0:
        ok = ok.reshape(*ok.shape[: ok.dim() - extra], -1).all(-1)
    return ok


def in_support(distribution: Distribution, value: Tensor) -> tuple[Tensor, Tensor | None]:
    r"""Replaces the events of ``value`` outside the support of ``distribution``.

    Returns a value whose events all lie in the support and the mask of :func:`support_mask`.
    Events outside are replaced by a draw of the distribution, so that no method of the
    distribution sees them (torch distributions with validation on would raise). The draw
    runs on a forked random state: the caller's random stream is left untouched.
    """

    ok = support_mask(distribution, value)
    if ok is None or torch.all(ok):
        return value, ok
    devices = [value.device] if value.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            filler = distribution.sample().to(value.dtype)
    except NotImplementedError:  # cannot sample: leave the values to the mask alone
        return value, ok
    event_dim = len(distribution.event_shape)
    return torch.where(ok.reshape(ok.shape + (1,) * event_dim), value, filler), ok


def masked_log_prob(distribution: Distribution, value: Tensor) -> Tensor:
    r"""Returns ``distribution.log_prob(value)``, :math:`-\infty` outside the support."""

    value, ok = in_support(distribution, value)
    log_p = distribution.log_prob(value)
    return log_p if ok is None else torch.where(ok, log_p, -torch.inf)


def uniform(shape: Sequence[int], like: Tensor) -> Tensor:
    r"""Draws uniforms in :math:`[\epsilon, 1 - \epsilon]` with the dtype/device of ``like``.

    Keeping away from 0 and 1 keeps inverse CDFs finite.
    """

    eps = torch.finfo(like.dtype).eps
    u = torch.rand(torch.Size(shape), dtype=like.dtype, device=like.device)
    return u.clamp(min=eps, max=1 - eps)
