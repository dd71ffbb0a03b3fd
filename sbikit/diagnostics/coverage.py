r"""Expected coverage of credible regions: highest-posterior-density (HPD) regions of the
joint posterior and central intervals of each parameter, at every credibility level.

The smallest HPD region of :math:`q(\theta \mid x)` that holds :math:`\theta^*` has the
credibility :math:`s = Q(q(\theta \mid x) > q(\theta^* \mid x))`, estimated by the rank of
:math:`q(\theta^* \mid x)` among the densities of :math:`L` draws. The expected coverage at
credibility :math:`\alpha`, :math:`P(s < \alpha)`, equals :math:`\alpha` for a calibrated
posterior; below it the regions are too small (overconfident), above it too large
(conservative). The central interval of credibility :math:`\alpha` of parameter
:math:`d` holds :math:`\theta^*_d` when :math:`|2 u_d - 1| < \alpha`, with :math:`u_d`
the (randomised) rank of :math:`\theta^*_d` among the draws, over :math:`L + 1`.

References:
    | Truncated Proposals for Scalable and Hassle-Free Simulation-Based Inference
      (Deistler et al., 2022)
    | https://arxiv.org/abs/2210.04815

    | A Trust Crisis in Simulation-Based Inference? Your Posterior Approximations Can Be
      Unfaithful (Hermans et al., 2022)
    | https://arxiv.org/abs/2110.06581
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from .._validation import check_count
from .bands import ECDFTest, binomial_interval, credibility_levels, ecdf_test
from .sbc import Result, check_draws, check_labels, count_below, randomized, rank

__all__ = ["CoverageResult", "expected_coverage"]

NOMINAL = (0.5, 0.68, 0.9, 0.95)
r"""The credibility levels at which coverage is also reported as numbers."""


@dataclass
class CoverageResult(Result):
    r"""The result of :func:`expected_coverage`. Arrays are NumPy arrays; :math:`K`
    credibility levels, :math:`D` parameters.

    Attributes:
        labels: The names of the parameters, :math:`D`.
        levels: The credibility levels :math:`\alpha_k`, :math:`(K,)`.
        hpd: The HPD coverage curve with its simultaneous 95 % band and its test
            (:class:`~sbikit.diagnostics.bands.ECDFTest`; ``hpd.ecdf`` is the coverage), or
            ``None`` without log-densities.
        hpd_interval: The pointwise 95 % Clopper–Pearson interval of the HPD coverage,
            :math:`(2, K)`.
        hpd_calibration_error: The mean of :math:`|\text{coverage} - \alpha|` over the levels.
        central: The central-interval coverage curve of each parameter, :math:`D` tests.
        central_interval: Their pointwise 95 % intervals, :math:`(D, 2, K)`.
        calibration_error: The mean :math:`|\text{coverage} - \alpha|` of each parameter's
            central intervals, :math:`(D,)`; ``max_calibration_error`` its maximum.
        nominal: The levels of :data:`NOMINAL`; ``hpd_nominal`` :math:`(4,)` and
            ``central_nominal`` :math:`(D, 4)` the coverage there.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> samples, theta = torch.randn(200, 300, 2, generator=g), torch.randn(300, 2, generator=g)
        >>> result = expected_coverage(samples, 0.5 * theta)  # too wide: over-covers
        >>> result.central_nominal[:, 2] > 0.95  # coverage of the 90 % central intervals
        array([ True,  True])
    """

    labels: list[str]
    levels: np.ndarray
    hpd: ECDFTest | None
    hpd_interval: np.ndarray | None
    hpd_calibration_error: float | None
    central: list[ECDFTest]
    central_interval: np.ndarray
    calibration_error: np.ndarray
    max_calibration_error: np.ndarray
    nominal: tuple[float, ...]
    hpd_nominal: np.ndarray | None
    central_nominal: np.ndarray


def expected_coverage(
    samples: Tensor,
    theta: Tensor,
    log_prob: Tensor | None = None,
    log_prob_theta: Tensor | None = None,
    *,
    labels: Sequence[str] | None = None,
    seed: int = 0,
) -> CoverageResult:
    r"""Computes the expected coverage of HPD regions and of central intervals for all
    credibility levels, with binomial intervals and simultaneous bands.

    Arguments:
        samples: The draws :math:`\theta_l \sim q(\theta \mid x_i)`, :math:`(L, N, D)`.
        theta: The true parameters :math:`\theta^*_i`, :math:`(N, D)`.
        log_prob: The log-densities of the draws, :math:`(L, N)` (for HPD regions).
        log_prob_theta: The log-densities of the true parameters, :math:`(N,)`.
        labels: The names of the parameters (default ``theta_1``, ...).
        seed: The seed of the tie-breaking and of the randomised ranks.

    Returns:
        The coverage curves and their tests (see :class:`CoverageResult`).

    Example:
        >>> from sbikit.diagnostics import draw
        >>> from sbikit.distributions import DiagNormal
        >>> g = torch.Generator().manual_seed(0)
        >>> theta = torch.randn(300, 2, generator=g)
        >>> x = theta + torch.randn(300, 2, generator=g)
        >>> narrow = lambda x: DiagNormal(x / 2, torch.full_like(x, 0.3))  # exact: 0.71
        >>> d = draw(narrow, theta, x, 100, progress=False)
        >>> result = expected_coverage(d.samples, d.theta, d.log_prob, d.log_prob_theta)
        >>> bool(result.hpd_nominal[2] < 0.8)  # the 90 % HPD regions hold theta far less often
        True
    """

    samples, theta, log_prob, log_prob_theta = check_draws(
        samples, theta, log_prob, log_prob_theta, "expected_coverage"
    )
    check_count(seed, "seed", "expected_coverage", minimum=0)
    num_samples, num_pairs, dim = samples.shape
    labels = check_labels(labels, dim, "expected_coverage")
    levels = credibility_levels(num_samples, num_pairs)
    rng = np.random.default_rng(seed)

    hpd = hpd_interval = hpd_error = hpd_nominal = None
    if log_prob is not None:
        ranks = rank(-log_prob, -log_prob_theta, rng)  # draws denser than the truth
        counts = count_below(ranks, num_samples, levels)
        hpd = ecdf_test(counts, num_pairs, levels, "region", "HPD regions")
        hpd_interval = np.stack(binomial_interval(counts, num_pairs))
        hpd_error = float(np.abs(hpd.ecdf - levels).mean())
        hpd_nominal = np.array([(ranks < a * (num_samples + 1)).mean() for a in NOMINAL])

    # |2u - 1| < alpha: the truth is inside the central interval of credibility alpha
    distance = np.abs(2 * randomized(rank(samples, theta, rng), num_samples, rng) - 1)
    counts = np.stack([np.searchsorted(np.sort(v), levels) for v in distance.T])
    central = [
        ecdf_test(c, num_pairs, levels, "region", f"central intervals of {name}")
        for c, name in zip(counts, labels, strict=True)
    ]
    errors = np.abs(counts / num_pairs - levels)
    return CoverageResult(
        labels=labels,
        levels=levels,
        hpd=hpd,
        hpd_interval=hpd_interval,
        hpd_calibration_error=hpd_error,
        central=central,
        central_interval=np.stack([np.stack(binomial_interval(c, num_pairs)) for c in counts]),
        calibration_error=errors.mean(axis=1),
        max_calibration_error=errors.max(axis=1),
        nominal=NOMINAL,
        hpd_nominal=hpd_nominal,
        central_nominal=np.array([[(v < a).mean() for a in NOMINAL] for v in distance.T]),
    )
