r"""Order statistics of independent draws of a univariate distribution."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .._validation import check_count
from ._helpers import check_univariate, implements, in_support, uniform
from .base import DistributionMixin, reference_tensor

__all__ = ["Maximum", "Minimum", "Sort", "TopK"]


class OrderedSupport(constraints.Constraint):
    r"""Vectors sorted in ascending (or descending) order, with entries in a support."""

    event_dim = 1

    def __init__(self, support: constraints.Constraint, descending: bool = False):
        self.support = support
        self.descending = descending

    def __repr__(self) -> str:
        return f"OrderedSupport({self.support!r}, descending={self.descending})"

    def check(self, value: Tensor) -> Tensor:
        diff = value[..., 1:] - value[..., :-1]
        ordered = (diff <= 0 if self.descending else diff >= 0).all(dim=-1)
        return ordered & self.support.check(value.movedim(-1, 0)).all(dim=0)


class OrderStatistics(DistributionMixin, Distribution):
    r"""Base class of the distributions of order statistics of :math:`n` i.i.d. draws.

    Arguments:
        base: A univariate distribution, the law of each draw.
        n: The number of draws.
        event_shape: The event shape of the statistic.

    Example:
        >>> from torch.distributions import Normal
        >>> OrderStatistics(Normal(0.0, 1.0), 3).draws((4,)).shape
        torch.Size([4, 3])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(self, base: Distribution, n: int, event_shape: Sequence[int] = ()):
        owner = type(self).__name__
        self.base = check_univariate(base, owner)
        self.n = check_count(n, "n", owner)
        super().__init__(base.batch_shape, torch.Size(event_shape), validate_args=False)

    @property
    def reference(self) -> Tensor | None:
        return reference_tensor(self.base)

    @property
    def has_rsample(self) -> bool:
        return self.base.has_rsample

    def draws(self, shape: Sequence[int] = (), reparameterized: bool = False) -> Tensor:
        r"""Returns :math:`n` unsorted draws of the base, with shape :math:`S + B + (n,)`."""

        shape = (self.n, *shape)
        if reparameterized:
            if not self.base.has_rsample:
                raise NotImplementedError(
                    f"{type(self).__name__} cannot draw reparameterized samples: its base "
                    f"{type(self.base).__name__} has no rsample. Use sample() instead."
                )
            return self.base.rsample(shape).movedim(0, -1)
        with torch.no_grad():
            return self.base.sample(shape).movedim(0, -1)

    def _statistic(self, draws: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, shape: Sequence[int] = ()) -> Tensor:
        return self._statistic(self.draws(shape))

    def rsample(self, shape: Sequence[int] = ()) -> Tensor:
        return self._statistic(self.draws(shape, reparameterized=True))


class Sort(OrderStatistics):
    r"""The distribution of :math:`n` i.i.d. draws of a univariate distribution, sorted.

    .. math:: p(x_1, \dots, x_n) = n! \prod_{i=1}^n p(x_i)
        \, \mathbb{1}[x_1 \le \dots \le x_n]

    (:math:`\ge` when ``descending``). The log-density of an unsorted vector is
    :math:`-\infty`.

    Arguments:
        base: A univariate distribution.
        n: The number of draws, the event size.
        descending: Whether the draws are sorted in descending order.

    Example:
        >>> from torch.distributions import Normal
        >>> d = Sort(Normal(0.0, 1.0), n=3)
        >>> x = d.sample((4,))
        >>> x.shape, bool(torch.all(x[:, :-1] <= x[:, 1:]))
        (torch.Size([4, 3]), True)
        >>> d.log_prob(torch.tensor([1.0, 0.0, 2.0]))
        tensor(-inf)
    """

    def __init__(self, base: Distribution, n: int = 2, descending: bool = False):
        n = check_count(n, "n", "Sort")
        super().__init__(base, n, (n,))
        self.descending = bool(descending)

    def __repr__(self) -> str:
        return f"Sort(base: {self.base}, n: {self.n}, descending: {self.descending})"

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        return OrderedSupport(self.base.support, self.descending)

    def expand(self, batch_shape: Sequence[int], _instance=None) -> Sort:
        return Sort(self.base.expand(torch.Size(batch_shape)), self.n, self.descending)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        draws, inside = in_support(self.base, x.movedim(-1, 0))
        log_p = self.base.log_prob(draws).sum(dim=0) + math.lgamma(self.n + 1)
        diff = x[..., 1:] - x[..., :-1]
        ok = (diff <= 0 if self.descending else diff >= 0).all(dim=-1)
        if inside is not None:
            ok = ok & inside.all(dim=0)
        return torch.where(ok, log_p, -torch.inf)

    def _statistic(self, draws: Tensor) -> Tensor:
        return torch.sort(draws, dim=-1, descending=self.descending).values


class TopK(OrderStatistics):
    r"""The distribution of the :math:`k` largest of :math:`n` i.i.d. draws, in descending
    order.

    .. math:: p(x_1, \dots, x_k) = \frac{n!}{(n - k)!} \prod_{i=1}^k p(x_i)
        \, F(x_k)^{n - k} \, \mathbb{1}[x_1 \ge \dots \ge x_k]

    where :math:`F` is the CDF of the base. The log-density of a vector that is not sorted
    in descending order is :math:`-\infty`.

    Arguments:
        base: A univariate distribution with ``cdf``.
        k: The number of largest draws kept, the event size.
        n: The number of draws.

    Example:
        >>> from torch.distributions import Normal
        >>> d = TopK(Normal(0.0, 1.0), k=2, n=5)
        >>> d.sample((4,)).shape
        torch.Size([4, 2])
        >>> d.log_prob(torch.tensor([0.0, 1.0]))
        tensor(-inf)
    """

    def __init__(self, base: Distribution, k: int = 1, n: int = 2):
        k = check_count(k, "k", "TopK")
        super().__init__(base, n, (k,))
        if k > self.n:
            raise ValueError(f"TopK expects k <= n, but received k={k} and n={self.n}.")
        if not implements(self.base, "cdf"):
            raise TypeError(
                f"TopK expects a base distribution with a cdf, but {type(self.base).__name__} "
                "has none."
            )
        self.k = k

    def __repr__(self) -> str:
        return f"TopK(base: {self.base}, k: {self.k}, n: {self.n})"

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        return OrderedSupport(self.base.support, descending=True)

    def expand(self, batch_shape: Sequence[int], _instance=None) -> TopK:
        return TopK(self.base.expand(torch.Size(batch_shape)), self.k, self.n)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        draws, inside = in_support(self.base, x.movedim(-1, 0))
        log_p = self.base.log_prob(draws).sum(dim=0)
        log_p = log_p + math.lgamma(self.n + 1) - math.lgamma(self.n - self.k + 1)
        if self.n > self.k:
            log_p = log_p + (self.n - self.k) * torch.log(self.base.cdf(draws[-1]))
        ok = (x[..., 1:] <= x[..., :-1]).all(dim=-1)
        if inside is not None:
            ok = ok & inside.all(dim=0)
        return torch.where(ok, log_p, -torch.inf)

    def _statistic(self, draws: Tensor) -> Tensor:
        return torch.topk(draws, self.k, dim=-1, largest=True, sorted=True).values


class Extremum(OrderStatistics):
    r"""Base class of :class:`Minimum` and :class:`Maximum`, scalar order statistics.

    Subclasses give the CDF :math:`G = g(F)` of the statistic as a function of the base's
    CDF :math:`F`, its inverse and the log-derivative :math:`\log g'(F)`.

    Example:
        >>> from torch.distributions import Normal
        >>> Maximum(Normal(0.0, 1.0), n=2).cdf(torch.tensor(0.0))
        tensor(0.2500)
    """

    def __init__(self, base: Distribution, n: int = 2):
        super().__init__(base, n)
        if not implements(self.base, "cdf"):
            raise TypeError(
                f"{type(self).__name__} expects a base distribution with a cdf, but "
                f"{type(self.base).__name__} has none."
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base: {self.base}, n: {self.n})"

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return self.base.support

    def expand(self, batch_shape: Sequence[int], _instance=None) -> Extremum:
        return type(self)(self.base.expand(torch.Size(batch_shape)), self.n)

    def _g(self, F: Tensor) -> Tensor:
        raise NotImplementedError

    def _g_inv(self, G: Tensor) -> Tensor:
        raise NotImplementedError

    def _log_dg(self, F: Tensor) -> Tensor:
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        x, inside = in_support(self.base, x)
        log_p = self.base.log_prob(x) + self._log_dg(self.base.cdf(x))
        return log_p if inside is None else torch.where(inside, log_p, -torch.inf)

    def cdf(self, x: Tensor) -> Tensor:
        x = self.check_value(x, "x")
        return self._g(self.base.cdf(x))

    def icdf(self, p: Tensor) -> Tensor:
        p = self.check_value(p, "p")
        return self.base.icdf(self._g_inv(p))

    def _sample(self, shape: Sequence[int], reparameterized: bool) -> Tensor:
        if implements(self.base, "icdf"):
            like = self.reference
            like = torch.empty(()) if like is None else like
            try:
                return self.base.icdf(self._g_inv(uniform(self._extended_shape(shape), like)))
            except NotImplementedError:
                pass  # e.g. a truncated base whose own base has no icdf
        return self._statistic(self.draws(shape, reparameterized))

    def sample(self, shape: Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            return self._sample(shape, reparameterized=False)

    def rsample(self, shape: Sequence[int] = ()) -> Tensor:
        return self._sample(shape, reparameterized=True)


class Minimum(Extremum):
    r"""The distribution of the minimum of :math:`n` i.i.d. draws of a univariate base.

    .. math:: G(x) = 1 - (1 - F(x))^n, \quad p(x) = n \, p_{\mathrm{base}}(x)
        (1 - F(x))^{n - 1}

    Samples come from the base's inverse CDF when it has one, else from :math:`n` draws.

    Arguments:
        base: A univariate distribution with ``cdf``.
        n: The number of draws.

    Example:
        >>> from torch.distributions import Normal
        >>> d = Minimum(Normal(0.0, 1.0), n=3)
        >>> d.sample((5,)).shape
        torch.Size([5])
        >>> d.cdf(d.icdf(torch.tensor(0.25)))
        tensor(0.2500)
    """

    def _g(self, F: Tensor) -> Tensor:
        return -torch.expm1(self.n * torch.log1p(-F))

    def _g_inv(self, G: Tensor) -> Tensor:
        return -torch.expm1(torch.log1p(-G) / self.n)

    def _log_dg(self, F: Tensor) -> Tensor:
        log_dg = math.log(self.n)
        return log_dg + (self.n - 1) * torch.log1p(-F) if self.n > 1 else log_dg

    def _statistic(self, draws: Tensor) -> Tensor:
        return draws.min(dim=-1).values


class Maximum(Extremum):
    r"""The distribution of the maximum of :math:`n` i.i.d. draws of a univariate base.

    .. math:: G(x) = F(x)^n, \quad p(x) = n \, p_{\mathrm{base}}(x) F(x)^{n - 1}

    Samples come from the base's inverse CDF when it has one, else from :math:`n` draws.

    Arguments:
        base: A univariate distribution with ``cdf``.
        n: The number of draws.

    Example:
        >>> from torch.distributions import Normal
        >>> d = Maximum(Normal(0.0, 1.0), n=3)
        >>> d.sample((5,)).shape
        torch.Size([5])
        >>> d.cdf(torch.tensor(0.0))
        tensor(0.1250)
    """

    def _g(self, F: Tensor) -> Tensor:
        return F**self.n

    def _g_inv(self, G: Tensor) -> Tensor:
        return G ** (1 / self.n)

    def _log_dg(self, F: Tensor) -> Tensor:
        log_dg = math.log(self.n)
        return log_dg + (self.n - 1) * torch.log(F) if self.n > 1 else log_dg

    def _statistic(self, draws: Tensor) -> Tensor:
        return draws.max(dim=-1).values
