r"""Distributions built from other distributions: joints, mixtures and truncations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, constraints

from .._validation import broadcast_batch, check_tensor, describe
from ._helpers import (
    adapt,
    check_distribution,
    check_same_kind,
    check_univariate,
    implements,
    masked_log_prob,
    uniform,
)
from .base import DistributionMixin, reference_tensor

__all__ = ["Joint", "Mixture", "Truncated"]


class JointSupport(constraints.Constraint):
    r"""The support of a :class:`Joint`: each block of the vector lies in its marginal's."""

    event_dim = 1

    def __init__(
        self,
        supports: Sequence[constraints.Constraint],
        sizes: Sequence[int],
        scalars: Sequence[bool],
    ):
        self.supports = tuple(supports)
        self.sizes = tuple(sizes)
        self.scalars = tuple(scalars)
        self.is_discrete = all(s.is_discrete for s in self.supports)

    def __repr__(self) -> str:
        return f"JointSupport({', '.join(map(repr, self.supports))})"

    def check(self, value: Tensor) -> Tensor:
        ok = torch.ones(value.shape[:-1], dtype=torch.bool, device=value.device)
        for support, part, scalar in zip(
            self.supports, value.split(self.sizes, dim=-1), self.scalars, strict=True
        ):
            part = part.squeeze(-1) if scalar else part
            inside = support.check(part)
            if not scalar and support.event_dim == 0:
                inside = inside.all(-1)
            ok = ok & inside
        return ok


class Joint(DistributionMixin, Distribution):
    r"""The joint distribution of independent marginals, as one vector.

    The event is the concatenation of the marginals' events, each of shape :math:`()` or
    :math:`(D_i,)`, into a vector of size :math:`D = \sum_i D_i`:

    .. math:: p(x) = \prod_i p_i(x_i), \quad x = (x_1, \dots, x_n)

    The batch shapes of the marginals broadcast together. A value outside a marginal's
    support has log-density :math:`-\infty`, whatever that marginal's own validation.

    Arguments:
        marginals: The marginal distributions :math:`p_i`.

    Example:
        >>> from torch.distributions import Normal
        >>> from sbikit.distributions import BoxUniform
        >>> d = Joint(Normal(0.0, 1.0), BoxUniform(torch.zeros(2), torch.ones(2)))
        >>> d.event_shape, d.sample((4,)).shape
        (torch.Size([3]), torch.Size([4, 3]))
        >>> d.log_prob(torch.tensor([0.0, 0.5, 2.0]))
        tensor(-inf)
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(self, *marginals: Distribution):
        if not marginals:
            raise ValueError("Joint expects at least one marginal distribution, but received none.")
        for i, marginal in enumerate(marginals):
            check_distribution(marginal, f"marginal {i}", "Joint")
            if len(marginal.event_shape) > 1:
                raise ValueError(
                    f"Joint expects marginals with event shape () or (D,), but marginal {i} has "
                    f"event shape {tuple(marginal.event_shape)}. Flatten it with a reshape "
                    f"transform first."
                )
        check_same_kind(
            [(f"marginal {i}", reference_tensor(m)) for i, m in enumerate(marginals)], "Joint"
        )
        batch_shape = broadcast_batch(
            "Joint", **{f"marginal_{i}": m.batch_shape for i, m in enumerate(marginals)}
        )
        self.marginals = tuple(
            m if m.batch_shape == batch_shape else m.expand(batch_shape) for m in marginals
        )
        self.scalars = tuple(not m.event_shape for m in marginals)
        self.sizes = tuple(m.event_shape.numel() for m in marginals)
        super().__init__(batch_shape, torch.Size([sum(self.sizes)]), validate_args=False)

    def __repr__(self) -> str:
        lines = [f"({i}): {m}".replace("\n", "\n  ") for i, m in enumerate(self.marginals)]
        return "Joint(\n  " + "\n  ".join(lines) + "\n)"

    @property
    def reference(self) -> Tensor | None:
        for marginal in self.marginals:
            reference = reference_tensor(marginal)
            if reference is not None:
                return reference
        return None

    @property
    def has_rsample(self) -> bool:
        return all(m.has_rsample for m in self.marginals)

    @property
    def has_enumerate_support(self) -> bool:
        return all(m.has_enumerate_support for m in self.marginals)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        supports = [m.support for m in self.marginals]
        return JointSupport(supports, self.sizes, self.scalars)

    def expand(self, batch_shape: Sequence[int], _instance=None) -> Joint:
        batch_shape = torch.Size(batch_shape)
        return Joint(*(m.expand(batch_shape) for m in self.marginals))

    def split(self, x: Tensor) -> list[Tensor]:
        r"""Splits a value of shape :math:`(*, D)` into the marginals' values.

        Example:
            >>> from torch.distributions import Normal
            >>> from sbikit.distributions import DiagNormal
            >>> d = Joint(Normal(0.0, 1.0), DiagNormal(torch.zeros(2), torch.ones(2)))
            >>> [v.shape for v in d.split(torch.zeros(5, 3))]
            [torch.Size([5]), torch.Size([5, 2])]
        """

        parts = x.split(self.sizes, dim=-1)
        return [p.squeeze(-1) if s else p for p, s in zip(parts, self.scalars, strict=True)]

    def join(self, parts: Sequence[Tensor]) -> Tensor:
        r"""Concatenates the marginals' values into one vector, the inverse of :meth:`split`."""

        reference = self.reference
        dtype = torch.get_default_dtype() if reference is None else reference.dtype
        parts = [p.unsqueeze(-1) if s else p for p, s in zip(parts, self.scalars, strict=True)]
        return torch.cat([p.to(dtype) for p in parts], dim=-1)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        parts = self.split(x)
        return sum(masked_log_prob(m, p) for m, p in zip(self.marginals, parts, strict=True))

    def sample(self, shape: Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            return self.join([m.sample(shape) for m in self.marginals])

    def rsample(self, shape: Sequence[int] = ()) -> Tensor:
        for i, m in enumerate(self.marginals):
            if not m.has_rsample:
                raise NotImplementedError(
                    f"Joint cannot draw reparameterized samples: marginal {i} "
                    f"({type(m).__name__}) has no rsample. Use sample() instead."
                )
        return self.join([m.rsample(shape) for m in self.marginals])

    @property
    def mean(self) -> Tensor:
        return self.join([m.mean for m in self.marginals])

    @property
    def variance(self) -> Tensor:
        return self.join([m.variance for m in self.marginals])

    def entropy(self) -> Tensor:
        return sum(m.entropy() for m in self.marginals)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        r"""Returns every value of the finite support, with shape ``(K,) + batch + (D,)``.

        The values are the Cartesian product of the marginals' supports, which must not
        depend on the batch element.

        Example:
            >>> from torch.distributions import Bernoulli
            >>> d = Joint(Bernoulli(0.5), Bernoulli(0.3))
            >>> d.enumerate_support()
            tensor([[0., 0.],
                    [0., 1.],
                    [1., 0.],
                    [1., 1.]])
        """

        if not self.has_enumerate_support:
            raise NotImplementedError(
                "Joint.enumerate_support needs marginals that all have an enumerable support."
            )
        values = []
        for marginal, size, scalar in zip(self.marginals, self.sizes, self.scalars, strict=True):
            v = marginal.enumerate_support(expand=False)
            v = v.reshape(v.shape[0], size)
            values.append(v.squeeze(-1) if scalar else v)
        grids = torch.meshgrid(
            *[torch.arange(len(v), device=v.device) for v in values], indexing="ij"
        )
        grid = self.join([v[g.reshape(-1)] for v, g in zip(values, grids, strict=True)])
        grid = grid.reshape(-1, *[1] * len(self.batch_shape), self.event_shape[0])
        return grid.expand(-1, *self.batch_shape, -1) if expand else grid


class MixtureSupport(constraints.Constraint):
    r"""The support of a :class:`Mixture`: the union of its components' supports."""

    def __init__(self, support: constraints.Constraint, event_dim: int):
        self.support = support
        self.event_dim = event_dim
        self.is_discrete = support.is_discrete

    def __repr__(self) -> str:
        return f"MixtureSupport({self.support!r})"

    def check(self, value: Tensor) -> Tensor:
        inside = self.support.check(value.unsqueeze(-self.event_dim - 1))
        extra = self.event_dim - self.support.event_dim
        if extra > 0:
            inside = inside.reshape(*inside.shape[: inside.dim() - extra], -1).all(-1)
        return inside.any(-1)


class Mixture(DistributionMixin, Distribution):
    r"""A finite mixture of distributions.

    .. math:: p(x) = \sum_{k=1}^K w_k \, p_k(x), \quad w = \mathrm{softmax}(\ell)

    The components are the :math:`K` rightmost batch elements of ``base``. Mixtures are
    sampled by picking a component, so there is no ``rsample``.

    Arguments:
        base: The components :math:`p_k`, a distribution with batch shape :math:`(*, K)`.
        logits: The unnormalized log-weights :math:`\ell`, with shape :math:`(*, K)`.

    Example:
        >>> from sbikit.distributions import DiagNormal
        >>> base = DiagNormal(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.ones(2, 2))
        >>> d = Mixture(base, torch.zeros(2))
        >>> d.event_shape, d.sample((4,)).shape
        (torch.Size([2]), torch.Size([4, 2]))
        >>> d.mean, d.variance
        (tensor([0., 0.]), tensor([2., 1.]))
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "logits": constraints.real_vector
    }
    has_rsample = False

    def __init__(self, base: Distribution, logits: Tensor):
        base = check_distribution(base, "base", "Mixture")
        logits = check_tensor(logits, "logits")
        if not logits.is_floating_point():
            raise TypeError(
                f"Mixture expects floating-point logits, but received {describe(logits)}."
            )
        if logits.dim() < 1 or not base.batch_shape or base.batch_shape[-1] != logits.shape[-1]:
            raise ValueError(
                "Mixture expects base with batch shape (*, K) and logits with shape (*, K), "
                f"but received base with batch shape {tuple(base.batch_shape)} and logits with "
                f"shape {tuple(logits.shape)}."
            )
        check_same_kind([("logits", logits), ("base", reference_tensor(base))], "Mixture")
        batch_shape = broadcast_batch(
            "Mixture", base=base.batch_shape[:-1], logits=logits.shape[:-1]
        )
        components = batch_shape + logits.shape[-1:]
        self.base = base if base.batch_shape == components else base.expand(components)
        self.logits = logits.expand(components)
        super().__init__(batch_shape, base.event_shape, validate_args=False)

    def __repr__(self) -> str:
        base = f"{self.base}".replace("\n", "\n  ")
        return f"Mixture(\n  (base): {base}\n  (logits): {self.logits.size()}\n)"

    @property
    def reference(self) -> Tensor:
        return self.logits

    @property
    def weights(self) -> Tensor:
        r"""The mixture weights :math:`w`, with shape :math:`(*, K)`."""

        return torch.softmax(self.logits, dim=-1)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return MixtureSupport(self.base.support, len(self.event_shape))

    def expand(self, batch_shape: Sequence[int], _instance=None) -> Mixture:
        components = torch.Size(batch_shape) + self.logits.shape[-1:]
        return Mixture(self.base.expand(components), self.logits.expand(components))

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        log_p = masked_log_prob(self.base, x.unsqueeze(-len(self.event_shape) - 1))
        return torch.logsumexp(torch.log_softmax(self.logits, dim=-1) + log_p, dim=-1)

    def cdf(self, x: Tensor) -> Tensor:
        r"""Returns :math:`F(x) = \sum_k w_k F_k(x)`, for scalar events."""

        if self.event_shape:
            raise NotImplementedError("Mixture.cdf is only defined for scalar events.")
        x = self.check_value(x, "x")
        return (self.weights * self.base.cdf(x.unsqueeze(-1))).sum(dim=-1)

    def sample(self, shape: Sequence[int] = ()) -> Tensor:
        shape = torch.Size(shape)
        with torch.no_grad():
            index = Categorical(logits=self.logits, validate_args=False).sample(shape)
            draws = self.base.sample(shape)
            dim = len(shape) + len(self.batch_shape)
            index = index.reshape(index.shape + (1,) * (1 + len(self.event_shape)))
            index = index.expand(*index.shape[: dim + 1], *self.event_shape)
            return draws.gather(dim, index).squeeze(dim)

    def _weighted(self, moments: Tensor) -> Tensor:
        w = self.weights.reshape(self.logits.shape + (1,) * len(self.event_shape))
        return (w * moments).sum(dim=-len(self.event_shape) - 1)

    @property
    def mean(self) -> Tensor:
        return self._weighted(self.base.mean)

    @property
    def variance(self) -> Tensor:
        mean, variance = self.base.mean, self.base.variance
        second = self._weighted(variance + mean**2)
        return (second - self._weighted(mean) ** 2).clamp(min=0)


class Truncated(DistributionMixin, Distribution):
    r"""A univariate distribution truncated to an interval :math:`[l, u]`.

    .. math:: p(x) = \frac{p_{\mathrm{base}}(x)}{F(u) - F(l)} \, \mathbb{1}[l \le x \le u]

    where :math:`F` is the CDF of the base. Samples are reparameterized through the base's
    inverse CDF: :math:`x = F^{-1}(F(l) + v (F(u) - F(l)))` with :math:`v \sim U(0, 1)`.

    Arguments:
        base: A univariate distribution with ``cdf`` (and ``icdf`` to sample).
        lower: The lower bound :math:`l`, with a shape broadcastable to the batch shape.
        upper: The upper bound :math:`u`, with a shape broadcastable to the batch shape.

    Example:
        >>> from torch.distributions import Normal
        >>> d = Truncated(Normal(0.0, 1.0), 0.0, 1.0)
        >>> x = d.sample((1000,))
        >>> bool(x.min() >= 0 and x.max() <= 1)
        True
        >>> d.log_prob(torch.tensor([0.5, 2.0]))
        tensor([0.0309,   -inf])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(
        self,
        base: Distribution,
        lower: Tensor | float = -torch.inf,
        upper: Tensor | float = torch.inf,
    ):
        base = check_univariate(base, "Truncated")
        if not implements(base, "cdf"):
            raise TypeError(
                f"Truncated expects a base distribution with a cdf, but "
                f"{type(base).__name__} has none."
            )
        reference = reference_tensor(base)
        lower = adapt(lower, reference, "lower", "Truncated")
        upper = adapt(upper, reference, "upper", "Truncated")
        if not torch.all(lower < upper):
            raise ValueError(
                f"Truncated expects lower < upper, but received lower={lower.tolist()} and "
                f"upper={upper.tolist()}."
            )
        batch_shape = broadcast_batch(
            "Truncated", base=base.batch_shape, lower=lower.shape, upper=upper.shape
        )
        self.base = base if base.batch_shape == batch_shape else base.expand(batch_shape)
        self.lower = lower.expand(batch_shape)
        self.upper = upper.expand(batch_shape)
        cdf_lower, cdf_upper = self._bounds()
        if not torch.all(cdf_upper > cdf_lower):
            raise ValueError(
                "Truncated expects an interval [lower, upper] of positive probability under "
                "the base, but F(upper) - F(lower) is 0 to floating-point precision for some "
                "of the bounds (the interval lies far in a tail of the base, where its cdf "
                "saturates). Move the interval closer to the base's mass."
            )
        super().__init__(batch_shape, validate_args=False)

    def __repr__(self) -> str:
        return (
            f"Truncated(base: {self.base}, lower: {self.lower.size()}, upper: {self.upper.size()})"
        )

    @property
    def reference(self) -> Tensor:
        return self.lower

    @property
    def has_rsample(self) -> bool:
        return self.base.has_rsample and implements(self.base, "icdf")

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.interval(self.lower, self.upper)

    def expand(self, batch_shape: Sequence[int], _instance=None) -> Truncated:
        batch_shape = torch.Size(batch_shape)
        return Truncated(
            self.base.expand(batch_shape),
            self.lower.expand(batch_shape),
            self.upper.expand(batch_shape),
        )

    def _bounds(self) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`F(l)` and :math:`F(u)`, exact at infinite bounds."""

        cdf_lower = torch.where(self.lower == -torch.inf, 0.0, self.base.cdf(self.lower))
        cdf_upper = torch.where(self.upper == torch.inf, 1.0, self.base.cdf(self.upper))
        return cdf_lower, cdf_upper

    def _clamp(self, x: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(x, self.upper), self.lower)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        cdf_lower, cdf_upper = self._bounds()
        log_p = masked_log_prob(self.base, self._clamp(x)) - torch.log(cdf_upper - cdf_lower)
        inside = (x >= self.lower) & (x <= self.upper)
        return torch.where(inside, log_p, -torch.inf)

    def cdf(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        cdf_lower, cdf_upper = self._bounds()
        cdf = (self.base.cdf(self._clamp(x)) - cdf_lower) / (cdf_upper - cdf_lower)
        return cdf.clamp(min=0, max=1)

    def icdf(self, p: Tensor) -> Tensor:
        p = self.check_value(p, "p")
        return self._icdf(p)

    def _icdf(self, p: Tensor) -> Tensor:
        if not implements(self.base, "icdf"):
            raise NotImplementedError(
                f"Truncated needs the icdf of its base to invert its cdf or to sample, but "
                f"{type(self.base).__name__} has none."
            )
        cdf_lower, cdf_upper = self._bounds()
        return self._clamp(self.base.icdf(cdf_lower + p * (cdf_upper - cdf_lower)))

    def rsample(self, shape: Sequence[int] = ()) -> Tensor:
        return self._icdf(uniform(self._extended_shape(shape), self.lower))
