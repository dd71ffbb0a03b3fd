r"""Warm-up adaptation of :class:`~sbikit.distributions.MCMCDistribution`: the windows
after which the proposal's scales are re-estimated, and the covariance estimated from a
window."""

from __future__ import annotations

import torch
from torch import Tensor


def adaptation_ends(warmup: int) -> list[int]:
    r"""The warm-up steps after which the scales are re-estimated: windows of doubling
    length ending at 5%, 10%, 20%, 40% and 80% of the warm-up."""

    ends, start = [], 0
    for fraction in (0.05, 0.1, 0.2, 0.4, 0.8):
        end = int(fraction * warmup)
        if end - start >= 5:
            ends.append(end)
            start = end
    return ends


def within_chain_covariance(window: list[Tensor]) -> Tensor | None:
    r"""The pooled within-chain covariance of the states of a window, each (C, D), in
    float64, regularised towards its diagonal; ``None`` if the chains did not move."""

    z = torch.stack(window).to(torch.float64)  # (L, C, D)
    length, count, _ = z.shape
    centred = z - z.mean(dim=0)
    cov = torch.einsum("lci,lcj->ij", centred, centred) / (count * (length - 1))
    scale = cov.diagonal()
    if not torch.isfinite(cov).all() or not (scale > 0).all():
        return None
    n = count * (length - 1)
    shrink = 5 / (n + 5)  # towards the diagonal, as Stan does towards the identity
    cov = (1 - shrink) * cov + shrink * torch.diag(scale)
    eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    return cov + 1e-10 * scale.max() * eye
