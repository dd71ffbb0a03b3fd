"""Tests of the calibration diagnostics: SBC, expected coverage, TARP, z-scores, the verdict.

The posteriors are scaled or shifted versions of gaussian_linear's analytic posterior
N(x / 2, 0.05 I) in 10 dimensions, so the expected coverage of every credible region is
known in closed form. Statistical tolerances are multiples of the Monte-Carlo standard
error of N test pairs; every test uses fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binomtest, chi2, norm

import simulators
from sbikit.diagnostics import (
    check,
    draw,
    expected_coverage,
    sbc,
    tarp,
)
from sbikit.diagnostics.bands import (
    binomial_interval,
    credibility_levels,
    ecdf_test,
    holm,
    simultaneous_band,
)
from sbikit.diagnostics.sbc import count_below, rank
from sbikit.distributions import DiagNormal
from sbikit.inference import NPE

N, L = 300, 200  # test pairs and draws per pair
TASK = simulators.get("gaussian_linear")
SD = math.sqrt(0.05)  # the posterior standard deviation of every parameter


@pytest.fixture(scope="module")
def pairs():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theta = TASK.prior.sample((N,))
    return theta, TASK.simulate(theta, generator=torch.Generator().manual_seed(1))


def gaussian(scale=1.0, shift=0.0, first_scale=1.0):
    r"""The analytic posterior with every sd times ``scale``, the first one also times
    ``first_scale`` and the first mean moved by ``shift`` posterior sds."""

    def posterior(x):
        exact = TASK.build_reference_posterior(x)
        scales = torch.full((10,), scale)
        scales[0] *= first_scale
        loc = exact.mean + shift * SD * torch.eye(10)[0]
        return DiagNormal(loc, exact.stddev * scales)

    return posterior


def run(posterior, pairs, **kwargs):
    return check(posterior, *pairs, num_samples=L, prior=TASK.prior, progress=False, **kwargs)


def tolerance(p):
    r"""Four Monte-Carlo standard errors of a proportion p over N pairs, plus the step of
    the credibility levels (1 / (L + 1))."""

    return 4 * math.sqrt(p * (1 - p) / N) + 1 / (L + 1)


def hpd_coverage(scale, level, dim=10):
    r"""The exact coverage of the HPD region of credibility ``level`` of N(mu, scale² Σ)
    when the truth is N(mu, Σ): P(χ²_D < scale² q_D(level))."""

    return chi2.cdf(scale**2 * chi2.ppf(level, dim), dim)


def central_coverage(scale, level):
    return 2 * norm.cdf(scale * norm.ppf((1 + level) / 2)) - 1


# ---------------------------------------------------------------- verdicts


def test_the_exact_posterior_is_calibrated(pairs):
    report = run(gaussian(), pairs)
    assert report.verdict == "calibrated"
    assert report.flags == {label: [] for label in TASK.labels}
    assert report.coverage.hpd.inside  # the one curve of the headline, at 95 %
    assert (report.sbc.chi2_holm >= 0.025).all() and (report.sbc.ks_holm >= 0.025).all()
    assert not any(c["undercoverage"] or c["overcoverage"] for c in report.decision.curves)
    for level, covered in zip(report.coverage.nominal, report.coverage.hpd_nominal, strict=True):
        assert abs(covered - level) < tolerance(level)
    assert abs(report.tarp.atc) < 0.05
    assert report.warnings == []


@pytest.mark.parametrize("scale", [0.7, 1.5])
def test_scaled_posteriors_cover_as_the_formula_says(pairs, scale):
    report = run(gaussian(scale), pairs)
    assert report.verdict == ("overconfident" if scale < 1 else "conservative")
    side = report.verdict
    assert all(any(f.startswith(side) for f in flags) for flags in report.flags.values())
    for level, covered in zip(report.coverage.nominal, report.coverage.hpd_nominal, strict=True):
        expected = hpd_coverage(scale, level)
        assert abs(covered - expected) < tolerance(expected)
    expected = central_coverage(scale, 0.9)
    assert np.abs(report.coverage.central_nominal[:, 2] - expected).max() < tolerance(expected)
    assert (report.tarp.atc < 0) if scale < 1 else (report.tarp.atc > 0)


def test_one_underdispersed_parameter_is_flagged_alone(pairs):
    report = run(gaussian(first_scale=0.7), pairs)
    assert report.verdict == "overconfident"
    first, *others = report.sbc.labels
    assert any(f.startswith("overconfident") for f in report.flags[first])
    assert not any(f.startswith(("overconfident", "conservative")) for o in others
                   for f in report.flags[o])  # fmt: skip
    expected = central_coverage(0.7, 0.9)
    assert abs(report.coverage.central_nominal[0, 2] - expected) < tolerance(expected)


def test_a_biased_parameter_is_flagged(pairs):
    report = run(gaussian(shift=0.5), pairs)
    first, *others = report.sbc.labels
    assert any(f.startswith("biased") for f in report.flags[first])
    assert not any(f.startswith("biased") for o in others for f in report.flags[o])
    # z = (mu + 0.5 sd - theta) / sd: mean 0.5, standard error about 1 / sqrt(N)
    assert abs(report.summaries.mean_z[0] - 0.5) < 4 / math.sqrt(N)
    assert report.verdict == "overconfident"  # one-sided intervals undercover


def test_z_scores_and_contraction_of_the_exact_posterior(pairs):
    report = run(gaussian(), pairs)
    z = report.summaries
    # contraction 1 - 0.05 / 0.1; each posterior variance is estimated from L draws
    error = 0.5 * math.sqrt(2 / (L - 1)) / math.sqrt(N)  # the standard error of the mean
    assert np.abs(z.mean_contraction - 0.5).max() < 4 * error
    assert np.abs(z.std_z - 1).max() < 4 / math.sqrt(2 * N)
    assert np.allclose(z.prior_variance, 0.1)
    assert (z.r2 > 0.3).all() and (z.correlation > 0.55).all()  # R² ≈ 0.5, corr ≈ 0.71


# ---------------------------------------------------------------- the statistics


def test_ranks_match_a_loop_over_pairs():
    g = torch.Generator().manual_seed(0)
    samples, theta = torch.randn(50, 20, 3, generator=g), torch.randn(20, 3, generator=g)
    result = sbc(samples, theta)
    loop = [[int((samples[:, i, d] < theta[i, d]).sum()) for d in range(3)] for i in range(20)]
    assert result.ranks.tolist() == loop
    assert result.histogram.sum(axis=1).tolist() == [20, 20, 20]


def test_ties_are_broken_uniformly():
    draws = torch.zeros(9, 4000, 1)  # every draw ties with the truth
    ranks = rank(draws, torch.zeros(4000, 1), np.random.default_rng(0))
    counts = np.bincount(ranks.ravel(), minlength=10)
    assert counts.min() > 400 - 4 * 19 and counts.max() < 400 + 4 * 19  # 400 ± 4 sd


def test_hpd_ranks_count_denser_draws():
    log_prob = torch.tensor([[0.0, -1.0], [-2.0, -1.5], [-3.0, -0.5]])  # (L=3, N=2)
    samples, theta = torch.zeros(3, 2, 1), torch.zeros(2, 1)
    result = expected_coverage(samples, theta, log_prob, torch.tensor([-2.5, -1.2]))
    assert result.hpd is not None
    ranks = sbc(samples, theta, log_prob, torch.tensor([-2.5, -1.2])).joint_ranks
    assert ranks.tolist() == [2, 2]  # draws with a higher density than the truth


def test_tarp_matches_a_loop_over_pairs():
    g = torch.Generator().manual_seed(0)
    samples, theta = torch.randn(40, 15, 2, generator=g), torch.randn(15, 2, generator=g)
    references = torch.rand(15, 2, generator=g)
    result = tarp(samples, theta, references)
    low, scale = theta.min(0).values, theta.max(0).values - theta.min(0).values
    for i in range(15):
        r = (references[i] - low) / scale
        inside = torch.linalg.norm((samples[:, i] - low) / scale - r, dim=-1)
        truth = torch.linalg.norm((theta[i] - low) / scale - r)
        assert result.credibility[i] == pytest.approx(float((inside < truth).float().mean()))


def test_the_simultaneous_band_holds_95_percent_of_uniform_curves():
    n, levels = 200, credibility_levels(99, 200)
    lower, upper = simultaneous_band(n, levels)
    rng = np.random.default_rng(123)
    u = np.sort(rng.random((4000, n)), axis=1)
    counts = np.stack([np.searchsorted(row, levels) for row in u]) / n
    inside = ((counts >= lower) & (counts <= upper)).all(axis=1).mean()
    assert abs(inside - 0.95) < 4 * math.sqrt(0.95 * 0.05 / 4000)


def test_gamma_test_pvalues_are_uniform_under_calibration():
    n, levels = 100, credibility_levels(50, 100)
    rng = np.random.default_rng(7)
    ranks = rng.integers(0, 51, size=(1000, n))
    pvalues = np.array([ecdf_test(count_below(r, 50, levels), n, levels).pvalue for r in ranks])
    assert abs((pvalues < 0.05).mean() - 0.05) < 4 * math.sqrt(0.05 * 0.95 / 1000)
    assert abs((pvalues < 0.5).mean() - 0.5) < 4 * math.sqrt(0.25 / 1000)


def test_the_sides_of_a_region_curve():
    levels = np.array([0.25, 0.5, 0.75])
    under = ecdf_test(np.array([5, 15, 40]), 100, levels)
    over = ecdf_test(np.array([45, 80, 95]), 100, levels)
    assert under.undercoverage_pvalue < 0.01 < under.overcoverage_pvalue
    assert over.overcoverage_pvalue < 0.01 < over.undercoverage_pvalue
    assert under.log_gamma < 0 and over.log_gamma < 0


def test_holm_and_clopper_pearson_agree_with_references():
    assert holm(np.array([0.01, 0.04, 0.03, np.nan])).tolist()[:3] == pytest.approx(
        [0.03, 0.06, 0.06]
    )
    low, high = binomial_interval(np.array([0, 7, 20]), 20)
    for k, a, b in zip([0, 7, 20], low, high, strict=True):
        ci = binomtest(k, 20).proportion_ci(method="exact")
        assert (a, b) == pytest.approx((ci.low, ci.high))


# ---------------------------------------------------------------- draws and input


def test_draws_are_seeded_and_leave_the_global_generator_alone(pairs):
    state = torch.get_rng_state()
    first = draw(gaussian(), *pairs, 20, seed=3, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first.samples, draw(gaussian(), *pairs, 20, seed=3, progress=False).samples)
    assert not torch.equal(
        first.samples, draw(gaussian(), *pairs, 20, seed=4, progress=False).samples
    )
    batched = draw(gaussian(), *pairs, 20, batch_size=7, progress=False)
    assert batched.samples.shape == (20, N, 10) and batched.log_prob.shape == (20, N)


def test_non_finite_pairs_are_dropped_counted_and_reported(pairs):
    theta, x = pairs[0].clone(), pairs[1].clone()
    theta[3, 2], x[10, 0], x[11, 5] = float("nan"), float("inf"), float("nan")
    report = run(gaussian(), (theta, x))
    assert report.metadata["num_pairs"] == N - 3 and report.metadata["num_dropped"] == 3
    assert report.metadata["dropped"] == {"non-finite test data": 3}
    assert "3 of 300 test pairs dropped" in report.warnings[0]


def test_too_few_pairs_or_draws_give_warnings(pairs):
    theta, x = pairs
    report = check(gaussian(), theta[:40], x[:40], num_samples=20, progress=False)
    assert any("Only 40 test pairs" in w for w in report.warnings)
    assert any("Only 20 draws" in w for w in report.warnings)
    assert "Only 40 test pairs" in report.summary()


def test_a_posterior_that_fails_on_some_pairs_is_reported(pairs):
    def failing(x):
        exact = TASK.build_reference_posterior(x)
        loc = torch.where(x[:, :1] > 0.8, float("nan"), exact.mean)
        return DiagNormal(loc, exact.stddev)

    report = run(failing, pairs)
    failed = int((pairs[1][:, 0] > 0.8).sum())
    assert failed > 0 and report.metadata["dropped"] == {"NaN draws or log-densities": failed}


@pytest.mark.parametrize(
    ("theta", "x", "error", "match"),
    [
        (torch.zeros(10, 2), torch.zeros(9, 2), ValueError, "one observation per parameter"),
        (torch.zeros(10), torch.zeros(10, 2), ValueError, r"theta of shape \(N, D\)"),
        ([[0.0, 0.0]] * 10, torch.zeros(10, 2), TypeError, "torch.Tensor"),
        (torch.full((10, 2), float("nan")), torch.zeros(10, 2), ValueError, "at least 2"),
    ],
)
def test_bad_test_pairs_are_rejected(theta, x, error, match):
    with pytest.raises(error, match=match):
        check(lambda x: DiagNormal(x, torch.ones_like(x)), theta, x, progress=False)


def test_bad_posteriors_and_arguments_are_rejected(pairs):
    theta, x = pairs
    with pytest.raises(TypeError, match="callable"):
        check("posterior", theta, x, progress=False)
    with pytest.raises(TypeError, match="torch Distribution"):
        check(lambda x: x, theta, x, progress=False)
    with pytest.raises(ValueError, match=r"batch shape \(\d+,\) and event shape"):
        check(lambda x: DiagNormal(x[0], torch.ones(10)), theta, x, progress=False)
    with pytest.raises(ValueError, match="num_samples >= 2"):
        check(gaussian(), theta, x, num_samples=1, progress=False)
    with pytest.raises(TypeError, match=r"sbikit\.fit"):
        check(gaussian(), theta, x, history=[1, 2], progress=False)
    with pytest.raises(ValueError, match="x_obs of shape"):
        check(gaussian(), theta, x, x_obs=torch.zeros(3), progress=False)
    with pytest.raises(ValueError, match="one label per parameter"):
        check(gaussian(), theta, x, labels=["a"], progress=False)


def test_an_npe_posterior_is_checked_through_its_public_interface():
    prior = simulators.get("two_moons").prior
    torch.manual_seed(0)
    posterior = NPE(2, 2, prior=prior, transforms=1, hidden_features=(8,))
    with torch.random.fork_rng():
        torch.manual_seed(1)
        theta = prior.sample((100,))
    report = check(posterior, theta, theta + 0.1, num_samples=50, prior=prior, progress=False)
    assert report.verdict in ("calibrated", "conservative", "overconfident")
    assert report.metadata["posterior"]["config"]["estimator"] == "NPE"
    assert report.observed["samples"].shape == (10_000, 2)


def test_the_reference_at_x_obs_gives_a_c2st(pairs):
    theta, x = pairs
    reference = TASK.reference_posterior(x[0]).sample((1000,)).float()
    report = check(gaussian(), theta, x, num_samples=50, x_obs=x[0], theta_obs=theta[0],
                   reference=reference, progress=False)  # fmt: skip
    # 1000 draws of each: the accuracy of a classifier of two equal sets is 0.5 ± 0.016
    assert report.observed["c2st"] < 0.6
    assert report.observed["source"] == "x_obs"


def test_a_posterior_that_always_fails_is_refused(pairs):
    def broken(x):
        return DiagNormal(torch.full_like(x, float("nan")), torch.ones_like(x))

    with pytest.raises(ValueError, match="fewer than 2"):
        check(broken, *pairs, num_samples=10, progress=False)
