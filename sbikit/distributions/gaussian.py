r"""A learnable diagonal Gaussian with a Gaussian prior, for weight-uncertain layers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .._validation import as_parameter, broadcast_shapes, check_like, check_tensor, describe

__all__ = ["GaussianDistribution"]


def _as_shape(shape: object) -> torch.Size:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in shape
    ):
        raise TypeError(
            f"GaussianDistribution expects shape to be an int or a sequence of ints, but "
            f"received {describe(shape)}."
        )
    if any(s < 0 for s in shape):
        raise ValueError(
            f"GaussianDistribution expects non-negative sizes, but received shape {tuple(shape)}."
        )
    return torch.Size(shape)


class GaussianDistribution(nn.Module):
    r"""A learnable diagonal Gaussian :math:`q` and a fixed Gaussian prior :math:`p`.

    .. math:: q(w) = \mathcal{N}(w \mid \mu, \sigma^2), \quad \sigma = \log(1 + e^\rho),
        \qquad p(w) = \mathcal{N}(w \mid \mu_p, \sigma_p^2)

    The building block of weight-uncertain (Bayesian) layers: :meth:`sample` draws
    reparameterized weights :math:`w = \mu + \sigma \epsilon` with
    :math:`\epsilon \sim \mathcal{N}(0, I)`, and :meth:`log_prob` returns the single-sample
    Monte-Carlo estimate of :math:`\mathrm{KL}(q \,\|\, p)`,

    .. math:: \sum_i \log q(w_i) - \sum_i \log p(w_i), \quad w \sim q.

    The variational parameters :math:`\mu` and :math:`\rho` are trainable parameters; the
    prior's :math:`\mu_p` and :math:`\sigma_p` are buffers.

    References:
        | Weight Uncertainty in Neural Networks (Blundell et al., 2015)
        | https://arxiv.org/abs/1505.05424

    Arguments:
        shape: The shape of :math:`w`.
        mu_prior: The prior mean :math:`\mu_p`, a number or a tensor broadcastable to ``shape``.
        std_prior: The prior standard deviation :math:`\sigma_p > 0`, likewise.
        mu_init: The initial value of :math:`\mu`.
        rho_init: The initial value of :math:`\rho`.
        dtype: The dtype of the parameters and buffers (default: torch's default dtype).
        device: The device of the parameters and buffers.

    Example:
        >>> q = GaussianDistribution((3, 2))
        >>> q.sample().shape, q.num_params()
        (torch.Size([3, 2]), 12)
        >>> kl = q.log_prob()
        >>> kl.shape, bool(torch.isfinite(kl))
        (torch.Size([]), True)
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        mu_prior: Tensor | float = 0.0,
        std_prior: Tensor | float = 0.1,
        mu_init: Tensor | float = 0.0,
        rho_init: Tensor | float = -7.0,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        self.shape = _as_shape(shape)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        values = {}
        for name, value in [
            ("mu_prior", mu_prior),
            ("std_prior", std_prior),
            ("mu_init", mu_init),
            ("rho_init", rho_init),
        ]:
            value = as_parameter(value, name).detach().to(dtype=dtype, device=device)
            try:
                broadcastable = broadcast_shapes(value.shape, self.shape) == self.shape
            except RuntimeError:
                broadcastable = False
            if not broadcastable:
                raise ValueError(
                    f"GaussianDistribution expects {name} broadcastable to shape "
                    f"{tuple(self.shape)}, but received shape {tuple(value.shape)}."
                )
            values[name] = value.clone()
        if not torch.all(values["std_prior"] > 0):
            raise ValueError("GaussianDistribution expects std_prior > 0.")
        self.mu = nn.Parameter(values["mu_init"].expand(self.shape).clone())
        self.rho = nn.Parameter(values["rho_init"].expand(self.shape).clone())
        self.register_buffer("mu_prior", values["mu_prior"])
        self.register_buffer("std_prior", values["std_prior"])

    def extra_repr(self) -> str:
        return f"shape={tuple(self.shape)}"

    @property
    def sigma(self) -> Tensor:
        r"""The standard deviation :math:`\sigma = \log(1 + e^\rho)` of :math:`q`."""

        return F.softplus(self.rho)

    def num_params(self) -> int:
        r"""Returns the number of trainable parameters (elements of ``requires_grad`` tensors)."""

        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def sample(self) -> Tensor:
        r"""Draws reparameterized weights :math:`w = \mu + \sigma \epsilon`, with shape
        ``shape``."""

        return self.mu + self.sigma * torch.randn_like(self.mu)

    def log_prob(self, x: Tensor | None = None) -> Tensor:
        r"""Returns :math:`\sum_i \log q(x_i) - \sum_i \log p(x_i)`, a scalar.

        Arguments:
            x: Weights with shape ``shape``; if ``None``, :math:`x \sim q` is drawn with
                :meth:`sample`, making the result a single-sample estimate of
                :math:`\mathrm{KL}(q \,\|\, p)`.
        """

        if x is None:
            x = self.sample()
        else:
            x = check_tensor(x, "x")
            if x.shape != self.shape:
                raise ValueError(
                    f"GaussianDistribution expects x of shape {tuple(self.shape)}, but "
                    f"received shape {tuple(x.shape)}."
                )
            check_like(x, self.mu, "x", "GaussianDistribution")
        log_q = _normal_log_prob(x, self.mu, self.sigma)
        log_p = _normal_log_prob(x, self.mu_prior, self.std_prior)
        return (log_q - log_p).sum()


def _normal_log_prob(x: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    return -(((x - loc) / scale) ** 2) / 2 - scale.log() - math.log(2 * math.pi) / 2
