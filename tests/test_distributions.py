"""Tests of sbikit.distributions: shapes, normalization, sampling, supports, moments, errors.

Every test runs in float64 with explicit dtypes and fixed seeds; torch's defaults are left
untouched. Statistical tolerances are derived from the Monte-Carlo error (a number of
standard errors) and quadrature tolerances from the error estimates of adaptive quadrature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch.distributions import (
    AffineTransform,
    Bernoulli,
    Categorical,
    ExpTransform,
    Normal,
    Uniform,
)

from sbikit.distributions import (
    BoxUniform,
    DiagNormal,
    GaussianDistribution,
    GeneralizedNormal,
    Independent,
    Joint,
    Maximum,
    Minimum,
    Mixture,
    NormalizingFlow,
    Sort,
    TopK,
    Truncated,
)

DTYPE = torch.float64
BATCH_SHAPES = [(), (4,), (2, 3)]
SAMPLE_SHAPES = [(), (7,), (2, 3)]


def tensor(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=DTYPE)


class Params:
    """Draws reproducible parameters uniformly in [low, high], optionally as gradient leaves."""

    def __init__(self, seed: int = 0, requires_grad: bool = False):
        self.generator = torch.Generator().manual_seed(seed)
        self.requires_grad = requires_grad
        self.leaves: list[torch.Tensor] = []

    def __call__(self, shape, low: float, high: float) -> torch.Tensor:
        u = torch.rand(shape, generator=self.generator, dtype=DTYPE)
        value = (low + (high - low) * u).requires_grad_(self.requires_grad)
        self.leaves.append(value)
        return value


def normal(B, p):
    return Normal(p(B, -0.5, 0.5), p(B, 0.5, 1.0), validate_args=False)


def affine_flow(B, p):
    loc, scale = p((*B, 2), -1.0, 1.0), p((*B, 2), 0.5, 1.5)
    # The transform maps data to the base space: z = (x - loc) / scale.
    transform = AffineTransform(-loc / scale, 1 / scale)
    return NormalizingFlow(transform, DiagNormal(torch.zeros(2, dtype=DTYPE), tensor([1.0, 1.0])))


@dataclass
class Case:
    """A distribution factory ``make(batch_shape, params)`` and a box holding its mass."""

    make: object
    box: tuple  # (low, high) for scalar events, ((low, high), (low, high)) for 2-vectors
    rsample: bool = True
    closed_form: tuple = field(default=())  # moments with closed forms


CASES = {
    "diag_normal": Case(
        lambda B, p: DiagNormal(p((*B, 2), -1, 1), p((*B, 2), 0.5, 1.0)),
        ((-7, 7), (-7, 7)),
        closed_form=("mean", "variance", "entropy"),
    ),
    "box_uniform": Case(
        lambda B, p: BoxUniform(p((*B, 2), -2, -1), p((*B, 2), 0.5, 2)),
        ((-2.1, 2.1), (-2.1, 2.1)),
        closed_form=("mean", "variance", "entropy"),
    ),
    "generalized_normal": Case(
        lambda B, p: GeneralizedNormal(p(B, 1.5, 3)),
        (-40, 40),
        closed_form=("mean", "variance", "entropy"),
    ),
    "independent": Case(
        lambda B, p: GeneralizedNormal(p((*B, 2), 1.5, 3)).to_event(1),
        ((-14, 14), (-14, 14)),
        closed_form=("mean", "variance", "entropy"),
    ),
    "joint": Case(
        lambda B, p: Joint(
            GeneralizedNormal(p(B, 1.5, 3)), BoxUniform(p((*B, 1), -1, -0.5), p((*B, 1), 0.5, 1))
        ),
        ((-14, 14), (-1.1, 1.1)),
        closed_form=("mean", "variance", "entropy"),
    ),
    "mixture": Case(
        lambda B, p: Mixture(
            DiagNormal(p((*B, 3, 2), -2, 2), p((*B, 3, 2), 0.4, 1.0)), p((*B, 3), -1, 1)
        ),
        ((-8, 8), (-8, 8)),
        rsample=False,
        closed_form=("mean", "variance"),
    ),
    "mixture_1d": Case(
        lambda B, p: Mixture(
            Normal(p((*B, 3), -2, 2), p((*B, 3), 0.4, 1.0), validate_args=False),
            p((*B, 3), -1, 1),
        ),
        (-10, 10),
        rsample=False,
        closed_form=("mean", "variance"),
    ),
    "truncated": Case(lambda B, p: Truncated(normal(B, p), -0.5, p(B, 1.0, 2.0)), None),
    "sort": Case(lambda B, p: Sort(normal(B, p), n=2), ((-7, 7), (-7, 7))),
    "topk": Case(lambda B, p: TopK(normal(B, p), k=2, n=4), ((-7, 7), (-7, 7))),
    "minimum": Case(lambda B, p: Minimum(normal(B, p), n=3), (-10, 10)),
    "maximum": Case(lambda B, p: Maximum(GeneralizedNormal(p(B, 1.5, 3)), n=3), (-20, 20)),
    "flow_exp": Case(
        lambda B, p: NormalizingFlow(
            ExpTransform().inv, DiagNormal(p((*B, 2), -0.3, 0.3), p((*B, 2), 0.2, 0.3))
        ),
        ((0, 8), (0, 8)),
    ),
    "flow_affine": Case(affine_flow, ((-9, 9), (-9, 9))),
}
NAMES = list(CASES)
SCALAR = ["generalized_normal", "mixture_1d", "truncated", "minimum", "maximum"]
VECTOR = [n for n in NAMES if n not in SCALAR]


def make(name: str, batch_shape=(), seed: int = 0, requires_grad: bool = False):
    params = Params(seed, requires_grad)
    return CASES[name].make(tuple(batch_shape), params), params


def box(name: str, d) -> tuple:
    if name == "truncated":  # the box is the truncation interval
        return (d.lower.item(), d.upper.item())
    return CASES[name].box


# ---------------------------------------------------------------------------------------
# Quadrature of the batch-() distributions, cached per case
# ---------------------------------------------------------------------------------------

ATOL = 1e-4  # absolute error requested from the adaptive cubature


@dataclass
class Moments:
    """Adaptive cubature of p, x p, x^2 p and -p log p over the case's box, with errors."""

    estimate: np.ndarray
    error: np.ndarray

    def split(self, values: np.ndarray):
        d = (len(values) - 2) // 2
        return values[0], values[1 : 1 + d], values[1 + d : 1 + 2 * d], values[-1]


def kinks(name: str, d) -> list | None:
    """Points where the density jumps, at which the cubature splits its regions."""

    if name == "box_uniform":
        return [d.base_dist.low.numpy(), d.base_dist.high.numpy()]
    if name == "joint":
        low, high = d.marginals[1].base_dist.low.item(), d.marginals[1].base_dist.high.item()
        return [np.array([0.0, low]), np.array([0.0, high])]
    return None


@cache
def moments(name: str) -> Moments:
    d, _ = make(name)
    b = np.array(box(name, d), dtype=float).reshape(-1, 2)

    def integrands(x: np.ndarray) -> np.ndarray:
        value = tensor(x if d.event_shape else x[:, 0])
        with torch.no_grad():
            p = d.log_prob(value).exp().numpy()[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = np.where(p > 0, -p * np.log(p), 0.0)
        return np.concatenate([p, x * p, x**2 * p, entropy], axis=1)

    result = integrate.cubature(
        integrands, b[:, 0], b[:, 1], rtol=0, atol=ATOL, points=kinks(name, d)
    )
    assert result.status == "converged"
    return Moments(result.estimate, result.error)


GRID_1D = 20001
GRID_2D = (1500, 1499)  # coprime sizes: no grid point falls on the diagonal of Sort/TopK


@cache
def marginal_cdfs(name: str) -> list:
    """The marginal CDFs of each coordinate, by the midpoint rule on a grid over the box.

    Accurate to O(h) ~ 1e-3 where the density jumps, far below the KS tests' critical
    distance (about 1.95 / sqrt(N) = 0.014 at the 1e-3 level with N = 20000).
    """

    d, _ = make(name)
    b = np.array(box(name, d), dtype=float).reshape(-1, 2)
    sizes = GRID_2D if d.event_shape else (GRID_1D,)
    steps = [(high - low) / n for (low, high), n in zip(b, sizes, strict=True)]
    axes = [low + h * (np.arange(n) + 0.5) for (low, _), h, n in zip(b, steps, sizes, strict=True)]
    grid = torch.stack(torch.meshgrid(*map(tensor, axes), indexing="ij"), dim=-1)
    with torch.no_grad():
        p = torch.cat(
            [d.log_prob(rows if d.event_shape else rows[..., 0]).exp() for rows in grid.split(100)]
        )
    p = p.numpy()
    cdfs = []
    for i, (x, h) in enumerate(zip(axes, steps, strict=True)):
        marginal = p.sum(axis=tuple(j for j in range(p.ndim) if j != i))
        cdf = np.concatenate([[0.0], np.cumsum(marginal)])
        edges = np.concatenate([[x[0] - h / 2], x + h / 2])
        cdfs.append(lambda v, edges=edges, cdf=cdf: np.interp(v, edges, cdf / cdf[-1]))
    return cdfs


# ---------------------------------------------------------------------------------------
# 1. Shapes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES)
def test_sample_and_log_prob_shapes(name, batch_shape, sample_shape):
    torch.manual_seed(0)
    d, _ = make(name, batch_shape)
    assert d.batch_shape == batch_shape
    event_shape = () if name in SCALAR else (2,)
    assert d.event_shape == event_shape
    x = d.sample(sample_shape)
    assert x.shape == sample_shape + batch_shape + event_shape
    assert x.dtype == DTYPE
    log_p = d.log_prob(x)
    assert log_p.shape == sample_shape + batch_shape
    assert torch.all(torch.isfinite(log_p))
    assert torch.all(d.support.check(x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
def test_rsample_shape_and_gradients(name, batch_shape):
    torch.manual_seed(1)
    d, params = make(name, batch_shape, requires_grad=True)
    assert d.has_rsample == CASES[name].rsample
    if not d.has_rsample:
        with pytest.raises(NotImplementedError):
            d.rsample((5,))
        return
    x = d.rsample((5,))
    assert x.shape == (5, *batch_shape, *d.event_shape)
    assert x.requires_grad
    (x**2).sum().backward()
    for leaf in params.leaves:
        assert leaf.grad is not None
        assert torch.all(torch.isfinite(leaf.grad))
        assert leaf.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------
# 2. Normalization
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_density_integrates_to_one(name):
    q = moments(name)
    mass, mass_error = q.estimate[0], q.error[0]
    assert abs(mass - 1) <= 2 * mass_error + 1e-9


# ---------------------------------------------------------------------------------------
# 3. Samples agree with the density
# ---------------------------------------------------------------------------------------

N = 20_000
ALPHA = 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_samples_agree_with_density_ks(name):
    torch.manual_seed(2)
    d, _ = make(name)
    x = d.sample((N,)).reshape(N, -1).numpy()
    for i, cdf in enumerate(marginal_cdfs(name)):
        result = stats.kstest(x[:, i], cdf)
        assert result.pvalue > ALPHA, (name, i, result)


@pytest.mark.parametrize("name", NAMES)
def test_sample_moments_agree_with_quadrature(name):
    torch.manual_seed(3)
    d, _ = make(name)
    x = d.sample((N,)).reshape(N, -1).numpy()
    _, first, second, _ = moments(name).split(moments(name).estimate)
    mean, variance = first, second - first**2
    fourth = ((x - x.mean(0)) ** 4).mean(0)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(variance / N))
    assert np.all(np.abs(x.var(0) - variance) < 5 * np.sqrt((fourth - variance**2) / N))


@pytest.mark.parametrize("name", SCALAR)
def test_samples_agree_with_cdf_ks(name):
    torch.manual_seed(4)
    d, _ = make(name)
    x = d.sample((N,))

    def cdf(v):
        return d.cdf(tensor(v)).numpy()

    assert stats.kstest(x.numpy(), cdf).pvalue > ALPHA


def test_ks_detects_a_wrong_sampler():
    # The KS check above has power: samples of a different Maximum are rejected.
    torch.manual_seed(5)
    d, _ = make("maximum")
    wrong = Maximum(d.base, n=2).sample((N,)).numpy()
    assert stats.kstest(wrong, marginal_cdfs("maximum")[0]).pvalue < ALPHA


@pytest.mark.parametrize("name", ["minimum", "maximum"])
def test_extremum_icdf_and_draw_samplers_agree(name):
    # Minimum/Maximum sample through the base's icdf when it has one, else by reducing n
    # draws; a Normal base (with icdf) and a GeneralizedNormal with beta = 2 (a Normal
    # without icdf) must both follow the closed-form law.
    torch.manual_seed(6)
    loc, scale = tensor(0.3), tensor(0.8)
    cls = Minimum if name == "minimum" else Maximum
    with_icdf = cls(Normal(loc, scale, validate_args=False), n=4)
    no_icdf = cls(GeneralizedNormal(tensor(2.0)), n=4)  # a Normal(0, 1/2) without icdf
    no_icdf_ref = cls(Normal(tensor(0.0), tensor(math.sqrt(0.5))), n=4)
    x = with_icdf.sample((N,)).numpy()
    assert stats.kstest(x, lambda v: with_icdf.cdf(tensor(v)).numpy()).pvalue > ALPHA
    y = no_icdf.sample((N,)).numpy()
    assert stats.kstest(y, lambda v: no_icdf_ref.cdf(tensor(v)).numpy()).pvalue > ALPHA


# ---------------------------------------------------------------------------------------
# 4. Outside the support
# ---------------------------------------------------------------------------------------


def assert_minus_inf(log_p: torch.Tensor, outside: list[bool]):
    assert not torch.any(torch.isnan(log_p))
    outside = torch.tensor(outside)
    assert torch.all(log_p[outside] == -torch.inf)
    assert torch.all(torch.isfinite(log_p[~outside]))


def test_box_uniform_outside_support():
    d = BoxUniform(tensor([0.0, 0.0]), tensor([1.0, 2.0]))
    x = tensor([[0.5, 1.0], [1.5, 1.0], [0.5, -0.1], [-3.0, 5.0]])
    assert_minus_inf(d.log_prob(x), [False, True, True, True])


def test_truncated_outside_support():
    d = Truncated(Normal(tensor(0.0), tensor(1.0)), -1.0, 2.0)
    x = tensor([-1.5, -1.0, 0.0, 2.0, 2.5, torch.inf, -torch.inf])
    assert_minus_inf(d.log_prob(x), [True, False, False, False, True, True, True])
    one_sided = Truncated(Normal(tensor(0.0), tensor(1.0)), lower=0.0)
    assert_minus_inf(one_sided.log_prob(tensor([-1.0, 0.0, 30.0])), [True, False, False])


def test_sort_and_topk_outside_support():
    d = Sort(Normal(tensor(0.0), tensor(1.0)), n=3)
    x = tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert_minus_inf(d.log_prob(x), [False, True, True, False])
    d = Sort(Normal(tensor(0.0), tensor(1.0)), n=3, descending=True)
    assert_minus_inf(d.log_prob(x), [True, True, False, True])
    d = TopK(Uniform(tensor(0.0), tensor(1.0)), k=2, n=3)  # a validating torch base
    x = tensor([[0.8, 0.3], [0.3, 0.8], [1.5, 0.3], [0.3, -0.1]])
    assert_minus_inf(d.log_prob(x), [False, True, True, True])


def test_joint_outside_support():
    d = Joint(
        Normal(tensor(0.0), tensor(1.0)),
        BoxUniform(tensor([0.0]), tensor([1.0])),
        Uniform(tensor(0.0), tensor(1.0)),  # validate_args on: must not raise
        Bernoulli(tensor(0.3)),  # a finite log_prob at 0.5 without the support mask
    )
    x = tensor([[0, 0.5, 0.5, 1], [0, 1.5, 0.5, 1], [0, 0.5, 2.0, 0], [0, 0.5, 0.5, 0.5]])
    assert_minus_inf(d.log_prob(x), [False, True, True, True])
    # A marginal that cannot sample (no icdf) still masks its own out-of-support values.
    d = Joint(Truncated(GeneralizedNormal(tensor(1.5)), -1.0, 1.0), Normal(tensor(0.0), 1.0))
    assert_minus_inf(d.log_prob(tensor([[2.0, 0.0], [0.5, 0.0]])), [True, False])


def test_mixture_outside_support():
    base = BoxUniform(tensor([[0.0], [2.0]]), tensor([[1.0], [3.0]]))
    d = Mixture(base, tensor([0.0, 1.0]))
    x = tensor([[0.5], [1.5], [2.5], [-1.0]])
    log_p = d.log_prob(x)
    assert_minus_inf(log_p, [False, True, False, True])
    w = torch.softmax(tensor([0.0, 1.0]), dim=0)
    assert torch.allclose(log_p[[0, 2]], w.log())  # each box has unit volume


def test_extremum_and_flow_outside_support():
    d = Minimum(Uniform(tensor(0.0), tensor(1.0)), n=3)
    assert_minus_inf(d.log_prob(tensor([-0.5, 0.5, 1.5])), [True, False, True])
    d, _ = make("flow_exp")
    assert_minus_inf(d.log_prob(tensor([[-1.0, 1.0], [1.0, 1.0]])), [True, False])


# ---------------------------------------------------------------------------------------
# 5. cdf/icdf, moments, expand, to_event, enumerate_support
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCALAR)
def test_cdf_matches_integrated_density(name):
    d, _ = make(name)
    low, high = box(name, d)

    def density(x: float) -> float:
        with torch.no_grad():
            return d.log_prob(tensor(x)).exp().item()

    for x in np.linspace(low, high, 11)[1:-1]:
        points = [0.0] if low < 0 < x else None
        expected, error = integrate.quad(density, low, x, points=points, limit=200)
        assert error < 1e-7
        assert d.cdf(tensor(x)).item() == pytest.approx(expected, abs=1e-6)


ICDF = {
    "truncated": lambda: make("truncated")[0],
    "minimum": lambda: make("minimum")[0],
    "maximum_normal": lambda: Maximum(Normal(tensor(0.5), tensor(2.0)), n=5),
    "truncated_one_sided": lambda: Truncated(Normal(tensor(0.0), tensor(1.0)), upper=0.3),
}


@pytest.mark.parametrize("name", list(ICDF))
def test_cdf_icdf_roundtrip(name):
    d = ICDF[name]()
    p = torch.linspace(0.01, 0.99, 99, dtype=DTYPE)
    x = d.icdf(p)
    assert torch.all(d.support.check(x))
    assert torch.all(x[1:] > x[:-1])
    assert torch.allclose(d.cdf(x), p, atol=1e-9)
    assert torch.allclose(d.icdf(d.cdf(x)), x, atol=1e-7)


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n].closed_form])
def test_closed_form_moments_match_quadrature(name):
    d, _ = make(name)
    q = moments(name)
    _, first, second, entropy = q.split(q.estimate)
    _, first_error, second_error, entropy_error = q.split(2 * q.error + 1e-9)
    mean = d.mean.detach().numpy().reshape(-1)
    variance = d.variance.detach().numpy().reshape(-1)
    assert np.all(np.abs(mean - first) <= first_error)
    # var = E[x^2] - E[x]^2: the errors add, the second one scaled by 2 |E[x]|.
    assert np.all(
        np.abs(variance - (second - first**2)) <= second_error + 2 * np.abs(first) * first_error
    )
    if "entropy" in CASES[name].closed_form:
        assert abs(d.entropy().item() - entropy) <= entropy_error


@pytest.mark.parametrize("name", NAMES)
def test_expand_keeps_class_and_density(name):
    torch.manual_seed(7)
    d, _ = make(name, (4,))
    for expanded in (d.expand((3, 4)), d.expand_by((3,))):
        assert type(expanded) is type(d)
        assert expanded.batch_shape == (3, 4)
        assert expanded.event_shape == d.event_shape
        x = expanded.sample((2,))
        assert x.shape == (2, 3, 4, *d.event_shape)
        assert torch.allclose(expanded.log_prob(x), d.log_prob(x))
    scalar, _ = make(name, ())
    assert type(scalar.expand((2, 3))) is type(scalar)
    assert scalar.expand((2, 3)).sample().shape == (2, 3, *d.event_shape)


@pytest.mark.parametrize("name", NAMES)
def test_to_event_sums_log_prob(name):
    torch.manual_seed(8)
    d, _ = make(name, (2, 3))
    for n in (1, 2):
        e = d.to_event(n)
        assert isinstance(e, Independent)
        assert e.batch_shape == (2, 3)[: 2 - n]
        assert e.event_shape == (2, 3)[2 - n :] + d.event_shape
        x = e.sample((5,))
        assert x.shape == (5, 2, 3, *d.event_shape)
        expected = d.log_prob(x).reshape(5, *e.batch_shape, -1).sum(-1)
        assert torch.allclose(e.log_prob(x), expected)


def test_enumerate_support_independent_bernoulli():
    d = Independent(Bernoulli(tensor([0.2, 0.5, 0.9])), 1)
    values = d.enumerate_support()
    assert values.shape == (8, 3)
    assert len({tuple(v.tolist()) for v in values}) == 8
    assert set(values.reshape(-1).tolist()) == {0.0, 1.0}
    assert d.log_prob(values).exp().sum().item() == pytest.approx(1.0)


def test_enumerate_support_joint_of_discrete_marginals():
    probs = torch.tensor([0.2, 0.3, 0.5], dtype=DTYPE)
    d = Joint(
        Bernoulli(tensor([0.3, 0.6])),
        Independent(Bernoulli(tensor([[0.1, 0.7], [0.4, 0.4]])), 1),
        Categorical(probs.expand(2, 3)),
    )
    assert d.has_enumerate_support and d.batch_shape == (2,) and d.event_shape == (4,)
    values = d.enumerate_support()
    assert values.shape == (2 * 4 * 3, 2, 4)
    assert values.dtype == DTYPE
    assert len({tuple(v.tolist()) for v in values[:, 0]}) == 24
    assert torch.allclose(d.log_prob(values).exp().sum(0), torch.ones(2, dtype=DTYPE))
    assert d.enumerate_support(expand=False).shape == (24, 1, 4)
    x = d.sample((10,))
    assert torch.all((x[..., :3] == 0) | (x[..., :3] == 1)) and torch.all(x[..., 3] <= 2)
    assert not Joint(Bernoulli(tensor(0.5)), Normal(tensor(0.0), tensor(1.0))).has_enumerate_support


# ---------------------------------------------------------------------------------------
# 6. Bad input
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VECTOR)
def test_wrong_event_size_raises(name):
    d, _ = make(name, (4,))
    with pytest.raises(ValueError, match=r"\(2,\).*\(4, 3\)"):
        d.log_prob(torch.zeros(4, 3, dtype=DTYPE))


@pytest.mark.parametrize("name", SCALAR)
def test_wrong_batch_shape_raises(name):
    d, _ = make(name, (4,))
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        d.log_prob(torch.zeros(3, dtype=DTYPE))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_dtype_and_type_raise(name):
    d, _ = make(name)
    x = d.sample()
    with pytest.raises(TypeError, match="float64"):
        d.log_prob(x.float())
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        d.log_prob(x.tolist())
    if name in SCALAR:
        with pytest.raises(TypeError, match="float64"):
            d.cdf(x.float())


def test_mixed_dtype_constructor_arguments_raise():
    f64, f32 = torch.zeros(2, dtype=DTYPE), torch.ones(2, dtype=torch.float32)
    with pytest.raises(TypeError, match="dtype"):
        DiagNormal(f64, f32)
    with pytest.raises(TypeError, match="dtype"):
        BoxUniform(f64, f32)
    with pytest.raises(TypeError, match="dtype"):
        Joint(Normal(f64, f64 + 1), Normal(f32, f32))
    with pytest.raises(TypeError, match="dtype"):
        Mixture(DiagNormal(f64, f64 + 1, ndims=0), torch.zeros(2))
    with pytest.raises(TypeError, match="dtype"):
        Truncated(Normal(f64, f64 + 1), lower=-f32)


def test_bad_constructor_arguments_raise():
    n = Normal(tensor(0.0), tensor(1.0))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        GeneralizedNormal([1.0, 2.0])
    with pytest.raises(ValueError, match="beta > 0"):
        GeneralizedNormal(tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="Distribution"):
        Joint(n, "not a distribution")
    with pytest.raises(ValueError, match="event shape"):
        Joint(n, DiagNormal(torch.zeros(2, 2, dtype=DTYPE), tensor(1.0), ndims=2))
    with pytest.raises(ValueError, match="broadcast"):
        Joint(
            Normal(torch.zeros(3, dtype=DTYPE), tensor(1.0)),
            Normal(torch.zeros(2, dtype=DTYPE), tensor(1.0)),
        )
    with pytest.raises(ValueError, match=r"\(\*, K\)"):
        Mixture(Normal(torch.zeros(3, dtype=DTYPE), tensor(1.0)), torch.zeros(2, dtype=DTYPE))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        Mixture(Normal(torch.zeros(3, dtype=DTYPE), tensor(1.0)), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="lower < upper"):
        Truncated(n, 1.0, 0.0)
    with pytest.raises(TypeError, match="cdf"):
        Truncated(DiagNormal(tensor(0.0), tensor(1.0), ndims=0))
    # far in a tail the base's cdf saturates: refuse rather than sample a bound
    with pytest.raises(ValueError, match="positive probability"):
        Truncated(Normal(tensor(0.0), tensor(1.0)), 12.0, 13.0)
    with pytest.raises(ValueError, match="univariate"):
        Sort(DiagNormal(torch.zeros(2, dtype=DTYPE), tensor(1.0)))
    with pytest.raises(ValueError, match="k <= n"):
        TopK(n, k=3, n=2)
    with pytest.raises(TypeError, match="int"):
        Minimum(n, n=2.5)
    with pytest.raises(ValueError, match="n >= 1"):
        Maximum(n, n=0)


# ---------------------------------------------------------------------------------------
# 7. GaussianDistribution
# ---------------------------------------------------------------------------------------


def test_gaussian_distribution_sample_and_gradients():
    torch.manual_seed(9)
    q = GaussianDistribution((3, 4), mu_init=0.2, rho_init=-3.0, dtype=DTYPE)
    assert q.mu.dtype == DTYPE and q.std_prior.dtype == DTYPE
    w = q.sample()
    assert w.shape == (3, 4)
    (w**2).sum().backward()
    assert q.mu.grad is not None and q.mu.grad.abs().sum() > 0
    assert q.rho.grad is not None and q.rho.grad.abs().sum() > 0
    assert q.num_params() == 24
    assert {n for n, _ in q.named_parameters()} == {"mu", "rho"}
    assert {n for n, _ in q.named_buffers()} == {"mu_prior", "std_prior"}
    q.rho.requires_grad_(False)
    assert q.num_params() == 12


def test_gaussian_distribution_kl_estimate():
    torch.manual_seed(10)
    mu_prior, std_prior = 0.1, 0.2
    q = GaussianDistribution(
        (5,),
        mu_prior,
        std_prior,
        mu_init=tensor([0.0, 0.1, 0.2, 0.3, 0.4]),
        rho_init=-2.0,
        dtype=DTYPE,
    )
    kl = q.log_prob()
    assert kl.shape == () and torch.isfinite(kl)
    kl.backward()
    assert q.mu.grad.abs().sum() > 0 and q.rho.grad.abs().sum() > 0
    with torch.no_grad():
        estimates = torch.stack([q.log_prob() for _ in range(4000)])
        mu, sigma = q.mu, torch.log1p(torch.exp(q.rho))
        exact = (
            math.log(std_prior)
            - sigma.log()
            + (sigma**2 + (mu - mu_prior) ** 2) / (2 * std_prior**2)
            - 0.5
        ).sum()
    standard_error = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - exact) < 5 * standard_error


def test_gaussian_distribution_log_prob_of_given_weights():
    q = GaussianDistribution(3, mu_prior=0.0, std_prior=1.0, rho_init=0.0, dtype=DTYPE)
    x = tensor([0.5, -1.0, 2.0])
    sigma = torch.log1p(torch.exp(tensor(0.0)))
    prior = Normal(tensor(0.0), tensor(1.0))
    expected = Normal(tensor(0.0), sigma).log_prob(x).sum() - prior.log_prob(x).sum()
    assert torch.allclose(q.log_prob(x), expected)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        q.log_prob(torch.zeros(4, dtype=DTYPE))
    with pytest.raises(TypeError, match="float64"):
        q.log_prob(x.float())
    with pytest.raises(ValueError, match="std_prior"):
        GaussianDistribution(3, std_prior=-1.0)
    with pytest.raises(TypeError, match="shape"):
        GaussianDistribution("3")


def test_log_prob_outside_the_support_leaves_the_random_stream_untouched():
    joint = Joint(Uniform(tensor(0.0), tensor(1.0)), Normal(tensor(0.0), tensor(1.0)))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert joint.log_prob(tensor([2.0, 0.0])) == -torch.inf
    assert torch.equal(torch.rand(3), expected)
