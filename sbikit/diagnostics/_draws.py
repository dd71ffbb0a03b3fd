r"""Posterior draws for held-out test pairs: :math:`L` draws and their log-densities for
each of :math:`N` observations, in batches of observations, seeded."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.distributions import Distribution
from tqdm import tqdm

from .._validation import check_count, check_tensor, describe

__all__ = ["Draws", "draw"]

DRAWS_PER_BATCH = 2**15
r"""The default number of draws per batch of observations (``batch_size * L``)."""


@dataclass
class Draws:
    r"""Posterior draws for test pairs (all on the CPU).

    Attributes:
        samples: The draws :math:`\theta_l \sim q(\theta \mid x_i)`, :math:`(L, N, D)`.
        log_prob: Their log-densities :math:`\log q(\theta_l \mid x_i)`, :math:`(L, N)`.
        log_prob_theta: The log-densities of the true parameters, :math:`(N,)`.
        theta: The true parameters :math:`\theta^*_i` of the kept pairs, :math:`(N, D)`.
        kept: Which of the given pairs were kept, :math:`(N_0,)`.
        dropped: Why pairs were dropped: ``{"non-finite test data": k, ...}``.
        warnings: What the caller should know about the draws.

    Example:
        >>> from sbikit.distributions import DiagNormal
        >>> draws = draw(lambda x: DiagNormal(x, torch.ones_like(x)), torch.zeros(4, 2),
        ...              torch.zeros(4, 2), 10, progress=False)
        >>> draws.samples.shape, draws.log_prob.shape, draws.log_prob_theta.shape
        (torch.Size([10, 4, 2]), torch.Size([10, 4]), torch.Size([4]))
    """

    samples: Tensor
    log_prob: Tensor
    log_prob_theta: Tensor
    theta: Tensor
    kept: Tensor
    dropped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def draw(
    posterior: Callable[[Tensor], Distribution],
    theta: Tensor,
    x: Tensor,
    num_samples: int = 1000,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Draws:
    r"""Draws :math:`L` samples of the posterior of each test observation, with their
    log-densities and the log-density of each true parameter.

    The observations are processed in batches: ``posterior(x[batch])`` must return a
    distribution with batch shape ``(B,)`` and event shape ``(D,)`` (the shape contract of
    :mod:`sbikit`), whose ``sample((L,))`` has shape :math:`(L, B, D)`. When it offers
    ``rsample_and_log_prob`` (as :class:`~sbikit.distributions.NormalizingFlow` does), the
    draws and their log-densities come from one pass. Pairs whose :math:`\theta^*` or
    :math:`x` hold NaN or infinite values are dropped and counted, as are pairs whose draws
    or log-densities are NaN. The global random state of torch is left as it was.

    When ``posterior`` is an :class:`~torch.nn.Module`, the observations are moved to the
    device and floating-point dtype of its parameters.

    Arguments:
        posterior: A callable that maps observations :math:`(B, *X)` to a distribution over
            :math:`\theta`, e.g. a trained :class:`~sbikit.inference.NPE`.
        theta: The true parameters of the test pairs, :math:`(N, D)`.
        x: The observations simulated from them, :math:`(N, *X)`.
        num_samples: The number of draws :math:`L` per observation.
        batch_size: The number of observations per batch (default: about
            :math:`2^{15} / L`; batches that fit in the CPU caches are faster).
        seed: The seed of the draws.
        progress: Whether to show a progress bar.

    Returns:
        The draws (see :class:`Draws`).

    Example:
        >>> from sbikit.distributions import DiagNormal
        >>> posterior = lambda x: DiagNormal(x / 2, 0.5 * torch.ones_like(x))
        >>> theta, x = torch.randn(100, 3), torch.randn(100, 3)
        >>> x[0, 1] = float("nan")  # a failed simulation
        >>> draws = draw(posterior, theta, x, 50, progress=False)
        >>> draws.samples.shape, draws.dropped
        (torch.Size([50, 99, 3]), {'non-finite test data': 1})
    """

    theta, x, kept = check_pairs(theta, x, "draw")
    num_samples = check_count(num_samples, "num_samples", "draw")
    check_count(seed, "seed", "draw", minimum=0)
    if not callable(posterior):
        raise TypeError(
            "draw expects posterior to be a callable that maps a batch of observations to a "
            f"torch Distribution over theta, but received {describe(posterior)}."
        )
    if batch_size is None:
        batch_size = max(1, DRAWS_PER_BATCH // num_samples)
    batch_size = check_count(batch_size, "batch_size", "draw")
    device, dtype = placement(posterior, x)
    dropped = {"non-finite test data": int((~kept).sum())} if not kept.all() else {}

    samples, log_prob, log_prob_theta = [], [], []
    with seeded(seed, device), torch.no_grad():
        with tqdm(total=len(x), disable=not progress, desc="posterior draws") as bar:
            for start in range(0, len(x), batch_size):
                stop = min(start + batch_size, len(x))
                rows = x[start:stop].to(device=device, dtype=dtype)
                s, lp, lt = draw_batch(posterior, rows, theta[start:stop], num_samples)
                samples.append(s)
                log_prob.append(lp)
                log_prob_theta.append(lt)
                bar.update(stop - start)
    samples, log_prob = torch.cat(samples, dim=1), torch.cat(log_prob, dim=1)
    log_prob_theta = torch.cat(log_prob_theta)

    failed = (
        ~torch.isfinite(samples).all(dim=2).all(dim=0)
        | torch.isnan(log_prob).any(dim=0)
        | torch.isnan(log_prob_theta)
    )
    notes = []
    if len(failed) - int(failed.sum()) < 2:
        raise ValueError(
            f"draw expects a posterior with finite draws and log-densities, but it returned "
            f"NaN or infinite values for {int(failed.sum())} of {len(failed)} test pairs, "
            "leaving fewer than 2. Check the posterior on one observation, e.g. "
            "posterior(x[:1]).sample((10,))."
        )
    if failed.any():
        dropped["NaN draws or log-densities"] = int(failed.sum())
        notes.append(
            f"The posterior returned NaN or infinite draws, or NaN log-densities, for "
            f"{int(failed.sum())} test pairs; they were dropped."
        )
        index = torch.nonzero(kept).squeeze(1)
        kept[index[failed]] = False
        samples, log_prob, log_prob_theta = (
            samples[:, ~failed],
            log_prob[:, ~failed],
            log_prob_theta[~failed],
        )
        theta = theta[~failed]
    outside = int(torch.isneginf(log_prob_theta).sum())
    if outside:
        notes.append(
            f"{outside} true parameters have zero posterior density (log q = -inf): they lie "
            "outside the posterior's support, a sign of an overconfident or misspecified "
            "posterior."
        )
    return Draws(samples, log_prob, log_prob_theta, theta, kept, dropped, notes)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    r"""Seeds torch's generators (of the CPU and of ``device``) inside the context and
    restores their states after it."""

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def draw_batch(
    posterior: Callable[[Tensor], Distribution], x: Tensor, theta: Tensor, num_samples: int
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Returns the draws :math:`(L, B, D)`, their log-densities :math:`(L, B)` and those of
    ``theta`` :math:`(B,)` for one batch of observations, on the CPU."""

    q = posterior(x)
    if not isinstance(q, Distribution):
        raise TypeError(
            "the posterior must return a torch Distribution for a batch of observations, but "
            f"posterior(x) returned {describe(q)} for x of shape {tuple(x.shape)}."
        )
    expected = torch.Size((len(x), theta.shape[1]))
    if q.batch_shape + q.event_shape != expected:
        raise ValueError(
            f"the posterior must return a distribution with batch shape ({len(x)},) and event "
            f"shape ({theta.shape[1]},) for {len(x)} observations of {theta.shape[1]} "
            f"parameters, but returned batch shape {tuple(q.batch_shape)} and event shape "
            f"{tuple(q.event_shape)}. Check that it treats the first dimension of x as a batch."
        )
    if hasattr(q, "rsample_and_log_prob"):
        samples, log_prob = q.rsample_and_log_prob((num_samples,))
    else:
        samples = q.sample((num_samples,))
        log_prob = q.log_prob(samples)
    log_prob_theta = q.log_prob(theta.to(device=samples.device, dtype=samples.dtype))
    return samples.cpu(), log_prob.cpu(), log_prob_theta.cpu()


def check_pairs(theta: object, x: object, owner: str) -> tuple[Tensor, Tensor, Tensor]:
    r"""Returns the finite test pairs :math:`(N, D)`, :math:`(N, *X)` and which of the
    given pairs they are, or raises."""

    theta = check_tensor(theta, f"{owner}'s theta")
    x = check_tensor(x, f"{owner}'s x")
    if theta.dim() != 2 or theta.shape[1] < 1 or not theta.is_floating_point():
        raise ValueError(
            f"{owner} expects theta of shape (N, D), floating point (the true parameters of N test "
            f"pairs), but received {describe(theta)}. Reshape it with theta.reshape(N, -1)."
        )
    if x.dim() < 1 or len(x) != len(theta):
        raise ValueError(
            f"{owner} expects one observation per parameter, x of shape (N, *x_shape) with N = "
            f"{len(theta)} as theta, but received {describe(x)}. Pass the observations "
            "simulated from theta, in the same order."
        )
    kept = (
        torch.isfinite(theta).all(dim=1).cpu() & torch.isfinite(x.reshape(len(x), -1)).all(1).cpu()
    )
    if kept.sum() < 2:
        raise ValueError(
            f"{owner} expects at least 2 test pairs with finite theta and x, but received "
            f"{int(kept.sum())} of {len(theta)}. Simulate more test pairs from the prior."
        )
    return theta.detach().cpu()[kept], x.detach()[kept.to(x.device)], kept


def placement(posterior: object, x: Tensor) -> tuple[torch.device, torch.dtype]:
    r"""Returns the device and dtype that observations must have for ``posterior``: those of
    its first floating-point parameter or buffer when it is a module, else those of ``x``."""

    if isinstance(posterior, torch.nn.Module):
        tensors = itertools.chain(posterior.parameters(), posterior.buffers())
        for tensor in tensors:
            if tensor.is_floating_point():
                dtype = tensor.dtype if x.is_floating_point() else x.dtype
                return tensor.device, dtype
    return x.device, x.dtype
