r"""Gaussianization transforms and flows (GF), and Gaussian mixture models (GMM)."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from sbikit.flows.gaussianization import GF, ElementWiseTransform
from sbikit.flows.mixture import GMM
from sbikit.transforms.base import call_and_ladj
from sbikit.transforms.gaussianization import GaussianizationTransform, ndtri_log
from sbikit.utils import unpack

F64 = torch.float64
D, C, K = 3, 2, 4  # features, context features, components


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(g, *shape, scale=1.0, grad=False, dtype=F64):
    x = scale * torch.randn(shape, generator=g, dtype=F64)
    return x.to(dtype).requires_grad_(grad)


def gaussianization(g, *batch, dtype=F64, grad=True):
    shift = randn(g, *batch, K, scale=2.0, grad=grad, dtype=dtype)
    scale = randn(g, *batch, K, scale=0.7, grad=grad, dtype=dtype)
    return GaussianizationTransform(shift, scale), [shift, scale]


def direct(shift, scale, x):
    """The definition, evaluated naively (accurate where the mixture CDF is not saturated)."""

    u = scale.exp() * x.unsqueeze(-1) + shift
    return torch.special.ndtri(torch.special.ndtr(u).mean(dim=-1))


def two_moons(n: int, g: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.stack((angle.cos(), angle.sin()), dim=-1)
    x = torch.where(upper[:, None], x, torch.stack((1 - angle.cos(), 0.5 - angle.sin()), -1))
    return x + 0.05 * torch.randn(n, 2, generator=g)


def standard_normal_nll(x: torch.Tensor) -> float:
    return -torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1).mean().item()


def gaussian_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    """Held-out NLL of the maximum-likelihood Gaussian: the best any affine flow can do."""

    gaussian = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    return -gaussian.log_prob(test).mean().item()


# GaussianizationTransform


def test_gaussianization_matches_its_definition_and_special_cases():
    t, (shift, scale) = gaussianization(generator(), D)
    x = randn(generator(1), 50, D, scale=2.0)
    y = t(x)
    reference = direct(shift, scale, x)
    moderate = torch.isfinite(reference) & (reference.abs() < 7)
    assert moderate.sum() > 100
    torch.testing.assert_close(y[moderate], reference[moderate], atol=1e-9, rtol=0)

    # K identical standard components: the identity, with a zero log-determinant.
    zeros = torch.zeros(D, K, dtype=F64)
    y, ladj = GaussianizationTransform(zeros, zeros).call_and_ladj(x)
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, torch.zeros_like(x), atol=1e-12, rtol=0)

    # One component: the affine map exp(a) x + b, even far in the tails.
    b, a = torch.tensor([[1.5]], dtype=F64), torch.tensor([[0.3]], dtype=F64)
    x = torch.linspace(-200, 200, 101, dtype=F64)
    y, ladj = GaussianizationTransform(b, a).call_and_ladj(x)
    torch.testing.assert_close(y, math.exp(0.3) * x + 1.5, atol=1e-9, rtol=1e-12)
    torch.testing.assert_close(ladj, torch.full_like(x, 0.3), atol=1e-8, rtol=0)


def test_gaussianization_round_trip():
    t, _ = gaussianization(generator(), D)
    x = randn(generator(1), 20, D, scale=3.0)
    y = t(x)
    torch.testing.assert_close(t.inv(y), x, atol=1e-10, rtol=0)
    y = randn(generator(2), 20, D, scale=3.0)
    torch.testing.assert_close(t(t.inv(y)), y, atol=1e-10, rtol=0)


def test_gaussianization_call_and_ladj_is_consistent():
    t, _ = gaussianization(generator(), D)
    x = randn(generator(1), 10, D, scale=2.0)
    y, ladj = t.call_and_ladj(x)
    assert y.shape == ladj.shape == x.shape
    torch.testing.assert_close(y, t(x), atol=1e-14, rtol=0)
    torch.testing.assert_close(ladj, t.log_abs_det_jacobian(x, y), atol=1e-14, rtol=0)
    y_fn, ladj_fn = call_and_ladj(t, x)
    assert torch.equal(y_fn, y) and torch.equal(ladj_fn, ladj)


def test_gaussianization_ladj_matches_autograd_derivative():
    t, _ = gaussianization(generator(), D)
    x = randn(generator(1), D, scale=3.0)
    J = jacobian(lambda v: t(v), x)
    torch.testing.assert_close(J, torch.diag(J.diagonal()), atol=0, rtol=0)
    torch.testing.assert_close(t.call_and_ladj(x)[1], J.diagonal().log(), atol=1e-10, rtol=0)


def test_gaussianization_inverse_ladj_is_minus_forward_ladj():
    t, _ = gaussianization(generator(), D)
    x = randn(generator(1), 10, D, scale=3.0)
    y, ladj = t.call_and_ladj(x)
    x_back, ladj_inverse = t.inv.call_and_ladj(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ladj_inverse, -ladj, atol=1e-10, rtol=0)
    J = jacobian(lambda v: t.inv(v), y[0])
    torch.testing.assert_close(ladj_inverse[0], J.diagonal().log(), atol=1e-8, rtol=0)


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_gaussianization_gradients_reach_every_parameter(direction):
    t, params = gaussianization(generator(), D)
    x = randn(generator(1), 6, D, scale=2.0)
    if direction == "inverse":
        t, x = t.inv, t(x).detach()
    x = x.clone().requires_grad_()
    y, ladj = call_and_ladj(t, x)
    weight = torch.rand(y.shape, generator=generator(2), dtype=F64)
    ((weight * y).sum() + ladj.sum()).backward()
    for p in [x, *params]:
        assert p.grad is not None and torch.isfinite(p.grad).all()
        assert (p.grad != 0).any()


def test_gaussianization_implicit_gradients_match_finite_differences():
    g = generator()
    shift = randn(g, 2, K, scale=2.0, grad=True)
    scale = randn(g, 2, K, scale=0.7, grad=True)
    y = randn(g, 3, 2, scale=2.0, grad=True)

    def inverse(y, shift, scale):
        return GaussianizationTransform(shift, scale).inv(y)

    def inverse_ladj(y, shift, scale):
        return GaussianizationTransform(shift, scale).inv.call_and_ladj(y)[1]

    def forward(x, shift, scale):
        return GaussianizationTransform(shift, scale).call_and_ladj(x)

    assert torch.autograd.gradcheck(inverse, (y, shift, scale))
    assert torch.autograd.gradcheck(inverse_ladj, (y, shift, scale))
    assert torch.autograd.gradcheck(forward, (y, shift, scale))


def test_gaussianization_is_increasing():
    t, _ = gaussianization(generator(), 1)
    x = torch.linspace(-30, 30, 4001, dtype=F64)
    y, ladj = t.call_and_ladj(x)
    assert (y.diff() > 0).all()
    assert torch.isfinite(ladj).all()
    assert t.sign == +1 and t.bijective


def test_gaussianization_is_finite_and_accurate_far_in_the_tails():
    t, (shift, scale) = gaussianization(generator(), D)
    x = torch.linspace(-30, 30, 241, dtype=F64).unsqueeze(-1).expand(-1, D)
    y, ladj = t.call_and_ladj(x)
    assert torch.isfinite(y).all() and torch.isfinite(ladj).all()
    torch.testing.assert_close(t.inv(y), x, atol=1e-9, rtol=1e-12)

    # In float32, inputs far beyond where the mixture CDF rounds to 0 or 1 stay finite
    # and agree with float64.
    t32 = GaussianizationTransform(shift.detach().float(), scale.detach().float())
    big = torch.tensor([-1e3, -100.0, -30.0, 30.0, 100.0, 1e3]).unsqueeze(-1).expand(-1, D)
    y32, ladj32 = t32.call_and_ladj(big)
    y64 = t(big.double())
    assert torch.isfinite(y32).all() and torch.isfinite(ladj32).all()
    torch.testing.assert_close(y32.double(), y64.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(t32.inv(y32), big, rtol=1e-4, atol=1e-4)


def test_ndtri_log_inverts_log_ndtr():
    for dtype, tolerance in ((F64, 1e-13), (torch.float32, 1e-6)):
        # From log(1/2) down to -1e5, far below where exp(log_p) underflows.
        log_p = -torch.logspace(math.log10(math.log(2)), 5, 1001, dtype=dtype)
        y = ndtri_log(log_p)
        assert torch.isfinite(y).all() and (y.diff() < 0).all()
        error = (torch.special.log_ndtr(y.double()) - log_p.double()) / log_p.double()
        assert error.abs().max() < tolerance


def test_gaussianization_inverse_bracket_adapts_to_the_parameters():
    # Tiny scales stretch the transform: its inverse reaches far outside [-10, 10].
    shift = torch.tensor([[0.0, 1.0, -1.0]], dtype=F64)
    scale = torch.full((1, 3), -4.0, dtype=F64)
    t = GaussianizationTransform(shift, scale)
    x = torch.tensor([-500.0, -50.0, 0.0, 70.0, 300.0], dtype=F64).unsqueeze(-1)
    torch.testing.assert_close(t.inv(t(x)), x, atol=1e-9, rtol=1e-12)


def test_gaussianization_batched_parameters_broadcast_against_inputs():
    t, _ = gaussianization(generator(), 4, D)  # parameters (4, D, K)
    x = randn(generator(1), 5, 1, D)
    y, ladj = t.call_and_ladj(x)
    assert y.shape == ladj.shape == (5, 4, D)
    assert t.forward_shape(x.shape) == (5, 4, D)
    torch.testing.assert_close(t.inv(y), x.expand(5, 4, D), atol=1e-10, rtol=0)


def test_gaussianization_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"shift \(3, 4\) and scale \(3, 5\)"):
        GaussianizationTransform(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        GaussianizationTransform([0.0], torch.zeros(1))
    t = GaussianizationTransform(torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"batch shape \(3,\), but received shape \(5, 2\)"):
        t(torch.zeros(5, 2))
    with pytest.raises(TypeError, match="dtype"):
        t(torch.zeros(3, dtype=F64))


# ElementWiseTransform


@pytest.mark.parametrize("context", [0, C])
def test_element_wise_transform(context):
    torch.manual_seed(0)
    lazy = ElementWiseTransform(
        D,
        context,
        univariate=GaussianizationTransform,
        shapes=((K,), (K,)),
        hidden_features=(8,),
    ).double()
    c = torch.randn(4, context, dtype=F64) if context else None
    t = lazy(c)
    x = torch.randn(5, 4, D, dtype=F64)
    y, ladj = t.call_and_ladj(x)
    assert y.shape == x.shape and ladj.shape == (5, 4)
    x_back, ladj_inverse = t.inv.call_and_ladj(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ladj_inverse, -ladj, atol=1e-10, rtol=0)
    # Element-wise: the Jacobian is diagonal and its log-determinant is the ladj.
    J = jacobian(t, x[0]).reshape(4 * D, 4 * D)
    torch.testing.assert_close(J, torch.diag(J.diagonal()), atol=0, rtol=0)
    expected = J.diagonal().log().reshape(4, D).sum(-1)
    torch.testing.assert_close(ladj[0], expected, atol=1e-10, rtol=0)
    ladj.sum().backward()
    for key, p in lazy.named_parameters():
        assert p.grad is not None and (p.grad != 0).any(), key


def test_element_wise_transform_default_is_affine_and_checks_inputs():
    torch.manual_seed(0)
    t = ElementWiseTransform(D)  # MonotonicAffineTransform, free parameters
    x = torch.randn(7, D)
    y, ladj = t().call_and_ladj(x)
    shift = t()(torch.zeros(D)).detach()
    slope = t()(torch.ones(D)).detach() - shift
    torch.testing.assert_close(y, x * slope + shift, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ladj, slope.log().sum().expand(7), atol=1e-5, rtol=0)
    with pytest.raises(
        ValueError, match=rf"ElementWiseTransform expects inputs of shape \(\*, {D}\)"
    ):
        t()(torch.randn(7, D + 1))
    with pytest.raises(ValueError, match="unconditional"):
        t(torch.randn(C))
    with pytest.raises(TypeError, match="unexpected keyword"):
        ElementWiseTransform(D, hidden=(8,))


# GF


def build_gf(context: int = C, seed: int = 0) -> GF:
    torch.manual_seed(seed)
    return GF(D, context, transforms=2, components=K, hidden_features=(16,)).to(F64)


@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
@pytest.mark.parametrize("sample", [(), (5,), (2, 3)])
def test_gf_shapes(batch, sample):
    flow = build_gf()
    q = flow(torch.randn(*batch, C, dtype=F64))
    assert q.batch_shape == batch and q.event_shape == (D,)
    x = q.sample(sample)
    assert x.shape == sample + batch + (D,)
    log_p = q.log_prob(x)
    assert log_p.shape == sample + batch and torch.isfinite(log_p).all()
    x = torch.randn(*sample, *batch, D, dtype=F64)
    assert q.log_prob(x).shape == sample + batch


def test_gf_unconditional():
    flow = build_gf(context=0)
    q = flow()
    assert q.batch_shape == () and q.sample((7,)).shape == (7, D)
    assert torch.isfinite(q.log_prob(torch.randn(7, D, dtype=F64))).all()
    kinds = [type(t).__name__ for t in flow.transform.transforms]
    assert kinds == ["ElementWiseTransform", "UnconditionalTransform", "ElementWiseTransform"]


@pytest.mark.parametrize("context", [0, C])
def test_gf_log_prob_gradients_reach_every_parameter(context):
    flow = build_gf(context)
    c = torch.randn(8, C, dtype=F64) if context else None
    flow(c).log_prob(torch.randn(8, D, dtype=F64)).sum().backward()
    for key, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
        assert (p.grad != 0).any(), key


def test_gf_rsample_gradients():
    flow = build_gf()
    x = flow(torch.randn(4, C, dtype=F64)).rsample((3,))
    x.square().sum().backward()
    for key, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
        assert (p.grad != 0).any(), key


def test_gf_rsample_and_log_prob_equals_log_prob():
    flow = build_gf()
    q = flow(torch.randn(4, C, dtype=F64))
    x, log_p = q.rsample_and_log_prob((6,))
    assert x.shape == (6, 4, D) and log_p.shape == (6, 4)
    torch.testing.assert_close(log_p, q.log_prob(x), atol=1e-8, rtol=0)


def test_gf_state_dict_round_trip():
    flow, fresh = build_gf(seed=0), build_gf(seed=1)
    c, x = torch.randn(4, C, dtype=F64), torch.randn(4, D, dtype=F64)
    assert not torch.equal(fresh(c).log_prob(x), flow(c).log_prob(x))
    fresh.load_state_dict(flow.state_dict())
    assert torch.equal(fresh(c).log_prob(x), flow(c).log_prob(x))


def test_gf_transform_ladj_matches_autograd_jacobian():
    flow = build_gf()
    t = flow(torch.randn(C, dtype=F64)).transform
    x = torch.randn(5, D, dtype=F64) * 2
    z, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(t.inv(z), x, atol=1e-9, rtol=0)
    for i in range(5):
        J = jacobian(t, x[i])
        torch.testing.assert_close(ladj[i], torch.linalg.slogdet(J).logabsdet, atol=1e-9, rtol=0)


def test_gf_density_integrates_to_one():
    torch.manual_seed(0)
    flow = GF(2, transforms=2, components=K).double()
    with torch.no_grad():  # scales within exp(±1.5): the mass lies well inside the grid
        for p in flow.parameters():
            p.mul_(0.5)
    edges = torch.linspace(-30, 30, 401, dtype=F64)
    h = edges[1] - edges[0]
    centers = (edges[1:] + edges[:-1]) / 2
    grid = torch.stack(torch.meshgrid(centers, centers, indexing="ij"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        mass = flow().log_prob(grid).exp().sum() * h**2
    assert abs(mass.item() - 1) < 1e-5


def test_gf_rejects_wrong_sizes():
    flow = build_gf()
    with pytest.raises(ValueError, match=rf"GF expects a context c of shape \(\*, {C}\)"):
        flow(torch.randn(4, C + 1, dtype=F64))
    with pytest.raises(ValueError, match="GF is conditional"):
        flow()
    with pytest.raises(ValueError, match=rf"GF expects x .*\({D},\).*\(4, {D + 1}\)"):
        flow(torch.randn(4, C, dtype=F64)).log_prob(torch.randn(4, D + 1, dtype=F64))
    with pytest.raises(ValueError, match="components >= 1"):
        GF(D, components=0)


def test_gf_short_fit_to_two_moons():
    g = generator()
    train, test = two_moons(2048, g), two_moons(1024, g)
    torch.manual_seed(0)
    flow = GF(2, transforms=3, components=8)
    optimizer = torch.optim.Adam(flow.parameters(), lr=2e-2)
    for _ in range(100):
        batch = train[torch.randint(len(train), (256,), generator=g)]
        loss = -flow().log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        nll = -flow().log_prob(test).mean().item()
    # The standard error of a 1024-point NLL is about 0.03 nats: a margin of 0.15 below the
    # best Gaussian means the flow learned a non-Gaussian shape.
    assert nll < standard_normal_nll(test) - 0.5, nll
    assert nll < gaussian_nll(train, test) - 0.15, nll


# GMM

COVARIANCES = [(kind, tied) for kind in ("full", "diagonal", "spherical") for tied in (False, True)]


def build_gmm(kind, tied, context=0, components=3, features=2, seed=0, spread=1.0):
    torch.manual_seed(seed)
    gmm = GMM(
        features,
        context,
        components=components,
        covariance_type=kind,
        tied=tied,
        hidden_features=(16,),
    ).double()
    with torch.no_grad():  # away from the symmetric initialization
        params = gmm.phi if context == 0 else [gmm.hyper[-1].bias]
        for p in params:
            p.add_(spread * torch.randn_like(p))
    return gmm


def gmm_context(gmm, batch=()):
    return torch.randn(*batch, gmm.context, dtype=F64) if gmm.context else None


def documented_parameters(gmm, c):
    """Weights, means and covariances from the raw parameters, as the docstring defines."""

    phi = list(gmm.phi) if c is None else unpack(gmm.hyper(c), gmm.shapes)
    logits, loc, *cov = phi
    n = gmm.features
    scale = cov[0].exp() + gmm.epsilon
    if gmm.covariance_type == "full":
        S = torch.diag_embed(scale)
        rows, cols = torch.tril_indices(n, n, offset=-1)
        S[..., rows, cols] = cov[1]
        sigma = S @ S.mT
    else:
        sigma = torch.diag_embed(scale.square().expand(loc.shape))
    sigma = sigma.expand(*loc.shape, n)
    return torch.log_softmax(logits, dim=-1), loc, sigma


def manual_log_prob(log_w, loc, sigma, x):
    diff = x.unsqueeze(-2) - loc  # (..., K, D)
    solved = torch.linalg.solve(sigma, diff.unsqueeze(-1)).squeeze(-1)
    maha = (diff * solved).sum(-1)
    logdet = torch.linalg.slogdet(sigma).logabsdet
    n = loc.shape[-1]
    log_n = -0.5 * (maha + logdet + n * math.log(2 * math.pi))
    return torch.logsumexp(log_w + log_n, dim=-1)


@pytest.mark.parametrize(("kind", "tied"), COVARIANCES)
@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_gmm_shapes(kind, tied, batch):
    gmm = build_gmm(kind, tied, context=C)
    q = gmm(torch.randn(*batch, C, dtype=F64))
    assert q.batch_shape == batch and q.event_shape == (2,)
    for sample in [(), (5,), (2, 3)]:
        x = q.sample(sample)
        assert x.shape == sample + batch + (2,)
        assert q.log_prob(x).shape == sample + batch
    p = build_gmm(kind, tied)()
    assert p.batch_shape == () and p.sample((5,)).shape == (5, 2)


@pytest.mark.parametrize(("kind", "tied"), COVARIANCES)
@pytest.mark.parametrize("context", [0, C])
def test_gmm_log_prob_matches_manual_computation(kind, tied, context):
    gmm = build_gmm(kind, tied, context, features=3)
    c = gmm_context(gmm, (4,))
    log_w, loc, sigma = documented_parameters(gmm, c)
    x = torch.randn(6, 4, 3, dtype=F64) * 2
    expected = manual_log_prob(log_w, loc, sigma, x)
    torch.testing.assert_close(gmm(c).log_prob(x), expected, atol=1e-10, rtol=1e-10)
    # The covariance structure is the one asked for.
    off = ~torch.eye(3, dtype=torch.bool)
    if kind != "full":
        assert (sigma[..., off] == 0).all()
    else:
        assert (sigma[..., off] != 0).all()
    if kind == "spherical":
        diagonal = sigma.diagonal(dim1=-2, dim2=-1)
        assert torch.equal(diagonal, diagonal[..., :1].expand_as(diagonal))
    shared = torch.equal(sigma, sigma[..., :1, :, :].expand_as(sigma))
    assert shared == tied


@pytest.mark.parametrize(("kind", "tied"), COVARIANCES)
@pytest.mark.parametrize("components", [1, 3])
def test_gmm_density_integrates_to_one(kind, tied, components):
    for context in (0, C):
        gmm = build_gmm(kind, tied, context, components=components, spread=0.5)
        c = gmm_context(gmm, (2,))
        _, loc, sigma = documented_parameters(gmm, c)
        reach = loc.abs().max() + 8 * sigma.diagonal(dim1=-2, dim2=-1).max().sqrt()
        edges = torch.linspace(-reach.item(), reach.item(), 501, dtype=F64)
        h = edges[1] - edges[0]
        centers = (edges[1:] + edges[:-1]) / 2
        grid = torch.stack(torch.meshgrid(centers, centers, indexing="ij"), dim=-1)
        grid = grid.reshape(-1, *[1] * (c is not None), 2)
        with torch.no_grad():
            mass = gmm(c).log_prob(grid).exp().sum(0) * h**2
        torch.testing.assert_close(mass, torch.ones_like(mass), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("kind", "tied"), COVARIANCES)
def test_gmm_samples_have_the_mixture_moments(kind, tied):
    gmm = build_gmm(kind, tied, features=3)
    log_w, loc, sigma = documented_parameters(gmm, None)
    w = log_w.exp().detach()
    loc, sigma = loc.detach(), sigma.detach()
    mean = (w[:, None] * loc).sum(0)
    second = (w[:, None, None] * (sigma + loc[:, :, None] * loc[:, None, :])).sum(0)
    cov = second - mean[:, None] * mean[None, :]

    torch.manual_seed(1)
    N = 40000
    x = gmm().sample((N,))
    standard_error = (cov.diagonal() / N).sqrt()
    assert ((x.mean(0) - mean).abs() < 5 * standard_error).all()
    centered = x - x.mean(0)
    products = centered[:, :, None] * centered[:, None, :]
    standard_error = products.std(0) / math.sqrt(N)
    assert ((products.mean(0) - cov).abs() < 5 * standard_error).all()


def clusters(g, per_cluster=200, std=0.5):
    truth = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=F64)
    x = truth.repeat_interleave(per_cluster, 0) + std * torch.randn(
        3 * per_cluster, 2, generator=g, dtype=F64
    )
    return x[torch.randperm(len(x), generator=g)], truth


@pytest.mark.parametrize(("kind", "tied"), COVARIANCES)
@pytest.mark.parametrize("context", [0, C])
def test_gmm_initialize_recovers_well_separated_clusters(kind, tied, context):
    x, truth = clusters(generator())
    gmm = build_gmm(kind, tied, context)
    gmm.initialize(x, generator=generator(1))
    c = gmm_context(gmm, (5,))
    log_w, loc, sigma = documented_parameters(gmm, c)
    if c is None:
        log_w, loc, sigma = log_w[None], loc[None], sigma[None]
    for i in range(loc.shape[0]):
        distance = torch.cdist(truth, loc[i].detach())  # (true, estimated)
        nearest = distance.argmin(dim=-1)
        assert sorted(nearest.tolist()) == [0, 1, 2]  # one component per cluster
        tolerance = 0.15 if context == 0 else 0.5
        assert (distance.min(dim=-1).values < tolerance).all()
        torch.testing.assert_close(
            log_w[i].exp().detach(), torch.full((3,), 1 / 3, dtype=F64), atol=0.02, rtol=0
        )
        variances = sigma[i].diagonal(dim1=-2, dim2=-1).detach()
        torch.testing.assert_close(variances, torch.full_like(variances, 0.25), atol=0.1, rtol=0)


def test_gmm_initialize_rejects_bad_data():
    gmm = build_gmm("full", False)
    with pytest.raises(ValueError, match=r"x of shape \(N, 2\) with N >= 3"):
        gmm.initialize(torch.randn(10, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"N >= 3"):
        gmm.initialize(torch.randn(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="strategy"):
        gmm.initialize(torch.randn(10, 2, dtype=F64), strategy="spectral")
    with pytest.raises(ValueError, match="finite"):
        gmm.initialize(torch.full((10, 2), math.nan, dtype=F64))


@pytest.mark.parametrize(("kind", "tied"), COVARIANCES)
@pytest.mark.parametrize("context", [0, C])
def test_gmm_gradients_reach_every_parameter(kind, tied, context):
    gmm = build_gmm(kind, tied, context)
    c = gmm_context(gmm, (8,))
    gmm(c).log_prob(torch.randn(8, 2, dtype=F64)).sum().backward()
    for key, p in gmm.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
        assert (p.grad != 0).any(), key


def test_gmm_short_fit_to_two_moons():
    g = generator()
    train, test = two_moons(2048, g), two_moons(1024, g)
    torch.manual_seed(0)
    gmm = GMM(2, components=8)
    optimizer = torch.optim.Adam(gmm.parameters(), lr=5e-2)
    for _ in range(100):
        batch = train[torch.randint(len(train), (256,), generator=g)]
        loss = -gmm().log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        nll = -gmm().log_prob(test).mean().item()
    assert nll < standard_normal_nll(test) - 0.5, nll
    assert nll < gaussian_nll(train, test) - 0.5, nll


def test_gmm_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"covariance_type to be one of .*'tril'"):
        GMM(2, covariance_type="tril")
    with pytest.raises(ValueError, match="epsilon"):
        GMM(2, epsilon=-1.0)
    with pytest.raises(TypeError, match="tied"):
        GMM(2, tied=1)
    gmm = build_gmm("full", False, context=C)
    with pytest.raises(ValueError, match=rf"GMM expects a context c of shape \(\*, {C}\)"):
        gmm(torch.randn(4, C + 1, dtype=F64))
    with pytest.raises(ValueError, match="GMM is conditional"):
        gmm()
    with pytest.raises(ValueError, match=r"GMM expects x .*\(2,\).*\(4, 3\)"):
        gmm(torch.randn(4, C, dtype=F64)).log_prob(torch.randn(4, 3, dtype=F64))
    with pytest.raises(ValueError, match="unconditional"):
        build_gmm("full", False)(torch.randn(C, dtype=F64))
