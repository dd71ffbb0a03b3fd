r"""The classifier two-sample test (C2ST) of the simulation-based inference benchmark.

References:
    | Revisiting Classifier Two-Sample Tests (Lopez-Paz and Oquab, 2017)
    | https://arxiv.org/abs/1610.06545

    | Benchmarking Simulation-Based Inference (Lueckmann et al., 2021)
    | https://arxiv.org/abs/2101.04653
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from .._validation import check_count, check_number, check_tensor, describe

__all__ = ["c2st"]


def c2st(
    samples_p: Tensor,
    samples_q: Tensor,
    folds: int = 5,
    seed: int = 0,
    steps: int = 1000,
    batch_size: int = 256,
    learning_rate: float = 1e-2,
) -> float:
    r"""Returns the accuracy of a classifier that tells samples of :math:`p` from samples
    of :math:`q`: about 0.5 when :math:`p = q`, up to 1 when they are told apart.

    Follows the benchmark's protocol: both sets are z-scored with the mean and standard
    deviation of ``samples_p`` (the reference), a two-hidden-layer ReLU MLP with
    :math:`10 d` units per layer is trained with Adam on the cross-entropy, and the
    held-out accuracy is averaged over a shuffled ``folds``-fold cross-validation. The
    classifiers of all folds are trained at once, as one batched model.

    Arguments:
        samples_p: The reference samples, :math:`(N, d)`.
        samples_q: The samples to compare, :math:`(M, d)`.
        folds: The number of cross-validation folds.
        seed: The seed of the folds, the initial weights and the minibatches.
        steps: The number of Adam steps of each classifier.
        batch_size: The number of samples per minibatch of each fold (a new shuffle of the
            fold's training samples starts when they are used up).
        learning_rate: The learning rate of Adam (decayed to zero along a cosine).

    Returns:
        The mean held-out accuracy, in :math:`[0, 1]`.

    Example:
        >>> p, q = torch.randn(1000, 2), torch.randn(1000, 2)
        >>> 0.4 < c2st(p, q, steps=200) < 0.6
        True
        >>> c2st(p, q + 3.0, steps=200) > 0.9
        True
    """

    folds = check_count(folds, "folds", "c2st", minimum=2)
    check_count(seed, "seed", "c2st", minimum=0)
    steps = check_count(steps, "steps", "c2st")
    batch_size = check_count(batch_size, "batch_size", "c2st")
    check_number(learning_rate, "learning_rate", "c2st", 0.0)
    p, q = (
        check_samples(s, name) for s, name in ((samples_p, "samples_p"), (samples_q, "samples_q"))
    )
    if p.shape[1] != q.shape[1]:
        raise ValueError(
            f"c2st expects two sets of samples of one dimension, but received {describe(p)} "
            f"and {describe(q)}."
        )
    if len(p) + len(q) < 2 * folds:
        raise ValueError(
            f"c2st needs at least {2 * folds} samples in all for {folds} folds, but received "
            f"{len(p) + len(q)}. Pass more samples or fewer folds."
        )

    loc, scale = p.mean(0), p.std(0)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    features = ((torch.cat((p, q)) - loc) / scale).detach()
    labels = torch.cat((torch.zeros(len(p)), torch.ones(len(q))))
    generator = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(labels), dtype=torch.long)
    fold[torch.randperm(len(labels), generator=generator)] = torch.arange(len(labels)) % folds

    # Every fold trains on the same number of samples (its training set, resampled once to
    # the size of the smallest one), so that the folds form one batched model.
    train = [torch.nonzero(fold != k).squeeze(1) for k in range(folds)]
    size = min(len(t) for t in train)
    train = torch.stack([t[torch.randperm(len(t), generator=generator)[:size]] for t in train])
    model = BatchedMLP(folds, features.shape[1], 10 * features.shape[1], generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    with torch.enable_grad():  # also when called under torch.no_grad()
        for rows in minibatches(train, min(batch_size, size), steps, generator):
            logits = model(features[rows])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[rows])
            optimizer.zero_grad()
            (loss * folds).backward()  # each fold's mean loss: the folds' gradients are apart
            optimizer.step()
            schedule.step()

    with torch.no_grad():
        accuracies = []
        for k in range(folds):
            rows = torch.nonzero(fold == k).squeeze(1)
            logits = model(features[rows].expand(folds, -1, -1))[k]
            accuracies.append(((logits > 0).float() == labels[rows]).float().mean().item())
    return float(np.mean(accuracies))


def minibatches(
    train: Tensor, batch_size: int, steps: int, generator: torch.Generator
) -> Iterator[Tensor]:
    r"""Yields ``steps`` minibatches of indices :math:`(F, B)` of the folds' training sets
    :math:`(F, T)`, each fold in a new random order once its samples are used up."""

    step = 0
    while True:
        order = torch.argsort(torch.rand(train.shape, generator=generator), dim=1)
        for rows in train.gather(1, order).split(batch_size, dim=1):
            if step == steps:
                return
            if rows.shape[1] == batch_size:
                step += 1
                yield rows


def check_samples(samples: object, name: str) -> Tensor:
    r"""Returns finite samples of shape :math:`(N, d)` as a float32 CPU tensor, or raises."""

    samples = check_tensor(samples, name)
    if samples.dim() != 2 or len(samples) < 2 or samples.shape[1] < 1:
        raise ValueError(
            f"c2st expects {name} of shape (N, d) with N >= 2, but received {describe(samples)}. "
            "Flatten the sample dimensions first, e.g. with .reshape(-1, d)."
        )
    samples = samples.detach().to("cpu", torch.float32)
    if not torch.isfinite(samples).all():
        raise ValueError(f"c2st expects finite {name}, but received NaN or infinite values.")
    return samples


class BatchedMLP(torch.nn.Module):
    r"""``folds`` independent two-hidden-layer ReLU MLPs :math:`\mathbb{R}^d \to \mathbb{R}`,
    evaluated together with batched matrix products."""

    def __init__(self, folds: int, features: int, hidden: int, generator: torch.Generator):
        super().__init__()
        sizes = [(features, hidden), (hidden, hidden), (hidden, 1)]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for a, b in sizes:  # the initialisation of torch.nn.Linear
            bound = 1 / math.sqrt(a)
            self.weights.append(uniform((folds, a, b), bound, generator))
            self.biases.append(uniform((folds, 1, b), bound, generator))

    def forward(self, x: Tensor) -> Tensor:
        r"""Maps inputs :math:`(F, N, d)` to logits :math:`(F, N)`."""

        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.weights) - 1:
                x = x.relu()
        return x.squeeze(-1)


def uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.nn.Parameter:
    r"""Returns a parameter drawn uniformly from :math:`[-bound, bound]`."""

    return torch.nn.Parameter((2 * torch.rand(shape, generator=generator) - 1) * bound)
