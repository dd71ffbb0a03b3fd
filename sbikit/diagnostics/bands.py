r"""Simultaneous confidence bands of empirical CDFs, binomial intervals and the Holm
correction: the statistics behind every calibration curve of :mod:`sbikit.diagnostics`.

A calibration curve is the empirical CDF :math:`\hat{F}` of :math:`N` values that are
uniform on :math:`[0, 1]` when the posterior is calibrated (ranks, credibility levels),
evaluated at levels :math:`z_1 < \dots < z_K`. Then :math:`N \hat{F}(z_i)` is binomial
:math:`\mathcal{B}(N, z_i)` at every level, and the band of level :math:`1 - \alpha` holds
the whole curve with probability :math:`1 - \alpha`: its pointwise level :math:`\gamma` is
calibrated by simulating uniform samples. The statistic of a curve is

.. math:: \gamma = 2 \min_i \min \left( P(X_i \leq N \hat{F}(z_i)),
    P(X_i \geq N \hat{F}(z_i)) \right), \quad X_i \sim \mathcal{B}(N, z_i),

small when the curve leaves the band; its p-value is the fraction of simulated uniform
samples with a smaller :math:`\gamma`, and :math:`\log \gamma - \log \gamma_{0.05}` is
negative exactly when the curve leaves its 95 % band.

References:
    | Graphical Test for Discrete Uniformity and its Applications in Goodness of Fit
      Evaluation and Multiple Sample Comparison (Säilynoja, Bürkner and Vehtari, 2022)
    | https://arxiv.org/abs/2103.10522

    | A Simple Sequentially Rejective Multiple Test Procedure (Holm, 1979)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ECDFTest",
    "binomial_interval",
    "credibility_levels",
    "ecdf_test",
    "holm",
    "simultaneous_band",
]

SIMULATIONS = 10_000
r"""The number of uniform samples that calibrate the bands and p-values (the smallest
p-value is :math:`1 / 10001`)."""


def credibility_levels(num_samples: int, num_pairs: int, points: int = 99) -> np.ndarray:
    r"""Returns the levels :math:`z_j = j / (L + 1)` at which calibration curves are
    evaluated: at most ``points`` (and at most ``num_pairs``) values of :math:`j` evenly
    spread over :math:`1, \dots, L`.

    At these levels the empirical CDF of ranks :math:`r \in \{0, \dots, L\}` among
    :math:`L` draws is exactly binomial under calibration: :math:`P(r < j) = z_j`.

    Arguments:
        num_samples: The number of posterior draws :math:`L` per test pair.
        num_pairs: The number of test pairs :math:`N`.
        points: The maximum number of levels.

    Returns:
        The increasing levels, in :math:`(0, 1)`.

    Example:
        >>> credibility_levels(9, 100, points=3)
        array([0.2, 0.5, 0.8])
    """

    count = max(1, min(points, num_samples, num_pairs))
    j = np.round(np.arange(1, count + 1) * (num_samples + 1) / (count + 1)).astype(int)
    j = np.unique(np.clip(j, 1, num_samples))
    return j / (num_samples + 1)


@functools.lru_cache(maxsize=8)
def tail_tables(n: int, levels: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    r"""Returns :math:`P(X_i \leq c)` and :math:`P(X_i \geq c)` for
    :math:`X_i \sim \mathcal{B}(n, z_i)` and :math:`c = 0, \dots, n`, each :math:`(K, n + 1)`."""

    from scipy.stats import binom

    c = np.arange(n + 1)
    z = np.asarray(levels)[:, None]
    return binom.cdf(c, n, z), binom.sf(c - 1, n, z)


def pointwise_gamma(counts: np.ndarray, n: int, levels: np.ndarray) -> tuple[np.ndarray, ...]:
    r"""Returns twice the lower and upper binomial tail probabilities of ``counts``
    :math:`(*, K)` at ``levels``, each :math:`(*, K)` and at most 1."""

    below, above = tail_tables(n, tuple(levels.tolist()))
    k = np.arange(len(levels))
    return np.minimum(2 * below[k, counts], 1.0), np.minimum(2 * above[k, counts], 1.0)


@functools.lru_cache(maxsize=8)
def null_gammas(n: int, levels: tuple[float, ...], seed: int = 0) -> np.ndarray:
    r"""Returns the sorted statistics :math:`\gamma` of :data:`SIMULATIONS` uniform samples
    of size ``n``: the null distribution of :func:`ecdf_test`."""

    z = np.asarray(levels)
    cells = np.diff(np.concatenate(([0.0], z, [1.0])))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, cells / cells.sum(), size=SIMULATIONS).cumsum(axis=1)[:, :-1]
    low, high = pointwise_gamma(counts, n, z)
    return np.sort(np.minimum(low, high).min(axis=1))


def critical_gamma(n: int, levels: np.ndarray, alpha: float) -> float:
    r"""Returns the pointwise level :math:`\gamma_\alpha` of the simultaneous band of level
    :math:`1 - \alpha`: the :math:`\alpha`-quantile of the null statistics."""

    null = null_gammas(n, tuple(levels.tolist()))
    return float(null[max(0, math.floor(alpha * (len(null) + 1)) - 1)])


def simultaneous_band(
    n: int, levels: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    r"""Returns the simultaneous band of the empirical CDF of ``n`` uniform values at
    ``levels``: the curve stays inside it at every level with probability ``confidence``.

    Arguments:
        n: The number of values :math:`N`.
        levels: The levels :math:`z_i`, increasing in :math:`(0, 1)`, :math:`(K,)`.
        confidence: The simultaneous level :math:`1 - \alpha`.

    Returns:
        The lower and upper bounds of :math:`\hat{F}(z_i)`, each :math:`(K,)`.

    Example:
        >>> lower, upper = simultaneous_band(100, np.array([0.25, 0.5, 0.75]))
        >>> bool((lower < [0.25, 0.5, 0.75]).all() and (upper > [0.25, 0.5, 0.75]).all())
        True
    """

    levels = np.asarray(levels, dtype=float)
    gamma = critical_gamma(n, levels, 1 - confidence)
    low, high = pointwise_gamma(np.tile(np.arange(n + 1), (len(levels), 1)).T, n, levels)
    inside = (low >= gamma) & (high >= gamma)  # (n + 1, K): the counts inside the band
    lower = inside.argmax(axis=0)
    upper = n - inside[::-1].argmax(axis=0)
    return lower / n, upper / n


@dataclass
class ECDFTest:
    r"""A calibration curve, its simultaneous 95 % band and its :math:`\gamma` test.

    ``undercoverage_pvalue`` tests the side on which credible regions hold the truth less
    often than their credibility: the curve below its band for regions (HPD regions,
    central intervals, ``kind="region"``); for one-sided intervals and TARP balls
    (``kind="one-sided"``), whose complements are credible regions too, the curve below the
    band at levels :math:`z \geq 1/2` or above it at :math:`z < 1/2`. ``overcoverage_pvalue``
    tests the other side. For ``kind="two-sided"`` both are the p-value of the curve: its
    side is decided elsewhere (for TARP, by the sign of the ATC).

    Example:
        >>> test = ecdf_test(np.array([24, 52, 73]), 100, np.array([0.25, 0.5, 0.75]))
        >>> test.inside, test.pvalue > 0.5
        (True, True)
    """

    name: str
    kind: str
    levels: np.ndarray  # (K,)
    ecdf: np.ndarray  # (K,) the curve
    lower: np.ndarray  # (K,) the simultaneous 95 % band
    upper: np.ndarray  # (K,)
    gamma: float
    log_gamma: float  # log γ - log γ_0.05: negative when the curve leaves its 95 % band
    pvalue: float
    undercoverage_pvalue: float
    overcoverage_pvalue: float

    @property
    def inside(self) -> bool:
        r"""Whether the curve stays inside its 95 % band at every level."""

        return bool(((self.ecdf >= self.lower) & (self.ecdf <= self.upper)).all())

    def to_dict(self) -> dict:
        r"""Returns the test as JSON-serialisable values."""

        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in vars(self).items()}


def ecdf_test(
    counts: np.ndarray, n: int, levels: np.ndarray, kind: str = "region", name: str = ""
) -> ECDFTest:
    r"""Tests a calibration curve: ``counts[i]`` of ``n`` values lie below ``levels[i]``.

    Arguments:
        counts: The numbers :math:`N \hat{F}(z_i)` of values below each level, :math:`(K,)`.
        n: The number of values :math:`N`.
        levels: The levels :math:`z_i`, increasing in :math:`(0, 1)`, :math:`(K,)`.
        kind: ``"region"``, ``"one-sided"`` or ``"two-sided"``: which side counts as
            undercoverage (see :class:`ECDFTest`).
        name: The name of the curve.

    Returns:
        The curve, its band and its statistics.

    Example:
        >>> test = ecdf_test(np.array([5, 10, 30]), 100, np.array([0.25, 0.5, 0.75]))
        >>> test.inside, test.undercoverage_pvalue < 0.001
        (False, True)
    """

    levels = np.asarray(levels, dtype=float)
    counts = np.asarray(counts, dtype=int)
    low, high = pointwise_gamma(counts, n, levels)
    if kind == "one-sided":  # the curve above the band at z < 1/2 means undercoverage
        low, high = np.where(levels < 0.5, high, low), np.where(levels < 0.5, low, high)
    null = null_gammas(n, tuple(levels.tolist()))
    gammas = np.array([low.min(), high.min(), min(low.min(), high.min())])
    if kind == "two-sided":
        gammas[:2] = gammas[2]
    pvalues = (1 + np.searchsorted(null, gammas, side="right")) / (len(null) + 1)
    lower, upper = simultaneous_band(n, levels)
    critical = critical_gamma(n, levels, 0.05)
    return ECDFTest(
        name=name,
        kind=kind,
        levels=levels,
        ecdf=counts / n,
        lower=lower,
        upper=upper,
        gamma=float(gammas[2]),
        log_gamma=float(np.log(max(gammas[2], 1e-300)) - np.log(critical)),
        pvalue=float(pvalues[2]),
        undercoverage_pvalue=float(pvalues[0]),
        overcoverage_pvalue=float(pvalues[1]),
    )


def binomial_interval(
    successes: np.ndarray, n: int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    r"""Returns the Clopper–Pearson interval of a binomial proportion, element-wise.

    Arguments:
        successes: The numbers of successes :math:`k`, any shape.
        n: The number of trials :math:`N`.
        confidence: The level of each interval.

    Returns:
        The lower and upper bounds of :math:`k / N`, with the shape of ``successes``.

    Example:
        >>> low, high = binomial_interval(np.array([50]), 100)
        >>> round(float(low[0]), 3), round(float(high[0]), 3)
        (0.398, 0.602)
    """

    from scipy.stats import beta

    k = np.asarray(successes, dtype=float)
    tail = (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, beta.ppf(tail, k, n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1 - tail, k + 1, n - k), 1.0)
    return low, high


def holm(pvalues: np.ndarray) -> np.ndarray:
    r"""Returns Holm's adjusted p-values, valid under any dependence between the tests:
    rejecting where they are below :math:`\alpha` keeps the family-wise error at
    :math:`\alpha`. NaN p-values (tests that could not run) stay NaN and do not count.

    Arguments:
        pvalues: The p-values, :math:`(m,)`.

    Returns:
        The adjusted p-values, :math:`(m,)`.

    Example:
        >>> holm(np.array([0.01, 0.04, 0.03]))
        array([0.03, 0.06, 0.06])
    """

    pvalues = np.asarray(pvalues, dtype=float)
    adjusted = np.full(pvalues.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(pvalues))
    order = finite[np.argsort(pvalues[finite], kind="stable")]
    factors = len(order) - np.arange(len(order))
    adjusted[order] = np.minimum(np.maximum.accumulate(factors * pvalues[order]), 1.0)
    return adjusted
