r"""Continuous normalizing flows: FFJORD with a neural vector field."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .._validation import check_count, check_number
from ..distributions import DiagNormal
from ..lazy import Flow, LazyTransform, UnconditionalDistribution, check_context
from ..nn import MLP
from ..transforms.continuous import FreeFormJacobianTransform

__all__ = ["CNF", "FFJTransform"]


class FFJTransform(LazyTransform):
    r"""A lazy free-form Jacobian transform whose vector field is a neural network.

    The vector field is an MLP of the state :math:`x`, an embedding of the time
    :math:`t \in [0, 1]` and the context :math:`c`,

    .. math:: f_\phi(t, x \mid c) = \mathrm{MLP}_\phi(x, \cos(k \pi t), \sin(k \pi t), c),
        \quad k = 1, \dots, K,

    and ``forward(c)`` returns the :class:`~sbikit.transforms.continuous.FreeFormJacobianTransform`
    of that field from :math:`t_0 = 0` to :math:`t_1 = 1`. The share of the context in the
    first layer, :math:`W_c c + b`, is computed once per call of ``forward``, not at every
    evaluation of the field; gradients reach the context and every parameter through the
    adjoint method.

    References:
        | FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models
          (Grathwohl et al., 2018)
        | https://arxiv.org/abs/1810.01367

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        freqs: The number of time frequencies :math:`K`.
        atol: The absolute tolerance of the integration.
        rtol: The relative tolerance of the integration.
        exact: Whether the trace of the Jacobian is exact or Hutchinson's estimate.
        kwargs: Keyword arguments of :class:`~sbikit.nn.MLP` (``hidden_features``,
            ``activation`` and ``normalize``). The default activation is
            :class:`torch.nn.SiLU`: the adjoint pass of the exact trace differentiates the
            field twice, and an activation that is not twice continuously differentiable
            (ReLU, ELU) makes the adaptive solver take many rejected steps at its kinks.

    Example:
        >>> t = FFJTransform(3, context=2, hidden_features=(16,))
        >>> f = t(torch.randn(2))
        >>> x = torch.randn(3)
        >>> z, ladj = f.call_and_ladj(x)
        >>> z.shape, ladj.shape
        (torch.Size([3]), torch.Size([]))
        >>> torch.allclose(f.inv(z), x, atol=1e-3)
        True
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        freqs: int = 3,
        atol: float = 1e-6,
        rtol: float = 1e-5,
        exact: bool = True,
        **kwargs: Any,
    ):
        super().__init__()
        owner = type(self).__name__
        self.features = check_count(features, "features", owner, 1)
        self.context = check_count(context, "context", owner, 0)
        self.freqs = check_count(freqs, "freqs", owner, 0)
        self.atol = check_number(atol, "atol", owner, low=0.0)
        self.rtol = check_number(rtol, "rtol", owner, low=0.0)
        self.exact = bool(exact)
        kwargs.setdefault("activation", nn.SiLU)
        self.ode = MLP(features + 2 * freqs + context, features, **kwargs)
        frequencies = torch.arange(1, freqs + 1, dtype=torch.get_default_dtype()) * torch.pi
        self.register_buffer("frequencies", frequencies, persistent=False)

    def extra_repr(self) -> str:
        return f"freqs={self.freqs}, atol={self.atol:g}, rtol={self.rtol:g}, exact={self.exact}"

    def forward(self, c: Tensor | None = None) -> FreeFormJacobianTransform:
        c = check_context(c, self.context, type(self).__name__)
        first, *rest = self.ode
        weight, bias, frequencies = first.weight, first.bias, self.frequencies
        features, time = self.features, self.features + 2 * self.freqs

        def f(t: Tensor, x: Tensor) -> Tensor:
            h = F.linear(x, weight[:, :features], bias)
            if self.freqs:
                angles = frequencies * t
                h = h + F.linear(torch.cat((angles.cos(), angles.sin())), weight[:, features:time])
            if c is not None:
                h = h + F.linear(c, weight[:, time:])
            for layer in rest:
                h = layer(h)
            return h

        # The adjoint differentiates f with respect to phi: every tensor computed from phi
        # must be computed inside f, so the context's share is recomputed at each evaluation.
        phi = [p for p in self.ode.parameters() if p.requires_grad]
        if c is not None and c.requires_grad:
            phi.append(c)
        return FreeFormJacobianTransform(
            f,
            0.0,
            1.0,
            phi=phi,
            atol=self.atol,
            rtol=self.rtol,
            exact=self.exact,
            features=self.features,
        )


class CNF(Flow):
    r"""A continuous normalizing flow: a free-form Jacobian transform over a standard normal
    base.

    Density evaluation and sampling each integrate one ODE, with the exact trace of the
    Jacobian by default (:math:`D` vector-Jacobian products per evaluation of the field);
    ``exact=False`` trades it for Hutchinson's stochastic estimate, one product, whose
    log-densities are then unbiased but random.

    References:
        | Neural Ordinary Differential Equations (Chen et al., 2018)
        | https://arxiv.org/abs/1806.07366

        | FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models
          (Grathwohl et al., 2018)
        | https://arxiv.org/abs/1810.01367

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        kwargs: Keyword arguments of :class:`FFJTransform` (``freqs``, ``atol``, ``rtol``,
            ``exact``, ``hidden_features``, ``activation``, ...).

    Example:
        >>> flow = CNF(3, context=2, hidden_features=(16,))
        >>> q = flow(torch.randn(4, 2))
        >>> x = q.sample((5,))
        >>> x.shape, q.log_prob(x).shape
        (torch.Size([5, 4, 3]), torch.Size([5, 4]))
    """

    def __init__(self, features: int, context: int = 0, **kwargs: Any):
        transform = FFJTransform(features, context, **kwargs)
        base = UnconditionalDistribution(
            DiagNormal, torch.zeros(features), torch.ones(features), buffer=True
        )
        super().__init__([transform], base, context=context)
