import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from simulators._ode import solve_batch

N = 1e6  # SIR population
SIR_TIMES = torch.arange(10, dtype=torch.float64) * 17.0
LV_TIMES = torch.arange(10, dtype=torch.float64) * 2.1


def sir(t, y, params):
    s, i, _ = y.unbind(-1)
    beta, gamma = params.unbind(-1)
    infection, recovery = beta * s * i / N, gamma * i
    return torch.stack([-infection, infection - recovery, recovery], dim=-1)


def lotka_volterra(t, y, params):
    u, v = y.unbind(-1)
    alpha, beta, gamma, delta = params.unbind(-1)
    return torch.stack([alpha * u - beta * u * v, -gamma * v + delta * u * v], dim=-1)


def lognormal(generator, loc, scale, size):
    return torch.exp(loc + scale * torch.randn(size, generator=generator, dtype=torch.float64))


def sir_prior(size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack(
        [lognormal(g, math.log(0.4), 0.5, size), lognormal(g, math.log(0.125), 0.2, size)], -1
    )


def lv_prior(size, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.tensor([-0.125, -3.0, -0.125, -3.0], dtype=torch.float64)
    return torch.exp(loc + 0.5 * torch.randn(size, 4, generator=g, dtype=torch.float64))


def scipy_reference(f, y0, t_eval, params):
    r"""Solves each row with scipy's DOP853 at rtol 1e-10; returns (B, T, n).

    The tiny atol keeps the tolerance relative where a population falls to 1e-6 or below.
    """

    out = []
    for row in params:

        def rhs(t, y, row=row):
            return f(torch.tensor([t]), torch.as_tensor(y)[None], row[None])[0].numpy()

        sol = solve_ivp(
            rhs,
            (t_eval[0].item(), t_eval[-1].item()),
            y0.numpy(),
            method="DOP853",
            t_eval=t_eval.numpy(),
            rtol=1e-10,
            atol=1e-14,
        )
        assert sol.success
        out.append(sol.y.T)
    return torch.as_tensor(np.stack(out))


def test_exponential_decay_matches_closed_form():
    rates = torch.tensor([[0.1], [0.5], [1.0], [2.0]], dtype=torch.float64)
    y0 = torch.tensor([[1.0], [3.0], [-2.0], [0.5]], dtype=torch.float64)
    t = torch.linspace(0, 2, 9, dtype=torch.float64)
    y = solve_batch(lambda t, y, p: -p * y, y0, t, rates)
    exact = y0[:, None] * torch.exp(-rates[:, None] * t[:, None])
    assert y.shape == (4, 9, 1) and y.dtype == torch.float64
    torch.testing.assert_close(y, exact, rtol=1e-7, atol=1e-8)  # atol where y is small


def test_harmonic_oscillator_matches_closed_form():
    omega = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)

    def oscillator(t, y, params):
        x, v = y.unbind(-1)
        return torch.stack([v, -params[:, 0].square() * x], dim=-1)

    t = torch.linspace(0, 10, 21, dtype=torch.float64)
    y = solve_batch(oscillator, torch.tensor([1.0, 0.0]), t, omega[:, None])
    phase = omega[:, None] * t
    exact = torch.stack([phase.cos(), -omega[:, None] * phase.sin()], dim=-1)
    amplitude = torch.stack([torch.ones_like(omega), omega], dim=-1)[:, None]
    assert (y - exact).abs().div(amplitude).max() < 1e-7


def test_each_row_sees_its_own_time():
    # y' = p cos(t) from t0 = 0.5: y = y0 + p (sin t - sin t0); the rows take different steps.
    params = torch.tensor([[0.5], [2.0], [30.0]], dtype=torch.float64)
    t = torch.linspace(0.5, 6.0, 12, dtype=torch.float64)
    y = solve_batch(lambda t, y, p: p * t.cos()[:, None], torch.ones(1), t, params)
    exact = 1 + params[:, None] * (t.sin() - math.sin(0.5))[:, None]
    torch.testing.assert_close(y, exact, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("f", "y0", "t_eval", "prior"),
    [
        (sir, torch.tensor([N - 1, 1.0, 0.0]), SIR_TIMES, sir_prior),
        (lotka_volterra, torch.tensor([30.0, 1.0]), LV_TIMES, lv_prior),
    ],
    ids=["sir", "lotka_volterra"],
)
def test_models_match_scipy_dop853(f, y0, t_eval, prior):
    # With the default atol = 1e-8, a Lotka-Volterra prey population that dips to 1e-4 is
    # only controlled to 1e-4 relative per step, and the error is amplified when it regrows
    # (~1e-4 relative at t = 18.9, like scipy's RK45); a tiny atol makes the control relative.
    params = prior(20)
    y = solve_batch(f, y0, t_eval, params, rtol=1e-8, atol=1e-12)
    reference = scipy_reference(f, y0, t_eval, params)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, reference, rtol=1e-6, atol=0.0)


def test_rows_are_independent():
    # Prior rows next to fast, slow and failing rows: each row keeps its own step size, so
    # its result does not depend on the company it is solved in.
    params = lv_prior(8, seed=1)
    extreme = torch.tensor(
        [[20.0, 0.5, 20.0, 0.5], [1e-3, 1e-4, 1e-3, 1e-4], [math.nan, 0.05, 1.0, 0.05]],
        dtype=torch.float64,
    )
    y0 = torch.tensor([30.0, 1.0])
    batch = solve_batch(lotka_volterra, y0, LV_TIMES, torch.cat([extreme, params]))
    assert torch.isnan(batch[2]).all() and torch.isfinite(batch[:2]).all()
    for b, row in enumerate(params):
        alone = solve_batch(lotka_volterra, y0, LV_TIMES, row[None])
        torch.testing.assert_close(batch[3 + b], alone[0], rtol=1e-9, atol=0.0)


def test_blow_up_gives_nan_for_that_row_only():
    # y' = y^2 has y = y0 / (1 - y0 t), which blows up at t = 1 / y0.
    y0 = torch.tensor([[1.0], [0.5], [0.25]], dtype=torch.float64)
    t = torch.linspace(0, 1.5, 7, dtype=torch.float64)
    square = lambda t, y, p: y.square()  # noqa: E731
    y = solve_batch(square, y0, t, torch.zeros(3, 0))
    assert torch.isnan(y[0]).all()
    exact = y0[1:, None] / (1 - y0[1:, None] * t[:, None])
    torch.testing.assert_close(y[1:], exact, rtol=1e-7, atol=0.0)
    alone = solve_batch(square, y0[1:2], t, torch.zeros(1, 0))
    torch.testing.assert_close(y[1:2], alone, rtol=1e-12, atol=0.0)


def test_too_many_steps_gives_nan_for_that_row_only():
    def oscillator(t, y, params):
        x, v = y.unbind(-1)
        return torch.stack([v, -params[:, 0].square() * x], dim=-1)

    omega = torch.tensor([[1.0], [300.0]], dtype=torch.float64)
    t = torch.linspace(0, 10, 5, dtype=torch.float64)
    y = solve_batch(oscillator, torch.tensor([1.0, 0.0]), t, omega, max_steps=500)
    assert torch.isnan(y[1]).all()
    torch.testing.assert_close(y[0, :, 0], t.cos(), rtol=0.0, atol=1e-7)


def test_non_finite_inputs_give_nan_rows():
    y0 = torch.tensor([[1.0], [math.inf], [1.0], [2.0]], dtype=torch.float64)
    params = torch.tensor([[1.0], [1.0], [math.nan], [0.5]], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    y = solve_batch(lambda t, y, p: -p * y, y0, t, params)
    assert torch.isnan(y[1:3]).all()
    torch.testing.assert_close(y[[0, 3], :, 0], y0[[0, 3]] * torch.exp(-params[[0, 3]] * t))
    single = solve_batch(lambda t, y, p: -p * y, y0, t[:1], params)
    assert torch.isnan(single[1]).all() and torch.equal(single[[0, 2, 3]], y0[[0, 2, 3], None])
    empty = solve_batch(lambda t, y, p: -p * y, y0[:0], t, params[:0])
    assert empty.shape == (0, 3, 1)


def test_shared_initial_state_and_inputs_are_cast_to_float64():
    params = sir_prior(3).float()
    y0 = torch.tensor([N - 1, 1.0, 0.0])
    shared = solve_batch(sir, y0, SIR_TIMES.float(), params)
    explicit = solve_batch(sir, y0.expand(3, -1).double(), SIR_TIMES, params.double())
    assert shared.dtype == torch.float64 and shared.shape == (3, 10, 3)
    torch.testing.assert_close(shared, explicit, rtol=0.0, atol=0.0)


def decay(t, y, p):
    return -y


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("not callable", torch.ones(2), torch.arange(3.0), torch.ones(2, 1)), {}, "callable"),
        ((decay, torch.ones(2), torch.arange(3.0), torch.ones(2)), {}, "params of shape"),
        ((decay, torch.ones(3, 2), torch.arange(3.0), torch.ones(2, 1)), {}, "y0 of shape"),
        ((decay, torch.ones(2, 2, 1), torch.arange(3.0), torch.ones(2, 1)), {}, "y0 of shape"),
        ((decay, torch.ones(2, 0), torch.arange(3.0), torch.ones(2, 1)), {}, "y0 of shape"),
        ((decay, torch.ones(2), torch.ones(2, 3), torch.ones(2, 1)), {}, "t_eval of shape"),
        ((decay, torch.ones(2), torch.ones(0), torch.ones(2, 1)), {}, "t_eval of shape"),
        ((decay, torch.ones(2), torch.tensor([0.0, 2.0, 1.0]), torch.ones(2, 1)), {}, "increasing"),
        ((decay, torch.ones(2), torch.tensor([0.0, 1.0, 1.0]), torch.ones(2, 1)), {}, "increasing"),
        ((decay, torch.ones(2), torch.tensor([0.0, math.inf]), torch.ones(2, 1)), {}, "finite"),
        ((decay, torch.ones(2), torch.arange(3.0), "params"), {}, "real numbers"),
        ((decay, torch.ones(2), torch.arange(3.0), torch.ones(2, 1)), {"rtol": -1.0}, "rtol"),
        ((decay, torch.ones(2), torch.arange(3.0), torch.ones(2, 1)), {"atol": 0.0}, "atol"),
        ((decay, torch.ones(2), torch.arange(3.0), torch.ones(2, 1)), {"atol": "1"}, "atol"),
        ((decay, torch.ones(2), torch.arange(3.0), torch.ones(2, 1)), {"max_steps": 0}, "max_"),
        ((decay, torch.ones(2), torch.arange(3.0), torch.ones(2, 1)), {"max_steps": 1.5}, "max_"),
        ((lambda t, y, p: y[:, :1], torch.ones(2), torch.arange(3.0), torch.ones(2, 1)), {}, "f"),
        ((lambda t, y, p: y.numpy(), torch.ones(2), torch.arange(3.0), torch.ones(2, 1)), {}, "f"),
    ],
)
def test_bad_arguments_raise(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        solve_batch(*args, **kwargs)
