r"""Convergence diagnostics of Markov chains: rank-normalised split :math:`\hat{R}` and bulk
effective sample size (Vehtari et al., 2021), computed for every component of the event.

References:
    | Rank-normalization, folding, and localization: An improved R-hat for assessing
      convergence of MCMC (Vehtari, Gelman, Simpson, Carpenter and Bürkner, 2021)
    | https://arxiv.org/abs/1903.08008
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .._validation import describe

__all__ = ["MCMCDiagnostics", "effective_sample_size", "split_rhat"]


def _check_chains(chains: object, name: str) -> tuple[Tensor, torch.Size]:
    r"""Returns ``chains`` as a float64 tensor of shape ``(steps, chains, K)`` and the event
    shape, or raises."""

    if not isinstance(chains, Tensor):
        raise TypeError(
            f"{name} expects chains as a torch.Tensor of shape (steps, chains, *event), but "
            f"received {describe(chains)}. Convert it with torch.as_tensor(...) first."
        )
    if chains.dim() < 2:
        raise ValueError(
            f"{name} expects chains of shape (steps, chains, *event), but received shape "
            f"{tuple(chains.shape)}. Add a chain dimension, e.g. with .unsqueeze(1)."
        )
    if chains.shape[0] < 4 or chains.shape[1] < 1:
        raise ValueError(
            f"{name} expects at least 4 steps and 1 chain (each chain is split in two halves), "
            f"but received shape {tuple(chains.shape)}. Run the chains for more steps."
        )
    if chains.dtype == torch.bool or chains.is_complex():
        raise TypeError(f"{name} expects real-valued chains, but received {describe(chains)}.")
    x = chains.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(
            f"{name} expects finite chains, but received NaN or infinite values. Remove or "
            f"fix the diverging chains first."
        )
    event = chains.shape[2:]
    return x.reshape(x.shape[0], x.shape[1], -1), event


def _split(x: Tensor) -> Tensor:
    r"""Splits each chain of ``x`` (steps, chains, K) in two halves, dropping the middle
    step if the number of steps is odd: (steps // 2, 2 chains, K)."""

    half = x.shape[0] // 2
    return torch.cat([x[:half], x[x.shape[0] - half :]], dim=1)


def _rank_normalize(x: Tensor) -> Tensor:
    r"""Replaces the draws of ``x`` (steps, chains, K) by the normal scores of their pooled
    average ranks, :math:`\Phi^{-1}((r - 3/8) / (S + 1/4))`, for each component."""

    n, m, k = x.shape
    flat = x.reshape(n * m, k).T.contiguous()  # (K, S)
    ordered = flat.sort(dim=-1).values
    lo = torch.searchsorted(ordered, flat, right=False)
    hi = torch.searchsorted(ordered, flat, right=True)
    rank = (lo + hi + 1).to(x.dtype) / 2  # average rank of ties, 1-based
    z = torch.special.ndtri((rank - 0.375) / (n * m + 0.25))
    return z.T.reshape(n, m, k)


def _median(x: Tensor) -> Tensor:
    r"""The median of ``x`` (S, K) along its first dimension, averaging the two middle
    values when S is even."""

    ordered = x.sort(dim=0).values
    s = x.shape[0]
    return (ordered[(s - 1) // 2] + ordered[s // 2]) / 2


def _rhat(x: Tensor) -> Tensor:
    r"""The potential scale reduction of ``x`` (steps, chains, K), with shape (K,)."""

    n = x.shape[0]
    within = x.var(dim=0).mean(dim=0)
    between = n * x.mean(dim=0).var(dim=0) if x.shape[1] > 1 else torch.zeros_like(within)
    return torch.sqrt(((n - 1) * within + between) / (n * within))


def _ess(x: Tensor) -> Tensor:
    r"""The effective sample size of ``x`` (steps, chains, K), with shape (K,), from the
    FFT autocorrelation and Geyer's initial monotone sequence."""

    n, m, _ = x.shape
    centred = x - x.mean(dim=0)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = torch.fft.rfft(centred, n=size, dim=0)
    acov = torch.fft.irfft(spectrum.abs().square(), n=size, dim=0)[:n] / n  # biased
    mean_var = acov[0].mean(dim=0) * n / (n - 1)
    var_plus = mean_var * (n - 1) / n
    if m > 1:
        var_plus = var_plus + x.mean(dim=0).var(dim=0)
    rho = 1 - (mean_var - acov.mean(dim=1)) / var_plus  # (n, K)
    rho[0] = 1
    # The pairs (rho_2k, rho_2k+1) for k <= (n - 3) // 2, as in the reference code.
    pairs = max((n - 3) // 2, 0) + 1
    even, odd = rho[0 : 2 * pairs : 2], rho[1 : 2 * pairs : 2]
    sums = even + odd
    # Initial positive sequence: the pairs before the first non-positive sum (and never
    # the last pair) ...
    keep = torch.cumprod((sums[: pairs - 1] > 0).to(x.dtype), dim=0)
    # ... made monotone (non-increasing), Geyer (1992).
    monotone = torch.cummin(sums[: pairs - 1], dim=0).values
    tau = -1 + 2 * (keep * monotone).sum(dim=0)
    # Plus the even term of the first pair left out, if positive (Vehtari et al., 2021).
    first = keep.sum(dim=0).long()
    tau = tau + even.gather(0, first.unsqueeze(0)).squeeze(0).clamp(min=0)
    tau = tau.clamp(min=1 / math.log10(n * m))
    return n * m / tau


def split_rhat(chains: Tensor) -> Tensor:
    r"""Returns the rank-normalised split :math:`\hat{R}` of Markov chains, for every
    component of the event.

    Each chain is split in two halves (the middle step is dropped when the number of
    steps is odd), the draws of all chains are replaced by the normal scores of their
    pooled ranks, and :math:`\hat{R} = \sqrt{\hat{V}^+ / W}` compares the pooled variance
    :math:`\hat{V}^+ = \frac{n - 1}{n} W + \frac{B}{n}` with the within-chain variance
    :math:`W`. The result is the maximum of this *bulk* :math:`\hat{R}` and the *tail*
    :math:`\hat{R}` of the folded draws :math:`|\theta - \mathrm{median}(\theta)|`, as
    recommended by Vehtari et al. (2021). Values above 1.01 suggest that the chains have
    not mixed; constant chains give NaN.

    References:
        | Rank-normalization, folding, and localization: An improved R-hat for assessing
          convergence of MCMC (Vehtari et al., 2021)
        | https://arxiv.org/abs/1903.08008

    Arguments:
        chains: The draws, with shape :math:`(T, C, *)` for :math:`T \geq 4` steps of
            :math:`C` chains, the event shape :math:`*` last.

    Returns:
        :math:`\hat{R}`, with shape :math:`(*)` and the dtype of ``chains`` (float64 for
        integer chains).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> iid = torch.randn(1000, 4, 2)
        >>> split_rhat(iid).shape
        torch.Size([2])
        >>> split_rhat(iid).sub(1).abs().max() < 0.01
        tensor(True)
        >>> shifted = iid + torch.tensor([0.0, 0.0, 0.0, 2.0]).reshape(1, 4, 1)
        >>> split_rhat(shifted).min() > 1.1
        tensor(True)
    """

    x, event = _check_chains(chains, "split_rhat")
    halves = _split(x)
    bulk = _rhat(_rank_normalize(halves))
    median = _median(halves.reshape(-1, x.shape[-1]))
    tail = _rhat(_rank_normalize((halves - median).abs()))
    rhat = torch.maximum(bulk, tail).reshape(event)
    return rhat.to(chains.dtype if chains.is_floating_point() else torch.float64)


def effective_sample_size(chains: Tensor) -> Tensor:
    r"""Returns the bulk effective sample size (ESS) of Markov chains, for every component
    of the event.

    The chains are split in two halves and rank-normalised as in :func:`split_rhat`; the
    autocorrelation :math:`\hat{\rho}_t` of the pooled chains is computed with the FFT and
    summed with Geyer's initial monotone sequence,

    .. math:: \mathrm{ESS} = \frac{C T}{\hat{\tau}}, \quad
        \hat{\tau} = -1 + 2 \sum_{k=0}^{K} (\hat{\rho}_{2k} + \hat{\rho}_{2k + 1}),

    where the pair sums are truncated at the first non-positive one and made
    non-increasing. :math:`\hat{\tau}` is bounded below by :math:`1 / \log_{10}(C T)`, so
    the ESS of anti-correlated chains may exceed the number of draws. An ESS above about
    400 makes Monte-Carlo estimates of posterior means and quantiles reliable; the
    standard error of a mean is about :math:`\sigma / \sqrt{\mathrm{ESS}}`.

    References:
        | Rank-normalization, folding, and localization: An improved R-hat for assessing
          convergence of MCMC (Vehtari et al., 2021)
        | https://arxiv.org/abs/1903.08008

        | Practical Markov chain Monte Carlo (Geyer, 1992)
        | https://doi.org/10.1214/ss/1177011137

    Arguments:
        chains: The draws, with shape :math:`(T, C, *)` for :math:`T \geq 4` steps of
            :math:`C` chains, the event shape :math:`*` last.

    Returns:
        The ESS, with shape :math:`(*)` and the dtype of ``chains`` (float64 for integer
        chains).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> iid = torch.randn(1000, 4, 3)
        >>> effective_sample_size(iid).shape
        torch.Size([3])
        >>> ar = torch.zeros(1000, 4)  # AR(1) chains with rho = 0.9
        >>> for t in range(1, 1000):
        ...     ar[t] = 0.9 * ar[t - 1] + torch.randn(4) * (1 - 0.81) ** 0.5
        >>> effective_sample_size(ar) < 400  # about 4000 * 0.1 / 1.9 = 211
        tensor(True)
    """

    x, event = _check_chains(chains, "effective_sample_size")
    ess = _ess(_rank_normalize(_split(x))).reshape(event)
    return ess.to(chains.dtype if chains.is_floating_point() else torch.float64)


@dataclass
class MCMCDiagnostics:
    r"""Convergence diagnostics of the last :meth:`MCMCDistribution.sample` run.

    Attributes:
        rhat: The split :math:`\hat{R}` of :func:`split_rhat`, with the event shape.
        ess: The bulk ESS of :func:`effective_sample_size`, with the event shape, of all
            the ``steps * chains`` kept draws; the :math:`N` draws returned, a random subset,
            have an ESS of about ``ess * N / (steps * chains)``.
        max_rhat: The largest :math:`\hat{R}` over the event (NaN for constant chains).
        min_ess: The smallest ESS over the event.
        converged: Whether ``max_rhat`` is below :attr:`MCMCDistribution.rhat_threshold`
            (1.01) and ``min_ess`` at least :attr:`MCMCDistribution.ess_threshold` (400) or,
            for runs of fewer than ten times that many draws, a tenth of the draws.
        chains: The number of chains.
        steps: The number of kept (thinned) steps per chain after warm-up.
        warmup: The number of discarded warm-up steps.
        thin: The thinning factor.
        method: The sampler, ``"slice"`` or ``"metropolis"``.
        seconds: The wall-clock duration of the run, initialisation included.
        acceptance: The mean acceptance rate after warm-up (1.0 for the slice sampler,
            whose every update moves).
        evaluations: The number of points at which ``log_prob_fn`` was evaluated,
            initialisation and warm-up included.

    Example:
        >>> from torch.distributions import constraints
        >>> from sbikit.distributions import MCMCDistribution
        >>> _ = torch.manual_seed(0)
        >>> d = MCMCDistribution(
        ...     lambda theta: -0.5 * theta.square().sum(-1),
        ...     constraints.real_vector,
        ...     (2,),
        ...     chains=50,
        ...     warmup=100,
        ...     init=torch.zeros(50, 2),
        ...     progress=False,
        ... )
        >>> _ = d.sample((5000,))
        >>> d.diagnostics.converged, d.diagnostics.chains, d.diagnostics.steps
        (True, 50, 200)
    """

    rhat: Tensor
    ess: Tensor
    max_rhat: float
    min_ess: float
    converged: bool
    chains: int
    steps: int
    warmup: int
    thin: int
    method: str
    seconds: float
    acceptance: float
    evaluations: int
