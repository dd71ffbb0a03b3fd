r"""Bijective transforms with one-pass log-determinants.

Every transform here is a :class:`torch.distributions.Transform` with correct ``domain``,
``codomain``, ``bijective`` and ``sign``, and a ``call_and_ladj(x) -> (y, ladj)`` method
that computes :math:`y = f(x)` and :math:`\log |\det J_f(x)|` in one pass. The function
:func:`call_and_ladj` gives the same for torch's own transforms.
"""

from .base import (
    ComposedTransform,
    DependentTransform,
    IdentityTransform,
    InverseTransform,
    Transform,
    call_and_ladj,
)

__all__ = [
    "ComposedTransform",
    "DependentTransform",
    "IdentityTransform",
    "InverseTransform",
    "Transform",
    "call_and_ladj",
]
