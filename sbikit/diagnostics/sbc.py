r"""Simulation-based calibration (SBC): the ranks of the true parameters among posterior
draws, their histograms and their tests of uniformity.

For a test pair :math:`(\theta^*, x)` drawn from the prior and the simulator and :math:`L`
draws :math:`\theta_l \sim q(\theta \mid x)`, the rank of a test quantity :math:`f`

.. math:: r = \#\{l : f(\theta_l) < f(\theta^*)\} \in \{0, \dots, L\}

is uniform when :math:`q(\theta \mid x) = p(\theta \mid x)`. The test quantities are each
parameter :math:`\theta_d` and the joint quantity :math:`-\log q(\theta \mid x)`.

References:
    | Validating Bayesian Inference Algorithms with Simulation-Based Calibration (Talts et
      al., 2018)
    | https://arxiv.org/abs/1804.06788

    | Graphical Test for Discrete Uniformity and its Applications in Goodness of Fit
      Evaluation and Multiple Sample Comparison (Säilynoja, Bürkner and Vehtari, 2022)
    | https://arxiv.org/abs/2103.10522
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._validation import check_count, check_tensor, describe
from .bands import ECDFTest, credibility_levels, ecdf_test, holm

__all__ = ["SBCResult", "sbc"]

MAX_BINS = 20
r"""The maximum number of bins of the rank histograms."""


class Result:
    r"""A result of a diagnostic: a dataclass of arrays and tests, with :meth:`to_dict`."""

    def to_dict(self) -> dict:
        r"""Returns the result as JSON-serialisable values."""

        return as_dict(self)


@dataclass
class SBCResult(Result):
    r"""The result of :func:`sbc`. Arrays are NumPy arrays; :math:`N` test pairs, :math:`D`
    parameters, :math:`L` draws, :math:`B` bins.

    Attributes:
        labels: The names of the parameters, :math:`D`.
        num_samples: The number of draws :math:`L`.
        ranks: The ranks of each parameter, in :math:`\{0, \dots, L\}`, :math:`(N, D)`.
        joint_ranks: The ranks of :math:`-\log q`, :math:`(N,)`, or ``None``.
        histogram: The rank histograms, :math:`(D, B)`; ``joint_histogram``, :math:`(B,)`.
        expected: The expected count of each bin under uniformity, :math:`(B,)`.
        chi2_pvalue, ks_pvalue: The p-values of the :math:`\chi^2` test of the histogram
            and of the Kolmogorov–Smirnov test of the randomised ranks
            :math:`(r + U) / (L + 1)`, :math:`(D,)`; ``chi2_holm``, ``ks_holm``: Holm-
            corrected over the parameters; ``joint_chi2_pvalue``, ``joint_ks_pvalue``:
            those of the joint quantity.
        ecdf: The ECDF test of each parameter's ranks (:class:`~sbikit.diagnostics.bands.
            ECDFTest`), and ``joint_ecdf`` that of the joint ranks.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> samples, theta = torch.randn(100, 200, 2, generator=g), torch.randn(200, 2, generator=g)
        >>> result = sbc(samples, theta)  # the truth is drawn like the samples: calibrated
        >>> result.ranks.shape, result.histogram.shape
        ((200, 2), (2, 20))
        >>> bool((result.chi2_holm > 0.01).all())
        True
    """

    labels: list[str]
    num_samples: int
    ranks: np.ndarray
    joint_ranks: np.ndarray | None
    histogram: np.ndarray
    joint_histogram: np.ndarray | None
    expected: np.ndarray
    chi2_pvalue: np.ndarray
    ks_pvalue: np.ndarray
    chi2_holm: np.ndarray
    ks_holm: np.ndarray
    joint_chi2_pvalue: float | None
    joint_ks_pvalue: float | None
    ecdf: list[ECDFTest]
    joint_ecdf: ECDFTest | None

    @property
    def log_gamma(self) -> np.ndarray:
        r"""The :math:`\log \gamma` summary of each parameter's ranks (negative: the ECDF
        leaves its simultaneous 95 % band), :math:`(D,)`."""

        return np.array([test.log_gamma for test in self.ecdf])


def sbc(
    samples: Tensor,
    theta: Tensor,
    log_prob: Tensor | None = None,
    log_prob_theta: Tensor | None = None,
    *,
    labels: Sequence[str] | None = None,
    seed: int = 0,
) -> SBCResult:
    r"""Runs simulation-based calibration on posterior draws for test pairs.

    Ties between a draw and the truth are broken at random, and the Kolmogorov–Smirnov test
    uses the randomised ranks :math:`(r + U) / (L + 1)`, :math:`U \sim \mathcal{U}(0, 1)`,
    which are exactly uniform under calibration; both use ``seed``. The histograms have
    :math:`\min(20, L + 1, N / 5)` bins, so that each expects at least 5 ranks.

    Arguments:
        samples: The draws :math:`\theta_l \sim q(\theta \mid x_i)`, :math:`(L, N, D)`.
        theta: The true parameters :math:`\theta^*_i`, :math:`(N, D)`.
        log_prob: The log-densities of the draws, :math:`(L, N)`, for the joint quantity.
        log_prob_theta: The log-densities of the true parameters, :math:`(N,)`.
        labels: The names of the parameters (default ``theta_1``, ...).
        seed: The seed of the tie-breaking and of the randomised ranks.

    Returns:
        The ranks, histograms and tests (see :class:`SBCResult`).

    Example:
        >>> from sbikit.diagnostics import draw
        >>> from sbikit.distributions import DiagNormal
        >>> g = torch.Generator().manual_seed(0)
        >>> theta = torch.randn(300, 2, generator=g)  # prior N(0, 1), x ~ N(theta, 1)
        >>> x = theta + torch.randn(300, 2, generator=g)
        >>> posterior = lambda x: DiagNormal(x / 2, torch.full_like(x, 0.5**0.5))
        >>> d = draw(posterior, theta, x, 100, progress=False)
        >>> result = sbc(d.samples, d.theta, d.log_prob, d.log_prob_theta)
        >>> bool((result.log_gamma > 0).all())  # both ECDFs inside their 95 % bands
        True
    """

    samples, theta, log_prob, log_prob_theta = check_draws(
        samples, theta, log_prob, log_prob_theta, "sbc"
    )
    check_count(seed, "seed", "sbc", minimum=0)
    num_samples, num_pairs, dim = samples.shape
    labels = check_labels(labels, dim, "sbc")
    rng = np.random.default_rng(seed)
    ranks = rank(samples, theta, rng)
    joint = None if log_prob is None else rank(-log_prob, -log_prob_theta, rng)
    bins = min(MAX_BINS, num_samples + 1, max(1, num_pairs // 5))
    expected = np.bincount(np.arange(num_samples + 1) * bins // (num_samples + 1), minlength=bins)
    expected = expected / (num_samples + 1) * num_pairs
    columns = ranks if joint is None else np.column_stack((ranks, joint))
    histogram = np.stack([histogram_of(c, num_samples, bins) for c in columns.T])
    chi2, ks = uniformity_pvalues(columns, histogram, expected, num_samples, rng)
    levels = credibility_levels(num_samples, num_pairs)
    tests = [
        ecdf_test(count_below(c, num_samples, levels), num_pairs, levels, "one-sided", name)
        for c, name in zip(columns.T, [*labels, "-log q"], strict=False)
        for name in [f"ranks of {name}"]
    ]
    return SBCResult(
        labels=labels,
        num_samples=num_samples,
        ranks=ranks,
        joint_ranks=joint,
        histogram=histogram[:dim],
        joint_histogram=None if joint is None else histogram[dim],
        expected=expected,
        chi2_pvalue=chi2[:dim],
        ks_pvalue=ks[:dim],
        chi2_holm=holm(chi2[:dim]),
        ks_holm=holm(ks[:dim]),
        joint_chi2_pvalue=None if joint is None else float(chi2[dim]),
        joint_ks_pvalue=None if joint is None else float(ks[dim]),
        ecdf=tests[:dim],
        joint_ecdf=None if joint is None else tests[dim],
    )


def rank(draws: Tensor, truth: Tensor, rng: np.random.Generator) -> np.ndarray:
    r"""Returns the number of ``draws`` :math:`(L, N, *)` below ``truth`` :math:`(N, *)`,
    ties broken at random, :math:`(N, *)`."""

    below = (draws < truth).sum(dim=0).numpy()
    ties = (draws == truth).sum(dim=0).numpy()
    if not ties.any():
        return below
    return below + np.floor(rng.random(below.shape) * (ties + 1)).astype(below.dtype)


def randomized(ranks: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    r"""Returns :math:`(r + U) / (L + 1)`, uniform on :math:`[0, 1]` under calibration."""

    return (ranks + rng.random(ranks.shape)) / (num_samples + 1)


def count_below(ranks: np.ndarray, num_samples: int, levels: np.ndarray) -> np.ndarray:
    r"""Returns the number of ranks :math:`r < z (L + 1)` at each level :math:`z`."""

    thresholds = np.round(levels * (num_samples + 1))
    return np.searchsorted(np.sort(ranks), thresholds, side="left")


def histogram_of(ranks: np.ndarray, num_samples: int, bins: int) -> np.ndarray:
    r"""Returns the counts of ranks in ``bins`` bins of :math:`\{0, \dots, L\}`."""

    return np.bincount(ranks * bins // (num_samples + 1), minlength=bins)


def uniformity_pvalues(
    ranks: np.ndarray,
    histogram: np.ndarray,
    expected: np.ndarray,
    num_samples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Returns the :math:`\chi^2` and Kolmogorov–Smirnov p-values of each column of ranks
    (the :math:`\chi^2` ones NaN with fewer than 2 bins)."""

    from scipy.stats import chisquare, kstest

    if histogram.shape[1] < 2:
        chi2 = np.full(len(histogram), np.nan)
    else:
        chi2 = chisquare(histogram.T, expected[:, None], axis=0).pvalue
    ks = kstest(randomized(ranks, num_samples, rng), "uniform", axis=0).pvalue
    return np.atleast_1d(chi2).astype(float), np.atleast_1d(ks).astype(float)


def check_draws(
    samples: object,
    theta: object,
    log_prob: object,
    log_prob_theta: object,
    owner: str,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    r"""Returns the draws :math:`(L, N, D)`, the truths :math:`(N, D)` and the optional
    log-densities :math:`(L, N)`, :math:`(N,)` as CPU tensors, or raises."""

    samples = check_tensor(samples, f"{owner}'s samples").detach().cpu()
    theta = check_tensor(theta, f"{owner}'s theta").detach().cpu()
    if samples.dim() != 3 or theta.shape != samples.shape[1:]:
        raise ValueError(
            f"{owner} expects samples of shape (L, N, D) (L draws for each of N test pairs) "
            f"and theta of shape (N, D), but received samples as {describe(samples)} and "
            f"theta as {describe(theta)}. Draw them with posterior(x).sample((L,))."
        )
    if not (torch.isfinite(samples).all() and torch.isfinite(theta).all()):
        raise ValueError(
            f"{owner} expects finite samples and theta, but received NaN or infinite values. "
            "Drop those test pairs first (sbikit.diagnostics.draw does)."
        )
    if (log_prob is None) != (log_prob_theta is None):
        raise ValueError(
            f"{owner} expects both log_prob (L, N) and log_prob_theta (N,), or neither, but "
            "received only one of them."
        )
    if log_prob is None:
        return samples, theta, None, None
    log_prob = check_tensor(log_prob, f"{owner}'s log_prob").detach().cpu()
    log_prob_theta = check_tensor(log_prob_theta, f"{owner}'s log_prob_theta").detach().cpu()
    if log_prob.shape != samples.shape[:2] or log_prob_theta.shape != samples.shape[1:2]:
        raise ValueError(
            f"{owner} expects log_prob of shape {tuple(samples.shape[:2])} and log_prob_theta "
            f"of shape {tuple(samples.shape[1:2])} for samples of shape "
            f"{tuple(samples.shape)}, but received {describe(log_prob)} and "
            f"{describe(log_prob_theta)}."
        )
    if torch.isnan(log_prob).any() or torch.isnan(log_prob_theta).any():
        raise ValueError(f"{owner} expects log-densities without NaN, but received NaN.")
    return samples, theta, log_prob, log_prob_theta


def check_labels(labels: Sequence[str] | None, dim: int, owner: str) -> list[str]:
    r"""Returns ``dim`` parameter names: ``labels`` or ``theta_1``, ``theta_2``, ..."""

    if labels is None:
        return [f"theta_{i + 1}" for i in range(dim)]
    labels = [str(label) for label in labels]
    if len(labels) != dim:
        raise ValueError(
            f"{owner} expects one label per parameter ({dim}), but received {len(labels)}: "
            f"{labels}."
        )
    return labels


def as_dict(result: object) -> dict:
    r"""Returns the fields of a result dataclass as JSON-serialisable values."""

    def plain(value: object) -> object:
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, ECDFTest):
            return value.to_dict()
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return {k: plain(v) for k, v in vars(result).items()}
