r"""Training data for :func:`sbikit.fit`: tensors, simulation files and datasets, split into
training and validation batches whose order derives only from ``(seed, epoch)``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._validation import check_tensor, describe
from ..data import SimulationDataset

__all__ = ["DatasetSource", "TensorSource", "prepare"]

MIN_ROWS = 10
r"""The fewest pairs :func:`sbikit.fit` trains on."""

IN_MEMORY_BYTES = 1 << 30
r"""Files up to this size (θ and x in float32) are read into memory once; larger ones stream."""


class TensorSource:
    r"""Batches of rows of in-memory tensors, shuffled per epoch from ``(seed, epoch)``."""

    def __init__(self, theta: Tensor, x: Tensor, batch_size: int, seed: int):
        self.theta, self.x, self.batch_size, self.seed = theta, x, batch_size, seed
        self.rows = len(theta)

    def batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.rows)
        order = torch.from_numpy(order).to(self.theta.device)
        for i in range(0, self.rows, self.batch_size):
            rows = order[i : i + self.batch_size]
            yield self.theta[rows], self.x[rows]


class DatasetSource:
    r"""Batches of a :class:`~sbikit.data.SimulationDataset`, moved to a device and dtype."""

    def __init__(self, dataset: SimulationDataset, device: torch.device, dtype: torch.dtype):
        self.dataset, self.device, self.dtype = dataset, device, dtype
        self.rows = dataset.rows

    def batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        self.dataset.set_epoch(epoch)
        for theta, x in self.dataset:
            yield (
                theta.to(self.device, self.dtype, non_blocking=True),
                x.to(self.device, self.dtype, non_blocking=True),
            )


def prepare(
    data: object,
    theta_dim: int,
    x_shape: torch.Size,
    *,
    batch_size: int,
    validation: float,
    seed: int,
    in_memory: bool | None,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[TensorSource | DatasetSource, TensorSource | DatasetSource]:
    r"""Returns the training and validation sources of ``data``: a pair of tensors
    ``(theta, x)``, the path of a simulation file or a
    :class:`~sbikit.data.SimulationDataset`, or raises."""

    if isinstance(data, tuple | list):
        return split_tensors(data, theta_dim, x_shape, batch_size, validation, seed, device, dtype)
    if isinstance(data, str | Path):
        dataset = SimulationDataset(data, batch_size=batch_size, seed=seed)
        if in_memory is None:
            size = math.prod(dataset.theta_shape) + math.prod(dataset.x_shape)
            in_memory = dataset.rows * size * 4 <= IN_MEMORY_BYTES
        if in_memory:
            dataset = SimulationDataset(data, batch_size=batch_size, seed=seed, in_memory=True)
    elif isinstance(data, SimulationDataset):
        dataset = data
    else:
        raise TypeError(
            "fit expects data as a pair of tensors (theta, x), the path of a simulation file "
            f"or a sbikit.data.SimulationDataset, but received {describe(data)}."
        )
    where = f"the file {dataset.path}"
    check_rows(dataset.rows, where)
    check_shapes(tuple(dataset.theta_shape), tuple(dataset.x_shape), theta_dim, x_shape, where)
    train, valid = dataset.split(validation, seed=seed)
    return DatasetSource(train, device, dtype), DatasetSource(valid, device, dtype)


def split_tensors(
    data: tuple | list,
    theta_dim: int,
    x_shape: torch.Size,
    batch_size: int,
    validation: float,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[TensorSource, TensorSource]:
    r"""Splits a pair of tensors into training and validation sources, or raises."""

    if len(data) != 2:
        raise ValueError(
            f"fit expects data as a pair (theta, x), but received a sequence of {len(data)} "
            "items. Pass fit(estimator, (theta, x))."
        )
    theta = check_tensor(data[0], "theta")
    x = check_tensor(data[1], "x")
    shape = tuple(x.shape[1:])
    check_shapes(tuple(theta.shape[1:]), shape, theta_dim, x_shape, "the tensors")
    if theta.dim() != 2 or len(theta) != len(x):
        raise ValueError(
            f"fit expects theta of shape (N, {theta_dim}) and x of shape (N, *{tuple(x_shape)}) "
            f"with the same N, but received {describe(theta)} and {describe(x)}."
        )
    check_rows(len(theta), "the tensors")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(theta)))
    count = max(1, round(validation * len(theta)))
    theta, x = theta.to(device, dtype)[order], x.to(device, dtype)[order]
    return (
        TensorSource(theta[count:], x[count:], batch_size, seed),
        TensorSource(theta[:count], x[:count], batch_size, seed),
    )


def check_rows(rows: int, where: str) -> None:
    r"""Raises if ``rows`` is too few to train on."""

    if rows < MIN_ROWS:
        raise ValueError(
            f"fit needs at least {MIN_ROWS} pairs (theta, x) to train and validate on, but "
            f"{where} hold(s) {rows}. Simulate more pairs first."
        )


def check_shapes(
    theta_shape: tuple, x_found: tuple, theta_dim: int, x_shape: torch.Size, where: str
) -> None:
    r"""Raises if the shapes of the data do not match the estimator's."""

    if theta_shape != (theta_dim,) or x_found != tuple(x_shape):
        raise ValueError(
            f"fit expects pairs with theta of shape ({theta_dim},) and x of shape "
            f"{tuple(x_shape)} (the estimator's theta_dim and x_shape), but {where} hold(s) "
            f"theta of shape {theta_shape} and x of shape {x_found}. Build the estimator "
            f"with NPE({theta_shape[0] if len(theta_shape) == 1 else '...'}, {x_found}) or "
            "pass the matching data."
        )
