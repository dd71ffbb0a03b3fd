r"""Normalizing-flow architectures, each a :class:`~sbikit.lazy.Flow` or a lazy transform.

Every flow constructor takes ``features`` and ``context`` first. A flow with
``context=0`` is unconditional (``flow()``); otherwise ``flow(c)`` conditions on a context
of shape :math:`(*, C)` and has batch shape :math:`(*)`.
"""

from .autoregressive import MAF, MaskedAutoregressiveTransform
from .continuous import CNF, FFJTransform
from .coupling import NICE, GeneralCouplingTransform, RealNVP
from .gaussianization import GF, ElementWiseTransform
from .mixture import GMM
from .neural import MNN, NAF, UMNN, UNAF
from .polynomial import BPF, SOSPF
from .spline import NCSF, NSF

__all__ = [
    "BPF",
    "CNF",
    "GF",
    "GMM",
    "MAF",
    "MNN",
    "NAF",
    "NCSF",
    "NICE",
    "NSF",
    "SOSPF",
    "UMNN",
    "UNAF",
    "ElementWiseTransform",
    "FFJTransform",
    "GeneralCouplingTransform",
    "MaskedAutoregressiveTransform",
    "RealNVP",
]
