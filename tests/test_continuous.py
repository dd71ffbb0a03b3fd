r"""ODE integration, the free-form Jacobian transform and continuous normalizing flows."""

import itertools
import math

import pytest
import torch
from torch.autograd.functional import jacobian

from sbikit.flows.continuous import CNF, FFJTransform
from sbikit.nn import MLP
from sbikit.numerics.ode import odeint
from sbikit.transforms.continuous import FreeFormJacobianTransform

DTYPE = torch.float64
D, C = 2, 2


def tensor(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=DTYPE)


# odeint


def oscillator(omega: float):
    return lambda t, state: (state[1], -(omega**2) * state[0])


def test_odeint_exponential_decay_matches_the_analytic_solution():
    x0, k = tensor(1.0, -2.0, 0.5), 1.7
    x1 = odeint(lambda t, x: -k * x, x0, 0.0, 2.0, atol=1e-10, rtol=1e-10)
    assert x1.shape == x0.shape and x1.dtype == DTYPE
    assert torch.allclose(x1, x0 * math.exp(-k * 2.0), rtol=1e-8, atol=1e-12)


def test_odeint_time_dependent_field():
    # dx/dt = cos(t) x has x(t) = x0 exp(sin(t) - sin(t0)).
    x0 = tensor(2.0)
    x1 = odeint(lambda t, x: torch.cos(t) * x, x0, 0.5, 3.0, atol=1e-10, rtol=1e-10)
    assert torch.allclose(x1, x0 * math.exp(math.sin(3.0) - math.sin(0.5)), rtol=1e-8)


def test_odeint_harmonic_oscillator_with_a_tuple_state():
    omega, t1 = 2.0, 3.0
    q, p = odeint(oscillator(omega), (tensor(1.0), tensor(0.0)), 0.0, t1, atol=1e-9, rtol=1e-9)
    assert math.isclose(q.item(), math.cos(omega * t1), abs_tol=1e-7)
    assert math.isclose(p.item(), -omega * math.sin(omega * t1), abs_tol=1e-7)
    state = odeint(oscillator(omega), [tensor(1.0), tensor(0.0)], 0.0, 1.0)
    assert isinstance(state, list) and len(state) == 2
    state = odeint(oscillator(omega), (tensor(1.0), tensor(0.0)), 0.0, 1.0)
    assert isinstance(state, tuple) and len(state) == 2


def test_odeint_backwards_in_time():
    x1, k = tensor(0.3, 1.0), 0.8
    x0 = odeint(lambda t, x: -k * x, x1, 2.0, 0.0, atol=1e-10, rtol=1e-10)
    assert torch.allclose(x0, x1 * math.exp(2.0 * k), rtol=1e-8)
    # Forward then backward returns to the start (the oscillator conserves energy).
    start = (tensor(0.4), tensor(-1.1))
    end = odeint(oscillator(1.5), start, 0.0, 4.0, atol=1e-10, rtol=1e-10)
    back = odeint(oscillator(1.5), end, 4.0, 0.0, atol=1e-10, rtol=1e-10)
    for a, b in zip(start, back, strict=True):
        assert torch.allclose(a, b, atol=1e-8)


def test_odeint_error_shrinks_with_the_tolerance():
    exact = math.cos(2.0 * 5.0)
    errors = []
    for tol in (1e-3, 1e-5, 1e-7, 1e-9):
        q, _ = odeint(oscillator(2.0), (tensor(1.0), tensor(0.0)), 0.0, 5.0, atol=tol, rtol=tol)
        errors.append(abs(q.item() - exact))
        # The global error stays within a modest multiple of the local tolerance.
        assert errors[-1] < 100 * tol, (tol, errors[-1])
    # Each hundredfold tightening gains at least a factor 10.
    for loose, tight in itertools.pairwise(errors):
        assert tight < loose / 10, errors


def test_odeint_counts_fewer_evaluations_for_looser_tolerances():
    counts = []
    for tol in (1e-3, 1e-8):
        calls = []

        def f(t, state, calls=calls):
            calls.append(t)
            return oscillator(2.0)(t, state)

        odeint(f, (tensor(1.0), tensor(0.0)), 0.0, 5.0, atol=tol, rtol=tol)
        counts.append(len(calls))
    assert counts[0] < counts[1] / 3, counts


def test_odeint_adjoint_gradients_equal_the_analytic_ones():
    # x(t1) = x0 exp(-k (t1 - t0))
    x0 = tensor(1.0, -0.5).requires_grad_()
    k = tensor(1.3).squeeze().requires_grad_()
    t0 = tensor(0.2).squeeze().requires_grad_()
    t1 = tensor(1.5).squeeze().requires_grad_()
    x1 = odeint(lambda t, x: -k * x, x0, t0, t1, phi=(k,), atol=1e-10, rtol=1e-10)
    weights = tensor(2.0, 3.0)
    (weights * x1).sum().backward()
    with torch.no_grad():
        span = t1 - t0
        decay = torch.exp(-k * span)
        loss = (weights * x0 * decay).sum()
    assert torch.allclose(x0.grad, weights * decay, rtol=1e-7)
    assert torch.allclose(k.grad, -span * loss, rtol=1e-7)
    assert torch.allclose(t1.grad, -k.detach() * loss, rtol=1e-7)
    assert torch.allclose(t0.grad, k.detach() * loss, rtol=1e-7)


def test_odeint_adjoint_gradients_match_finite_differences():
    torch.manual_seed(0)
    W = (0.5 * torch.randn(3, 3, dtype=DTYPE)).requires_grad_()
    b = (0.5 * torch.randn(3, dtype=DTYPE)).requires_grad_()
    x = torch.randn(4, 3, dtype=DTYPE, requires_grad=True)

    def solve(x, W, b):
        def f(t, x):
            return torch.tanh(x @ W.T + b) * torch.cos(t) - 0.1 * x

        return odeint(f, x, 0.0, 1.5, phi=(W, b), atol=1e-11, rtol=1e-11)

    assert torch.autograd.gradcheck(solve, (x, W, b), eps=1e-5, atol=1e-6, rtol=1e-5)


def test_odeint_gradients_of_a_tuple_state():
    omega = tensor(1.5).squeeze().requires_grad_()
    q0 = tensor(1.0).squeeze().requires_grad_()
    t1 = 2.0

    def f(t, state):
        return state[1], -(omega**2) * state[0]

    q, p = odeint(f, (q0, tensor(0.0).squeeze()), 0.0, t1, phi=(omega,), atol=1e-10, rtol=1e-10)
    (q + p).backward()
    with torch.no_grad():
        w = omega.item()
    # q = q0 cos(w t), p = -q0 w sin(w t)
    assert math.isclose(q0.grad.item(), math.cos(w * t1) - w * math.sin(w * t1), rel_tol=1e-6)
    dq = -q0.item() * t1 * math.sin(w * t1)
    dp = -q0.item() * (math.sin(w * t1) + w * t1 * math.cos(w * t1))
    assert math.isclose(omega.grad.item(), dq + dp, rel_tol=1e-6)


def test_odeint_without_phi_gives_no_parameter_gradient():
    k = tensor(1.0).squeeze().requires_grad_()
    x0 = tensor(1.0).requires_grad_()
    odeint(lambda t, x: -k * x, x0, 0.0, 1.0).sum().backward()
    assert k.grad is None and x0.grad is not None


def test_odeint_raises_on_step_size_underflow():
    def f(t, x):  # non-finite beyond t = 0.5
        return x * (math.nan if t > 0.5 else 1.0)

    with pytest.raises(RuntimeError, match=r"step size underflowed.*non-finite"):
        odeint(f, tensor(1.0), 0.0, 1.0)


def test_odeint_raises_after_max_steps():
    with pytest.raises(RuntimeError, match="max_steps = 5"):
        odeint(oscillator(10.0), (tensor(1.0), tensor(0.0)), 0.0, 10.0, max_steps=5)


def test_odeint_rejects_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        odeint("f", tensor(1.0), 0.0, 1.0)
    with pytest.raises(TypeError, match="floating-point"):
        odeint(lambda t, x: x, torch.ones(2, dtype=torch.long), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(2,\)"):
        odeint(lambda t, x: x[:2], torch.ones(3), 0.0, 1.0)
    with pytest.raises(ValueError, match="2 tensor"):
        odeint(lambda t, s: s[0], (torch.ones(3), torch.ones(3)), 0.0, 1.0)
    with pytest.raises(ValueError, match="atol"):
        odeint(lambda t, x: x, torch.ones(3), 0.0, 1.0, atol=-1.0)


def test_odeint_same_times_returns_the_state():
    x = tensor(1.0, 2.0)
    assert torch.equal(odeint(lambda t, x: x, x, 1.0, 1.0), x)


# FreeFormJacobianTransform

A = tensor(-0.5, 1.2, -0.8, 0.3).reshape(2, 2)


def linear_transform(A: torch.Tensor, **kwargs) -> FreeFormJacobianTransform:
    return FreeFormJacobianTransform(lambda t, x: x @ A.T, phi=(A,), **kwargs)


def mlp_transform(seed: int = 0, **kwargs) -> tuple[FreeFormJacobianTransform, MLP]:
    torch.manual_seed(seed)
    net = MLP(D + 1, D, hidden_features=(8,), activation=torch.nn.Tanh).to(DTYPE)

    def f(t, x):
        return net(torch.cat((x, t.expand(x.shape[:-1]).unsqueeze(-1)), dim=-1))

    return FreeFormJacobianTransform(f, 0.0, 1.0, phi=net, **kwargs), net


def test_ffj_linear_field_matches_the_matrix_exponential():
    t = linear_transform(A, t0=0.0, t1=1.5, atol=1e-10, rtol=1e-10)
    x = torch.randn(5, D, dtype=DTYPE)
    expected = x @ torch.linalg.matrix_exp(1.5 * A).T
    y, ladj = t.call_and_ladj(x)
    assert torch.allclose(y, expected, atol=1e-8)
    assert torch.allclose(ladj, torch.full((5,), 1.5 * A.trace().item(), dtype=DTYPE), atol=1e-8)
    assert torch.allclose(t(x), expected, atol=1e-8)
    assert torch.allclose(t.log_abs_det_jacobian(x, y), ladj, atol=1e-10)
    x_back, ladj_inv = t.inv.call_and_ladj(y)
    assert torch.allclose(x_back, x, atol=1e-8)
    assert torch.allclose(ladj_inv, -ladj, atol=1e-8)
    assert torch.allclose(t.inv(y), x, atol=1e-8)


def test_ffj_round_trip_and_inverse_ladj_with_a_network():
    t, _ = mlp_transform(atol=1e-9, rtol=1e-9)
    x = torch.randn(2, 3, D, dtype=DTYPE)
    y, ladj = t.call_and_ladj(x)
    assert y.shape == x.shape and ladj.shape == (2, 3)
    x_back, ladj_inv = t.inv.call_and_ladj(y)
    assert torch.allclose(x_back, x, atol=1e-7)
    assert torch.allclose(ladj_inv, -ladj, atol=1e-7)
    for i in range(3):
        J = jacobian(lambda x: t(x), x[0, i])
        assert torch.allclose(ladj[0, i], torch.linalg.slogdet(J).logabsdet, atol=1e-6)


def test_ffj_gradients_with_a_linear_field_match_the_matrix_exponential():
    x = torch.randn(4, D, dtype=DTYPE)
    w = torch.randn(4, D, dtype=DTYPE)
    for direction in (1.0, -1.0):
        A_ode = A.clone().requires_grad_()
        t = linear_transform(A_ode, atol=1e-10, rtol=1e-10)
        t = t if direction > 0 else t.inv
        x_ode = x.clone().requires_grad_()
        y, ladj = t.call_and_ladj(x_ode)
        ((w * y).sum() + ladj.sum()).backward()

        A_ref = A.clone().requires_grad_()
        x_ref = x.clone().requires_grad_()
        y_ref = x_ref @ torch.linalg.matrix_exp(direction * A_ref).T
        ((w * y_ref).sum() + 4 * direction * A_ref.trace()).backward()
        assert torch.allclose(A_ode.grad, A_ref.grad, atol=1e-7), direction
        assert torch.allclose(x_ode.grad, x_ref.grad, atol=1e-7), direction


def test_ffj_gradients_reach_every_parameter_in_both_directions():
    for inverse in (False, True):
        t, net = mlp_transform()
        t = t.inv if inverse else t
        x = torch.randn(6, D, dtype=DTYPE, requires_grad=True)
        y, ladj = t.call_and_ladj(x)
        (y.square().sum() + ladj.sum()).backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), (inverse, name)
            assert p.grad.abs().sum() > 0, (inverse, name)


def test_hutchinson_estimate_is_unbiased():
    t_exact, _ = mlp_transform(atol=1e-8, rtol=1e-8)
    t_hutch, _ = mlp_transform(exact=False, atol=1e-8, rtol=1e-8)
    torch.manual_seed(1)
    x = torch.randn(D, dtype=DTYPE)
    n = 4000
    _, exact = t_exact.call_and_ladj(x)
    y, estimates = t_hutch.call_and_ladj(x.expand(n, D))  # one probe per row
    assert torch.allclose(y, t_exact(x).expand(n, D), atol=1e-7)
    std = estimates.std()
    assert std > 0  # the estimate is random
    assert abs(estimates.mean() - exact) < 4 * std / math.sqrt(n), (estimates.mean(), exact)


def test_hutchinson_probe_is_fixed_over_one_integration():
    # With f(x) = A x and a fixed Rademacher probe v, the estimate is exactly
    # (t1 - t0) v^T A v = tr(A) + (A_12 + A_21) v_1 v_2, one of two values.
    t = linear_transform(A, exact=False, atol=1e-10, rtol=1e-10)
    torch.manual_seed(0)
    _, ladj = t.call_and_ladj(torch.randn(200, D, dtype=DTYPE))
    values = tensor(A.trace() + A[0, 1] + A[1, 0], A.trace() - A[0, 1] - A[1, 0])
    distance = (ladj[:, None] - values).abs().min(dim=-1).values
    assert distance.max() < 1e-8
    assert (ladj > A.trace()).any() and (ladj < A.trace()).any()  # both values occur


def test_ffj_non_finite_rows_give_nan_only_there():
    t, _ = mlp_transform()
    x = torch.randn(4, D, dtype=DTYPE)
    x[1, 0] = math.nan
    y, ladj = t.call_and_ladj(x)
    assert torch.isnan(y[1]).all() and torch.isnan(ladj[1])
    assert torch.isfinite(y[[0, 2, 3]]).all() and torch.isfinite(ladj[[0, 2, 3]]).all()


def test_ffj_rejects_bad_inputs():
    t = linear_transform(A, features=D)
    with pytest.raises(ValueError, match=rf"\(\*, {D}\).*\(4, {D + 1}\)"):
        t(torch.randn(4, D + 1, dtype=DTYPE))
    with pytest.raises(TypeError, match="dtype"):
        t(torch.randn(4, D, dtype=torch.float32))
    with pytest.raises(TypeError, match="callable"):
        FreeFormJacobianTransform("f")
    wrong = FreeFormJacobianTransform(lambda t, x: x[..., :1].expand(3, 4, 1))
    with pytest.raises(ValueError, match=r"shape of x, \(4, 2\).*\(3, 4, 1\)"):
        wrong(torch.randn(4, D))


# FFJTransform and CNF


def build(context: int = C, seed: int = 0, **kwargs) -> CNF:
    torch.manual_seed(seed)
    kwargs.setdefault("hidden_features", (8, 8))
    flow = CNF(D, context, **kwargs).to(DTYPE)
    with torch.no_grad():  # a field far from zero, so that the flow is not near identity
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow


def context(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(*shape, C, dtype=DTYPE)


@pytest.mark.parametrize(("batch", "sample"), [((), ()), ((), (5,)), ((3,), ()), ((2, 3), (4,))])
def test_cnf_sample_and_log_prob_shapes(batch, sample):
    flow = build(atol=1e-5, rtol=1e-5)
    q = flow(context(batch))
    assert q.batch_shape == batch and q.event_shape == (D,)
    x = q.sample(sample)
    assert x.shape == sample + batch + (D,)
    log_p = q.log_prob(x)
    assert log_p.shape == sample + batch and torch.isfinite(log_p).all()


def test_cnf_unconditional_and_broadcast_inputs():
    flow = build(context=0)
    q = flow()
    assert q.sample((7,)).shape == (7, D)
    assert torch.isfinite(q.log_prob(torch.randn(7, D, dtype=DTYPE))).all()
    # One point against a batch of contexts is broadcast to that batch.
    conditional = build()
    c, x = context((4,)), torch.randn(D, dtype=DTYPE)
    log_p = conditional(c).log_prob(x)
    assert log_p.shape == (4,)
    assert torch.allclose(log_p, conditional(c).log_prob(x.expand(4, D)), atol=1e-12)


def test_cnf_log_prob_gradients_reach_every_parameter_and_the_context():
    flow = build(atol=1e-5, rtol=1e-4)
    c = context((5,)).requires_grad_()
    flow(c).log_prob(torch.randn(5, D, dtype=DTYPE)).sum().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    # A context computed by an embedding network passes the gradient on to it.
    embedding = torch.nn.Linear(3, C).to(DTYPE)
    q = flow(embedding(torch.randn(5, 3, dtype=DTYPE)))
    x, log_p = q.rsample_and_log_prob()
    (x.sum() + log_p.sum() + q.log_prob(x.detach()).sum()).backward()
    for name, p in embedding.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_cnf_log_prob_gradients_match_finite_differences():
    flow = build(atol=1e-10, rtol=1e-10)
    c, x = context((3,)), torch.randn(3, D, dtype=DTYPE)
    params = [c, *flow.parameters()]
    directions = [torch.randn_like(p) for p in params]

    c.requires_grad_()
    grads = torch.autograd.grad(flow(c).log_prob(x).sum(), params)
    directional = sum((g * v).sum() for g, v in zip(grads, directions, strict=True))

    def shifted(step: float) -> torch.Tensor:
        with torch.no_grad():
            for p, v in zip(params, directions, strict=True):
                p.add_(step * v)
            value = flow(c).log_prob(x).sum()
            for p, v in zip(params, directions, strict=True):
                p.sub_(step * v)
        return value

    # The adaptive solution moves by jumps of about its error (~1e-8) when the accepted steps
    # change, so the step must be large: the central difference then errs by O(eps^2).
    eps = 1e-3
    finite_difference = (shifted(eps) - shifted(-eps)) / (2 * eps)
    assert torch.allclose(directional, finite_difference, rtol=1e-3)


def test_cnf_rsample_gradients():
    flow = build()
    x = flow(context((4,))).rsample((3,))
    x.square().sum().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_cnf_rsample_and_log_prob_equals_log_prob():
    flow = build(atol=1e-9, rtol=1e-9)
    q = flow(context((4,)))
    x, log_p = q.rsample_and_log_prob((3,))
    assert x.shape == (3, 4, D) and log_p.shape == (3, 4)
    assert torch.allclose(log_p, q.log_prob(x), atol=1e-6)


def test_ffj_transform_round_trip_and_ladj_against_autograd():
    flow = build(atol=1e-8, rtol=1e-8)
    t = flow(context(())).transform
    x = torch.randn(3, D, dtype=DTYPE)
    z, ladj = t.call_and_ladj(x)
    assert not torch.allclose(z, x, atol=1e-2)  # the flow is not the identity
    assert torch.allclose(t.inv(z), x, atol=1e-6)
    for i in range(3):
        J = jacobian(lambda x: t(x), x[i])  # differentiates through the adjoint pass
        assert torch.allclose(ladj[i], torch.linalg.slogdet(J).logabsdet, atol=1e-5)


def test_ffj_transform_field_is_the_mlp_of_state_time_and_context():
    torch.manual_seed(0)
    lazy = FFJTransform(D, C, freqs=2, hidden_features=(8,)).to(DTYPE)
    f = lazy(context(())).f
    x = torch.randn(D, dtype=DTYPE)
    a, b = f(tensor(0.1).squeeze(), x), f(tensor(0.7).squeeze(), x)
    assert not torch.allclose(a, b)
    # The field equals the MLP of (x, cos(k pi t), sin(k pi t), c), k = 1, 2.
    c = context(())
    t = tensor(0.3).squeeze()
    angles = torch.pi * t * tensor(1.0, 2.0)
    expected = lazy.ode(torch.cat((x, angles.cos(), angles.sin(), c)))
    assert torch.allclose(lazy(c).f(t, x), expected, atol=1e-12)


def test_cnf_state_dict_round_trip():
    flow, fresh = build(seed=0), build(seed=1)
    c, x = context((4,)), torch.randn(4, D, dtype=DTYPE)
    assert not torch.allclose(fresh(c).log_prob(x), flow(c).log_prob(x))
    fresh.load_state_dict(flow.state_dict())
    assert torch.equal(fresh(c).log_prob(x), flow(c).log_prob(x))


def test_cnf_nan_rows_give_nan_only_there():
    flow = build()
    x = torch.randn(4, D, dtype=DTYPE)
    x[2, 1] = math.nan
    log_p = flow(context((4,))).log_prob(x)
    assert torch.isnan(log_p[2]) and torch.isfinite(log_p[[0, 1, 3]]).all()


def test_cnf_float32_default():
    torch.manual_seed(0)
    flow = CNF(D, C, hidden_features=(8,))
    q = flow(torch.randn(3, C))
    x = q.sample((2,))
    assert x.dtype == torch.float32 and torch.isfinite(q.log_prob(x)).all()


def test_cnf_rejects_wrong_context_and_feature_sizes():
    flow = build()
    with pytest.raises(ValueError, match=rf"CNF expects a context c of shape \(\*, {C}\)"):
        flow(context((4,))[..., :1])
    with pytest.raises(ValueError, match="CNF is conditional"):
        flow()
    with pytest.raises(ValueError, match=rf"CNF expects x .*\({D},\).*\(4, {D + 1}\)"):
        flow(context((4,))).log_prob(torch.randn(4, D + 1, dtype=DTYPE))
    with pytest.raises(ValueError, match="unconditional"):
        build(context=0)(context(()))
    lazy = FFJTransform(D, C).to(DTYPE)
    with pytest.raises(ValueError, match=rf"FFJTransform expects a context c of shape \(\*, {C}\)"):
        lazy(torch.randn(3, dtype=DTYPE))
    with pytest.raises(ValueError, match=rf"inputs of shape \(\*, {D}\).*\(4, {D + 1}\)"):
        lazy(context(())).inv(torch.randn(4, D + 1, dtype=DTYPE))
    with pytest.raises(ValueError, match="features >= 1"):
        CNF(0)


def two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.stack((angle.cos(), angle.sin()), dim=-1)
    x = torch.where(upper[:, None], x, torch.stack((1 - angle.cos(), 0.5 - angle.sin()), -1))
    return x + 0.05 * torch.randn(n, 2, generator=generator)


@pytest.mark.slow  # about 7 s on one idle core, much longer on a loaded machine
def test_short_fit_to_two_moons_beats_the_base():
    generator = torch.Generator().manual_seed(0)
    train, test = two_moons(2048, generator), two_moons(1024, generator)
    torch.manual_seed(0)
    flow = CNF(2, hidden_features=(32, 32), atol=1e-4, rtol=1e-4)
    base_nll = -flow.base().log_prob(test).mean().item()
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(150):
        batch = train[torch.randint(len(train), (128,), generator=generator)]
        loss = -flow().log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        nll = -flow().log_prob(test).mean().item()
    # The Monte-Carlo standard error of a 1024-point NLL is about 0.03 nats.
    assert nll < base_nll - 0.5, (nll, base_nll)
