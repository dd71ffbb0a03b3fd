r"""Monotonic and polynomial transforms, and the neural and polynomial flows built on them."""

import math
from functools import partial

import numpy as np
import pytest
import torch
from scipy import integrate
from torch.autograd import gradcheck
from torch.autograd.functional import jacobian

from sbikit.flows.neural import MNN, NAF, UMNN, UNAF
from sbikit.flows.polynomial import BPF, SOSPF
from sbikit.lazy import Flow
from sbikit.transforms.base import call_and_ladj
from sbikit.transforms.elementwise import SoftclipTransform
from sbikit.transforms.monotonic import MonotonicTransform, UnconstrainedMonotonicTransform
from sbikit.transforms.polynomial import (
    BernsteinTransform,
    BoundedBernsteinTransform,
    SOSPolynomialTransform,
)

F64 = torch.float64
N = 7  # elements, each with its own parameters
B = 3.0  # bound of the Bernstein polynomials
POINTS = torch.tensor([-4.3, -2.9, -1.2, 0.1, 0.8, 2.2, 3.7], dtype=F64)  # some outside ±B


def randn(g, *shape, scale=1.0):
    return (scale * torch.randn(shape, generator=g, dtype=F64)).requires_grad_()


# Transform cases: parameters of batch shape (N,), and a builder (parameters, eps) -> transform.


def monotonic_parameters(g):
    return {"w0": randn(g, N), "w": randn(g, N, 3), "a": randn(g, N, 3), "b": randn(g, N, 3)}


def build_monotonic(p, eps=1e-6):
    def f(x):  # exp(w0) x + Σ_j exp(w_j) tanh(exp(a_j) x + b_j), increasing
        inner = p["a"].exp() * x.unsqueeze(-1) + p["b"]
        return p["w0"].exp() * x + (p["w"].exp() * torch.tanh(inner)).sum(-1)

    return MonotonicTransform(f, phi=tuple(p.values()), eps=eps)


def unconstrained_parameters(g):
    return {"w0": randn(g, N), "w": randn(g, N, 3), "a": randn(g, N, 3), "C": randn(g, N)}


def build_unconstrained(p, eps=1e-6):
    def g(u):  # exp(w0) + Σ_j exp(w_j) exp(-(u - a_j)^2) > 0
        bumps = p["w"].exp() * torch.exp(-(u.unsqueeze(-1) - p["a"]).square())
        return p["w0"].exp() + bumps.sum(-1)

    return UnconstrainedMonotonicTransform(g, p["C"], phi=(p["w0"], p["w"], p["a"]), eps=eps)


def sos_parameters(g):
    return {"a": randn(g, N, 2, 3, scale=0.5), "C": randn(g, N)}


def build_sos(p, eps=1e-6):
    return SOSPolynomialTransform(p["a"], p["C"], eps=eps)


def bernstein_parameters(g):
    return {"theta": randn(g, N, 6)}


def build_bernstein(p, eps=1e-6):
    return BernsteinTransform(p["theta"], bound=B, eps=eps)


def bounded_parameters(g):
    return {"theta": randn(g, N, 5)}


def build_bounded(p, eps=1e-6):
    return BoundedBernsteinTransform(p["theta"], bound=B, eps=eps)


CASES = {
    "monotonic": (monotonic_parameters, build_monotonic),
    "unconstrained": (unconstrained_parameters, build_unconstrained),
    "sos": (sos_parameters, build_sos),
    "bernstein": (bernstein_parameters, build_bernstein),
    "bounded-bernstein": (bounded_parameters, build_bounded),
}
TRANSFORMS = sorted(CASES)


def make(name, eps=1e-6):
    parameters, build = CASES[name]
    p = parameters(torch.Generator().manual_seed(TRANSFORMS.index(name)))
    return build(p, eps), p


@pytest.mark.parametrize("name", TRANSFORMS)
def test_round_trip_is_within_the_bisection_tolerance(name):
    for eps in (1e-6, 1e-12):
        t, _ = make(name, eps)
        y = t(POINTS)
        x = t.inv(y)
        assert torch.isfinite(y).all() and torch.isfinite(x).all()
        assert (x - POINTS).abs().max() <= eps
        assert (t(x) - y).abs().max() <= 1e3 * eps  # the slopes are below 1e3 here


def test_monotonic_call_and_ladj_evaluates_f_once():
    calls = []

    def f(x):
        calls.append(x.shape)
        return x + torch.sinh(x)

    t = MonotonicTransform(f)
    x = torch.tensor([-1.0, 0.5], dtype=F64, requires_grad=True)
    y, ladj = t.call_and_ladj(x)
    assert len(calls) == 1
    torch.testing.assert_close(y, x + torch.sinh(x), atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, torch.log(1 + torch.cosh(x)), atol=1e-12, rtol=0)
    (grad,) = torch.autograd.grad(ladj.sum(), x)  # the derivative keeps its graph
    torch.testing.assert_close(grad, torch.sinh(x) / (1 + torch.cosh(x)), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_call_and_ladj_matches_call_and_log_abs_det_jacobian(name):
    t, _ = make(name)
    y, ladj = call_and_ladj(t, POINTS)
    torch.testing.assert_close(y, t(POINTS), atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, t.log_abs_det_jacobian(POINTS, y), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_ladj_matches_autograd_derivative(name):
    t, _ = make(name)
    x = POINTS.clone().requires_grad_()
    (derivative,) = torch.autograd.grad(t(x).sum(), x)
    _, ladj = t.call_and_ladj(POINTS)
    # The unconstrained transform's ladj is log g(x), the derivative of the exact integral;
    # autograd differentiates the quadrature, accurate to about 1e-10 here.
    torch.testing.assert_close(ladj, derivative.log(), atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_inverse_ladj_is_minus_forward_ladj(name):
    t, _ = make(name, eps=1e-12)
    y, ladj = t.call_and_ladj(POINTS)
    x, ladj_inverse = t.inv.call_and_ladj(y)
    torch.testing.assert_close(x, POINTS, atol=1e-11, rtol=0)
    torch.testing.assert_close(ladj_inverse, -ladj, atol=1e-9, rtol=0)


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_gradients_reach_every_parameter(name, direction):
    t, p = make(name)
    x = POINTS.clone()
    if direction == "inverse":
        t, x = t.inv, t(x).detach()
    x.requires_grad_()
    y, ladj = t.call_and_ladj(x)
    weight = torch.rand(N, generator=torch.Generator().manual_seed(0), dtype=F64)
    ((weight * y).sum() + ladj.sum()).backward()
    for key, value in [("x", x), *p.items()]:
        assert value.grad is not None, key
        assert torch.isfinite(value.grad).all(), key
        assert value.grad.abs().sum() > 0, key


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_gradients_match_finite_differences(name, direction):
    # Both the outputs and the ladj, w.r.t. the inputs and every parameter; the inverse's
    # gradients are implicit (bisection), its tolerance is far below the step of 1e-6.
    parameters, build = CASES[name]
    p = parameters(torch.Generator().manual_seed(TRANSFORMS.index(name)))
    keys = list(p)
    x = POINTS.clone()
    if direction == "inverse":
        with torch.no_grad():
            x = build(p)(x)
    x.requires_grad_()

    def function(x, *values):
        t = build(dict(zip(keys, values, strict=True)), eps=1e-13)
        return t.call_and_ladj(x) if direction == "forward" else t.inv.call_and_ladj(x)

    assert gradcheck(function, (x, *p.values()), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transforms_are_increasing_bijections(name):
    t, _ = make(name)
    assert t.sign == 1 and t.bijective
    assert t.domain is torch.distributions.constraints.real
    x = torch.linspace(-6, 6, 301, dtype=F64)[:, None].expand(301, N)
    y, ladj = t.call_and_ladj(x)
    assert (y.diff(dim=0) > 0).all()
    assert torch.isfinite(ladj).all()


@pytest.mark.parametrize("name", TRANSFORMS)
def test_parameters_broadcast_against_the_inputs(name):
    t, _ = make(name)
    x = torch.stack((POINTS, POINTS.flip(0) / 2))  # (2, N) against parameters of shape (N,)
    y, ladj = t.call_and_ladj(x)
    x_back, ladj_inverse = t.inv.call_and_ladj(y)
    assert y.shape == ladj.shape == x_back.shape == ladj_inverse.shape == (2, N)
    torch.testing.assert_close(y[1], t(x[1]), atol=1e-12, rtol=0)
    torch.testing.assert_close(x_back, x, atol=1e-6, rtol=0)


def test_monotonic_transform_of_a_scalar_function_broadcast_by_its_parameters():
    scale = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    t = MonotonicTransform(lambda x: scale * x + x**3)
    y, ladj = t.call_and_ladj(torch.tensor(1.0, dtype=F64))
    assert y.shape == ladj.shape == (3,)
    torch.testing.assert_close(ladj, torch.log(scale + 3), atol=1e-12, rtol=0)
    torch.testing.assert_close(t.inv(y), torch.ones(3, dtype=F64), atol=1e-6, rtol=0)


def test_monotonic_transform_without_grad_returns_detached_values():
    w = torch.tensor([2.0], dtype=F64, requires_grad=True)
    t = MonotonicTransform(lambda x: w * x + torch.sinh(x), phi=(w,))
    x = torch.tensor([-1.0, 0.5], dtype=F64)
    with torch.no_grad():
        y, ladj = t.call_and_ladj(x)
        x_back = t.inv(y)
    assert not y.requires_grad and not ladj.requires_grad and not x_back.requires_grad
    torch.testing.assert_close(y, 2 * x + torch.sinh(x), atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, torch.log(2 + torch.cosh(x)), atol=1e-12, rtol=0)
    torch.testing.assert_close(x_back, x, atol=1e-6, rtol=0)


def test_flows_evaluate_in_inference_mode(name):
    # Autograd records nothing there: the monotonic networks' derivatives use forward mode.
    flow = build(name)
    c, x = context((4,)), points((4,))
    with torch.no_grad():
        expected = flow(c).log_prob(x)
    with torch.inference_mode():
        log_p = flow(c).log_prob(x)
        samples = flow(c).sample((2,))
    torch.testing.assert_close(log_p, expected, atol=1e-10, rtol=0)
    assert torch.isfinite(samples).all() and samples.shape == (2, 4, D)


def test_monotonic_inverse_saturates_inside_the_bracket():
    t = MonotonicTransform(torch.tanh, bound=5.0, eps=1e-6)  # f([-5, 5]) ≈ ±0.99991
    x = t.inv(torch.tensor([-0.99999, 0.0, 0.99999]))
    assert x[0] == -(5.0 - 1e-6) and x[2] == 5.0 - 1e-6  # strictly inside, so that a soft clip
    assert torch.isfinite(SoftclipTransform(5.0).inv(x)).all()  # of bound 5 stays finite
    assert x[1].abs() <= 1e-6


def test_implicit_gradients_of_a_monotonic_network_match_an_unrolled_newton_reference():
    # MNN: a MonotonicTransform of a MonotonicMLP. Newton's iterations from the bisection
    # solution converge to the same root, and autograd through them (unrolled, in float64)
    # gives the exact derivatives of the root w.r.t. every weight and the signal.
    torch.manual_seed(0)
    mnn = MNN(signal=3, hidden_features=(8, 8)).double()
    g = torch.Generator().manual_seed(1)
    signal = randn(g, N, 3)
    y = randn(g, N)
    weight = torch.rand(N, generator=g, dtype=F64)
    leaves = [y, signal, *mnn.parameters()]

    x = mnn(signal).inv(y)  # tolerance 1e-6
    implicit = torch.autograd.grad((weight * x).sum(), leaves)
    precise = MonotonicTransform(partial(mnn.f, signal), (signal, *mnn.parameters()), eps=1e-13)
    x_precise = precise.inv(y)
    implicit_precise = torch.autograd.grad((weight * x_precise).sum(), leaves)

    root = x.detach()
    for _ in range(6):
        root = root - (mnn.f(signal, root) - y) / value_slope(mnn, signal, root)
    unrolled = torch.autograd.grad((weight * root).sum(), leaves)

    torch.testing.assert_close(x, root, atol=1e-6, rtol=0)
    torch.testing.assert_close(x_precise, root, atol=1e-12, rtol=0)
    for a, b, reference in zip(implicit, implicit_precise, unrolled, strict=True):
        assert reference.abs().sum() > 0
        torch.testing.assert_close(a, reference, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(b, reference, atol=1e-10, rtol=1e-8)


def test_implicit_gradients_of_chained_inverses_count_every_path_once():
    # The second inverse's function depends on the first inverse's output and both share w,
    # as in the passes of an autoregressive inverse: gradients must match finite differences.
    def function(y, w, s):
        x1 = MonotonicTransform(lambda x: x + torch.tanh(w * x + s), phi=(w, s), eps=1e-13).inv(y)
        s2 = s * x1
        x2 = MonotonicTransform(lambda x: x + torch.tanh(w * x + s2), phi=(w, s2), eps=1e-13)
        return x2.inv(y)

    g = torch.Generator().manual_seed(5)
    y, w, s = randn(g, 4), randn(g, 4).exp().detach().requires_grad_(), randn(g, 4)
    assert gradcheck(function, (y, w, s), atol=1e-6, rtol=1e-4)


def value_slope(mnn, signal, x):
    # ∂f/∂x with a graph, for Newton's method.
    x = x if x.requires_grad else x.clone().requires_grad_()
    (slope,) = torch.autograd.grad(mnn.f(signal, x).sum(), x, create_graph=True)
    return slope


def test_unconstrained_monotonic_transform_integrates_its_integrand():
    t = UnconstrainedMonotonicTransform(torch.exp, C=2.0, n=16)
    x = torch.tensor([-3.0, 0.0, 1.5], dtype=F64)
    y, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(y, 2.0 + torch.expm1(x), atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, x, atol=1e-12, rtol=0)


def test_sos_polynomial_matches_numerical_integration():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(3, 4, generator=g, dtype=F64)  # 3 polynomials of degree 3
    t = SOSPolynomialTransform(a, C=0.5, slope=0.01)

    def integrand(u):
        return 0.01 + sum(np.polynomial.polynomial.polyval(u, row) ** 2 for row in a.numpy())

    for x in (-1.7, 0.3, 2.1):
        expected = 0.5 + integrate.quad(integrand, 0.0, x, epsabs=1e-13, epsrel=1e-13)[0]
        y, ladj = t.call_and_ladj(torch.tensor(x, dtype=F64))
        assert math.isclose(y.item(), expected, rel_tol=1e-11, abs_tol=1e-11)
        assert math.isclose(ladj.item(), math.log(integrand(x)), rel_tol=1e-12)


def test_sos_polynomial_with_zero_slope_is_the_paper_flow():
    a = torch.tensor([[0.0, 2.0]], dtype=F64)  # f(x) = C + ∫ 4u^2 du, flat at 0
    t = SOSPolynomialTransform(a, C=0.0, slope=0.0)
    y, ladj = t.call_and_ladj(torch.tensor([-1.5, 0.0, 1.5], dtype=F64))
    torch.testing.assert_close(y, torch.tensor([-4.5, 0.0, 4.5], dtype=F64))
    assert ladj[1] == -math.inf and torch.isfinite(ladj[[0, 2]]).all()


def bernstein_reference(beta, x, bound):
    # Explicit basis, float64 numpy: Σ_k β_k C(M, k) t^k (1 - t)^(M - k) and its derivative.
    M = len(beta) - 1
    t = (x + bound) / (2 * bound)
    value = sum(b * math.comb(M, k) * t**k * (1 - t) ** (M - k) for k, b in enumerate(beta))
    increments = np.diff(beta)
    slope = sum(
        d * math.comb(M - 1, k) * t**k * (1 - t) ** (M - 1 - k) for k, d in enumerate(increments)
    )
    return value, slope * M / (2 * bound)


def test_bernstein_matches_the_explicit_basis_and_extends_linearly():
    theta = torch.tensor([-1.0, 0.3, -2.0, 1.5, 0.0, 0.7], dtype=F64)
    t = BernsteinTransform(theta, bound=B)
    softplus = np.log1p(np.exp(theta.numpy()[1:]))
    beta = np.concatenate(([-1.0], -1.0 + np.cumsum(softplus)))
    for x in (-2.5, -0.4, 1.9):
        value, slope = bernstein_reference(beta, x, B)
        y, ladj = t.call_and_ladj(torch.tensor(x, dtype=F64))
        assert math.isclose(y.item(), value, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(ladj.item(), math.log(slope), rel_tol=1e-12, abs_tol=1e-12)
    for side in (-1, 1):
        value, slope = bernstein_reference(beta, side * B, B)
        x = torch.tensor([side * B, side * (B + 1), side * (B + 2.5)], dtype=F64)
        y, ladj = t.call_and_ladj(x)
        expected = value + slope * (x - side * B)  # the tangent at the bound
        torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(ladj, torch.full_like(x, math.log(slope)), atol=1e-12, rtol=0)


def test_bounded_bernstein_maps_the_interval_onto_itself_and_is_the_identity_outside():
    theta = torch.tensor([1.0, -2.0, 0.5, 3.0, -0.5], dtype=F64)
    t = BoundedBernsteinTransform(theta, bound=B)
    assert t.degree == theta.shape[-1] + 2
    outside = torch.tensor([-10.0, -B - 1e-9, B + 1e-9, 7.0], dtype=F64)
    y, ladj = t.call_and_ladj(outside)
    assert torch.equal(y, outside) and torch.equal(ladj, torch.zeros_like(ladj))
    assert torch.equal(t.inv(outside), outside)
    ends = t(torch.tensor([-B, B], dtype=F64))
    torch.testing.assert_close(ends, torch.tensor([-B, B], dtype=F64), atol=1e-12, rtol=0)
    # C^1 at the bounds: unit slopes on both sides.
    _, ladj = t.call_and_ladj(torch.tensor([-B + 1e-7, B - 1e-7], dtype=F64))
    torch.testing.assert_close(ladj, torch.zeros(2, dtype=F64), atol=1e-5, rtol=0)
    inside = torch.linspace(-B, B, 101, dtype=F64)
    y = t(inside)
    assert (y.diff() > 0).all() and y.min() >= -B - 1e-12 and y.max() <= B + 1e-12
    assert (y - inside).abs().max() > 0.1  # not the identity inside


def test_bounded_bernstein_with_zero_parameters_is_the_identity():
    t = BoundedBernsteinTransform(torch.zeros(4, dtype=F64), bound=B)
    x = torch.linspace(-B, B, 13, dtype=F64)
    y, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, torch.zeros_like(x), atol=1e-12, rtol=0)


def test_float32_transforms_stay_accurate():
    g = torch.Generator().manual_seed(4)
    x = torch.linspace(-4.0, 4.0, 21)
    for build in (
        lambda: SOSPolynomialTransform(0.3 * torch.randn(2, 3, generator=g), 0.5),
        lambda: BernsteinTransform(torch.randn(8, generator=g), bound=B),
        lambda: BoundedBernsteinTransform(torch.randn(6, generator=g), bound=B),
        lambda: MonotonicTransform(lambda u: u + torch.tanh(u)),
    ):
        t = build()
        y, ladj = t.call_and_ladj(x)
        x_back, ladj_inverse = t.inv.call_and_ladj(y)
        assert y.dtype == ladj.dtype == x_back.dtype == torch.float32
        torch.testing.assert_close(x_back, x, atol=1e-5, rtol=0)
        torch.testing.assert_close(ladj_inverse, -ladj, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: MonotonicTransform(3.0), TypeError),
        (lambda: MonotonicTransform(torch.tanh, phi=(1.0,)), TypeError),
        (lambda: MonotonicTransform(torch.tanh, bound=0.0), ValueError),
        (lambda: MonotonicTransform(torch.tanh, bound=1.0, eps=2.0), ValueError),
        (lambda: UnconstrainedMonotonicTransform(None, 0.0), TypeError),
        (lambda: UnconstrainedMonotonicTransform(torch.exp, "0"), TypeError),
        (lambda: UnconstrainedMonotonicTransform(torch.exp, 0.0, n=0), ValueError),
        (lambda: SOSPolynomialTransform(torch.zeros(3), 0.0), ValueError),
        (lambda: SOSPolynomialTransform(torch.zeros(2, 3), 0.0, slope=-1.0), ValueError),
        (lambda: SOSPolynomialTransform(torch.zeros(4, 2, 3), torch.zeros(3)), ValueError),
        (lambda: SOSPolynomialTransform([[0.0]], 0.0), TypeError),
        (lambda: BernsteinTransform(torch.zeros(1)), ValueError),
        (lambda: BernsteinTransform(torch.zeros(4), bound=-1.0), ValueError),
        (lambda: BoundedBernsteinTransform(torch.zeros(1)), ValueError),
    ],
)
def test_bad_arguments_raise_clear_errors(build, error):
    with pytest.raises(error, match=r"expects|must"):
        build()


def test_bad_inputs_raise_clear_errors():
    t = SOSPolynomialTransform(torch.zeros(1, 2, dtype=F64), 0.0)
    with pytest.raises(TypeError, match="dtype"):
        t(torch.zeros(3, dtype=torch.float32))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        MonotonicTransform(torch.tanh)([0.0])
    with pytest.raises(TypeError, match="dtype"):
        BernsteinTransform(torch.zeros(4, dtype=F64)).inv(torch.zeros(2, dtype=torch.float32))


# Flows

D, C = 3, 2
FLOWS = {
    "NAF": lambda f, c: NAF(
        f, c, transforms=2, signal=4, network={"hidden_features": (8,)}, hidden_features=(16,)
    ),
    "UNAF": lambda f, c: UNAF(
        f, c, transforms=2, signal=4, network={"hidden_features": (8,)}, hidden_features=(16,)
    ),
    "SOSPF": lambda f, c: SOSPF(f, c, degree=3, polynomials=2, transforms=2, hidden_features=(16,)),
    "BPF": lambda f, c: BPF(f, c, degree=6, transforms=2, randperm=True, hidden_features=(16,)),
}
NAMES = sorted(FLOWS)


def build(name, context=C, seed=0):
    torch.manual_seed(seed)
    return FLOWS[name](D, context).to(F64)


def points(shape, seed=0):
    return torch.randn(*shape, D, generator=torch.Generator().manual_seed(seed), dtype=F64)


def context(shape, seed=1):
    return torch.randn(*shape, C, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


@pytest.mark.parametrize(("sample", "batch"), [((), ()), ((5,), (4,)), ((2, 3), (2, 1))])
def test_sample_and_log_prob_shapes(name, sample, batch):
    flow = build(name)
    q = flow(context(batch))
    assert q.batch_shape == batch and q.event_shape == (D,)
    x = q.sample(sample)
    assert x.shape == sample + batch + (D,)
    log_p = q.log_prob(x)
    assert log_p.shape == sample + batch and torch.isfinite(log_p).all()
    assert q.log_prob(points((6, *batch))).shape == (6, *batch)


def test_unconditional(name):
    flow = build(name, context=0)
    q = flow()
    assert q.batch_shape == () and q.sample((7,)).shape == (7, D)
    assert torch.isfinite(q.log_prob(points((7,)))).all()
    with pytest.raises(ValueError, match="unconditional"):
        flow(context(()))


def test_log_prob_gradients_reach_every_parameter(name):
    flow = build(name)
    flow(context((8,))).log_prob(points((8,))).sum().backward()
    for key, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
        assert p.grad.abs().sum() > 0, key


def test_rsample_gradients_reach_every_parameter(name):
    flow = build(name)
    x = flow(context((4,))).rsample((3,))
    assert x.shape == (3, 4, D)
    x.square().sum().backward()
    for key, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
        assert p.grad.abs().sum() > 0, key


def test_rsample_and_log_prob_equals_log_prob(name):
    flow = build(name)
    q = flow(context((4,)))
    x, log_p = q.rsample_and_log_prob((6,))
    assert x.shape == (6, 4, D)
    # The inverse is accurate to the bisection tolerance, 1e-6.
    torch.testing.assert_close(log_p, q.log_prob(x), atol=1e-4, rtol=0)


def test_inverse_round_trip_and_ladj_against_autograd(name):
    flow = build(name)
    t = flow(context(())).transform
    x = points((4,))
    z, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(t.inv(z), x, atol=1e-5, rtol=0)
    for i in range(len(x)):
        J = jacobian(t, x[i])
        # UNAF's ladj is the log of its integrand, the derivative of the exact integral that
        # its 32-point quadrature approximates (ELU networks are not smooth: to about 1e-5);
        # the others are exact.
        expected = torch.linalg.slogdet(J).logabsdet
        atol = 1e-4 if name == "UNAF" else 1e-9
        torch.testing.assert_close(ladj[i], expected, atol=atol, rtol=0)


def test_naf_jacobian_is_triangular_in_the_order_and_gives_the_ladj():
    # A smooth hyper-network (no dead ReLU units), so that every allowed entry is non-zero.
    torch.manual_seed(0)
    flow = NAF(D, C, transforms=2, signal=4, hidden_features=(16,), activation=torch.nn.ELU)
    flow = flow.to(F64)
    c = context(())
    first, clip, second = flow.transform.transforms  # orders: identity, then reversed
    assert isinstance(clip(c), SoftclipTransform)
    x = points((), seed=3)
    above = torch.triu(torch.ones(D, D, dtype=torch.bool), diagonal=1)
    # y_i depends on the x_j before x_i in the order: J is lower triangular for the identity
    # order, upper triangular for the reversed one.
    for layer, forbidden in ((first, above), (second, above.T)):
        t = layer(c)
        J = jacobian(t, x)
        assert (J[forbidden] == 0).all()
        assert (J[forbidden.T] != 0).all()  # every allowed dependency is used
        assert (J.diagonal() > 0).all()
        _, ladj = t.call_and_ladj(x)
        torch.testing.assert_close(ladj, torch.linalg.slogdet(J).logabsdet, atol=1e-10, rtol=0)
        torch.testing.assert_close(ladj, J.diagonal().log().sum(), atol=1e-10, rtol=0)
        x = clip(c)(t(x))


def test_naf_monotonic_networks_start_with_a_unit_mean_slope():
    torch.manual_seed(0)
    mnn = MNN(signal=5)
    ends = mnn.f(torch.zeros(5), torch.tensor([-10.0, 10.0]))
    assert math.isclose((ends[1] - ends[0]).item(), 20.0, rel_tol=1e-5)


def test_umnn_integrand_is_positive():
    torch.manual_seed(0)
    umnn = UMNN(signal=2, hidden_features=(8,))
    with torch.no_grad():
        for p in umnn.parameters():
            p.mul_(20)  # large weights: the integrand's network output is far below zero
    h = umnn.integrand(torch.cat((torch.linspace(-20, 20, 50)[:, None], torch.randn(50, 2)), -1))
    g = umnn.g(torch.randn(50, 2), torch.linspace(-20, 20, 50))
    assert h.min() < -100  # where ELU(h) + 1 underflows to zero in float32
    assert (g >= 1e-3).all()


def test_state_dict_round_trip(name):
    flow = build(name, seed=0)
    fresh = build(name, seed=1)
    c, x = context((4,)), points((4,))
    assert not torch.equal(fresh(c).log_prob(x), flow(c).log_prob(x))
    fresh.load_state_dict(flow.state_dict())
    assert torch.equal(fresh(c).log_prob(x), flow(c).log_prob(x))


def test_wrong_sizes_raise_value_errors_naming_the_shapes(name):
    flow = build(name)
    expected = type(flow).__name__
    with pytest.raises(ValueError, match=rf"{expected} expects a context c of shape \(\*, {C}\)"):
        flow(context((4,))[..., :1])
    with pytest.raises(ValueError, match=rf"{expected} is conditional"):
        flow()
    with pytest.raises(ValueError, match=rf"{expected} expects x .*\({D},\).*\(4, {D + 1}\)"):
        flow(context((4,))).log_prob(torch.randn(4, D + 1, dtype=F64))


@pytest.mark.parametrize(
    ("build_flow", "error"),
    [
        (lambda: NAF(2, network=[16]), TypeError),
        (lambda: UNAF(2, signal=0), ValueError),
        (lambda: NAF(0), ValueError),
        (lambda: SOSPF(2, polynomials=0), ValueError),
        (lambda: BPF(2, degree=3), ValueError),
        (lambda: BPF(2, transforms=0), ValueError),
    ],
)
def test_bad_flow_arguments_raise_clear_errors(build_flow, error):
    with pytest.raises(error, match="expects"):
        build_flow()


def two_moons(n, generator):
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.stack((angle.cos(), angle.sin()), dim=-1)
    x = torch.where(upper[:, None], x, torch.stack((1 - angle.cos(), 0.5 - angle.sin()), -1))
    return x + 0.05 * torch.randn(n, 2, generator=generator)


FIT = {
    "NAF": lambda: NAF(
        2, transforms=2, signal=8, network={"hidden_features": (16, 16)}, hidden_features=(32, 32)
    ),
    "UNAF": lambda: UNAF(
        2, transforms=2, signal=8, network={"hidden_features": (16, 16)}, hidden_features=(32, 32)
    ),
    "SOSPF": lambda: SOSPF(2, transforms=3, hidden_features=(32, 32)),
    "BPF": lambda: BPF(2, transforms=3, hidden_features=(32, 32)),
}


@pytest.mark.parametrize("flow_name", sorted(FIT))
def test_short_fit_to_two_moons_beats_the_base_and_the_best_gaussian(flow_name):
    generator = torch.Generator().manual_seed(0)
    train, test = two_moons(2048, generator), two_moons(1024, generator)
    torch.manual_seed(0)
    flow: Flow = FIT[flow_name]()
    optimizer = torch.optim.Adam(flow.parameters(), lr=5e-3)
    for _ in range(300):
        batch = train[torch.randint(len(train), (256,), generator=generator)]
        loss = -flow().log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        nll = -flow().log_prob(test).mean().item()
    base = -torch.distributions.Normal(0.0, 1.0).log_prob(test).sum(-1).mean().item()
    gaussian = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    best_gaussian = -gaussian.log_prob(test).mean().item()
    # The standard-normal base scores about 2.5 nats and the best Gaussian about 1.9; the
    # Monte-Carlo standard error of a 1024-point NLL is about 0.03 nats.
    assert nll < base - 0.3 * abs(base), (nll, base)
    assert nll < best_gaussian - 0.3, (nll, best_gaussian)
