r"""Probability distributions, all following the shape contract of
:mod:`torch.distributions`.

For a distribution with batch shape :math:`B` and event shape :math:`E`,
``sample(S)`` has shape :math:`S + B + E` and ``log_prob(x)`` has shape
:math:`S + B` for ``x`` of shape :math:`S + B + E`. Values outside the support have
log-density :math:`-\infty`.
"""

from .base import DistributionMixin, Independent
from .composite import Joint, Mixture, Truncated
from .convergence import MCMCDiagnostics, effective_sample_size, split_rhat
from .flow import NormalizingFlow
from .gaussian import GaussianDistribution
from .mcmc import MCMCDistribution
from .order import Maximum, Minimum, Sort, TopK
from .simple import BoxUniform, DiagNormal, GeneralizedNormal

__all__ = [
    "BoxUniform",
    "DiagNormal",
    "DistributionMixin",
    "GaussianDistribution",
    "GeneralizedNormal",
    "Independent",
    "Joint",
    "MCMCDiagnostics",
    "MCMCDistribution",
    "Maximum",
    "Minimum",
    "Mixture",
    "NormalizingFlow",
    "Sort",
    "TopK",
    "Truncated",
    "effective_sample_size",
    "split_rhat",
]
