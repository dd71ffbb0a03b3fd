r"""Bijective transforms with one-pass log-determinants.

Every transform here is a :class:`torch.distributions.Transform` with correct ``domain``,
``codomain``, ``bijective`` and ``sign``, and a ``call_and_ladj(x) -> (y, ladj)`` method
that computes :math:`y = f(x)` and :math:`\log |\det J_f(x)|` in one pass. The function
:func:`call_and_ladj` gives the same for torch's own transforms, which are re-exported here
(``AffineTransform``, ``SigmoidTransform``, ``ExpTransform``, ...).

The transforms live in modules by concept: :mod:`~sbikit.transforms.base` (the protocol
and the combinators), :mod:`~sbikit.transforms.elementwise`,
:mod:`~sbikit.transforms.spline`, :mod:`~sbikit.transforms.linear` and
:mod:`~sbikit.transforms.structured` (autoregressive and coupling).
"""

from torch.distributions.transforms import (
    AbsTransform,
    AffineTransform,
    CatTransform,
    CorrCholeskyTransform,
    CumulativeDistributionTransform,
    ExpTransform,
    IndependentTransform,
    LowerCholeskyTransform,
    PowerTransform,
    ReshapeTransform,
    SigmoidTransform,
    SoftmaxTransform,
    SoftplusTransform,
    StackTransform,
    StickBreakingTransform,
    TanhTransform,
)

from .base import (
    ComposedTransform,
    DependentTransform,
    IdentityTransform,
    InverseTransform,
    Transform,
    call_and_ladj,
)
from .continuous import FreeFormJacobianTransform
from .elementwise import (
    AdditiveTransform,
    CircularShiftTransform,
    MonotonicAffineTransform,
    SignedPowerTransform,
    SoftBoxTransform,
    SoftclipTransform,
)
from .gaussianization import GaussianizationTransform
from .linear import LULinearTransform, PermutationTransform, RotationTransform
from .monotonic import MonotonicTransform, UnconstrainedMonotonicTransform
from .polynomial import BernsteinTransform, BoundedBernsteinTransform, SOSPolynomialTransform
from .spline import MonotonicRQSTransform
from .structured import AutoregressiveTransform, CouplingTransform

__all__ = [
    "AbsTransform",
    "AdditiveTransform",
    "AffineTransform",
    "AutoregressiveTransform",
    "BernsteinTransform",
    "BoundedBernsteinTransform",
    "CatTransform",
    "CircularShiftTransform",
    "ComposedTransform",
    "CorrCholeskyTransform",
    "CouplingTransform",
    "CumulativeDistributionTransform",
    "DependentTransform",
    "ExpTransform",
    "FreeFormJacobianTransform",
    "GaussianizationTransform",
    "IdentityTransform",
    "IndependentTransform",
    "InverseTransform",
    "LULinearTransform",
    "LowerCholeskyTransform",
    "MonotonicAffineTransform",
    "MonotonicRQSTransform",
    "MonotonicTransform",
    "PermutationTransform",
    "PowerTransform",
    "ReshapeTransform",
    "RotationTransform",
    "SOSPolynomialTransform",
    "SigmoidTransform",
    "SignedPowerTransform",
    "SoftBoxTransform",
    "SoftclipTransform",
    "SoftmaxTransform",
    "SoftplusTransform",
    "StackTransform",
    "StickBreakingTransform",
    "TanhTransform",
    "Transform",
    "UnconstrainedMonotonicTransform",
    "call_and_ladj",
]
