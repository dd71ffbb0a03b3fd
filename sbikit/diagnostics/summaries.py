r"""Posterior z-scores, contraction and recovery of each parameter.

For test pair :math:`i` with posterior mean :math:`\mu_i` and standard deviation
:math:`\sigma_i` (estimated from the draws),

.. math:: z_i = \frac{\mu_i - \theta^*_i}{\sigma_i}, \qquad
    c_i = 1 - \frac{\sigma_i^2}{\sigma_{\text{prior}}^2}.

A calibrated posterior has :math:`E[z] = 0` (a mean z-score far from 0 is a bias); the
contraction :math:`c` says how much the data teach beyond the prior (0: nothing, 1: the
parameter is pinned down). Recovery compares the posterior means with the truths.

References:
    | Toward a Principled Bayesian Workflow in Cognitive Science (Schad, Betancourt and
      Vasishth, 2021)
    | https://arxiv.org/abs/1904.12765
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._validation import check_tensor, describe
from .bands import holm
from .sbc import Result, check_draws, check_labels

__all__ = ["ZScoreResult", "z_score_contraction"]


@dataclass
class ZScoreResult(Result):
    r"""The result of :func:`z_score_contraction` (NumPy arrays; :math:`N` test pairs,
    :math:`D` parameters).

    Attributes:
        labels: The names of the parameters, :math:`D`.
        posterior_mean, posterior_std: The moments of each posterior, :math:`(N, D)`.
        z_score, contraction: Those of each test pair, :math:`(N, D)`.
        prior_variance: The prior variance of each parameter, :math:`(D,)`.
        mean_z, std_z: The mean and standard deviation of the z-scores, :math:`(D,)`.
        bias_pvalue: The p-value of :math:`E[z] = 0` (two-sided, normal approximation),
            :math:`(D,)`; ``bias_holm``: Holm-corrected over the parameters.
        mean_contraction: The mean contraction, :math:`(D,)`.
        rmse: The root mean squared error of the posterior means, :math:`(D,)`.
        r2: The coefficient of determination of the truths by the means, :math:`(D,)`.
        correlation: The correlation of the means with the truths, :math:`(D,)`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> theta = torch.randn(500, 1, generator=g)
        >>> samples = theta + 0.5 + 0.1 * torch.randn(200, 500, 1, generator=g)  # biased
        >>> result = z_score_contraction(samples, theta, prior_variance=torch.ones(1))
        >>> round(float(result.mean_z[0])), round(float(result.mean_contraction[0]), 2)
        (5, 0.99)
    """

    labels: list[str]
    posterior_mean: np.ndarray
    posterior_std: np.ndarray
    z_score: np.ndarray
    contraction: np.ndarray
    prior_variance: np.ndarray
    mean_z: np.ndarray
    std_z: np.ndarray
    bias_pvalue: np.ndarray
    bias_holm: np.ndarray
    mean_contraction: np.ndarray
    rmse: np.ndarray
    r2: np.ndarray
    correlation: np.ndarray


def z_score_contraction(
    samples: Tensor,
    theta: Tensor,
    prior_variance: Tensor | None = None,
    *,
    labels: Sequence[str] | None = None,
) -> ZScoreResult:
    r"""Computes the posterior z-score and contraction of each parameter and test pair,
    and the recovery of the truths by the posterior means.

    Arguments:
        samples: The draws :math:`\theta_l \sim q(\theta \mid x_i)`, :math:`(L, N, D)`.
        theta: The true parameters :math:`\theta^*_i`, :math:`(N, D)`, drawn from the prior.
        prior_variance: The prior variance of each parameter, :math:`(D,)` (default: the
            variance of ``theta``, an unbiased estimate since it is drawn from the prior).
        labels: The names of the parameters (default ``theta_1``, ...).

    Returns:
        The z-scores, contractions and their summaries (see :class:`ZScoreResult`).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> theta = torch.randn(500, 2, generator=g)  # prior N(0, 1), posterior N(x/2, 1/2)
        >>> x = theta + torch.randn(500, 2, generator=g)
        >>> samples = x / 2 + 0.5**0.5 * torch.randn(100, 500, 2, generator=g)
        >>> result = z_score_contraction(samples, theta, torch.ones(2))
        >>> result.mean_contraction.round(1), bool((abs(result.mean_z) < 0.2).all())
        (array([0.5, 0.5]), True)
    """

    samples, theta, _, _ = check_draws(samples, theta, None, None, "z_score_contraction")
    num_samples, num_pairs, dim = samples.shape
    labels = check_labels(labels, dim, "z_score_contraction")
    if num_samples < 2:
        raise ValueError(
            "z_score_contraction expects at least 2 draws per test pair for a standard "
            f"deviation, but received samples of shape {tuple(samples.shape)}."
        )
    if prior_variance is None:
        prior_variance = theta.double().var(dim=0)
    prior_variance = check_tensor(prior_variance, "z_score_contraction's prior_variance")
    prior_variance = prior_variance.detach().cpu().double().reshape(-1)
    if prior_variance.shape != (dim,) or not (prior_variance > 0).all():
        raise ValueError(
            f"z_score_contraction expects a positive prior variance of shape ({dim},), but "
            f"received {describe(prior_variance)} with values {prior_variance.tolist()}."
        )
    samples, theta = samples.double(), theta.double()
    mean, std = samples.mean(dim=0), samples.std(dim=0).clamp(min=torch.finfo(torch.double).tiny)
    z = ((mean - theta) / std).numpy()
    contraction = (1 - std**2 / prior_variance).numpy()
    std_z = z.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.abs(z.mean(axis=0)) / (std_z / math.sqrt(num_pairs))
    bias_pvalue = np.array([math.erfc(s / math.sqrt(2)) for s in statistic])
    mean, theta = mean.numpy(), theta.numpy()
    errors = ((mean - theta) ** 2).mean(axis=0)
    return ZScoreResult(
        labels=labels,
        posterior_mean=mean,
        posterior_std=std.numpy(),
        z_score=z,
        contraction=contraction,
        prior_variance=prior_variance.numpy(),
        mean_z=z.mean(axis=0),
        std_z=std_z,
        bias_pvalue=bias_pvalue,
        bias_holm=holm(bias_pvalue),
        mean_contraction=contraction.mean(axis=0),
        rmse=np.sqrt(errors),
        r2=1 - errors / theta.var(axis=0),
        correlation=np.array([correlation(mean[:, d], theta[:, d]) for d in range(dim)]),
    )


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    r"""Returns Pearson's correlation of ``a`` and ``b`` (NaN when one is constant)."""

    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt((a**2).sum() * (b**2).sum())
    return float((a * b).sum() / norm) if norm > 0 else math.nan
