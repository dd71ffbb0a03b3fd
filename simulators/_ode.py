r"""Batched adaptive ODE integration for the benchmark simulators.

:func:`solve_batch` integrates one ODE for many parameter rows at once with the explicit
Dormand–Prince 5(4) pair. Every row keeps its own time and its own step size, all rows are
advanced together as ``float64`` tensors (the Python loop is over steps, never over rows),
and a row that fails becomes NaN instead of raising.

Reference:
    Dormand, J. R. and Prince, P. J. (1980). "A family of embedded Runge-Kutta formulae".
    Journal of Computational and Applied Mathematics 6(1), 19–26.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real

import torch
from torch import Tensor

__all__ = ["solve_batch"]

Field = Callable[[Tensor, Tensor, Tensor], Tensor]

# Dormand–Prince 5(4) tableau: the nodes, the stage weights (the last row holds the
# 5th-order weights) and the differences of the 5th- and the embedded 4th-order weights over
# the 7 stages (the 7th stage is the field at the new point, reused as the next first stage).
C = (1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
A = (
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)
SAFETY, SHRINK, GROW = 0.9, 0.2, 10.0  # step-size controller: safety factor and bounds
EXPONENT = -1 / 5  # -1 / (q + 1), with q = 4 the order of the error estimate
UNDERFLOW = 1e-12  # a row fails once its step falls below this times max(|t|, t_T - t_0)


def solve_batch(
    f: Field,
    y0: Tensor,
    t_eval: Tensor,
    params: Tensor,
    *,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 100_000,
) -> Tensor:
    r"""Solves :math:`y' = f(t, y, \theta_b)` for a batch of parameter rows at once.

    Each row is integrated with adaptive Dormand–Prince 5(4) steps (Dormand & Prince, 1980)
    and its own step size: the local error estimate is measured by the RMS over the
    components of :math:`e / (\mathrm{atol} + \mathrm{rtol} \max(|y|, |y_{new}|))`, a step is
    accepted when that is at most 1, and the next step is the current one times
    :math:`0.9\, \mathrm{err}^{-1/5}`, clamped to :math:`[0.2, 10]`. The first step follows
    Hairer, Nørsett & Wanner (Solving ODEs I, Section II.4). A step that would pass the next
    output time is shortened to land exactly on it, and rows that are finished drop out of
    the batch. Runs without gradients.

    A row fails, and its whole output becomes NaN, when its initial state or the field there
    is not finite, when its step size falls below :math:`10^{-12} \max(|t|, t_{T-1} - t_0)`
    (for instance near a blow-up, or when the field keeps returning non-finite values), or
    when it needs more than ``max_steps`` steps (accepted and rejected); the other rows are
    unaffected, and nothing is raised for a bad row.

    ``atol`` is absolute: a component far below ``atol / rtol`` is controlled only to about
    ``atol`` per step, so pass a smaller ``atol`` for solutions that span many orders of
    magnitude (a Lotka–Volterra prey population dipping to :math:`10^{-4}` is then off by
    :math:`10^{-4}` relative at the next peak, as with scipy's ``RK45``).

    Arguments:
        f: The vectorised right-hand side ``f(t, y, params)``, with ``t`` of shape
            :math:`(B,)` (each row at its own time), ``y`` of shape :math:`(B, n)` and
            ``params`` of shape :math:`(B, p)`; returns the derivative, shape :math:`(B, n)`.
            It is called on the rows still being integrated only, so :math:`B` shrinks.
        y0: The initial states, shape :math:`(B, n)`, or :math:`(n,)` shared by all rows.
        t_eval: The output times, shape :math:`(T,)`, finite and strictly increasing; the
            integration starts at ``t_eval[0]``.
        params: The parameters, one row per solution, shape :math:`(B, p)`.
        rtol: The relative tolerance, non-negative.
        atol: The absolute tolerance, positive.
        max_steps: The largest number of steps (accepted and rejected) one row may take.

    Returns:
        The solutions at ``t_eval``, shape :math:`(B, T, n)`, ``float64``, on the device of
        ``params``; NaN rows for the rows that failed.

    Example:
        >>> decay = lambda t, y, params: -params * y
        >>> y = solve_batch(decay, torch.ones(1), torch.tensor([0.0, 1.0]), torch.tensor([[2.0]]))
        >>> torch.allclose(y[0, :, 0], torch.tensor([1.0, math.exp(-2.0)], dtype=torch.float64))
        True
    """

    if not callable(f):
        raise ValueError(f"solve_batch expects f to be callable, but received {_describe(f)}.")
    params = _as_float64(params, "params")
    if params.dim() != 2:
        raise ValueError(
            f"solve_batch expects params of shape (B, p), but received {_describe(params)}. "
            "Use params.reshape(B, -1) for one row per solution."
        )
    device = params.device
    batch = params.shape[0]
    y0 = _as_float64(y0, "y0").to(device)
    if y0.dim() == 1:
        y0 = y0.expand(batch, -1)
    if y0.dim() != 2 or y0.shape[0] != batch or y0.shape[1] == 0:
        raise ValueError(
            f"solve_batch expects y0 of shape (B, n) or (n,) with n >= 1 and B = "
            f"{batch} the number of parameter rows, but received {_describe(y0)}."
        )
    t_eval = _as_float64(t_eval, "t_eval").to(device)
    if t_eval.dim() != 1 or t_eval.numel() == 0:
        raise ValueError(
            f"solve_batch expects t_eval of shape (T,) with T >= 1, but received "
            f"{_describe(t_eval)}."
        )
    if not torch.isfinite(t_eval).all() or not (t_eval.diff() > 0).all():
        raise ValueError(
            "solve_batch expects t_eval to be finite and strictly increasing, but some of its "
            f"{t_eval.numel()} values are not finite or not above the previous one."
        )
    rtol = _check_tolerance(rtol, "rtol", positive=False)
    atol = _check_tolerance(atol, "atol", positive=True)
    if not isinstance(max_steps, Integral) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(
            f"solve_batch expects max_steps to be a positive integer, not {max_steps!r}."
        )

    with torch.no_grad():
        out = torch.full(
            (batch, t_eval.numel(), y0.shape[1]), math.nan, dtype=torch.float64, device=device
        )
        finite = torch.isfinite(y0).all(dim=1)
        out[:, 0] = torch.where(finite[:, None], y0, math.nan)
        rows = finite.nonzero().squeeze(1)
        if t_eval.numel() > 1 and rows.numel() > 0:
            y0, params = y0.index_select(0, rows), params.index_select(0, rows)
            _integrate(f, out, rows, y0, t_eval, params, rtol, atol, max_steps)
    return out


def _integrate(
    f: Field,
    out: Tensor,
    rows: Tensor,
    y: Tensor,
    t_eval: Tensor,
    params: Tensor,
    rtol: float,
    atol: float,
    max_steps: int,
) -> None:
    r"""Integrates the given rows from ``t_eval[0]`` and writes their states at ``t_eval[1:]``
    into ``out`` (:math:`(B, T, n)`, indexed by ``rows``), or NaN over a row that fails."""

    count = t_eval.numel()
    span = t_eval[-1] - t_eval[0]
    flat = out.view(-1, out.shape[-1])  # row b, time i at b * count + i
    t = t_eval[0].expand(rows.numel()).clone()
    k1 = _field(f, t, y, params)
    h = _initial_step(f, t, y, k1, params, span, rtol, atol)
    j = torch.ones_like(rows)  # the index of each row's next output time
    steps = torch.zeros_like(rows)
    done = torch.zeros_like(rows, dtype=torch.bool)
    failed = ~torch.isfinite(k1).all(dim=1)
    while True:
        finished = done | failed
        if finished.any():
            out.index_fill_(0, _select(rows, failed), math.nan)
            keep = (~finished).nonzero().squeeze(1)
            rows, t, y, k1, h, j, steps, params = (
                x.index_select(0, keep) for x in (rows, t, y, k1, h, j, steps, params)
            )
        if rows.numel() == 0:
            return
        target = t_eval.index_select(0, j)
        gap = target - t
        land = gap <= h
        step = torch.minimum(h, gap)
        y_new, k7, error2 = _dopri5_step(f, t, y, step, k1, params, rtol, atol)
        accept = error2 <= 1.0  # the error norm is at most 1; False for NaN
        factor = SAFETY * error2.nan_to_num(nan=math.inf).pow(EXPONENT / 2)
        h_next = step * factor.clamp(SHRINK, GROW)
        # A step shortened to land on an output time says little about the step size, so
        # beyond the growth bound the step may return to the one proposed before.
        landed = accept & land
        h_next = torch.where(landed, torch.maximum(h_next, torch.minimum(h, step * factor)), h_next)
        t = torch.where(accept, torch.where(land, target, t + step), t)
        y = torch.where(accept[:, None], y_new, y)
        k1 = torch.where(accept[:, None], k7, k1)
        if landed.any():
            flat.index_copy_(0, _select(rows * count + j, landed), _select(y_new, landed))
            j = j + landed
        h = h_next
        steps = steps + 1
        done = j == count
        tiny = h < UNDERFLOW * torch.maximum(t.abs(), span)
        failed = ~done & (tiny | (steps >= max_steps))


def _dopri5_step(
    f: Field,
    t: Tensor,
    y: Tensor,
    h: Tensor,
    k1: Tensor,
    params: Tensor,
    rtol: float,
    atol: float,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Returns the 5th-order solution :math:`(B, n)`, the field there :math:`(B, n)` and the
    squared error norm :math:`(B,)` (the mean over the components of
    :math:`(e / (\mathrm{atol} + \mathrm{rtol} \max(|y|, |y_{new}|)))^2`) of one
    Dormand–Prince step of size ``h`` :math:`(B,)` per row."""

    hn = h[:, None].expand_as(y).contiguous()  # broadcasting products are slower
    k = [k1]
    for c, a in zip(C, A[:-1], strict=True):
        k.append(_field(f, t + c * h, torch.addcmul(y, hn, _weighted_sum(a, k)), params))
    y_new = torch.addcmul(y, hn, _weighted_sum(A[-1], k))
    k.append(_field(f, t + h, y_new, params))
    scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
    return y_new, k[-1], _mean_square(hn * _weighted_sum(E, k) / scale)


def _initial_step(
    f: Field,
    t: Tensor,
    y: Tensor,
    k1: Tensor,
    params: Tensor,
    span: Tensor,
    rtol: float,
    atol: float,
) -> Tensor:
    r"""Returns the initial step size :math:`(B,)` of each row by the heuristic of Hairer,
    Nørsett & Wanner (Solving ODEs I, Section II.4), at most ``span``."""

    # In squared norms (d_i^2 below) throughout, which spares the square roots.
    scale = atol + rtol * y.abs()
    d0, d1 = _mean_square(y / scale), _mean_square(k1 / scale)
    h0 = torch.where((d0 < 1e-10) | (d1 < 1e-10), 1e-6, 0.01 * (d1 / d0).rsqrt()).clamp(max=span)
    k2 = _field(f, t + h0, torch.addcmul(y, h0[:, None], k1), params)
    d2 = _mean_square((k2 - k1) / scale) / h0.square()
    d = torch.maximum(d1, d2)
    h1 = torch.where(d <= 1e-30, (h0 * 1e-3).clamp(min=1e-6), (1e-4 / d).pow(-EXPONENT / 2))
    h = torch.minimum(100 * h0, h1).clamp(max=span)
    return torch.where(h > 0, h, h0)  # NaN or 0 from an overflowing field: keep h0


def _field(f: Field, t: Tensor, y: Tensor, params: Tensor) -> Tensor:
    r"""Returns ``f(t, y, params)`` as ``float64``, or raises if it is not shaped like ``y``."""

    dy = f(t, y, params)
    if not isinstance(dy, Tensor) or dy.shape != y.shape:
        raise ValueError(
            f"solve_batch expects f(t, y, params) to return a tensor of shape "
            f"{tuple(y.shape)} like y, but received {_describe(dy)}."
        )
    return dy.to(torch.float64)


def _weighted_sum(weights: Sequence[float], k: Sequence[Tensor]) -> Tensor:
    r"""Returns :math:`\sum_i w_i k_i` over the non-zero weights."""

    terms = [(w, ki) for w, ki in zip(weights, k, strict=True) if w != 0.0]
    total = terms[0][1] * terms[0][0]
    for w, ki in terms[1:]:
        total = total.add_(ki, alpha=w)
    return total


def _mean_square(x: Tensor) -> Tensor:
    r"""Returns the mean of the squares over the last dimension, :math:`(B, n) \to (B,)`."""

    # A matrix-vector product: torch's reductions over a short last dimension are slow.
    return x.square() @ x.new_full(x.shape[-1:], 1 / x.shape[-1])


def _select(x: Tensor, mask: Tensor) -> Tensor:
    r"""Returns the rows of ``x`` where ``mask`` :math:`(B,)` is true, like ``x[mask]``."""

    # index_select avoids the parallel indexing kernel, slow for small tensors on busy CPUs.
    return x.index_select(0, mask.nonzero().squeeze(1))


def _as_float64(value: object, name: str) -> Tensor:
    r"""Returns ``value`` as a ``float64`` tensor, or raises a :class:`ValueError`."""

    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"solve_batch expects {name} to be real, not {_describe(value)}.")
        return value.detach().to(torch.float64)
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"solve_batch expects {name} to be a tensor of real numbers, but received "
            f"{_describe(value)}."
        ) from exc


def _check_tolerance(value: object, name: str, *, positive: bool) -> float:
    r"""Returns a tolerance as a float, or raises a :class:`ValueError`."""

    bound = "positive" if positive else "non-negative"
    if (
        not isinstance(value, Real)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise ValueError(
            f"solve_batch expects {name} to be a finite {bound} number, not {value!r}."
        )
    return float(value)


def _describe(value: object) -> str:
    r"""Returns a short description of ``value`` for error messages."""

    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"an object of type {type(value).__name__}"
