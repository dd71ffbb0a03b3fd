r"""The Gaussianization transform: a normal quantile of a mixture of normal CDFs."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import constraints

from .._validation import (
    broadcast_batch,
    broadcast_shapes,
    check_compatible,
    check_float_tensor,
    check_input,
)
from ..numerics.roots import bisection
from .base import Transform

__all__ = ["GaussianizationTransform", "ndtri_log"]

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

# Below this log-probability (a quantile below -5.9), Φ^{-1}(exp(l)) is computed from the
# asymptotic expansion of log Φ refined by Newton steps instead of torch.special.ndtri,
# whose argument would underflow in float32 from l < -87 (and in float64 from l < -745).
LOG_TAIL = -20.0


def log_normal_pdf(x: Tensor) -> Tensor:
    r"""Returns :math:`\log \varphi(x) = -x^2 / 2 - \log \sqrt{2 \pi}`."""

    return -0.5 * x.square() - LOG_SQRT_2PI


def ndtri_log(log_p: Tensor, newton: int = 3) -> Tensor:
    r"""Returns the standard normal quantile :math:`\Phi^{-1}(p)` of a log-probability
    :math:`\log p`, without forming :math:`p` in the lower tail.

    For :math:`\log p \ge -20`, :math:`\Phi^{-1}(e^{\log p})` is computed by
    :func:`torch.special.ndtri`. Below, where :math:`p` may underflow, the quantile
    :math:`y = -z` starts from the asymptotic solution of
    :math:`\log \Phi(-z) \approx -z^2 / 2 - \log z - \log \sqrt{2 \pi}`,

    .. math:: z_0 = \sqrt{-2 \log p}, \quad
        z_1 = \sqrt{-2 \log p - 2 \log z_0 - \log 2 \pi} ,

    refined by Newton steps on :math:`\log \Phi(y) = \log p`, whose derivative
    :math:`\varphi(y) / \Phi(y)` is computed in log space. Both branches are evaluated on
    inputs clamped to their own range, so that neither yields NaN gradients. The result is
    differentiable with respect to :math:`\log p`.

    Arguments:
        log_p: The log-probabilities :math:`\log p \le 0`, with shape :math:`(*)`. The
            result is accurate for :math:`\log p \le \log \frac{1}{2}`; use the symmetry
            :math:`\Phi^{-1}(p) = -\Phi^{-1}(1 - p)` for the upper half.
        newton: The number of Newton steps of the tail branch.

    Returns:
        The quantiles :math:`\Phi^{-1}(p)`, with shape :math:`(*)`.

    Example:
        >>> ndtri_log(torch.tensor([math.log(0.5), math.log(0.025)]))
        tensor([ 0.0000, -1.9600])
        >>> ndtri_log(torch.tensor([-5000.0]))  # p = exp(-5000) underflows in float32
        tensor([-99.9448])
    """

    tail = log_p < LOG_TAIL

    # Bulk: p >= exp(-20) is representable in every floating-point dtype.
    bulk = torch.special.ndtri(log_p.clamp(min=LOG_TAIL, max=0.0).exp())

    # Tail: asymptotic start, then Newton steps on log Φ(y) - log p.
    l = log_p.clamp(max=LOG_TAIL)
    z0 = torch.sqrt(-2 * l)
    y = -torch.sqrt(-2 * l - 2 * torch.log(z0) - 2 * LOG_SQRT_2PI)
    for _ in range(newton):
        log_cdf = torch.special.log_ndtr(y)
        y = y - (log_cdf - l) * torch.exp(log_cdf - log_normal_pdf(y))

    return torch.where(tail, y, bulk)


class GaussianizationTransform(Transform):
    r"""The Gaussianization transform, element-wise: the standard normal quantile of a
    mixture of :math:`K` normal CDFs.

    .. math:: f(x) = \Phi^{-1} \left( \frac{1}{K} \sum_{k=1}^K \Phi(s_k x + b_k) \right),
        \quad s_k = \exp(a_k) ,

    where :math:`\Phi` is the CDF of the standard normal :math:`\mathcal{N}(0, 1)` and
    :math:`\varphi` its density. The scales :math:`s_k` are the exponential of the
    unconstrained ``scale`` :math:`a_k`, so :math:`\log s_k = a_k` exactly. The
    log-determinant is the log-density of the mixture over the normal density at
    :math:`y = f(x)`,

    .. math:: \log |\det J_f(x)| = \log \left( \frac{1}{K} \sum_{k=1}^K s_k
        \varphi(s_k x + b_k) \right) - \log \varphi(y) .

    Everything is computed in log space, without clamping the CDF away from 0 and 1:
    :math:`\log m(x)` and :math:`\log (1 - m(x))`, with :math:`m(x)` the mixture CDF, are
    log-sum-exps of :func:`torch.special.log_ndtr`; :math:`y` is the quantile of the smaller
    of the two (by symmetry for the upper tail), computed from the log-probability by
    :func:`ndtri_log`, so :math:`y` and the log-determinant stay finite and accurate far
    into the tails (:math:`|s_k x + b_k|` in the thousands in float32, in the millions in
    float64), where :math:`m(x)` itself would round to 0 or 1.

    The inverse is found by bisection on the log-odds :math:`\log m(x) - \log(1 - m(x))`
    (increasing, and finite wherever :math:`y` is), with gradients by the implicit function
    theorem (:func:`~sbikit.numerics.bisection`). Since :math:`\min_k (s_k x + b_k) \le
    f(x) \le \max_k (s_k x + b_k)`, the root lies in the bracket

    .. math:: \min_k \frac{y - b_k}{s_k} \le f^{-1}(y) \le \max_k \frac{y - b_k}{s_k} ,

    which adapts to the parameters; the number of steps is chosen so that the bracket
    shrinks below the resolution of the dtype.

    References:
        | Gaussianization Flows (Meng et al., 2020)
        | https://arxiv.org/abs/2003.01941

        | Gaussianization (Chen et al., 2000)
        | https://papers.nips.cc/paper/1856-gaussianization

    Arguments:
        shift: The shifts :math:`b`, with shape :math:`(*, K)`.
        scale: The unconstrained log-scales :math:`a` (the scales are
            :math:`s = \exp(a)`), with shape :math:`(*, K)`.

    The batch shapes :math:`(*)` of the parameters broadcast against each other and
    against the shape of the inputs.

    Example:
        >>> t = GaussianizationTransform(torch.tensor([[0.0, 0.0]]), torch.zeros(1, 2))
        >>> t(torch.tensor([-1.0, 0.5]))  # K identical standard components: the identity
        tensor([-1.0000,  0.5000])
        >>> t = GaussianizationTransform(torch.randn(3, 8), torch.randn(3, 8))
        >>> x = torch.tensor([-30.0, 0.5, 30.0])
        >>> y, ladj = t.call_and_ladj(x)
        >>> bool(torch.isfinite(y).all() and torch.isfinite(ladj).all())
        True
        >>> torch.allclose(t.inv(y), x, atol=1e-4)
        True
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, shift: Tensor, scale: Tensor):
        super().__init__()
        owner = type(self).__name__
        shift = check_float_tensor(shift, "shift", owner, min_dim=1)
        scale = check_float_tensor(scale, "scale", owner, min_dim=1)
        check_compatible(shift=shift, scale=scale)
        K = shift.shape[-1]
        if K < 1 or scale.shape[-1] != K:
            raise ValueError(
                f"{owner} expects shift and scale of shape (*, K) with the same number K >= 1 "
                f"of components, but received shift {tuple(shift.shape)} and scale "
                f"{tuple(scale.shape)}. Give the network K outputs for each."
            )
        self.batch_shape = broadcast_batch(owner, shift=shift.shape[:-1], scale=scale.shape[:-1])
        self.components = K
        self.shift = shift
        self.log_scale = scale
        self.scale = scale.exp()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(components={self.components})"

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        return broadcast_shapes(shape, self.batch_shape)

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        return broadcast_shapes(shape, self.batch_shape)

    def _check(self, x: object) -> Tensor:
        owner = type(self).__name__
        x = check_input(x, self.shift, owner)
        try:
            shape = broadcast_shapes(x.shape, self.batch_shape)
        except RuntimeError:
            raise ValueError(
                f"{owner} expects inputs whose shape broadcasts with its parameters' batch "
                f"shape {tuple(self.batch_shape)}, but received shape {tuple(x.shape)}. For "
                "D features, pass inputs of shape (*, D) with parameters of shape (D, K)."
            ) from None
        return x.expand(shape)

    def _u(self, x: Tensor) -> Tensor:
        r"""Returns the components' arguments :math:`u_k = s_k x + b_k`, shape :math:`(*, K)`."""

        return self.scale * x.unsqueeze(-1) + self.shift

    def _log_cdfs(self, u: Tensor) -> tuple[Tensor, Tensor]:
        r"""Returns :math:`\log m(x)` and :math:`\log (1 - m(x))`."""

        log_K = math.log(self.components)
        lower = torch.logsumexp(torch.special.log_ndtr(u), dim=-1) - log_K
        upper = torch.logsumexp(torch.special.log_ndtr(-u), dim=-1) - log_K
        return lower, upper

    def _log_density(self, u: Tensor) -> Tensor:
        r"""Returns :math:`\log m'(x)`, the log-density of the mixture."""

        log_terms = self.log_scale + log_normal_pdf(u)
        return torch.logsumexp(log_terms, dim=-1) - math.log(self.components)

    def _log_odds(self, x: Tensor) -> Tensor:
        lower, upper = self._log_cdfs(self._u(x))
        return lower - upper

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u = self._u(self._check(x))
        lower, upper = self._log_cdfs(u)
        below = lower <= upper  # m(x) <= 1/2: the quantile of the lower tail
        z = ndtri_log(torch.where(below, lower, upper))
        y = torch.where(below, z, -z)
        return y, self._log_density(u) - log_normal_pdf(y)

    def _call(self, x: Tensor) -> Tensor:
        return self.call_and_ladj(x)[0]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]

    def _inverse(self, y: Tensor) -> Tensor:
        y = self._check(y)
        with torch.no_grad():
            roots = (y.unsqueeze(-1) - self.shift) / self.scale
            a, b = roots.amin(dim=-1), roots.amax(dim=-1)
            eps = torch.finfo(y.dtype).eps
            margin = 0.01 * (b - a) + 16 * eps * (1 + torch.maximum(a.abs(), b.abs()))
            a, b = a - margin, b + margin
            width = (b - a)[torch.isfinite(b - a)]
            ratio = width.max().item() / eps if width.numel() > 0 else 1.0
            steps = min(max(math.ceil(math.log2(max(ratio, 1.0))) + 2, 1), 256)
        target = torch.special.log_ndtr(y) - torch.special.log_ndtr(-y)
        return bisection(self._log_odds, target, a, b, n=steps)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = self._inverse(y)
        y = y.expand(x.shape)
        return x, log_normal_pdf(y) - self._log_density(self._u(x))
