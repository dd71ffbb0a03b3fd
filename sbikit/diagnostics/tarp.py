r"""Tests of accuracy with random points (TARP): expected coverage of balls around random
reference points.

For each test pair, a reference point :math:`\theta_r` is drawn independently of
:math:`\theta^*` and the credibility

.. math:: f = \frac{1}{L} \#\{l : \|\theta_l - \theta_r\| < \|\theta^* - \theta_r\|\}

is the mass of the smallest ball around :math:`\theta_r` that holds :math:`\theta^*`. The
expected coverage probability :math:`\text{ECP}(\alpha) = P(f < \alpha)` equals
:math:`\alpha` at every level when the posterior is calibrated (necessary and sufficient
over all reference distributions), and the area to the curve

.. math:: \text{ATC} = \int_{1/2}^1 (\text{ECP}(\alpha) - \alpha) \, d\alpha

is positive for too wide posteriors, negative for too narrow or biased ones. Distances are
measured after scaling each parameter to the range of the test :math:`\theta^*`, and the
reference points are uniform in that box, as in the paper's code.

References:
    | Sampling-Based Accuracy Testing of Posterior Estimators for General Inference
      (Lemos et al., 2023)
    | https://arxiv.org/abs/2302.03026
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._validation import check_count, check_tensor, describe
from .bands import ECDFTest, credibility_levels, ecdf_test
from .sbc import Result, check_draws, count_below, rank

__all__ = ["TARPResult", "tarp"]


@dataclass
class TARPResult(Result):
    r"""The result of :func:`tarp` (NumPy arrays).

    Attributes:
        levels: The credibility levels :math:`\alpha_k`, :math:`(K,)`.
        ecp: The expected coverage probability at each level, :math:`(K,)`.
        atc: The area to the curve (0 when calibrated; > 0: too wide; < 0: too narrow).
        test: The ECP curve with its simultaneous 95 % band and its test.
        credibility: The credibility :math:`f` of each test pair, :math:`(N,)`.
        references: The reference points :math:`\theta_r`, :math:`(N, D)`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> samples, theta = torch.randn(200, 300, 2, generator=g), torch.randn(300, 2, generator=g)
        >>> result = tarp(samples, theta)  # the truth is drawn like the samples: calibrated
        >>> result.test.inside, abs(result.atc) < 0.05
        (True, True)
    """

    levels: np.ndarray
    ecp: np.ndarray
    atc: float
    test: ECDFTest
    credibility: np.ndarray
    references: np.ndarray


def tarp(
    samples: Tensor, theta: Tensor, references: Tensor | None = None, *, seed: int = 0
) -> TARPResult:
    r"""Runs TARP on posterior draws for test pairs.

    Arguments:
        samples: The draws :math:`\theta_l \sim q(\theta \mid x_i)`, :math:`(L, N, D)`.
        theta: The true parameters :math:`\theta^*_i`, :math:`(N, D)`.
        references: The reference points :math:`(N, D)`, which must not depend on
            :math:`\theta^*` (default: uniform in the box spanned by ``theta``).
        seed: The seed of the reference points and of the tie-breaking.

    Returns:
        The ECP curve, the ATC and the test (see :class:`TARPResult`).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> mean = torch.randn(300, 2, generator=g)
        >>> theta = mean + torch.randn(300, 2, generator=g)  # the posteriors are N(mean, 1)
        >>> noise = torch.randn(100, 300, 2, generator=g)
        >>> tarp(mean + 0.5 * noise, theta).atc < 0  # too narrow
        True
        >>> tarp(mean + 2.0 * noise, theta).atc > 0  # too wide
        True
    """

    samples, theta, _, _ = check_draws(samples, theta, None, None, "tarp")
    check_count(seed, "seed", "tarp", minimum=0)
    num_samples, num_pairs, dim = samples.shape
    rng = np.random.default_rng(seed)
    low = theta.min(dim=0).values
    scale = (theta.max(dim=0).values - low).clamp(min=torch.finfo(theta.dtype).tiny)
    if references is None:
        unit = torch.from_numpy(rng.random((num_pairs, dim))).to(theta.dtype)
    else:
        references = check_tensor(references, "tarp's references").detach().cpu()
        if references.shape != theta.shape or not torch.isfinite(references).all():
            raise ValueError(
                f"tarp expects finite references of shape {tuple(theta.shape)}, one per test "
                f"pair, but received {describe(references)}."
            )
        unit = (references.to(theta.dtype) - low) / scale
    distance = torch.linalg.vector_norm((samples - low) / scale - unit, dim=-1)
    truth = torch.linalg.vector_norm((theta - low) / scale - unit, dim=-1)
    ranks = rank(distance, truth, rng)
    levels = credibility_levels(num_samples, num_pairs)
    test = ecdf_test(
        count_below(ranks, num_samples, levels), num_pairs, levels, "one-sided", "TARP"
    )
    credibility = ranks / num_samples
    return TARPResult(
        levels=levels,
        ecp=test.ecdf,
        atc=float(np.mean(1 - np.maximum(credibility, 0.5)) - 0.375),
        test=test,
        credibility=credibility,
        references=(unit * scale + low).numpy(),
    )
