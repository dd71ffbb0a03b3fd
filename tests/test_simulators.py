import importlib
import math

import numpy as np
import pytest
import torch

import simulators
from sbikit.distributions import DiagNormal
from simulators.bernoulli_glm import design_matrix
from simulators.slcp import slcp_moments

ALL = simulators.names()
ODE = ["lotka_volterra", "sir"]
TRACTABLE = [
    "bernoulli_glm",
    "bernoulli_glm_raw",
    "gaussian_linear",
    "gaussian_linear_uniform",
    "gaussian_mixture",
    "slcp",
    "two_moons",
]


def batch_size(name):
    return 8 if name in ODE else 64


def test_names_and_unknown_task():
    assert len(ALL) == 10
    assert set(ALL) == {
        "gaussian_linear",
        "gaussian_linear_uniform",
        "two_moons",
        "slcp",
        "slcp_distractors",
        "bernoulli_glm",
        "bernoulli_glm_raw",
        "gaussian_mixture",
        "sir",
        "lotka_volterra",
    }
    with pytest.raises(ValueError, match=r"unknown task 'moons'.*two_moons"):
        simulators.get("moons")


@pytest.mark.parametrize("name", ALL)
def test_task_shapes_dtype_and_prior(name):
    task = simulators.get(name)
    assert task.name == name
    assert len(task.labels) == task.theta_dim
    prior = task.prior
    assert prior.event_shape == (task.theta_dim,)
    theta = prior.sample((batch_size(name),))
    assert theta.shape == (batch_size(name), task.theta_dim)
    assert bool(prior.support.check(theta).all())
    assert torch.isfinite(prior.log_prob(theta)).all()
    x = task.simulate(theta)
    assert x.shape == (batch_size(name), *task.x_shape)
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all()
    # any batch shape, including a single parameter vector
    assert task.simulate(theta[:6].reshape(2, 3, -1)).shape == (2, 3, *task.x_shape)
    assert task.simulate(theta[0]).shape == tuple(task.x_shape)


@pytest.mark.parametrize("name", ALL)
def test_simulate_is_deterministic_under_a_generator(name):
    task = simulators.get(name)
    theta = task.prior.sample((batch_size(name),))
    first = task.simulate(theta, generator=torch.Generator().manual_seed(3))
    again = task.simulate(theta, generator=torch.Generator().manual_seed(3))
    other = task.simulate(theta, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", ALL)
def test_published_observations(name):
    task = simulators.get(name)
    for k in range(1, 11):
        assert task.observation(k).shape == tuple(task.x_shape)
        theta = task.true_parameters(k)
        assert theta.shape == (task.theta_dim,)
        assert bool(task.prior.support.check(theta).all())
    for k in (0, 11, 1.0):
        with pytest.raises(ValueError, match=f"{name}.*k = 1..10"):
            task.observation(k)


@pytest.mark.parametrize("name", ALL)
def test_bad_theta(name):
    task = simulators.get(name)
    expected = rf"{name}.*\(\*, {task.theta_dim}\).*\(4, {task.theta_dim + 1}\)"
    with pytest.raises(ValueError, match=expected):
        task.simulate(torch.zeros(4, task.theta_dim + 1))
    with pytest.raises(ValueError, match=name):
        task.simulate(torch.zeros(4, task.theta_dim, dtype=torch.long))


@pytest.mark.parametrize("name", ODE)
def test_ode_tasks_reject_parameters_outside_their_domain(name):
    task = simulators.get(name)
    theta = task.prior.sample((3,))
    theta[1, 0] = -0.5
    with pytest.raises(ValueError, match=f"{name}.*outside"):
        task.simulate(theta)


@pytest.mark.parametrize("name", TRACTABLE)
def test_log_likelihood_shapes_and_broadcasting(name):
    task = simulators.get(name)
    theta = task.prior.sample((5,))
    x = task.simulate(theta)
    assert task.log_likelihood(theta, x).shape == (5,)
    assert task.log_likelihood(theta, task.observation(1)).shape == (5,)
    assert task.log_likelihood(theta[0], x).shape == (5,)
    assert torch.isfinite(task.log_likelihood(theta, x)).all()
    with pytest.raises(ValueError, match=name):
        task.log_likelihood(theta, x[..., :-1])


def test_intractable_likelihood_says_so():
    task = simulators.get("slcp_distractors")
    with pytest.raises(NotImplementedError, match="informative"):
        task.log_likelihood(task.prior.sample((2,)), task.observation(1))


# ------------------------------------------------------------------ simulators vs definitions


def z_score(estimate, expected, standard_error):
    return ((estimate - expected) / standard_error).abs().max().item()


def test_gaussian_linear_residuals():
    task = simulators.get("gaussian_linear")
    n = 40_000
    theta = task.prior.sample((n,)).double()
    residual = task.simulate(theta, torch.Generator().manual_seed(0)).double() - theta
    assert z_score(residual.mean(0), 0.0, math.sqrt(0.1 / n)) < 5
    cov = torch.cov(residual.T)
    # the variance of a sample variance is 2 sigma^4 / n, of a covariance sigma^4 / n
    se = 0.1 * torch.sqrt((1 + torch.eye(10)) / n).double()
    assert z_score(cov, 0.1 * torch.eye(10, dtype=torch.float64), se) < 5
    # the prior: N(0, 0.1 I), 0.1 being the variance
    assert z_score(theta.var(0), 0.1, 0.1 * math.sqrt(2 / n)) < 5


def test_two_moons_inversion():
    task = simulators.get("two_moons")
    n = 40_000
    theta = task.prior.sample((n,)).double()
    p = task.simulate(theta, torch.Generator().manual_seed(0)).double() - task.shift(theta)
    u, v = p[:, 0] - 0.25, p[:, 1]
    r, a = torch.hypot(u, v), torch.atan2(v, u)
    assert z_score(r.mean(), 0.1, 0.01 / math.sqrt(n)) < 5
    assert z_score(r.std(), 0.01, 0.01 / math.sqrt(2 * n)) < 5
    assert bool((a.abs() <= math.pi / 2).all())
    # the angle is uniform on (-pi/2, pi/2): its variance is pi^2 / 12
    assert z_score(a.mean(), 0.0, math.pi / math.sqrt(12 * n)) < 5


def test_two_moons_reference_refuses_an_impossible_observation():
    task = simulators.get("two_moons")
    with pytest.raises(ValueError, match="nearly\\) impossible under the model"):
        task.reference_posterior(torch.tensor([5.0, 5.0])).sample((10,))


def test_two_moons_likelihood_is_a_density():
    task = simulators.get("two_moons")
    theta = torch.tensor([[0.3, -0.5]], dtype=torch.float64)
    centre = task.shift(theta)[0] + torch.tensor([0.25, 0.0], dtype=torch.float64)
    side = torch.linspace(-0.16, 0.16, 800, dtype=torch.float64)  # misses the centre
    grid = torch.stack(torch.meshgrid(side, side, indexing="ij"), dim=-1).reshape(-1, 2)
    density = task.log_likelihood(theta, centre + grid).exp()
    cell = (side[1] - side[0]) ** 2
    assert abs(density.sum().item() * cell - 1) < 2e-3


def test_gaussian_mixture_draws_the_component_per_row():
    task = simulators.get("gaussian_mixture")
    n = 40_000
    theta = task.prior.sample((n,)).double()
    residual = task.simulate(theta, torch.Generator().manual_seed(0)).double() - theta
    narrow = (residual.abs() < 0.4).all(dim=-1).double()
    # the narrow component (sd 0.1) is always inside, the broad one (sd 1) with P(|z| < 0.4)^2
    broad_inside = (math.erf(0.4 / math.sqrt(2))) ** 2
    expected = 0.5 + 0.5 * broad_inside
    assert z_score(narrow.mean(), expected, math.sqrt(expected * (1 - expected) / n)) < 5


def test_slcp_draws_four_gaussians_with_the_stated_moments():
    task = simulators.get("slcp")
    theta = torch.tensor([[0.7, -1.2, 1.1, -0.9, 0.8]], dtype=torch.float64)
    n = 20_000
    x = task.simulate(theta.expand(n, 5), torch.Generator().manual_seed(0)).double()
    points = x.reshape(n * 4, 2)
    mean, cov = slcp_moments(theta)
    sd = cov[0].diagonal().sqrt()
    assert z_score(points.mean(0), mean[0], sd / math.sqrt(4 * n)) < 5
    se = torch.sqrt((cov[0] ** 2 + torch.outer(cov[0].diagonal(), cov[0].diagonal())) / (4 * n))
    assert z_score(torch.cov(points.T), cov[0], se) < 5


def test_bernoulli_glm_summaries_from_raw_spikes():
    summary, raw = simulators.get("bernoulli_glm"), simulators.get("bernoulli_glm_raw")
    for k in range(1, 11):
        y = raw.observation(k).double()
        assert set(y.tolist()) <= {0.0, 1.0}
        # the published observations (float32) use the same design matrix (stimulus seed 42)
        expected = summary.observation(k).double()
        torch.testing.assert_close(y @ design_matrix(), expected, rtol=1e-6, atol=1e-5)
    theta = summary.prior.sample((50,))
    x = summary.simulate(theta, torch.Generator().manual_seed(1))
    y = raw.simulate(theta, torch.Generator().manual_seed(1))
    torch.testing.assert_close(x.double(), y.double() @ design_matrix())


def test_bernoulli_glm_spike_rates():
    task = simulators.get("bernoulli_glm_raw")
    theta = task.true_parameters(1).double()
    n = 20_000
    y = task.simulate(theta.expand(n, 10), torch.Generator().manual_seed(0)).double()
    rate = torch.sigmoid(design_matrix() @ theta)
    se = torch.sqrt(rate * (1 - rate) / n) + 1e-6
    assert z_score(y.mean(0), rate, se) < 5.5  # 100 comparisons


def test_bernoulli_glm_prior_precision():
    task = simulators.get("bernoulli_glm")
    precision = torch.linalg.inv(task.prior.covariance_matrix.double())
    assert abs(precision[0, 0].item() - 0.5) < 1e-4
    assert precision[0, 1:].abs().max() < 1e-4
    D = torch.eye(9, dtype=torch.float64) - torch.diag(torch.ones(8, dtype=torch.float64), -1)
    F = D @ D + torch.diag(torch.sqrt(torch.arange(9, dtype=torch.float64) / 9))
    torch.testing.assert_close(precision[1:, 1:], F.T @ F, atol=1e-3, rtol=1e-4)


def test_slcp_distractors_hide_the_slcp_values():
    slcp, task = simulators.get("slcp"), simulators.get("slcp_distractors")
    theta = slcp.prior.sample((20,))
    x = task.simulate(theta, torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        task.informative(x), slcp.simulate(theta, torch.Generator().manual_seed(2))
    )
    for k in range(1, 11):
        torch.testing.assert_close(task.informative(task.observation(k)), slcp.observation(k))
        torch.testing.assert_close(task.true_parameters(k), slcp.true_parameters(k))
    # the fixed mixture is the same in every instance
    again = simulators.get("slcp_distractors")
    torch.testing.assert_close(task.observation(3), again.observation(3))


# ------------------------------------------------------------------ reference posteriors


def weighted_moments(theta, log_w):
    r"""The self-normalised importance-sampling mean, variance, fourth central moment and
    effective sample size of draws ``theta`` (n, D) with log-weights ``log_w`` (n,)."""

    w = torch.softmax(log_w, dim=0)[:, None]
    mean = (w * theta).sum(0)
    centred = theta - mean
    var = (w * centred**2).sum(0)
    m4 = (w * centred**4).sum(0)
    return mean, var, m4, 1 / (w**2).sum().item()


def sample_moments(theta):
    mean, var = theta.mean(0), theta.var(0)
    return mean, var, ((theta - mean) ** 4).mean(0), len(theta)


def assert_same_moments(first, second, z=5.0):
    r"""Means and variances of two estimates agree within ``z`` combined standard errors."""

    (m1, v1, q1, n1), (m2, v2, q2, n2) = first, second
    se_mean = torch.sqrt(v1 / n1 + v2 / n2)
    se_var = torch.sqrt((q1 - v1**2).clamp_min(0) / n1 + (q2 - v2**2).clamp_min(0) / n2)
    assert z_score(m1, m2, se_mean) < z, (m1, m2, se_mean)
    assert z_score(v1, v2, se_var) < z, (v1, v2, se_var)


def importance(task, x_obs, n, seed=0, proposal=None):
    r"""Importance sampling of the posterior from the prior, or from ``proposal``."""

    torch.manual_seed(seed)
    proposal = task.prior if proposal is None else proposal
    theta = proposal.sample((n,)).double()
    log_prior = task.prior.log_prob(theta.float()).double()
    log_w = log_prior + task.log_likelihood(theta, x_obs) - proposal.log_prob(theta.float())
    return weighted_moments(theta, log_w)


@pytest.mark.parametrize(
    "name", ["gaussian_linear", "gaussian_linear_uniform", "gaussian_mixture", "two_moons"]
)
@pytest.mark.parametrize("k", [1, 7])
def test_exact_reference_posteriors_match_importance_sampling(name, k):
    task = simulators.get(name)
    torch.manual_seed(k)
    reference = task.reference_posterior(k=k).sample((20_000,)).double()
    assert reference.shape == (20_000, task.theta_dim)
    assert bool(task.prior.support.check(reference).all())
    x_obs = task.observation(k)
    # in 10 dimensions the prior box is too wide a proposal: draw from the untruncated
    # Gaussian instead (the prior then weighs out the draws outside the box, a rejection)
    proposal = (
        DiagNormal(x_obs, torch.full_like(x_obs, 0.1**0.5)) if k and "uniform" in name else None
    )
    estimate = importance(task, x_obs, 400_000, seed=k, proposal=proposal)
    assert estimate[3] > 300  # enough effective draws for the comparison to mean something
    assert_same_moments(sample_moments(reference), estimate)


def test_gaussian_linear_reference_is_the_closed_form():
    task = simulators.get("gaussian_linear")
    x = task.observation(2).double()
    posterior = task.reference_posterior(x)
    torch.testing.assert_close(posterior.mean, x / 2)
    torch.testing.assert_close(posterior.variance, torch.full_like(x, 0.05))


def test_reference_posterior_arguments():
    task = simulators.get("gaussian_linear")
    with pytest.raises(ValueError, match="either x_obs or k"):
        task.reference_posterior()
    with pytest.raises(ValueError, match="either x_obs or k"):
        task.reference_posterior(task.observation(1), k=1)
    with pytest.raises(ValueError, match=r"one observation with shape \(10,\)"):
        task.reference_posterior(torch.zeros(3, 10))


def test_reference_samples_are_cached_on_disk(tmp_path):
    task = simulators.get("sir")
    name = task.cache_name(1, 50)
    assert name.startswith("sir-1-50-") and name.endswith(".npy")
    cached = np.arange(100, dtype=np.float32).reshape(50, 2)
    np.save(tmp_path / name, cached)
    # an existing cache file is read, never regenerated or overwritten
    samples = task.reference_samples(1, 50, cache_dir=tmp_path)
    assert torch.equal(samples, torch.from_numpy(cached))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_reference_cache_names_the_mcmc_settings(tmp_path):
    task = simulators.get("sir")
    before = task.cache_name(1, 50)
    task.mcmc_settings = {**task.mcmc_settings, "chains": 7}
    assert task.cache_name(1, 50) != before
    assert task.cache_name(2, 50) != task.cache_name(1, 50)


def test_reference_samples_are_written_to_the_cache(tmp_path):
    task = simulators.get("slcp")
    task.mcmc_settings = {"chains": 20, "warmup": 20, "thin": 1, "min_steps": 20, "progress": False}
    torch.manual_seed(0)
    with pytest.warns(RuntimeWarning, match="may not have converged"):  # a deliberately short run
        samples = task.reference_samples(3, 40, cache_dir=tmp_path / "cache")
    assert samples.shape == (40, 5) and samples.dtype == torch.float32
    files = list((tmp_path / "cache").iterdir())
    assert [p.name for p in files] == [task.cache_name(3, 40)]
    assert torch.equal(torch.from_numpy(np.load(files[0])), samples)
    assert torch.equal(task.reference_samples(3, 40, cache_dir=tmp_path / "cache"), samples)


def test_a_damaged_cache_file_is_reported(tmp_path):
    task = simulators.get("sir")
    np.save(tmp_path / task.cache_name(1, 50), np.zeros((49, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(50, 2\).*Delete the file"):
        task.reference_samples(1, 50, cache_dir=tmp_path)
    (tmp_path / task.cache_name(1, 60)).write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="cannot be read"):
        task.reference_samples(1, 60, cache_dir=tmp_path)


def mcmc_reference(task, k, n, **settings):
    r"""``n`` draws of the MCMC reference of observation ``k``, with lighter ``settings``
    than the task's, and moments with the effective sample size of the returned draws."""

    torch.manual_seed(0)
    task.mcmc_settings = {**task.mcmc_settings, **settings, "progress": False}
    posterior = task.reference_posterior(k=k)
    theta = posterior.sample((n,)).double()
    d = posterior.diagnostics
    assert d.converged, (d.max_rhat, d.min_ess)
    kept = d.steps * d.chains
    mean, var, m4, _ = sample_moments(theta)
    return theta, (mean, var, m4, min(d.min_ess * n / kept, n))


def laplace_proposal(task, x_obs):
    r"""A Student-t (5 degrees of freedom) proposal around the posterior mode, with the
    inverse Hessian as scale: the bernoulli_glm log-posterior is concave."""

    from simulators.bernoulli_glm import prior_precision

    precision = prior_precision()
    theta = torch.zeros(10, dtype=torch.float64)
    for _ in range(50):  # Newton's method
        log_post = lambda t: (  # noqa: E731
            -0.5 * t @ precision @ t + task.log_likelihood(t[None], x_obs[None].double())[0]
        )
        grad = torch.autograd.functional.jacobian(log_post, theta)
        hessian = torch.autograd.functional.hessian(log_post, theta)
        theta = theta - torch.linalg.solve(hessian, grad)
    return torch.distributions.MultivariateNormal(theta, torch.linalg.inv(-hessian)), 5.0


def student_importance(task, x_obs, gaussian, df, n, seed=0):
    torch.manual_seed(seed)
    z = gaussian.sample((n,)) - gaussian.loc
    scale = torch.sqrt(torch.distributions.Chi2(df).sample((n, 1)).double() / df)
    theta = gaussian.loc + z / scale
    d = len(gaussian.loc)
    solved = torch.linalg.solve_triangular(
        gaussian.scale_tril, (theta - gaussian.loc).T, upper=False
    ).T
    log_q = -(df + d) / 2 * torch.log1p(solved.pow(2).sum(-1) / df)
    log_prior = task.prior.log_prob(theta.float()).double()
    return weighted_moments(theta, log_prior + task.log_likelihood(theta, x_obs) - log_q)


@pytest.mark.slow
def test_slcp_mcmc_reference_matches_importance_sampling():
    task = simulators.get("slcp")
    theta, moments = mcmc_reference(task, 1, 5000, chains=50)
    # the four sign modes are equally weighted
    signs = (theta[:, 2:4] > 0).double().mean(0)
    assert z_score(signs, 0.5, math.sqrt(0.25 / 5000)) < 5
    estimate = importance(task, task.observation(1), 2_000_000)
    assert estimate[3] > 200
    assert_same_moments(moments, estimate)


@pytest.mark.slow
def test_bernoulli_glm_mcmc_reference_matches_importance_sampling():
    task = simulators.get("bernoulli_glm")
    _, moments = mcmc_reference(task, 1, 5000, chains=50)
    x_obs = task.observation(1).double()
    gaussian, df = laplace_proposal(task, x_obs)
    estimate = student_importance(task, x_obs, gaussian, df, 200_000)
    assert estimate[3] > 20_000
    assert_same_moments(moments, estimate)


@pytest.mark.slow
def test_sir_mcmc_reference_matches_importance_sampling():
    task = simulators.get("sir")
    _, moments = mcmc_reference(task, 1, 5000, chains=100, warmup=200, thin=8, min_steps=100)
    estimate = importance(task, task.observation(1), 200_000)
    assert estimate[3] > 100
    assert_same_moments(moments, estimate)


# ------------------------------------------------------------------ constants of the spec

BOXES = {
    "gaussian_linear_uniform": (10, 1.0),
    "two_moons": (2, 1.0),
    "slcp": (5, 3.0),
    "slcp_distractors": (5, 3.0),
    "gaussian_mixture": (2, 10.0),
}


@pytest.mark.parametrize("name", sorted(BOXES))
def test_uniform_priors_are_the_specified_boxes(name):
    task = simulators.get(name)
    dim, bound = BOXES[name]
    inside = torch.full((dim,), 0.999 * bound)
    assert task.prior.log_prob(inside).item() == pytest.approx(-dim * math.log(2 * bound))
    for sign in (-1, 1):
        outside = inside.clone()
        outside[-1] = sign * 1.001 * bound
        assert task.prior.log_prob(outside).item() == -math.inf


@pytest.mark.parametrize(
    ("name", "loc", "scale"),
    [
        ("sir", [math.log(0.4), math.log(0.125)], [0.5, 0.2]),
        ("lotka_volterra", [-0.125, -3.0, -0.125, -3.0], [0.5] * 4),
    ],
)
def test_log_normal_priors_have_the_specified_parameters(name, loc, scale):
    prior = simulators.get(name).prior
    loc, scale = torch.tensor(loc), torch.tensor(scale)
    torch.testing.assert_close(prior.mean, torch.exp(loc + scale**2 / 2))
    torch.testing.assert_close(prior.variance, (torch.exp(scale**2) - 1) * prior.mean**2)


def test_slcp_distractors_follow_the_student_t_mixture():
    from scipy import stats

    from simulators.slcp_distractors import distractor_mixture

    task = simulators.get("slcp_distractors")
    n = 20_000
    x = task.simulate(task.prior.sample((n,)), torch.Generator().manual_seed(5)).double()
    # value i of the output is value permutation[i] of (informative, distractors)
    distractors = x[:, torch.argsort(distractor_mixture()[2])[8:]].numpy()
    locations, scales, _ = (t.numpy() for t in distractor_mixture())
    for j in (0, 45, 91):  # each value: an equal-weight mixture of 20 Student-t (2 df)

        def cdf(v, j=j):
            z = (np.asarray(v)[..., None] - locations[:, j]) / scales[:, j]
            return stats.t(df=2).cdf(z).mean(-1)

        assert stats.kstest(distractors[:, j], cdf).pvalue > 1e-3


# ------------------------------------------------------------------ the ODE tasks


def scipy_solution(dynamics, y0, times, theta):
    r"""An independent solve of one parameter vector with scipy's DOP853 at tight
    tolerances: ``(T, n)`` at ``times``."""

    from scipy.integrate import solve_ivp

    def rhs(t, y):
        return dynamics(None, torch.as_tensor(y)[None], theta[None])[0].numpy()

    t = times.numpy()
    solution = solve_ivp(rhs, (t[0], t[-1]), y0, method="DOP853", t_eval=t, rtol=1e-11, atol=1e-12)
    assert solution.success
    return torch.from_numpy(solution.y.T)


def test_sir_simulator_samples_binomial_counts_of_the_infected():
    from simulators.sir import infected_fraction, sir_dynamics

    task = simulators.get("sir")
    theta = task.true_parameters(3).double()
    times = 17.0 * torch.arange(10, dtype=torch.float64)  # t = 0, 17, ..., 153
    expected = scipy_solution(sir_dynamics, [1e6 - 1, 1.0, 0.0], times, theta)[:, 1] / 1e6
    p = infected_fraction(theta[None])[0]
    torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-12)
    n = 4000
    x = task.simulate(theta.expand(n, 2), torch.Generator().manual_seed(0)).double()
    assert bool((x == x.round()).all() and (x >= 0).all() and (x <= 1000).all())
    variance = 1000 * p * (1 - p)  # Binomial(1000, p)
    assert z_score(x.mean(0), 1000 * p, torch.sqrt(variance / n)) < 5


def test_lotka_volterra_simulator_adds_log_normal_noise_to_u_then_v():
    from simulators.lotka_volterra import lotka_volterra_dynamics

    task = simulators.get("lotka_volterra")
    theta = task.true_parameters(2).double()
    times = 2.1 * torch.arange(10, dtype=torch.float64)
    solution = scipy_solution(lotka_volterra_dynamics, [30.0, 1.0], times, theta)
    expected = torch.log(torch.cat((solution[:, 0], solution[:, 1])).clamp(1e-10, 1e4))
    n = 4000
    x = task.simulate(theta.expand(n, 4), torch.Generator().manual_seed(0)).double()
    residual = x.log() - expected
    assert z_score(residual.mean(0), 0.0, 0.1 / math.sqrt(n)) < 5
    assert z_score(residual.var(0), 0.01, 0.01 * math.sqrt(2 / n)) < 5


@pytest.mark.parametrize("name", ODE)
def test_a_failed_solve_gives_a_nan_row(name, monkeypatch):
    module = importlib.import_module(f"simulators.{name}")
    solve = module.solve_batch

    def failing_second_row(*args, **kwargs):
        y = solve(*args, **kwargs)
        y[1] = torch.nan  # the solver's NaN rows are tested in test_ode_batch.py
        return y

    monkeypatch.setattr(module, "solve_batch", failing_second_row)
    task = simulators.get(name)
    theta = task.prior.sample((3,))
    x = task.simulate(theta)
    assert torch.isnan(x[1]).all()
    assert torch.isfinite(x[[0, 2]]).all()
    assert task.log_likelihood(theta, task.observation(1))[1].item() == -math.inf


def test_ode_task_likelihoods_match_scipy():
    from scipy import stats

    from simulators.lotka_volterra import lotka_volterra_dynamics
    from simulators.sir import sir_dynamics

    sir, lv = simulators.get("sir"), simulators.get("lotka_volterra")
    for k in (1, 6):
        for factor in (1.0, 1.05):
            theta = sir.true_parameters(k).double() * factor
            times = 17.0 * torch.arange(10, dtype=torch.float64)
            infected = scipy_solution(sir_dynamics, [1e6 - 1, 1.0, 0.0], times, theta)[:, 1]
            x = sir.observation(k).numpy()
            expected = stats.binom(1000, np.clip(infected.numpy() / 1e6, 0, 1)).logpmf(x).sum()
            assert sir.log_likelihood(theta, sir.observation(k)).item() == pytest.approx(
                expected, rel=1e-6
            )

            theta = lv.true_parameters(k).double() * factor
            times = 2.1 * torch.arange(10, dtype=torch.float64)
            u_v = scipy_solution(lotka_volterra_dynamics, [30.0, 1.0], times, theta).T.flatten()
            x = lv.observation(k).double().numpy()
            median = np.clip(u_v.numpy(), 1e-10, 1e4)
            expected = stats.lognorm(s=0.1, scale=median).logpdf(x).sum()
            assert lv.log_likelihood(theta, lv.observation(k)).item() == pytest.approx(
                expected, rel=1e-6
            )
