r"""Lazy distributions and transforms: modules whose ``forward(c)`` builds the object.

A plain :class:`torch.distributions.Distribution` cannot hold trainable parameters, move to
a device or condition on data. A lazy distribution is an :class:`torch.nn.Module` that
does all three: its ``forward(c=None)`` returns a distribution built from its parameters
and the optional context :math:`c`. Lazy transforms do the same for transforms.
"""

from __future__ import annotations

import abc
import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch.nn as nn
from torch import Size, Tensor
from torch.distributions import Distribution, Transform

from ._validation import check_like, check_tensor, describe
from .distributions import NormalizingFlow
from .transforms import ComposedTransform
from .utils import Partial

__all__ = [
    "Flow",
    "LazyComposedTransform",
    "LazyDistribution",
    "LazyInverse",
    "LazyTransform",
    "Unconditional",
    "UnconditionalDistribution",
    "UnconditionalTransform",
    "check_context",
]


def check_context(c: object, features: int | None, owner: str) -> Tensor | None:
    r"""Checks a context :math:`c` given to a lazy module, or raises.

    Arguments:
        c: The context, ``None`` or a tensor with shape :math:`(*, C)`.
        features: The expected number of context features :math:`C` (0 for an unconditional
            module), or ``None`` if unknown.
        owner: The name of the module, for error messages.

    Returns:
        The context, unchanged.

    Example:
        >>> check_context(torch.zeros(4, 2), 2, "MyFlow").shape
        torch.Size([4, 2])
    """

    if c is None:
        if features:
            raise ValueError(
                f"{owner} is conditional on a context with {features} feature(s), but "
                f"received none. Call it as {owner.lower()}(c) with c of shape (*, {features})."
            )
        return None
    if features == 0:
        raise ValueError(
            f"{owner} is unconditional (context=0), but received a context. Call it without "
            f"one, or build it with context=C to condition on C features."
        )
    c = check_tensor(c, "the context c")
    if features is not None and (c.dim() == 0 or c.shape[-1] != features):
        raise ValueError(
            f"{owner} expects a context c of shape (*, {features}), but received "
            f"{describe(c)}. The last dimension of c must be the number of context features."
        )
    return c


class DistributionModule(nn.Module):
    r"""The distribution-module interface shared by lazy distributions and transforms.

    Provides :meth:`num_params` on top of :class:`torch.nn.Module`.
    """

    def num_params(self) -> int:
        r"""Returns the number of trainable parameters (elements of ``requires_grad`` tensors)."""

        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class LazyDistribution(DistributionModule, abc.ABC):
    r"""Abstract lazy distribution: a module whose ``forward(c=None)`` returns a distribution.

    Subclasses implement :meth:`forward`. The convenience methods :meth:`log_prob` and
    :meth:`sample` build the distribution for a context and evaluate it.

    Example:
        >>> from sbikit.distributions import DiagNormal
        >>> class Gaussian(LazyDistribution):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.loc = torch.nn.Parameter(torch.zeros(2))
        ...     def forward(self, c=None):
        ...         return DiagNormal(self.loc, torch.ones(2))
        >>> Gaussian().sample((3,)).shape
        torch.Size([3, 2])
    """

    @abc.abstractmethod
    def forward(self, c: Tensor | None = None) -> Distribution:
        r"""
        Arguments:
            c: A context :math:`c` with shape :math:`(*, C)`, or ``None``.

        Returns:
            A distribution :math:`p(X \mid c)`.
        """

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        r"""Returns :math:`\log p(x \mid c)`, with shape :math:`(*)` for :math:`x` of shape
        :math:`(*, D)`."""

        return self(c).log_prob(x)

    def sample(self, shape: Sequence[int] = (), c: Tensor | None = None) -> Tensor:
        r"""Returns samples of :math:`p(X \mid c)`, with shape :math:`S + B + (D,)` for a
        sample shape :math:`S` and context batch shape :math:`B`."""

        return self(c).sample(Size(shape))


class LazyTransform(DistributionModule, abc.ABC):
    r"""Abstract lazy transform: a module whose ``forward(c=None)`` returns a transform.

    Example:
        >>> from torch.distributions import AffineTransform
        >>> class Shift(LazyTransform):
        ...     def forward(self, c=None):
        ...         return AffineTransform(c, 1.0)
        >>> Shift()(torch.ones(2))(torch.zeros(2))
        tensor([1., 1.])
        >>> Shift().inv(torch.ones(2))(torch.zeros(2))
        tensor([-1., -1.])
    """

    @abc.abstractmethod
    def forward(self, c: Tensor | None = None) -> Transform:
        r"""
        Arguments:
            c: A context :math:`c` with shape :math:`(*, C)`, or ``None``.

        Returns:
            A transform :math:`y = f(x \mid c)`.
        """

    @property
    def inv(self) -> LazyTransform:
        r"""The lazy inverse :math:`f^{-1}(y \mid c)`."""

        return LazyInverse(self)


class LazyInverse(LazyTransform):
    r"""The lazy inverse of a lazy transform: ``forward(c)`` returns ``transform(c).inv``.

    Arguments:
        transform: A lazy transform :math:`f`.

    Example:
        >>> f = UnconditionalTransform(torch.distributions.ExpTransform)
        >>> LazyInverse(f)()(torch.ones(1))
        tensor([0.])
    """

    def __init__(self, transform: LazyTransform):
        super().__init__()
        self.transform = transform

    def forward(self, c: Tensor | None = None) -> Transform:
        return self.transform(c).inv

    @property
    def inv(self) -> LazyTransform:
        return self.transform


class LazyComposedTransform(LazyTransform):
    r"""The lazy composition :math:`f(x \mid c) = f_n \circ \dots \circ f_0(x \mid c)`.

    Arguments:
        transforms: A sequence of lazy transforms :math:`f_0, \dots, f_n`.

    Example:
        >>> from torch.distributions import ExpTransform
        >>> exp = UnconditionalTransform(ExpTransform)
        >>> t = LazyComposedTransform(exp, exp)
        >>> t()(torch.zeros(1))
        tensor([2.7183])
    """

    def __init__(self, *transforms: LazyTransform):
        super().__init__()
        for t in transforms:
            if not isinstance(t, nn.Module):
                raise TypeError(
                    "LazyComposedTransform expects lazy transforms (nn.Module whose forward "
                    f"returns a Transform), but received {describe(t)}. Wrap a torch "
                    "transform with UnconditionalTransform."
                )
        self.transforms = nn.ModuleList(transforms)

    def __repr__(self) -> str:
        return repr(self.transforms).replace("ModuleList", "LazyComposedTransform", 1)

    def forward(self, c: Tensor | None = None) -> Transform:
        return ComposedTransform(*(t(c) for t in self.transforms))

    @property
    def inv(self) -> LazyTransform:
        return LazyComposedTransform(*(t.inv for t in reversed(self.transforms)))


class Flow(LazyDistribution):
    r"""A lazy normalizing flow :math:`p(X \mid c)`.

    ``forward(c)`` returns a :class:`~sbikit.distributions.NormalizingFlow` made of the
    transform :math:`f(\cdot \mid c)` (data to base space) and the base
    :math:`p(Z \mid c)`, expanded to the batch shape of the context, ``c.shape[:-1]``.

    Arguments:
        transform: A lazy transform or a sequence of lazy transforms (composed in order).
        base: A lazy distribution.
        context: The number of context features :math:`C`, if known (0 for an
            unconditional flow); the context is then checked against it.

    Example:
        >>> from torch.distributions import ExpTransform
        >>> from sbikit.distributions import DiagNormal
        >>> flow = Flow(
        ...     UnconditionalTransform(ExpTransform).inv,
        ...     UnconditionalDistribution(DiagNormal, torch.zeros(2), torch.ones(2), buffer=True),
        ... )
        >>> flow().sample((5,)).shape
        torch.Size([5, 2])
        >>> flow(torch.randn(3, 4)).sample((5,)).shape
        torch.Size([5, 3, 2])
    """

    def __init__(
        self,
        transform: LazyTransform | Sequence[LazyTransform],
        base: LazyDistribution,
        context: int | None = None,
    ):
        super().__init__()
        self.context = context
        if isinstance(transform, Sequence):
            transform = LazyComposedTransform(*transform)
        for name, module in (("transform", transform), ("base", base)):
            if not isinstance(module, nn.Module):
                raise TypeError(
                    f"Flow expects {name} to be a lazy module (an nn.Module), but received "
                    f"{describe(module)}. Wrap torch objects with UnconditionalTransform or "
                    "UnconditionalDistribution."
                )
        self.transform = transform
        self.base = base

    def forward(self, c: Tensor | None = None) -> NormalizingFlow:
        name = type(self).__name__
        c = check_context(c, self.context, name)
        if c is not None:
            reference = next(itertools.chain(self.parameters(), self.buffers()), None)
            if reference is not None:
                check_like(c, reference, "the context c", name)
        transform = self.transform(c)
        base = self.base(c)
        if c is not None:
            base = base.expand(c.shape[:-1])
        flow = NormalizingFlow(transform, base)
        flow.name = name  # errors about its values name this flow
        return flow


class _UnconditionalModule(Partial, DistributionModule):
    r"""A :class:`~sbikit.utils.Partial` whose ``forward(c)`` ignores the context."""

    def forward(self, c: Tensor | None = None) -> Any:
        return self.f(*self.args, **self.kwargs)


class UnconditionalDistribution(_UnconditionalModule, LazyDistribution):
    r"""A lazy distribution that ignores the context: ``forward(c)`` returns
    ``f(*args, **kwargs)``.

    Tensor arguments are registered as trainable parameters, or as buffers with
    ``buffer=True`` (integer tensors are always buffers). If ``f`` is a module, it is a
    submodule.

    Arguments:
        f: A distribution constructor, e.g. :class:`~sbikit.distributions.DiagNormal`.
        args: Positional arguments of ``f``.
        buffer: Whether tensors are registered as buffers instead of parameters.
        kwargs: Keyword arguments of ``f``.

    Example:
        >>> from sbikit.distributions import DiagNormal
        >>> loc, scale = torch.zeros(3), torch.ones(3)
        >>> prior = UnconditionalDistribution(DiagNormal, loc, scale, buffer=True)
        >>> prior()
        DiagNormal(loc: torch.Size([3]), scale: torch.Size([3]))
        >>> prior().sample().shape
        torch.Size([3])
    """


class UnconditionalTransform(_UnconditionalModule, LazyTransform):
    r"""A lazy transform that ignores the context: ``forward(c)`` returns
    ``f(*args, **kwargs)``.

    Tensor arguments are registered as trainable parameters, or as buffers with
    ``buffer=True`` (integer tensors are always buffers). If ``f`` is a module, it is a
    submodule.

    Arguments:
        f: A transform constructor, e.g. :class:`torch.distributions.ExpTransform`.
        args: Positional arguments of ``f``.
        buffer: Whether tensors are registered as buffers instead of parameters.
        kwargs: Keyword arguments of ``f``.

    Example:
        >>> from torch.distributions import ExpTransform
        >>> t = UnconditionalTransform(ExpTransform)
        >>> t()(torch.zeros(3))
        tensor([1., 1., 1.])
    """


class Unconditional(_UnconditionalModule):
    r"""Deprecated: use :class:`UnconditionalDistribution` or :class:`UnconditionalTransform`.

    Behaves as those two classes (``forward(c)`` returns ``meta(*args, **kwargs)``), and
    emits a :class:`DeprecationWarning` when created.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     u = Unconditional(torch.distributions.ExpTransform)
        >>> u()(torch.zeros(1))
        tensor([1.])
    """

    def __init__(self, meta: Callable[..., Any], *args: Any, buffer: bool = False, **kwargs: Any):
        warnings.warn(
            "sbikit.lazy.Unconditional is deprecated; use UnconditionalDistribution for "
            "distributions and UnconditionalTransform for transforms.",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(meta, *args, buffer=buffer, **kwargs)
