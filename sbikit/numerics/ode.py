r"""Adaptive ODE integration with memory-efficient adjoint gradients."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from numbers import Real

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._validation import check_count, check_number, describe

__all__ = ["odeint"]

State = tuple[Tensor, ...]
Field = Callable[[Tensor, State], State]

# Dormand–Prince 5(4) Butcher tableau (Dormand & Prince, 1980).
C = (1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
A = (
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),  # 5th-order weights
)
# Differences between the 5th- and the embedded 4th-order weights (7 stages, FSAL).
E = (
    71 / 57600,
    0.0,
    -71 / 16695,
    71 / 1920,
    -17253 / 339200,
    22 / 525,
    -1 / 40,
)
SAFETY, SHRINK, GROW = 0.9, 0.2, 10.0  # step-size controller: safety factor and bounds
EXPONENT = -1 / 5  # -1 / (q + 1), with q = 4 the order of the error estimate


def combine(x: State, h: float, weights: Sequence[float], k: Sequence[State]) -> State:
    r"""Returns :math:`x + h \sum_i w_i k_i`, component-wise."""

    out = []
    for j, xj in enumerate(x):
        total = None
        for w, ki in zip(weights, k, strict=False):
            if w != 0.0:
                total = ki[j] * w if total is None else total + ki[j] * w
        out.append(xj if total is None else xj + h * total)
    return tuple(out)


def rms_norm(x: State, scale: State) -> float:
    r"""Returns the largest, over the components, RMS of :math:`x / s`, or ``inf`` if it is
    not finite (NaN included), with one synchronization."""

    norms = [(a / s).square().mean().sqrt() for a, s in zip(x, scale, strict=True) if a.numel()]
    if not norms:
        return 0.0
    norm = torch.stack(norms).max().item()  # max propagates NaN
    return norm if math.isfinite(norm) else math.inf


def rms_ratio(error: State, x: State, y: State, atol: float, rtol: float) -> float:
    r"""Returns the largest, over the components, RMS of
    :math:`e / (\mathrm{atol} + \mathrm{rtol} \max(|x|, |y|))`, or ``inf`` if not finite."""

    scale = tuple(atol + rtol * torch.maximum(a.abs(), b.abs()) for a, b in zip(x, y, strict=True))
    return rms_norm(error, scale)


def dopri5_step(
    f: Callable[[float, State], State], t: float, h: float, x: State, k1: State
) -> tuple[State, State, State]:
    r"""Returns the 5th-order solution, the field at the new point (FSAL) and the local
    error estimate of one Dormand–Prince step of size :math:`h`."""

    k = [k1]
    for c, a in zip(C, A[:-1], strict=True):
        k.append(f(t + c * h, combine(x, h, a, k)))
    y = combine(x, h, A[-1], k)
    k.append(f(t + h, y))
    zeros = tuple(torch.zeros_like(xj) for xj in x)
    error = combine(zeros, h, E, k)
    return y, k[-1], error


def initial_step(
    f: Callable[[float, State], State],
    t0: float,
    x: State,
    k1: State,
    span: float,
    atol: float,
    rtol: float,
) -> float:
    r"""Returns the initial step size of Hairer, Nørsett and Wanner (Section II.4)."""

    scale = tuple(atol + rtol * xj.abs() for xj in x)
    d0, d1 = rms_norm(x, scale), rms_norm(k1, scale)
    finite = math.isfinite(d0) and math.isfinite(d1)
    h0 = 0.01 * d0 / d1 if finite and d0 >= 1e-5 and d1 >= 1e-5 else 1e-6
    h0 = min(h0, abs(span))
    direction = math.copysign(1.0, span)
    k2 = f(t0 + direction * h0, combine(x, direction * h0, (1.0,), [k1]))
    d2 = rms_norm(tuple(b - a for a, b in zip(k1, k2, strict=True)), scale) / h0
    if not math.isfinite(d2):
        return h0
    d = max(d1, d2)
    h1 = max(1e-6, h0 * 1e-3) if d <= 1e-15 else (0.01 / d) ** (-EXPONENT)
    return min(100 * h0, h1, abs(span))


def check_field(dx: object, x: State) -> State:
    r"""Returns the output of the vector field as a tuple like the state, or raises."""

    items = (dx,) if isinstance(dx, Tensor) else dx
    if not isinstance(items, Sequence) or len(items) != len(x):
        raise ValueError(
            f"odeint expects f(t, x) to return {len(x)} tensor(s) shaped like x, but received "
            f"{describe(dx)}. Return a tensor for a tensor state, a tuple for a tuple state."
        )
    for i, (d, xi) in enumerate(zip(items, x, strict=True)):
        if not isinstance(d, Tensor) or d.shape != xi.shape:
            raise ValueError(
                f"odeint expects f(t, x) to return a tensor of shape {tuple(xi.shape)} for the "
                f"state component {i}, but received {describe(d)}. The vector field must have "
                "the shape of the state."
            )
    return tuple(items)


def integrate(
    f: Field,
    x: State,
    t0: float,
    t1: float,
    atol: float,
    rtol: float,
    max_steps: int,
) -> State:
    r"""Integrates :math:`dx/dt = f(t, x)` from :math:`t_0` to :math:`t_1` with adaptive
    Dormand–Prince 5(4) steps, without gradients; returns :math:`x(t_1)`."""

    if t0 == t1 or all(xj.numel() == 0 for xj in x):
        return tuple(xj.clone() for xj in x)

    like = x[0]

    def field(t: float, state: State) -> State:
        return check_field(f(torch.tensor(t, dtype=like.dtype, device=like.device), state), x)

    k1 = field(t0, x)
    span = t1 - t0
    direction = math.copysign(1.0, span)
    h = initial_step(field, t0, x, k1, span, atol, rtol)
    eps = torch.finfo(like.dtype).eps
    t, steps, finite = t0, 0, True
    while direction * (t1 - t) > 0:
        if h <= 4 * eps * max(1.0, abs(t)):
            cause = (
                "f returned non-finite values (NaN or inf) near there"
                if not finite
                else "the ODE is too stiff or singular there"
            )
            raise RuntimeError(
                f"odeint's step size underflowed (|dt| = {h:.3g}) at t = {t:.6g} on the way "
                f"from t0 = {t0:.6g} to t1 = {t1:.6g}: {cause}. Check the vector field and "
                "the initial state, or loosen atol and rtol."
            )
        if steps >= max_steps:
            raise RuntimeError(
                f"odeint reached max_steps = {max_steps} at t = {t:.6g} on the way from "
                f"t0 = {t0:.6g} to t1 = {t1:.6g}. The ODE may be stiff or the tolerances "
                "(atol, rtol) too tight: loosen them or raise max_steps."
            )
        steps += 1
        last = h >= abs(t1 - t)
        dt = t1 - t if last else direction * h
        y, k7, error = dopri5_step(field, t, dt, x, k1)
        ratio = rms_ratio(error, x, y, atol, rtol)
        finite = math.isfinite(ratio)
        if ratio <= 1.0:
            t = t1 if last else t + dt
            x, k1 = y, k7
            factor = GROW if ratio == 0.0 else min(GROW, max(SHRINK, SAFETY * ratio**EXPONENT))
        else:
            factor = SHRINK if not finite else max(SHRINK, SAFETY * ratio**EXPONENT)
        h = abs(dt) * factor
    return x


class Adjoint(torch.autograd.Function):
    r"""Adaptive integration in the forward pass; gradients by the adjoint method."""

    @staticmethod
    def forward(ctx, f, n, settings, t0, t1, *tensors):
        x, phi = tensors[:n], tensors[n:]
        y = integrate(f, x, t0.item(), t1.item(), *settings)
        ctx.f, ctx.n, ctx.settings = f, n, settings
        ctx.save_for_backward(t0, t1, *x, *y, *phi)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_y):
        f, n, settings = ctx.f, ctx.n, ctx.settings
        t0, t1, *saved = ctx.saved_tensors
        x0, y, phi = tuple(saved[:n]), tuple(saved[n : 2 * n]), tuple(saved[2 * n :])
        needs = ctx.needs_input_grad[5:]
        needs_x, needs_phi = needs[:n], needs[n:]
        needs_t0, needs_t1 = ctx.needs_input_grad[3:5]
        grad_y = tuple(
            torch.zeros_like(yi) if g is None else g for g, yi in zip(grad_y, y, strict=True)
        )
        params = tuple(p for p, need in zip(phi, needs_phi, strict=True) if need)

        grad_t1 = grad_t0 = None
        if needs_t1:
            dy = check_field(f(t1, y), y)
            grad_t1 = sum((g * d).sum() for g, d in zip(grad_y, dy, strict=True)).reshape(t1.shape)

        grad_x, grad_phi = (None,) * n, ()
        if any(needs_x) or params or needs_t0:

            def augmented(t: Tensor, state: State) -> State:
                x, a = state[:n], state[n : 2 * n]
                with torch.enable_grad():
                    x = tuple(xi.detach().requires_grad_() for xi in x)
                    dx = check_field(f(t, x), x)
                    pairs = [(d, ai) for d, ai in zip(dx, a, strict=True) if d.requires_grad]
                    grads = (None,) * (n + len(params))
                    if pairs:
                        outputs, cotangents = zip(*pairs, strict=True)
                        grads = torch.autograd.grad(
                            outputs, (*x, *params), cotangents, allow_unused=True
                        )
                vjps = tuple(
                    torch.zeros_like(v) if g is None else -g
                    for g, v in zip(grads, (*x, *params), strict=True)
                )
                return (*(d.detach() for d in dx), *vjps)

            state = (*y, *grad_y, *(torch.zeros_like(p) for p in params))
            state = integrate(augmented, state, t1.item(), t0.item(), *settings)
            a0 = state[n : 2 * n]
            grad_x = tuple(a if need else None for a, need in zip(a0, needs_x, strict=True))
            grads = iter(state[2 * n :])
            grad_phi = tuple(next(grads) if need else None for need in needs_phi)
            if needs_t0:
                dx0 = check_field(f(t0, x0), x0)
                grad_t0 = -sum((a * d).sum() for a, d in zip(a0, dx0, strict=True))
                grad_t0 = grad_t0.reshape(t0.shape)
        else:
            grad_phi = (None,) * len(phi)
        return (None, None, None, grad_t0, grad_t1, *grad_x, *grad_phi)


def as_time(t: object, name: str, like: Tensor) -> Tensor:
    r"""Returns a time as a 0-d tensor of the dtype and device of ``like``, or raises."""

    if isinstance(t, Tensor):
        if t.numel() != 1 or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(
                f"odeint expects {name} to be a real number or a tensor with one element, but "
                f"received {describe(t)}."
            )
        t = t.reshape(())
        return t.to(dtype=like.dtype, device=like.device)
    if not isinstance(t, Real) or isinstance(t, bool):
        raise TypeError(
            f"odeint expects {name} to be a real number or a tensor with one element, but "
            f"received {describe(t)}."
        )
    return torch.tensor(float(t), dtype=like.dtype, device=like.device)


def odeint(
    f: Callable,
    x: Tensor | Sequence[Tensor],
    t0: float | Tensor,
    t1: float | Tensor,
    phi: Iterable[Tensor] = (),
    atol: float = 1e-6,
    rtol: float = 1e-5,
    max_steps: int = 10_000,
) -> Tensor | Sequence[Tensor]:
    r"""Integrates a system of first-order ODEs :math:`dx/dt = f_\phi(t, x)` from
    :math:`t_0` to :math:`t_1`, with gradients by the adjoint method.

    .. math:: x(t_1) = x(t_0) + \int_{t_0}^{t_1} f_\phi(t, x(t)) \, dt

    The integration uses adaptive Dormand–Prince 5(4) steps (7 stages, the last of which is
    the first of the next step). A step of size :math:`h` is accepted when the RMS norm of
    its local error estimate :math:`e`, scaled by
    :math:`\mathrm{atol} + \mathrm{rtol} \max(|x_n|, |x_{n+1}|)`, is at most 1 (the largest
    norm over the state components for a tuple state); the next step is
    :math:`h \min(10, \max(0.2, 0.9 \, \|e\|^{-1/5}))`. The first step follows the heuristic
    of Hairer et al. :math:`t_1 < t_0` integrates backwards in time.

    Gradients are memory-efficient: the forward integration keeps no graph, and the
    backward pass integrates the adjoint system from :math:`t_1` back to :math:`t_0`,

    .. math:: \frac{da}{dt} = -a^\top \frac{\partial f_\phi}{\partial x}, \quad
        \frac{da_\phi}{dt} = -a^\top \frac{\partial f_\phi}{\partial \phi}, \quad
        a(t_1) = \frac{\partial L}{\partial x(t_1)}, \quad a_\phi(t_1) = 0,

    jointly with :math:`x(t)`, which gives :math:`\partial L / \partial x(t_0) = a(t_0)`,
    :math:`\partial L / \partial \phi = a_\phi(t_0)`,
    :math:`\partial L / \partial t_1 = a(t_1)^\top f_\phi(t_1, x(t_1))` and
    :math:`\partial L / \partial t_0 = -a(t_0)^\top f_\phi(t_0, x(t_0))`. The gradients are
    accurate to the integration tolerances; they cannot be differentiated again.

    References:
        | Neural Ordinary Differential Equations (Chen et al., 2018)
        | https://arxiv.org/abs/1806.07366

        | A family of embedded Runge-Kutta formulae (Dormand & Prince, 1980)
        | https://doi.org/10.1016/0771-050X(80)90013-3

    Arguments:
        f: The vector field :math:`f_\phi(t, x)`. It receives the time as a 0-d tensor and
            the state with the structure of ``x`` (a tensor, or a tuple of tensors), and
            returns tensors of the same shapes, with the same structure.
        x: The initial state :math:`x(t_0)`, a floating-point tensor or a sequence of them
            (same dtype and device).
        t0: The initial time :math:`t_0` (a float or a one-element tensor).
        t1: The final time :math:`t_1`.
        phi: The tensors :math:`\phi` that :math:`f` depends on and that need gradients,
            e.g. ``module.parameters()``. Gradients reach no tensor left out of ``phi``, and
            a tensor computed from them must be computed inside :math:`f` (computed outside,
            its graph would be traversed by the adjoint pass too and its gradient freed).
        atol: The absolute tolerance.
        rtol: The relative tolerance.
        max_steps: The maximum number of steps (accepted or rejected) of one integration.

    Returns:
        The final state :math:`x(t_1)`, with the structure of ``x`` (a tuple for a tuple or a
        list for a list).

    Raises:
        RuntimeError: if the step size underflows (a singular or non-finite vector field)
            or ``max_steps`` steps do not reach :math:`t_1`.

    Example:
        >>> k = torch.tensor(2.0, requires_grad=True)
        >>> x1 = odeint(lambda t, x: -k * x, torch.tensor(1.0), 0.0, 1.0, phi=(k,))
        >>> x1  # exp(-2) = 0.1353
        tensor(0.1353, grad_fn=<AdjointBackward>)
        >>> x1.backward()
        >>> k.grad  # d exp(-k) / dk = -exp(-k)
        tensor(-0.1353)
    """

    if not callable(f):
        raise TypeError(f"odeint expects f to be a callable f(t, x), but received {describe(f)}.")
    single = isinstance(x, Tensor)
    if not single and not (isinstance(x, Sequence) and len(x) > 0):
        raise TypeError(
            f"odeint expects x to be a tensor or a non-empty sequence of tensors, but received "
            f"{describe(x)}."
        )
    state = (x,) if single else tuple(x)
    for i, xi in enumerate(state):
        if not isinstance(xi, Tensor) or not xi.is_floating_point():
            raise TypeError(
                f"odeint expects x to hold floating-point tensors, but component {i} is "
                f"{describe(xi)}. Cast it with .to(torch.float32) or .to(torch.float64)."
            )
        if xi.dtype != state[0].dtype or xi.device != state[0].device:
            raise ValueError(
                f"odeint expects the components of x to share one dtype and device, but "
                f"component 0 is {describe(state[0])} and component {i} is {describe(xi)}."
            )
    phi = tuple(phi)
    for p in phi:
        if not isinstance(p, Tensor):
            raise TypeError(f"odeint expects phi to hold tensors, but received {describe(p)}.")
    atol = check_number(atol, "atol", "odeint", low=0.0)
    rtol = check_number(rtol, "rtol", "odeint", low=0.0)
    max_steps = check_count(max_steps, "max_steps", "odeint", 1)
    t0 = as_time(t0, "t0", state[0])
    t1 = as_time(t1, "t1", state[0])

    field = (lambda t, s: (f(t, s[0]),)) if single else (lambda t, s: f(t, s))
    y = Adjoint.apply(field, len(state), (atol, rtol, max_steps), t0, t1, *state, *phi)
    if single:
        return y[0]
    return list(y) if isinstance(x, list) else tuple(y)
