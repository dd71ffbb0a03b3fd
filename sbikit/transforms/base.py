r"""The transform protocol of sbikit and the transforms that combine others.

Every sbikit transform is a :class:`torch.distributions.Transform` that also offers
``call_and_ladj(x) -> (y, ladj)``, computing :math:`y = f(x)` and
:math:`\log |\det J_f(x)|` in a single pass. The free function :func:`call_and_ladj` extends
the protocol to torch's own transforms without modifying them.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import constraints
from torch.distributions import transforms as torch_transforms

__all__ = [
    "ComposedTransform",
    "DependentTransform",
    "IdentityTransform",
    "InverseTransform",
    "Transform",
    "call_and_ladj",
]


def sum_rightmost(x: Tensor, n: int) -> Tensor:
    r"""Sums the ``n`` rightmost dimensions of ``x`` (``n <= 0`` returns ``x``)."""

    return x.sum(dim=tuple(range(-n, 0))) if n > 0 else x


def call_and_ladj(transform: torch_transforms.Transform, x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Returns both :math:`y = f(x)` and :math:`\log |\det J_f(x)|` for any transform.

    sbikit transforms compute both in one pass; torch's own transforms fall back to a call
    followed by ``log_abs_det_jacobian``.

    Arguments:
        transform: A :class:`torch.distributions.Transform` :math:`f`.
        x: The input :math:`x`, with shape :math:`(*, D)` (or :math:`(*)` element-wise).

    Returns:
        The output :math:`y` and the log-absolute-determinant, whose shape is the shape of
        :math:`x` without the transform's domain event dimensions.

    Example:
        >>> from torch.distributions import ExpTransform
        >>> y, ladj = call_and_ladj(ExpTransform(), torch.zeros(3))
        >>> y, ladj
        (tensor([1., 1., 1.]), tensor([0., 0., 0.]))
    """

    method = getattr(transform, "call_and_ladj", None)
    if method is not None:
        return method(x)
    y = transform(x)
    return y, transform.log_abs_det_jacobian(x, y)


class Transform(torch_transforms.Transform):
    r"""Base class of sbikit transforms.

    A :class:`torch.distributions.Transform` with a one-pass ``call_and_ladj`` and an
    inverse (``.inv``) that offers ``call_and_ladj`` too. Subclasses implement ``_call``,
    ``_inverse`` and ``log_abs_det_jacobian``, and override ``call_and_ladj`` (and
    ``inverse_and_ladj``) when the output and the log-determinant are cheaper together.

    Example:
        >>> from torch.distributions import constraints
        >>> class Double(Transform):
        ...     domain = codomain = constraints.real
        ...     bijective, sign = True, +1
        ...     def _call(self, x):
        ...         return 2 * x
        ...     def _inverse(self, y):
        ...         return y / 2
        ...     def log_abs_det_jacobian(self, x, y):
        ...         return torch.full_like(x, 2.0).log()
        >>> Double().inv.call_and_ladj(torch.ones(2))
        (tensor([0.5000, 0.5000]), tensor([-0.6931, -0.6931]))
    """

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`y = f(x)` and :math:`\log |\det J_f(x)|`."""

        y = self._call(x)
        return y, self.log_abs_det_jacobian(x, y)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`x = f^{-1}(y)` and :math:`\log |\det J_{f^{-1}}(y)|`.

        Used by ``self.inv.call_and_ladj``. Transforms whose inverse pass yields the
        log-determinant (splines, coupling and autoregressive transforms) override it to
        avoid a second evaluation of :math:`f`.
        """

        x = self._inverse(y)
        return x, -self.log_abs_det_jacobian(x, y)

    @property
    def inv(self) -> torch_transforms.Transform:
        inv = self._inv() if self._inv is not None else None
        if inv is None:
            inv = InverseTransform(self)
            self._inv = weakref.ref(inv)
        return inv

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class InverseTransform(torch_transforms._InverseTransform):
    r"""The inverse :math:`f^{-1}` of an sbikit transform, with ``call_and_ladj``.

    Arguments:
        transform: The transform :math:`f` to invert.

    Example:
        >>> t = IdentityTransform().inv
        >>> y, ladj = t.call_and_ladj(torch.ones(2))
        >>> y
        tensor([1., 1.])
    """

    def call_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`x = f^{-1}(y)` and :math:`\log |\det J_{f^{-1}}(y)|`."""

        return self._inv.inverse_and_ladj(y)


class IdentityTransform(Transform):
    r"""The identity transform :math:`f(x) = x`, element-wise.

    Example:
        >>> IdentityTransform()(torch.arange(3.0))
        tensor([0., 1., 2.])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def _call(self, x: Tensor) -> Tensor:
        return x

    def _inverse(self, y: Tensor) -> Tensor:
        return y

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.zeros_like(x)


def domain_event_dim(transforms: tuple[torch_transforms.Transform, ...]) -> int:
    r"""Returns the event dimension of the domain of :math:`f_n \circ \dots \circ f_0`."""

    event_dim = 0
    for t in reversed(transforms):
        event_dim = t.domain.event_dim + max(event_dim - t.codomain.event_dim, 0)
    return event_dim


def codomain_event_dim(transforms: tuple[torch_transforms.Transform, ...]) -> int:
    r"""Returns the event dimension of the codomain of :math:`f_n \circ \dots \circ f_0`."""

    event_dim = 0
    for t in transforms:
        event_dim = t.codomain.event_dim + max(event_dim - t.domain.event_dim, 0)
    return event_dim


class ComposedTransform(Transform):
    r"""The composition :math:`f = f_n \circ \dots \circ f_1 \circ f_0` of transforms.

    A faster replacement for :class:`torch.distributions.ComposeTransform`: the
    log-absolute-determinant is accumulated during the forward pass by
    :func:`call_and_ladj`, so a density costs one evaluation of each transform.

    .. math:: \log |\det J_f(x)| = \sum_{i=0}^n \log |\det J_{f_i}(x_i)|,
        \quad x_{i+1} = f_i(x_i)

    Arguments:
        transforms: A sequence of transforms :math:`f_0, \dots, f_n`, applied in that order.

    Example:
        >>> from torch.distributions import AffineTransform, ExpTransform
        >>> t = ComposedTransform(ExpTransform(), AffineTransform(1.0, 2.0))
        >>> t(torch.zeros(2))
        tensor([3., 3.])
        >>> x = torch.tensor([-1.0, 1.0])
        >>> torch.allclose(t.inv(t(x)), x)
        True
    """

    def __init__(self, *transforms: torch_transforms.Transform, cache_size: int = 0):
        super().__init__(cache_size=cache_size)
        if not transforms:
            transforms = (IdentityTransform(),)
        for t in transforms:
            if not isinstance(t, torch_transforms.Transform):
                raise TypeError(
                    "ComposedTransform expects torch.distributions.Transform objects, "
                    f"but received an object of type {type(t).__name__}."
                )
        self.transforms = transforms
        self.domain_dim = domain_event_dim(transforms)
        self.codomain_dim = codomain_event_dim(transforms)

    def __repr__(self) -> str:
        lines = [f"({i}): {t}".replace("\n", "\n  ") for i, t in enumerate(self.transforms)]
        return "ComposedTransform(\n  " + "\n  ".join(lines) + "\n)"

    @property
    def domain(self) -> constraints.Constraint:
        domain = self.transforms[0].domain
        reinterpreted = self.domain_dim - domain.event_dim
        return constraints.independent(domain, reinterpreted) if reinterpreted else domain

    @property
    def codomain(self) -> constraints.Constraint:
        codomain = self.transforms[-1].codomain
        reinterpreted = self.codomain_dim - codomain.event_dim
        return constraints.independent(codomain, reinterpreted) if reinterpreted else codomain

    @property
    def bijective(self) -> bool:
        return all(t.bijective for t in self.transforms)

    @property
    def sign(self) -> int:
        sign = 1
        for t in self.transforms:
            sign = sign * t.sign
        return sign

    def _call(self, x: Tensor) -> Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def _inverse(self, y: Tensor) -> Tensor:
        for t in reversed(self.transforms):
            y = t.inv(y)
        return y

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return chain_and_ladj(self.transforms, x, self.domain_dim)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # each transform's inverse in one pass: no forward evaluation for the ladj
        return chain_and_ladj([t.inv for t in reversed(self.transforms)], y, self.codomain_dim)

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        for t in self.transforms:
            shape = t.forward_shape(shape)
        return shape

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        for t in reversed(self.transforms):
            shape = t.inverse_shape(shape)
        return shape


def chain_and_ladj(
    transforms: Sequence[torch_transforms.Transform], x: Tensor, event_dim: int
) -> tuple[Tensor, Tensor]:
    r"""Applies ``transforms`` in order to :math:`x`, whose event has ``event_dim``
    dimensions, and returns the result with the sum of their ladjs over that event."""

    total = 0
    for t in transforms:
        x, ladj = call_and_ladj(t, x)
        total = total + sum_rightmost(ladj, event_dim - t.domain.event_dim)
        event_dim += t.codomain.event_dim - t.domain.event_dim
    return x, total


class DependentTransform(Transform):
    r"""Reinterprets the rightmost batch dimensions of a transform as event dimensions.

    The log-absolute-determinant of the wrapped transform is summed over the
    ``reinterpreted`` rightmost dimensions, as :class:`torch.distributions.Independent`
    does for densities.

    Arguments:
        base: The wrapped transform.
        reinterpreted: The number of batch dimensions to reinterpret as event dimensions.

    Example:
        >>> from torch.distributions import ExpTransform
        >>> t = DependentTransform(ExpTransform(), 1)
        >>> t.call_and_ladj(torch.ones(2, 3))[1]
        tensor([3., 3.])
    """

    bijective = True

    def __init__(self, base: torch_transforms.Transform, reinterpreted: int, cache_size: int = 0):
        super().__init__(cache_size=cache_size)
        self.base = base
        self.reinterpreted = int(reinterpreted)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base}, {self.reinterpreted})"

    @property
    def domain(self) -> constraints.Constraint:
        return constraints.independent(self.base.domain, self.reinterpreted)

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.independent(self.base.codomain, self.reinterpreted)

    @property
    def sign(self) -> int:
        return self.base.sign

    def _call(self, x: Tensor) -> Tensor:
        return self.base(x)

    def _inverse(self, y: Tensor) -> Tensor:
        return self.base.inv(y)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return sum_rightmost(self.base.log_abs_det_jacobian(x, y), self.reinterpreted)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, ladj = call_and_ladj(self.base, x)
        return y, sum_rightmost(ladj, self.reinterpreted)

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        return self.base.forward_shape(shape)

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        return self.base.inverse_shape(shape)
