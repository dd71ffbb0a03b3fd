import math

import pytest
import torch
import torch.nn as nn
from torch.autograd.functional import jacobian
from torch.distributions import AffineTransform, ExpTransform

from sbikit._validation import broadcast_shapes
from sbikit.transforms import (
    AdditiveTransform,
    AutoregressiveTransform,
    CircularShiftTransform,
    ComposedTransform,
    CouplingTransform,
    DependentTransform,
    GaussianizationTransform,
    IdentityTransform,
    InverseTransform,
    LULinearTransform,
    MonotonicAffineTransform,
    MonotonicRQSTransform,
    PermutationTransform,
    RotationTransform,
    SignedPowerTransform,
    SoftBoxTransform,
    SoftclipTransform,
    Transform,
    call_and_ladj,
)

F64 = torch.float64
D = 3  # features
K = 5  # spline bins
ATOL = 1e-8  # float64 tolerance of round trips and log-determinants


def randn(g, *shape, scale=1.0, grad=True, dtype=F64):
    # Drawn in float64 then cast, so that one seed gives the same values in every dtype.
    x = scale * torch.randn(shape, generator=g, dtype=F64)
    return x.to(dtype).requires_grad_(grad)


def uniform(g, shape, low, high):
    return low + (high - low) * torch.rand(shape, generator=g, dtype=F64)


def spline_parameters(g, *batch, dtype=F64, grad=True):
    return (
        randn(g, *batch, K, dtype=dtype, grad=grad),
        randn(g, *batch, K, dtype=dtype, grad=grad),
        randn(g, *batch, K - 1, dtype=dtype, grad=grad),
    )


class LinearAutoregressive:
    """A strictly autoregressive linear hyper-network: the parameters of feature i depend
    only on the features that come before i in ``order``."""

    def __init__(self, g, parameters, order, dtype=F64):
        rank = torch.argsort(order)
        self.mask = (rank[None, :] < rank[:, None]).to(dtype)  # mask[i, j]: j comes before i
        self.weight = randn(g, D, parameters, D, scale=0.5, dtype=dtype)
        self.bias = randn(g, D, parameters, dtype=dtype)
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        weight = self.weight * self.mask[:, None, :]
        return torch.einsum("ipj,...j->...ip", weight, x) + self.bias


def autoregressive_affine(g):
    net = LinearAutoregressive(g, 2, torch.arange(D))

    def meta(x):
        p = net(x)
        return MonotonicAffineTransform(p[..., 0], p[..., 1], slope=1e-2)

    return AutoregressiveTransform(meta, passes=D), net


def autoregressive_rqs(g, dtype=F64):
    net = LinearAutoregressive(g, 3 * K - 1, torch.tensor([2, 0, 1]), dtype=dtype)

    def meta(x):
        p = net(x)
        return MonotonicRQSTransform(p[..., :K], p[..., K : 2 * K], p[..., 2 * K :], bound=3.0)

    return AutoregressiveTransform(meta, passes=D), net


class LinearCouplingMeta(nn.Module):
    def __init__(self, features_a, features_b, spline):
        super().__init__()
        self.spline = spline
        per_feature = 3 * K - 1 if spline else 2
        self.linear = nn.Linear(features_a, features_b * per_feature, dtype=F64)
        self.features_b = features_b
        self.calls = 0

    def forward(self, x_a):
        self.calls += 1
        p = self.linear(x_a).unflatten(-1, (self.features_b, -1))
        if self.spline:
            return MonotonicRQSTransform(p[..., :K], p[..., K : 2 * K], p[..., 2 * K :], 3.0)
        return MonotonicAffineTransform(p[..., 0], p[..., 1])


def coupling(g, spline, dtype=F64):
    mask = torch.tensor([True, False, True])
    meta = LinearCouplingMeta(2, 1, spline)
    with torch.no_grad():
        for p in meta.parameters():
            p.copy_(randn(g, *p.shape, scale=0.5, grad=False))
    meta = meta.to(dtype)
    return CouplingTransform(meta, mask), meta


# Each case maps (generator, batch shape) to (transform, x of shape batch + (D,), parameters).
def case_identity(g, shape):
    return IdentityTransform(), randn(g, *shape, D, grad=False), []


def case_additive(g, shape):
    shift = randn(g, D)
    return AdditiveTransform(shift), randn(g, *shape, D, grad=False), [shift]


def case_monotonic_affine(g, shape):
    shift, scale = randn(g, D), randn(g, D, scale=3.0)
    t = MonotonicAffineTransform(shift, scale, slope=1e-2)
    return t, randn(g, *shape, D, grad=False), [shift, scale]


def case_softclip(g, shape):
    return SoftclipTransform(2.0), randn(g, *shape, D, scale=3.0, grad=False), []


def case_softclip_inverse(g, shape):
    return SoftclipTransform(2.0).inv, uniform(g, (*shape, D), -1.9, 1.9), []


def case_soft_box(g, shape):
    lower = uniform(g, (D,), -3.0, -1.0)
    upper = lower + uniform(g, (D,), 0.5, 4.0)
    return SoftBoxTransform(lower, upper, 4.0), randn(g, *shape, D, scale=2.0, grad=False), []


def case_soft_box_inverse(g, shape):
    return SoftBoxTransform(-1.0, 2.0).inv, uniform(g, (*shape, D), -0.99, 1.99), []


def case_circular_shift(g, shape):
    return CircularShiftTransform(), uniform(g, (*shape, D), -math.pi, math.pi), []


def case_signed_power(g, shape):
    alpha = randn(g, D, scale=0.5, grad=False).exp().requires_grad_()
    return SignedPowerTransform(alpha), randn(g, *shape, D, grad=False), [alpha]


def case_rqs(g, shape):
    params = spline_parameters(g, D)
    t = MonotonicRQSTransform(*params, bound=3.0)
    return t, randn(g, *shape, D, scale=2.5, grad=False), list(params)


def case_rqs_inverse(g, shape):
    t, x, params = case_rqs(g, shape)
    return t.inv, x, params


def case_permutation(g, shape):
    return PermutationTransform(torch.tensor([2, 0, 1])), randn(g, *shape, D, grad=False), []


def case_rotation(g, shape):
    A = randn(g, D, D)
    return RotationTransform(A), randn(g, *shape, D, grad=False), [A]


def lu_parameter(g):
    LU = randn(g, D, D, scale=0.5, grad=False) + torch.diag(
        torch.tensor([1.5, -2.0, 0.7], dtype=F64)
    )
    return LU.requires_grad_()


def case_lu(g, shape):
    LU = lu_parameter(g)
    return LULinearTransform(LU), randn(g, *shape, D, grad=False), [LU]


def case_lu_inverse(g, shape):
    t, x, params = case_lu(g, shape)
    return t.inv, x, params


def case_composed(g, shape):
    shift, scale, LU = randn(g, D), randn(g, D), lu_parameter(g)
    params = spline_parameters(g, D)
    t = ComposedTransform(
        MonotonicAffineTransform(shift, scale),
        LULinearTransform(LU),
        MonotonicRQSTransform(*params, bound=3.0),
    )
    return t, randn(g, *shape, D, grad=False), [shift, scale, LU, *params]


def case_composed_torch(g, shape):
    loc, scale = randn(g, D), randn(g, D, grad=False).exp().requires_grad_()
    t = ComposedTransform(ExpTransform(), AffineTransform(loc, scale))
    return t, randn(g, *shape, D, grad=False), [loc, scale]


def case_dependent(g, shape):
    params = spline_parameters(g, D)
    t = DependentTransform(MonotonicRQSTransform(*params, bound=3.0), 1)
    return t, randn(g, *shape, D, scale=2.0, grad=False), list(params)


def case_torch_exp(g, shape):
    return ExpTransform(), randn(g, *shape, D, grad=False), []


def case_torch_affine(g, shape):
    loc, scale = randn(g, D), randn(g, D)
    return AffineTransform(loc, scale), randn(g, *shape, D, grad=False), [loc, scale]


def case_autoregressive_affine(g, shape):
    t, net = autoregressive_affine(g)
    return t, randn(g, *shape, D, grad=False), [net.weight, net.bias]


def case_autoregressive_rqs(g, shape):
    t, net = autoregressive_rqs(g)
    return t, randn(g, *shape, D, scale=2.0, grad=False), [net.weight, net.bias]


def case_coupling_affine(g, shape):
    t, meta = coupling(g, spline=False)
    return t, randn(g, *shape, D, grad=False), list(meta.parameters())


def case_coupling_rqs(g, shape):
    t, meta = coupling(g, spline=True)
    return t, randn(g, *shape, D, scale=2.0, grad=False), list(meta.parameters())


def case_coupling_inverse(g, shape):
    t, x, params = case_coupling_rqs(g, shape)
    return t.inv, x, params


def case_gaussianization(g, shape):
    shift, scale = randn(g, D, 4, scale=2.0), randn(g, D, 4, scale=0.7)
    t = GaussianizationTransform(shift, scale)
    return t, randn(g, *shape, D, scale=2.0, grad=False), [shift, scale]


def case_gaussianization_inverse(g, shape):
    t, x, params = case_gaussianization(g, shape)
    return t.inv, x, params


CASES = {name.removeprefix("case_"): f for name, f in globals().items() if name.startswith("case_")}
NAMES = sorted(CASES)
ELEMENTWISE_INCREASING = [
    "additive",
    "monotonic_affine",
    "softclip",
    "softclip_inverse",
    "soft_box",
    "soft_box_inverse",
    "signed_power",
    "rqs",
    "rqs_inverse",
    "torch_exp",
]


def make(name, shape=(5,)):
    g = torch.Generator().manual_seed(NAMES.index(name))
    return CASES[name](g, tuple(shape))


WITH_PARAMETERS = [name for name in NAMES if make(name)[2]]


# Transforms whose inverse is iterative (bisection, ODE integration) are held to the same
# contract, with tolerances set by their solvers, in these files.
TESTED_ELSEWHERE = {
    "BernsteinTransform": "tests/test_monotonic.py",
    "BoundedBernsteinTransform": "tests/test_monotonic.py",
    "FreeFormJacobianTransform": "tests/test_continuous.py",
    "MonotonicTransform": "tests/test_monotonic.py",
    "SOSPolynomialTransform": "tests/test_monotonic.py",
    "UnconstrainedMonotonicTransform": "tests/test_monotonic.py",
}


def test_every_transform_has_a_case():
    import sbikit.transforms as module

    classes = {
        obj
        for name in module.__all__
        if isinstance(obj := getattr(module, name), type)
        and issubclass(obj, Transform)
        and obj is not Transform
    }
    covered = set()
    for name in NAMES:
        stack = [make(name)[0]]
        while stack:
            t = stack.pop()
            covered.add(type(t))
            stack.extend(getattr(t, "transforms", ()))
            stack.extend([t.base] if isinstance(t, DependentTransform) else [])
            stack.extend([t.inv] if isinstance(t, InverseTransform) else [])
    elsewhere = {getattr(module, name) for name in TESTED_ELSEWHERE}
    assert classes - covered - elsewhere == set()


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name):
    t, x, _ = make(name)
    y = t(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(t.inv(y), x, atol=ATOL, rtol=0)
    torch.testing.assert_close(t(t.inv(y)), y, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_call_and_ladj_matches_call_and_log_abs_det_jacobian(name):
    t, x, _ = make(name)
    y, ladj = call_and_ladj(t, x)
    torch.testing.assert_close(y, t(x), atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, t.log_abs_det_jacobian(x, t(x)), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_ladj_matches_autograd_jacobian(name):
    t, x, _ = make(name, (2,))
    _, ladj = call_and_ladj(t, x)
    if t.domain.event_dim == 0:
        J = jacobian(lambda v: t(v), x).reshape(x.numel(), x.numel())
        diagonal = torch.diagonal(J)
        torch.testing.assert_close(J, torch.diag(diagonal), atol=1e-12, rtol=0)
        torch.testing.assert_close(ladj.flatten(), diagonal.abs().log(), atol=ATOL, rtol=0)
    else:
        assert t.domain.event_dim == 1
        for i in range(x.shape[0]):
            J = jacobian(lambda v: t(v), x[i])
            torch.testing.assert_close(ladj[i], torch.linalg.slogdet(J)[1], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_inverse_ladj_is_minus_forward_ladj(name):
    t, x, _ = make(name)
    y, ladj = call_and_ladj(t, x)
    x_back, ladj_inverse = call_and_ladj(t.inv, y)
    torch.testing.assert_close(x_back, x, atol=ATOL, rtol=0)
    torch.testing.assert_close(ladj_inverse, -ladj, atol=ATOL, rtol=0)


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", WITH_PARAMETERS)
def test_gradients_reach_every_parameter(name, direction):
    t, x, params = make(name)
    if direction == "inverse":
        t, x = t.inv, t(x).detach()
    x = x.clone().requires_grad_()
    y, ladj = call_and_ladj(t, x)
    weight = torch.rand(y.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    ((weight * y).sum() + ladj.sum()).backward()
    for p in [x, *params]:
        assert p.grad is not None
        assert torch.isfinite(p.grad).all()
        assert p.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
@pytest.mark.parametrize("name", NAMES)
def test_shapes(name, shape):
    t, x, _ = make(name, shape)
    assert x.shape == (*shape, D)
    y, ladj = call_and_ladj(t, x)
    x_back, ladj_inverse = call_and_ladj(t.inv, y)
    expected = x.shape if t.domain.event_dim == 0 else x.shape[:-1]
    assert y.shape == x.shape and x_back.shape == x.shape
    assert ladj.shape == expected and ladj_inverse.shape == expected
    assert t.codomain.event_dim == t.domain.event_dim
    assert t.bijective


@pytest.mark.parametrize("name", ELEMENTWISE_INCREASING)
def test_elementwise_increasing_transforms_have_sign_one(name):
    t, x, _ = make(name, (50,))
    assert t.sign == 1
    x, _ = x.sort(dim=0)
    assert (t(x).diff(dim=0) > 0).all()


# Element-wise transforms


def test_additive_and_signed_power_values():
    x = torch.tensor([-3.0, -0.5, 0.0, 2.0], dtype=F64)
    assert torch.equal(AdditiveTransform(1.5)(x), x + 1.5)
    t = SignedPowerTransform(torch.tensor(2.0, dtype=F64))
    torch.testing.assert_close(t(x), x * x.abs())
    y = torch.tensor([-4.0, 9.0], dtype=F64)
    torch.testing.assert_close(t.inv(y), torch.tensor([-2.0, 3.0], dtype=F64))
    t = SignedPowerTransform(torch.tensor([0.5, 3.0], dtype=F64))
    torch.testing.assert_close(t(y), torch.tensor([-2.0, 729.0], dtype=F64))


def test_monotonic_affine_slope_is_bounded():
    slope = 1e-2
    scale = torch.tensor([-1e8, -1e3, -10.0, -1.0, 0.0, 1.0, 10.0, 1e3, 1e8], dtype=F64)
    t = MonotonicAffineTransform(torch.zeros_like(scale), scale, slope=slope)
    x = torch.ones_like(scale)
    y, ladj = t.call_and_ladj(x)
    factor = ladj.exp()
    assert (factor > slope).all() and (factor < 1 / slope).all()
    assert (factor.diff() > 0).all()  # increasing in the raw scale
    torch.testing.assert_close(
        factor[[0, -1]], torch.tensor([slope, 1 / slope], dtype=F64), rtol=1e-6, atol=0
    )
    assert factor[4] == 1.0
    torch.testing.assert_close(y, factor * x)
    torch.testing.assert_close(t.inv(y), x, rtol=1e-12, atol=0)


def test_softclip_maps_onto_the_interval():
    t = SoftclipTransform(bound=3.0)
    x = torch.tensor([-1e12, -3.0, 0.0, 1.0, 1e12], dtype=F64)
    y = t(x)
    torch.testing.assert_close(y, x / (1 + x.abs() / 3.0))
    assert t.codomain.check(y).all()
    assert t.domain.check(x).all()
    assert not t.codomain.check(torch.tensor(3.5, dtype=F64))


def test_circular_shift_is_an_involution_on_its_interval():
    bound = 2.0
    t = CircularShiftTransform(bound)
    g = torch.Generator().manual_seed(0)
    x = uniform(g, (1000,), -bound, bound)
    y = t(x)
    expected = torch.where(x < 0, x + bound, x - bound)  # a half-turn of the circle
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)
    assert ((y >= -bound) & (y < bound)).all()
    torch.testing.assert_close(t(y), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(t.inv(x), y, atol=1e-12, rtol=0)
    assert t.domain.check(torch.tensor(-bound)) and not t.domain.check(torch.tensor(bound))


# Spline


def scalar_spline(g, bound=2.0, scale=1.0, dtype=F64):
    w, h, d = (scale * p for p in spline_parameters(g, dtype=dtype, grad=False))
    return MonotonicRQSTransform(w, h, d, bound=bound)


def test_spline_is_the_identity_outside_its_bound():
    t = scalar_spline(torch.Generator().manual_seed(1), bound=2.0)
    x = torch.tensor([-1e6, -10.0, -2.0 - 1e-9, 2.0 + 1e-9, 3.0, 1e6], dtype=F64)
    y, ladj = t.call_and_ladj(x)
    assert torch.equal(y, x)
    assert torch.equal(ladj, torch.zeros_like(x))
    x_back, ladj_inverse = t.inv.call_and_ladj(x)
    assert torch.equal(x_back, x) and torch.equal(ladj_inverse, torch.zeros_like(x))


def test_spline_is_continuous_at_its_bound():
    t = scalar_spline(torch.Generator().manual_seed(2), bound=2.0, scale=3.0)
    eps = 1e-9
    for b in (-2.0, 2.0):
        x = torch.tensor([b - eps, b, b + eps], dtype=F64)
        y, ladj = t.call_and_ladj(x)
        assert y[1] == b  # the end knots are exact
        torch.testing.assert_close(y, x, atol=1e-8, rtol=0)
        torch.testing.assert_close(ladj, torch.zeros_like(x), atol=1e-6, rtol=0)


def test_spline_is_monotonic_and_maps_the_interval_onto_itself():
    g = torch.Generator().manual_seed(3)
    for scale in (1.0, 10.0):
        t = scalar_spline(g, bound=2.0, scale=scale)
        x = torch.linspace(-3.0, 3.0, 2001, dtype=F64)
        y, ladj = t.call_and_ladj(x)
        assert (y.diff() > 0).all()
        assert torch.isfinite(ladj).all()
        assert ((y.abs() <= 2.0) == (x.abs() <= 2.0)).all()


def test_spline_with_uniform_bins_and_unit_derivatives_is_the_identity():
    zeros = torch.zeros(4, K, dtype=F64)
    t = MonotonicRQSTransform(zeros, zeros, torch.zeros(4, K - 1, dtype=F64), bound=2.0)
    x = torch.linspace(-2.5, 2.5, 4, dtype=F64)
    y, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, torch.zeros_like(x), atol=1e-12, rtol=0)


def test_spline_parameters_broadcast_against_the_input():
    g = torch.Generator().manual_seed(4)
    params = spline_parameters(g, 4, 1, grad=False)
    x = randn(g, D, scale=2.0, grad=False)
    y, ladj = MonotonicRQSTransform(*params, bound=3.0).call_and_ladj(x)
    assert y.shape == ladj.shape == (4, D)
    for i in range(4):
        t = MonotonicRQSTransform(*(p[i, 0] for p in params), bound=3.0)
        for j in range(D):
            y_ij, ladj_ij = t.call_and_ladj(x[j])
            assert y_ij.shape == ladj_ij.shape == ()
            torch.testing.assert_close(y[i, j], y_ij, atol=1e-12, rtol=0)
            torch.testing.assert_close(ladj[i, j], ladj_ij, atol=1e-12, rtol=0)


def test_spline_gradients_match_finite_differences():
    # The forward spline has a closed-form backward: check it, and its own derivatives,
    # against finite differences, with inputs inside and outside the bound.
    g = torch.Generator().manual_seed(7)
    widths, heights, derivatives = spline_parameters(g, 6, 2)
    x = torch.tensor([-3.5, -2.9, -1.0, 0.0, 0.7, 2.99], dtype=F64)
    x = torch.stack((x, x.flip(0)), dim=-1).requires_grad_()

    def spline(x, widths, heights, derivatives):
        return MonotonicRQSTransform(widths, heights, derivatives, bound=3.0).call_and_ladj(x)

    inputs = (x, widths, heights, derivatives)
    assert torch.autograd.gradcheck(spline, inputs)
    assert torch.autograd.gradgradcheck(spline, inputs)


def build_for_dtype(kind, dtype):
    g = torch.Generator().manual_seed(5)
    if kind == "spline":
        return MonotonicRQSTransform(*spline_parameters(g, D, dtype=dtype), bound=3.0)
    if kind == "affine":
        return MonotonicAffineTransform(randn(g, D, dtype=dtype), randn(g, D, dtype=dtype))
    if kind == "lu":
        return LULinearTransform(lu_parameter(g).to(dtype))
    if kind == "autoregressive":
        return autoregressive_rqs(g, dtype=dtype)[0]
    return coupling(g, spline=True, dtype=dtype)[0]


@pytest.mark.parametrize(
    ("kind", "well_conditioned"),
    [
        ("spline", True),
        ("affine", True),
        ("lu", True),
        ("autoregressive", False),
        ("coupling", False),
    ],
)
def test_float32(kind, well_conditioned):
    t32, t64 = build_for_dtype(kind, torch.float32), build_for_dtype(kind, F64)
    x = 2 * torch.randn(100, D, generator=torch.Generator().manual_seed(6)).float()
    with torch.no_grad():
        y, ladj = call_and_ladj(t32, x)
        y_64, ladj_64 = call_and_ladj(t64, x.double())
        x_back, ladj_inverse = call_and_ladj(t32.inv, y)
    for value in (y, ladj, x_back, ladj_inverse):
        assert value.dtype == torch.float32
        assert torch.isfinite(value).all()
    torch.testing.assert_close(y, y_64.float(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ladj, ladj_64.float(), atol=1e-3, rtol=1e-4)
    # Round trips through near-flat regions of random splines amplify the float32 rounding of y
    # (the exact inverse of the rounded y is far from x there), so only the backward error is
    # small in general; the forward error is checked where the map is well conditioned.
    torch.testing.assert_close(t32(x_back), y, atol=1e-4, rtol=0)
    if well_conditioned:
        torch.testing.assert_close(x_back, x, atol=1e-4, rtol=0)
        torch.testing.assert_close(ladj_inverse, -ladj, atol=1e-4, rtol=0)


# Linear transforms


def test_lu_linear_follows_its_documented_convention():
    g = torch.Generator().manual_seed(6)
    LU = lu_parameter(g).detach()
    L = torch.tril(LU, -1) + torch.eye(D, dtype=F64)
    U = torch.triu(LU)
    x = randn(g, 7, D, grad=False)
    y, ladj = LULinearTransform(LU).call_and_ladj(x)
    torch.testing.assert_close(y, x @ (L @ U).T, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, torch.linalg.slogdet(L @ U)[1].expand(7), atol=1e-12, rtol=0)


def test_rotation_preserves_norms():
    g = torch.Generator().manual_seed(7)
    t = RotationTransform(randn(g, D, D, grad=False))
    x = randn(g, 10, D, grad=False)
    torch.testing.assert_close(t(x).norm(dim=-1), x.norm(dim=-1), atol=1e-12, rtol=0)
    torch.testing.assert_close(t.R.T @ t.R, torch.eye(D, dtype=F64), atol=1e-12, rtol=0)
    assert torch.linalg.det(t.R) > 0
    assert not torch.allclose(t(x), x)


def test_linear_transforms_accept_batched_matrices():
    g = torch.Generator().manual_seed(8)
    A = randn(g, 4, D, D, grad=False) + 2 * torch.eye(D, dtype=F64)
    x = randn(g, 4, D, grad=False)
    for t in (RotationTransform(A), LULinearTransform(A)):
        y, ladj = t.call_and_ladj(x)
        assert y.shape == (4, D) and ladj.shape == (4,)
        for i in range(4):
            t_i = type(t)(A[i])
            torch.testing.assert_close(y[i], t_i(x[i]), atol=1e-12, rtol=0)
            torch.testing.assert_close(ladj[i], t_i.call_and_ladj(x[i])[1], atol=1e-12, rtol=0)
        torch.testing.assert_close(t.inv(y), x, atol=ATOL, rtol=0)


def test_inverse_of_an_unbatched_input_takes_the_batch_shape_of_the_parameters():
    # the ladj of the inverse of y (D,) by a transform with parameters of batch (4,) has
    # batch (4,), as each parameter set's own inverse gives
    g = torch.Generator().manual_seed(9)
    A = randn(g, 4, D, D, grad=False) + 2 * torch.eye(D, dtype=F64)
    shift, scale = randn(g, 4, D, grad=False), randn(g, 4, D, grad=False)
    y = randn(g, D, grad=False)
    cases = [
        (LULinearTransform, (A,), (4,)),
        (MonotonicAffineTransform, (shift, scale), (4, D)),
    ]
    for kind, parameters, ladj_shape in cases:
        x, ladj = kind(*parameters).inv.call_and_ladj(y)
        assert x.shape == (4, D) and ladj.shape == ladj_shape
        for i in range(4):
            x_i, ladj_i = kind(*(p[i] for p in parameters)).inv.call_and_ladj(y)
            torch.testing.assert_close(x[i], x_i, atol=1e-12, rtol=0)
            torch.testing.assert_close(ladj[i], ladj_i, atol=1e-12, rtol=0)


def test_permutation_values():
    order = torch.tensor([3, 1, 0, 2])
    x = torch.arange(8, dtype=F64).reshape(2, 4)
    t = PermutationTransform(order)
    assert torch.equal(t(x), torch.stack([row[order] for row in x]))
    assert torch.equal(t.inv(t(x)), x)


@pytest.mark.parametrize(
    "order",
    [[0, 0, 1], [0, 1, 3], [-1, 0, 1], [[0, 1], [1, 0]], []],
    ids=["duplicate", "out-of-range", "negative", "2-d", "empty"],
)
def test_permutation_rejects_an_order_that_is_not_a_permutation(order):
    with pytest.raises(ValueError, match="order"):
        PermutationTransform(torch.tensor(order, dtype=torch.long))


# Structured transforms


def test_autoregressive_meta_is_triangular_and_passes_matter():
    g = torch.Generator().manual_seed(9)
    t, _ = autoregressive_rqs(g)
    x = randn(g, D, scale=2.0, grad=False)
    J = jacobian(lambda v: t(v), x)
    order = torch.tensor([2, 0, 1])
    assert torch.equal(J[order][:, order], torch.tril(J[order][:, order]))
    y = t(x)
    one_pass = AutoregressiveTransform(t.meta, passes=1)
    assert (one_pass.inv(y) - x).abs().max() > 1e-4  # a single sweep is not exact here
    torch.testing.assert_close(t.inv(y), x, atol=ATOL, rtol=0)


def test_autoregressive_sweeps_by_level_equal_the_fixed_point_inverse():
    g = torch.Generator().manual_seed(11)
    t, net = autoregressive_rqs(g)
    order = torch.tensor([2, 0, 1])  # the features in the order of the network

    def level_meta(features):
        def meta(x):
            p = net(x)[..., features, :]
            return MonotonicRQSTransform(p[..., :K], p[..., K : 2 * K], p[..., 2 * K :], bound=3.0)

        return meta

    levels = [order[k : k + 1] for k in range(D)]
    by_level = AutoregressiveTransform(t.meta, D, [(f, level_meta(f)) for f in levels])
    y = randn(g, 5, D, scale=2.0, grad=False)
    x, ladj = t.inv.call_and_ladj(y)
    x_level, ladj_level = by_level.inv.call_and_ladj(y)
    torch.testing.assert_close(x_level, x)
    torch.testing.assert_close(ladj_level, ladj)
    torch.testing.assert_close(by_level.inv(y), x)
    grads = torch.autograd.grad((x + ladj[:, None]).sum(), [net.weight, net.bias])
    grads_level = torch.autograd.grad((x_level + ladj_level[:, None]).sum(), [net.weight, net.bias])
    for grad, reference in zip(grads_level, grads, strict=True):
        torch.testing.assert_close(grad, reference)
    with pytest.raises(ValueError, match="one sweep per pass"):
        AutoregressiveTransform(t.meta, D, [(levels[0], level_meta(levels[0]))])


def test_inverses_with_ladj_evaluate_meta_once_per_pass():
    g = torch.Generator().manual_seed(10)
    t, net = autoregressive_affine(g)
    y = randn(g, 5, D, grad=False)
    net.calls = 0
    t.inv.call_and_ladj(y)
    assert net.calls == t.passes

    t, meta = coupling(g, spline=True)
    meta.calls = 0
    t.inv.call_and_ladj(y)
    t.call_and_ladj(y)
    assert meta.calls == 2


def test_coupling_keeps_the_masked_coordinates():
    g = torch.Generator().manual_seed(11)
    t, meta = coupling(g, spline=True)
    x = randn(g, 6, D, scale=2.0, grad=False)
    y, ladj = t.call_and_ladj(x)
    assert torch.equal(y[..., t.mask], x[..., t.mask])
    assert not torch.allclose(y[..., ~t.mask], x[..., ~t.mask])
    inner = meta(x[..., t.mask])
    y_b, ladj_b = inner.call_and_ladj(x[..., ~t.mask])
    torch.testing.assert_close(y[..., ~t.mask], y_b, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, ladj_b.sum(-1), atol=1e-12, rtol=0)


# Argument checks


@pytest.mark.parametrize(
    "build",
    [
        lambda: AdditiveTransform("1.0"),
        lambda: AdditiveTransform([1.0, 2.0]),
        lambda: MonotonicAffineTransform(torch.zeros(3), torch.zeros(3, dtype=F64)),
        lambda: MonotonicAffineTransform(0.0, None),
        lambda: MonotonicAffineTransform(0.0, 0.0, slope="small"),
        lambda: SoftclipTransform("2"),
        lambda: CircularShiftTransform(torch.tensor(1.0)),
        lambda: SignedPowerTransform("2"),
        lambda: MonotonicRQSTransform([0.0] * K, torch.zeros(K), torch.zeros(K - 1)),
        lambda: MonotonicRQSTransform(
            torch.zeros(K), torch.zeros(K, dtype=F64), torch.zeros(K - 1)
        ),
        lambda: PermutationTransform([2, 0, 1]),
        lambda: PermutationTransform(torch.tensor([2.0, 0.0, 1.0])),
        lambda: RotationTransform(1.0),
        lambda: LULinearTransform(torch.eye(3, dtype=torch.bool)),
        lambda: AutoregressiveTransform(3, passes=2),
        lambda: AutoregressiveTransform(lambda x: IdentityTransform(), passes=2.0),
        lambda: CouplingTransform(lambda x: IdentityTransform(), torch.tensor([1, 0, 1])),
        lambda: CouplingTransform(None, torch.tensor([True, False])),
    ],
)
def test_bad_argument_types_raise_type_error(build):
    with pytest.raises(TypeError, match=r"expect|must"):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: MonotonicAffineTransform(0.0, 0.0, slope=1.5),
        lambda: MonotonicAffineTransform(0.0, 0.0, slope=0.0),
        lambda: SoftclipTransform(-1.0),
        lambda: SoftBoxTransform(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])),
        lambda: SoftBoxTransform(0.0, 1.0, sharpness=0.0),
        lambda: CircularShiftTransform(0.0),
        lambda: SignedPowerTransform(torch.tensor([1.0, -0.5])),
        lambda: MonotonicRQSTransform(torch.zeros(K), torch.zeros(K + 1), torch.zeros(K - 1)),
        lambda: MonotonicRQSTransform(torch.zeros(K), torch.zeros(K), torch.zeros(K)),
        lambda: MonotonicRQSTransform(torch.zeros(2, K), torch.zeros(3, K), torch.zeros(K - 1)),
        lambda: MonotonicRQSTransform(torch.zeros(K), torch.zeros(K), torch.zeros(K - 1), bound=0),
        lambda: RotationTransform(torch.zeros(3)),
        lambda: LULinearTransform(torch.zeros(3, 2)),
        lambda: AutoregressiveTransform(lambda x: IdentityTransform(), passes=0),
        lambda: CouplingTransform(lambda x: IdentityTransform(), torch.tensor([True, True])),
        lambda: CouplingTransform(lambda x: IdentityTransform(), torch.tensor([False, False])),
        lambda: CouplingTransform(
            lambda x: IdentityTransform(), torch.ones(2, 2, dtype=torch.bool)
        ),
    ],
)
def test_bad_argument_values_raise_value_error(build):
    with pytest.raises(ValueError, match="expects"):
        build()


def test_bad_inputs_raise_clear_errors():
    g = torch.Generator().manual_seed(12)
    spline = MonotonicRQSTransform(*spline_parameters(g, D, grad=False))
    with pytest.raises(TypeError, match="dtype"):
        spline(torch.zeros(D, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"\(\*, 3\)"):
        LULinearTransform(torch.eye(D, dtype=F64))(torch.zeros(4, dtype=F64))
    with pytest.raises(ValueError, match=r"\(\*, 3\)"):
        PermutationTransform(torch.tensor([2, 0, 1])).inv(torch.zeros(2))
    t, _ = coupling(g, spline=False)
    with pytest.raises(ValueError, match=r"\(\*, 3\)"):
        t(torch.zeros(5, 2, dtype=F64))


@pytest.mark.parametrize(
    "shapes",
    [(), ((),), ((3, 1), (4,)), ((2, 1, 5), (1, 3, 1), ()), ((0,), (1,)), ((1, 1), (1,))],
)
def test_broadcast_shapes_agrees_with_torch(shapes):
    assert broadcast_shapes(*shapes) == torch.broadcast_shapes(*shapes)


@pytest.mark.parametrize("shapes", [((3,), (4,)), ((2, 3), (3, 2)), ((0,), (2,))])
def test_broadcast_shapes_rejects_what_torch_rejects(shapes):
    with pytest.raises(RuntimeError):
        torch.broadcast_shapes(*shapes)
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        broadcast_shapes(*shapes)
