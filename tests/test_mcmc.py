"""Tests of sbikit.distributions.mcmc: the samplers, the diagnostics, shapes and errors.

Statistical tests use fixed seeds and tolerances derived from the Monte-Carlo error: the
standard error of a mean is the posterior standard deviation over the square root of the
bulk effective sample size (ESS) that the run reports, and estimates must fall within a
few standard errors of the analytic answers.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import signal, special, stats
from torch.distributions import (
    Dirichlet,
    Independent,
    MultivariateNormal,
    Normal,
    constraints,
)

from sbikit.distributions import (
    MCMCDiagnostics,
    MCMCDistribution,
    effective_sample_size,
    split_rhat,
)

METHODS = ["slice", "metropolis"]


def correlated_gaussian(dim: int) -> MultivariateNormal:
    scale = torch.linspace(0.5, 2.0, dim, dtype=torch.float64)
    lag = torch.arange(dim).reshape(-1, 1) - torch.arange(dim)
    correlation = 0.8 ** lag.abs().to(torch.float64)
    cov = scale.reshape(-1, 1) * correlation * scale
    loc = torch.arange(dim, dtype=torch.float64) - 1.0
    return MultivariateNormal(loc, cov)


def bimodal_log_prob(theta: torch.Tensor) -> torch.Tensor:
    r"""0.3 N(-4, 0.5²) + 0.7 N(4, 0.5²), over vectors of size 1."""

    x = theta[..., 0]
    left = math.log(0.3) + Normal(-4.0, 0.5).log_prob(x)
    right = math.log(0.7) + Normal(4.0, 0.5).log_prob(x)
    return torch.logaddexp(left, right)


def sample_quietly(d: MCMCDistribution, shape) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return d.sample(shape)


def returned_ess(d: MCMCDistribution, draws: int) -> torch.Tensor:
    r"""The ESS of the ``draws`` returned, a random subset of the kept draws."""

    kept = d.diagnostics.steps * d.diagnostics.chains
    return d.diagnostics.ess * min(1.0, draws / kept)


def check_mean(theta: torch.Tensor, ess: torch.Tensor, expected: torch.Tensor, k: float = 5):
    se = theta.std(dim=0) / ess.sqrt()
    z = (theta.mean(dim=0) - expected) / se
    assert z.abs().max() < k, f"mean off by {z.tolist()} standard errors"


# --------------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dim", [2, 5])
def test_gaussian_mean_and_covariance(method, dim):
    torch.manual_seed(0)
    target = correlated_gaussian(dim)
    chains = 50
    d = MCMCDistribution(
        target.log_prob,
        constraints.real_vector,
        (dim,),
        chains=chains,
        warmup=300,
        thin=1 if method == "slice" else 10,
        method=method,
        init=torch.zeros(chains, dim, dtype=torch.float64),
        progress=False,
    )
    theta = sample_quietly(d, (4000,))
    diagnostics = d.diagnostics
    assert theta.shape == (4000, dim) and theta.dtype == torch.float64
    assert diagnostics.max_rhat < 1.05
    ess = returned_ess(d, 4000)
    check_mean(theta, ess, target.loc)

    # Standard error of a sample covariance: sqrt((S_ii S_jj + S_ij²) / n), n the ESS.
    cov = target.covariance_matrix
    var = cov.diagonal()
    se = ((var.reshape(-1, 1) * var + cov.square()) / ess.min()).sqrt()
    z = (torch.cov(theta.T) - cov) / se
    assert z.abs().max() < 5, z

    if method == "metropolis":
        assert 0.15 < diagnostics.acceptance < 0.5
    else:
        assert diagnostics.acceptance == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_bounded_support_truncated_normal(method):
    torch.manual_seed(1)
    loc = torch.tensor([0.2, 0.9], dtype=torch.float64)
    scale = torch.tensor([0.3, 0.5], dtype=torch.float64)
    lower, upper = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    support = constraints.independent(constraints.interval(lower, upper), 1)
    chains = 50
    d = MCMCDistribution(
        lambda theta: Normal(loc, scale).log_prob(theta).sum(-1),
        support,
        (2,),
        chains=chains,
        warmup=200,
        thin=1 if method == "slice" else 10,
        method=method,
        init=torch.full((chains, 2), 0.5, dtype=torch.float64),
        progress=False,
    )
    theta = sample_quietly(d, (3000,))
    assert ((theta >= 0) & (theta <= 1)).all()
    a, b = (0 - loc) / scale, (1 - loc) / scale
    expected = torch.as_tensor(stats.truncnorm.mean(a, b, loc=loc, scale=scale))
    check_mean(theta, returned_ess(d, 3000), expected)


def test_positive_support_gamma():
    torch.manual_seed(2)
    shape = torch.tensor([2.0, 5.0], dtype=torch.float64)
    rate = torch.tensor([1.0, 3.0], dtype=torch.float64)

    def log_prob_fn(theta):  # unnormalised Gamma(shape, rate)
        return ((shape - 1) * theta.log() - rate * theta).sum(-1)

    chains = 50
    d = MCMCDistribution(
        log_prob_fn,
        constraints.independent(constraints.positive, 1),
        (2,),
        chains=chains,
        warmup=200,
        init=torch.ones(chains, 2, dtype=torch.float64),
        progress=False,
    )
    theta = sample_quietly(d, (3000,))
    assert (theta > 0).all()
    check_mean(theta, returned_ess(d, 3000), shape / rate)


def test_simplex_support_dirichlet():
    torch.manual_seed(3)
    alpha = torch.tensor([2.0, 3.0, 5.0], dtype=torch.float64)
    chains = 50
    d = MCMCDistribution(
        Dirichlet(alpha).log_prob,
        constraints.simplex,
        (3,),
        chains=chains,
        warmup=200,
        init=torch.full((chains, 3), 1 / 3, dtype=torch.float64),
        progress=False,
    )
    assert d.unconstrained_shape == (2,)
    theta = sample_quietly(d, (3000,))
    assert torch.allclose(theta.sum(-1), torch.ones(()).double())
    check_mean(theta, returned_ess(d, 3000), alpha / alpha.sum())


def test_sir_initialisation_finds_both_modes_with_their_weights():
    torch.manual_seed(4)
    chains = 1000
    proposal = Independent(Normal(torch.zeros(1), 6 * torch.ones(1)), 1)
    d = MCMCDistribution(
        bimodal_log_prob,
        constraints.real_vector,
        (1,),
        chains=chains,
        warmup=20,
        proposal=proposal,
        progress=False,
    )
    # Chains in well-separated modes never mix: R-hat is large although the weights are right.
    with pytest.warns(RuntimeWarning, match="R-hat"):
        theta = d.sample((4000,))
    assert d.diagnostics.evaluations > d.sir_candidates * chains
    left = theta[:, 0] < 0
    # The chains, not the draws, are the independent units: binomial error over chains.
    se = math.sqrt(0.3 * 0.7 / chains)
    assert abs(left.double().mean().item() - 0.3) < 4.5 * se
    # Within each mode, the draws are N(±4, 0.5²).
    assert abs(theta[left, 0].mean().item() + 4) < 0.1
    assert abs(theta[~left, 0].mean().item() - 4) < 0.1
    assert abs(theta[~left, 0].std().item() - 0.5) < 0.05


def test_log_prob_fn_is_called_on_all_chains_at_once():
    torch.manual_seed(5)
    sizes = []

    def log_prob_fn(theta):
        sizes.append(theta.shape[0])
        return -0.5 * theta.square().sum(-1)

    chains = 40
    d = MCMCDistribution(
        log_prob_fn,
        constraints.real_vector,
        (3,),
        chains=chains,
        warmup=20,
        init=torch.zeros(chains, 3),
        progress=False,
    )
    sample_quietly(d, (400,))
    assert sum(sizes) == d.diagnostics.evaluations
    # A handful of calls per coordinate update, each on many chains.
    updates = (d.diagnostics.warmup + d.diagnostics.steps) * 3
    assert len(sizes) < 10 * updates
    assert d.diagnostics.evaluations / len(sizes) > chains / 4


def test_slice_sampler_without_lookahead():
    torch.manual_seed(15)
    target = correlated_gaussian(2)
    runs = []
    for lookahead in (1, 8):
        d = MCMCDistribution(
            target.log_prob,
            constraints.real_vector,
            (2,),
            chains=50,
            warmup=100,
            init=torch.zeros(50, 2, dtype=torch.float64),
            progress=False,
        )
        d.max_lookahead = lookahead
        theta = sample_quietly(d, (10000,))
        check_mean(theta, returned_ess(d, 10000), target.loc)
        runs.append(d.diagnostics.evaluations)
    # Evaluating ahead trades extra points for fewer calls.
    assert runs[0] < runs[1]


def test_reproducible_with_manual_seed():
    def run():
        torch.manual_seed(6)
        d = MCMCDistribution(
            lambda theta: -0.5 * theta.square().sum(-1),
            constraints.real_vector,
            (2,),
            chains=10,
            warmup=10,
            init=torch.zeros(10, 2),
            progress=False,
        )
        return sample_quietly(d, (50,))

    assert torch.equal(run(), run())


# --------------------------------------------------------------------------------------------
# Convergence warnings
# --------------------------------------------------------------------------------------------


def test_warns_when_not_converged():
    torch.manual_seed(7)
    init = torch.cat([torch.full((10, 1), -4.0), torch.full((10, 1), 4.0)])
    d = MCMCDistribution(
        bimodal_log_prob,
        constraints.real_vector,
        (1,),
        chains=20,
        warmup=0,
        init=init,
        progress=False,
    )
    d.min_steps = 10  # few steps: most chains are still in the mode they started in
    with pytest.warns(RuntimeWarning, match=r"R-hat = .* ESS = .*Increase warmup"):
        d.sample((200,))
    assert not d.diagnostics.converged
    assert d.diagnostics.max_rhat > 1.1


@pytest.mark.parametrize("method", METHODS)
def test_no_warning_when_converged(method):
    torch.manual_seed(8)
    target = correlated_gaussian(2)
    d = MCMCDistribution(
        target.log_prob,
        constraints.real_vector,
        (2,),
        chains=50,
        warmup=200,
        thin=1 if method == "slice" else 20,
        method=method,
        init=torch.zeros(50, 2, dtype=torch.float64),
        progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d.sample((5000,))
    diagnostics = d.diagnostics
    assert isinstance(diagnostics, MCMCDiagnostics)
    assert diagnostics.converged
    assert diagnostics.max_rhat < 1.01 and diagnostics.min_ess > 400
    assert diagnostics.rhat.shape == (2,) and diagnostics.ess.shape == (2,)
    # 100 steps would give the 5000 draws, but at least min_steps = 200 are kept.
    assert (diagnostics.chains, diagnostics.steps, diagnostics.warmup) == (50, 200, 200)
    assert diagnostics.method == method and diagnostics.seconds > 0


# --------------------------------------------------------------------------------------------
# Shapes, dtypes and log_prob
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (7,), (3, 4)])
def test_sample_shapes(shape):
    torch.manual_seed(9)
    d = MCMCDistribution(
        lambda theta: -0.5 * theta.square().sum(-1),
        constraints.real_vector,
        (2,),
        chains=10,
        warmup=10,
        init=torch.zeros(10, 2),
        progress=False,
    )
    d.min_steps = 4  # the fewest the diagnostics accept
    assert d.batch_shape == () and d.event_shape == (2,)
    theta = sample_quietly(d, shape)
    assert theta.shape == (*shape, 2) and theta.dtype == torch.float32
    assert d.diagnostics.steps == 4


def test_scalar_events_thinning_and_callable_init():
    torch.manual_seed(10)
    d = MCMCDistribution(
        lambda theta: Normal(1.0, 2.0).log_prob(theta),
        constraints.real,
        (),
        chains=20,
        warmup=50,
        thin=3,
        method="metropolis",
        init=lambda n: torch.zeros(n, dtype=torch.float64),
        progress=False,
    )
    theta = sample_quietly(d, (1000,))
    assert theta.shape == (1000,) and theta.dtype == torch.float64
    assert d.diagnostics.steps == 200 and d.diagnostics.thin == 3


def test_log_prob_is_unnormalised_and_inf_outside_the_support():
    seen = []

    def log_prob_fn(theta):
        seen.append(theta.clone())
        return -theta.sum(-1)

    support = constraints.independent(constraints.positive, 1)
    d = MCMCDistribution(log_prob_fn, support, (2,))
    value = torch.tensor([[1.0, 2.0], [-1.0, 2.0], [0.5, 0.5]])
    assert torch.equal(d.log_prob(value), torch.tensor([-3.0, -math.inf, -1.0]))
    assert all((t > 0).all() for t in seen)  # never evaluated outside the support
    assert d.log_prob(torch.ones(2, 3, 2)).shape == (2, 3)
    assert d.log_prob(torch.ones(2)).shape == ()
    assert d.support is support


# --------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------


def ar1(steps: int, chains: int, rho: float, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((steps, chains)) * math.sqrt(1 - rho**2)
    noise[0] = rng.standard_normal(chains)  # start in the stationary distribution
    x = signal.lfilter([1.0], [1.0, -rho], noise, axis=0)
    return torch.as_tensor(x)


def reference_diagnostics(x: np.ndarray) -> tuple[float, float]:
    r"""Rank-normalised split R-hat and bulk ESS of one variable, draws (steps, chains),
    written as loops after the reference code of Vehtari et al. (2021)."""

    half = x.shape[0] // 2
    split = np.concatenate([x[:half], x[x.shape[0] - half :]], axis=1).T  # (chains, draws)

    def z_scale(a):
        rank = stats.rankdata(a, method="average").reshape(a.shape)
        return special.ndtri((rank - 0.375) / (a.size + 0.25))

    def rhat(a):
        n = a.shape[1]
        between = n * np.var(a.mean(axis=1), ddof=1)
        within = np.mean(np.var(a, axis=1, ddof=1))
        return np.sqrt((between / within + n - 1) / n)

    def ess(a):
        m, n = a.shape
        centred = a - a.mean(axis=1, keepdims=True)
        acov = np.array(
            [[np.dot(c[: n - t], c[t:]) / n for t in range(n)] for c in centred]
        )  # biased autocovariance, directly
        mean_var = acov[:, 0].mean() * n / (n - 1)
        var_plus = mean_var * (n - 1) / n + np.var(a.mean(axis=1), ddof=1)
        rho = np.zeros(n)
        rho[0] = 1
        even, odd = 1.0, 1 - (mean_var - acov[:, 1].mean()) / var_plus
        rho[1] = odd
        t = 1
        while t < n - 3 and even + odd > 0:
            even = 1 - (mean_var - acov[:, t + 1].mean()) / var_plus
            odd = 1 - (mean_var - acov[:, t + 2].mean()) / var_plus
            if even + odd >= 0:
                rho[t + 1], rho[t + 2] = even, odd
            t += 2
        max_t = t - 2
        if even > 0:
            rho[max_t + 1] = even
        t = 1
        while t <= max_t - 2:
            if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
                rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2
            t += 2
        tau = -1 + 2 * rho[: max_t + 1].sum() + rho[max_t + 1 : max_t + 2].sum()
        return m * n / max(tau, 1 / np.log10(m * n))

    folded = np.abs(split - np.median(split))
    return max(rhat(z_scale(split)), rhat(z_scale(folded))), ess(z_scale(split))


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9, -0.3])
def test_diagnostics_match_reference_implementation(rho):
    x = ar1(301, 3, rho, seed=11)
    expected_rhat, expected_ess = reference_diagnostics(x.numpy())
    assert split_rhat(x).item() == pytest.approx(expected_rhat, rel=1e-10)
    assert effective_sample_size(x).item() == pytest.approx(expected_ess, rel=1e-10)


def test_split_rhat_iid_and_shifted_chains():
    torch.manual_seed(12)
    iid = torch.randn(2000, 4, 3)
    rhat = split_rhat(iid)
    assert rhat.shape == (3,) and rhat.dtype == torch.float32
    assert (rhat - 1).abs().max() < 0.01
    shifted = iid + torch.tensor([0.0, 0.0, 0.0, 2.0]).reshape(1, 4, 1)
    assert split_rhat(shifted).min() > 1.1
    # A trend inside each chain is caught by splitting the chains.
    trend = iid + torch.linspace(0, 3, 2000).reshape(-1, 1, 1)
    assert split_rhat(trend).min() > 1.1


def test_effective_sample_size_iid_and_ar1():
    torch.manual_seed(13)
    iid = torch.randn(2000, 4, 3, 2)
    ess = effective_sample_size(iid)
    assert ess.shape == (3, 2)
    assert ((ess / 8000 - 1).abs() < 0.15).all()

    rho, steps, chains = 0.9, 5000, 8
    ess = effective_sample_size(ar1(steps, chains, rho, seed=14)).item()
    expected = steps * chains * (1 - rho) / (1 + rho)
    assert abs(ess / expected - 1) < 0.25


def test_diagnostics_errors():
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        split_rhat(np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"\(steps, chains, \*event\)"):
        effective_sample_size(torch.zeros(10))
    with pytest.raises(ValueError, match="at least 4 steps"):
        split_rhat(torch.randn(3, 2))
    with pytest.raises(ValueError, match="finite"):
        effective_sample_size(torch.full((10, 2), math.nan))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def standard(theta):
    return -0.5 * theta.square().sum(-1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"log_prob_fn": 3.0}, "log_prob_fn to be a callable"),
        ({"support": "real"}, "support to be a torch.distributions.constraints.Constraint"),
        ({"event_shape": ()}, "at most 0 event dimension"),
        ({"event_shape": "two"}, "event_shape to be a sequence of ints"),
        ({"chains": 0}, "chains >= 1"),
        ({"warmup": -1}, "warmup >= 0"),
        ({"thin": 0}, "thin >= 1"),
        ({"method": "hmc"}, "method to be one of 'slice', 'metropolis'"),
        ({"init": torch.zeros(4, 3)}, r"init of shape \(chains, \*event_shape\)"),
        ({"init": torch.zeros(5, 2)}, "one state per chain"),
        ({"init": torch.zeros(4, 2), "proposal": Normal(0.0, 1.0)}, "not both|but received both"),
        ({"proposal": Normal(0.0, 1.0)}, "event shape"),
        ({"proposal": "normal"}, "proposal to be a torch.distributions.Distribution"),
    ],
)
def test_constructor_errors(kwargs, match):
    arguments = {
        "log_prob_fn": standard,
        "support": constraints.real_vector,
        "event_shape": (2,),
        "chains": 4,
        "progress": False,
    }
    arguments.update(kwargs)
    log_prob_fn = arguments.pop("log_prob_fn")
    support = arguments.pop("support")
    event_shape = arguments.pop("event_shape")
    with pytest.raises(ValueError, match=match):
        MCMCDistribution(log_prob_fn, support, event_shape, **arguments)


def test_init_outside_the_support_or_on_its_boundary():
    support = constraints.independent(constraints.interval(0.0, 1.0), 1)
    init = torch.full((4, 2), 0.5)
    init[2, 1] = 1.5
    with pytest.raises(ValueError, match=r"chain\(s\) \[2\] lie outside"):
        MCMCDistribution(standard, support, (2,), chains=4, init=init)
    nonnegative = constraints.independent(constraints.nonnegative, 1)
    init = torch.ones(4, 2)
    init[1, 0] = 0.0  # inside the closed support, but log(0) = -inf in the unconstrained space
    d = MCMCDistribution(standard, nonnegative, (2,), chains=4, init=init, progress=False)
    with pytest.raises(ValueError, match=r"chain\(s\) \[1\].*boundary"):
        d.sample((10,))


def test_sample_errors():
    d = MCMCDistribution(standard, constraints.real_vector, (2,), chains=4, progress=False)
    with pytest.raises(ValueError, match="neither init nor proposal"):
        d.sample((10,))

    wrong = MCMCDistribution(
        lambda theta: theta, constraints.real_vector, (2,), chains=4, init=torch.zeros(4, 2)
    )
    with pytest.raises(ValueError, match=r"log-densities of shape \(N,\)"):
        wrong.sample((10,))
    with pytest.raises(ValueError, match=r"log-densities of shape \(N,\)"):
        wrong.log_prob(torch.zeros(3, 2))

    outside = MCMCDistribution(
        lambda theta: torch.where(theta[:, 0] > 0, 0.0, -math.inf),
        constraints.real_vector,
        (2,),
        chains=4,
        init=torch.zeros(4, 2),
        progress=False,
    )
    with pytest.raises(ValueError, match="-inf, NaN or"):
        outside.sample((10,))

    callable_init = MCMCDistribution(
        standard, constraints.real_vector, (2,), chains=4, init=lambda n: torch.zeros(n, 3)
    )
    with pytest.raises(ValueError, match="init of shape"):
        callable_init.sample((10,))

    nowhere = MCMCDistribution(
        lambda theta: torch.full(theta.shape[:1], -math.inf),
        constraints.real_vector,
        (2,),
        chains=4,
        proposal=Independent(Normal(torch.zeros(2), torch.ones(2)), 1),
        progress=False,
    )
    with pytest.raises(ValueError, match="could not start the chains from the proposal"):
        nowhere.sample((10,))
