r"""Polynomial flows: sum-of-squares (SOSPF) and Bernstein (BPF) polynomial flows."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._validation import check_count
from ..lazy import UnconditionalTransform
from ..transforms.elementwise import SoftclipTransform
from ..transforms.polynomial import BoundedBernsteinTransform, SOSPolynomialTransform
from .autoregressive import MAF

__all__ = ["BPF", "SOSPF"]

# The bisection bracket [-B, B] of the SOS transforms, also the bound of the soft clips
# that keep the inputs of every transform but the first inside it, and the scale of the
# polynomials. The soft clips compress their inputs: with B = 10, the composed transforms
# of untrained flows fail to cover some of the base's samples, where B = 20 covers them.
BOUND = 20.0


def scaled_sos_polynomial(a: Tensor, constant: Tensor) -> SOSPolynomialTransform:
    r"""Returns the SOS polynomial transform of the :math:`K` polynomials
    :math:`p_i(u) = (1 + \sum_l a_{il} (u / B)^l) / \sqrt{K}`.

    The scale :math:`1 / B` keeps every term of order :math:`a` on :math:`[-B, B]`, and
    :math:`a = 0` gives the shift :math:`f(x) = C + (1 + \lambda) x`.
    """

    K, L1 = a.shape[-2:]
    powers = torch.arange(L1, dtype=a.dtype, device=a.device)
    offset = (powers == 0).to(a)
    scale = BOUND**-powers / math.sqrt(K)
    return SOSPolynomialTransform((a + offset) * scale, constant, bound=BOUND)


class SOSPF(MAF):
    r"""A sum-of-squares polynomial flow: a MAF whose univariate transforms are
    sum-of-squares polynomials, over a standard normal base.

    Feature :math:`x_i` is transformed by

    .. math:: y_i = C_i + \int_0^{x_i} \Big( \lambda + \frac{1}{K} \sum_{k=1}^K \Big(1 +
        \sum_{l=0}^L a_{ikl} \Big( \frac{u}{B} \Big)^l \Big)^2 \Big) du ,

    a :class:`~sbikit.transforms.polynomial.SOSPolynomialTransform` whose coefficients
    :math:`a_i` and constant :math:`C_i` a masked hyper-network predicts from the preceding
    features and the context. The scale :math:`B = 20` keeps every term of the polynomials
    of the order of its coefficient on :math:`[-B, B]`, and a zero output of the
    hyper-network is the identity (up to the minimum slope :math:`\lambda = 10^{-3}`). Soft
    clips :math:`x \mapsto x / (1 + |x| / B)` between transforms keep their inputs inside
    the bisection bracket :math:`[-B, B]` of the inverse.

    Warning:
        Sampling inverts the first transform by bisection on :math:`[-20, 20]`: standardize
        the features (zero mean, unit variance), so that the data lie well inside. The soft
        clips make the image of the transform a bounded region of the base space; a base
        sample outside it (in the far tails, or more often before training) has no
        preimage, and its inverse saturates near the bracket.

    References:
        | Sum-of-Squares Polynomial Flow (Jaini et al., 2019)
        | https://arxiv.org/abs/1905.02325

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        degree: The degree :math:`L` of the squared polynomials.
        polynomials: The number of squared polynomials :math:`K`.
        transforms: The number of autoregressive transforms.
        kwargs: Keyword arguments of :class:`~sbikit.flows.MAF` (``randperm``,
            ``hidden_features``, ...).

    Example:
        >>> flow = SOSPF(3, context=4, degree=2, polynomials=2, hidden_features=(16,))
        >>> q = flow(torch.randn(5, 4))
        >>> x = q.sample((10,))
        >>> x.shape, q.log_prob(x).shape
        (torch.Size([10, 5, 3]), torch.Size([10, 5]))
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        degree: int = 4,
        polynomials: int = 3,
        transforms: int = 3,
        **kwargs: Any,
    ):
        owner = type(self).__name__
        check_count(degree, "degree", owner, 0)
        check_count(polynomials, "polynomials", owner, 1)
        super().__init__(
            features,
            context,
            transforms=transforms,
            univariate=scaled_sos_polynomial,
            shapes=((polynomials, degree + 1), ()),
            **kwargs,
        )
        layers = self.transform.transforms
        for i in reversed(range(1, len(layers))):
            layers.insert(i, UnconditionalTransform(SoftclipTransform, bound=BOUND))


class BPF(MAF):
    r"""A Bernstein polynomial flow: a MAF whose univariate transforms are bounded
    Bernstein polynomials, over a standard normal base.

    Feature :math:`x_i` is transformed by a
    :class:`~sbikit.transforms.polynomial.BoundedBernsteinTransform` of degree :math:`M`
    whose :math:`M - 2` parameters a masked hyper-network predicts from the preceding
    features and the context: an increasing polynomial that maps :math:`[-B, B]` onto
    itself, with :math:`B = 5`, and joins the identity outside with a continuous
    derivative. A zero output of the hyper-network is the identity.

    Warning:
        Features outside :math:`[-5, 5]` are not transformed: standardize them (zero mean,
        unit variance) before training.

    References:
        | Robust normalizing flows using Bernstein-type polynomials (Ramasinghe et al., 2021)
        | https://arxiv.org/abs/2102.03509

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        degree: The degree :math:`M \ge 4` of the polynomials.
        transforms: The number of autoregressive transforms.
        kwargs: Keyword arguments of :class:`~sbikit.flows.MAF` (``randperm``,
            ``hidden_features``, ...).

    Example:
        >>> flow = BPF(2, degree=8, hidden_features=(16,))
        >>> x = flow().sample((10,))
        >>> flow().log_prob(x).shape
        torch.Size([10])
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        degree: int = 16,
        transforms: int = 3,
        **kwargs: Any,
    ):
        check_count(degree, "degree", type(self).__name__, 4)
        super().__init__(
            features,
            context,
            transforms=transforms,
            univariate=BoundedBernsteinTransform,
            shapes=((degree - 2,),),
            **kwargs,
        )
