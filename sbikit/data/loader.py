r"""Reading simulation files for training: a shuffled stream of batches, worker-safe."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from h5py import h5s
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from .._validation import check_count, check_number
from .format import THETA, X, attributes, open_file

MIN_SEGMENTS = 64
r"""Segments are halved (from the file's chunk length) until a file has at least this many,
so that small files still shuffle and split finely."""


class SimulationDataset(IterableDataset):
    r"""An iterable dataset of batches :math:`(\theta, x)` read from a simulation file.

    The committed rows are cut into segments: contiguous index ranges, by default the
    file's chunks (halved until there are at least 64). In streaming mode, each epoch
    visits the segments in a random order, reads about ``buffer_size`` rows at a time (one
    HDF5 read per segment), shuffles the rows of this buffer and yields them in batches;
    the rows left over from a buffer open the next one, so every batch but the last is
    full. Memory is bounded by the buffer, not by the file. With ``in_memory=True`` the rows
    are read once (in each process) and every epoch is a full permutation.

    With :class:`torch.utils.data.DataLoader` and ``num_workers=k``, pass
    ``batch_size=None`` (the dataset batches): each worker opens the file itself on its
    first read and takes every k-th segment of the epoch's order (in memory: a k-th of the
    permutation), so an epoch yields every pair exactly once. The dataset pickles without
    its open file.

    The shuffle of epoch :math:`e` derives from ``(seed, e)``. The epoch counts up at each
    iteration of this object; a loader without persistent workers iterates fresh copies,
    so call :meth:`set_epoch` before each epoch, as with
    :class:`torch.utils.data.distributed.DistributedSampler`.

    Arguments:
        path: A file written by :func:`sbikit.data.simulate` or :func:`sbikit.data.join`.
        batch_size: The number of pairs per batch.
        shuffle: Whether to shuffle (the segments' order and the rows of each buffer).
        buffer_size: The number of rows read and shuffled together (streaming mode).
        segment: The most rows per segment (default: the rows of the file's chunks).
            Smaller segments shuffle more finely and read more slowly.
        in_memory: Whether to hold all rows in memory (in each process that iterates).
        drop_last: Whether to drop the last, smaller batch of an epoch (of each worker).
        seed: The seed of the shuffle.

    Example:
        >>> import tempfile
        >>> from torch.utils.data import DataLoader
        >>> from sbikit.data import SimulationDataset, simulate
        >>> from sbikit.distributions import DiagNormal
        >>> prior = DiagNormal(torch.zeros(2), torch.ones(2))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = simulate(prior, 1000, f"{tmp}/a.h5", simulator=torch.sin, progress=False)
        ...     train, valid = SimulationDataset(f"{tmp}/a.h5", batch_size=256).split(0.2)
        ...     shapes = [(theta.shape, x.shape) for theta, x in DataLoader(train, None)]
        >>> train.rows, valid.rows
        (800, 200)
        >>> shapes[0], shapes[-1]
        ((torch.Size([256, 2]), torch.Size([256, 2])), (torch.Size([32, 2]), torch.Size([32, 2])))
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int = 1024,
        *,
        shuffle: bool = True,
        buffer_size: int = 1 << 16,
        segment: int | None = None,
        in_memory: bool = False,
        drop_last: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        owner = "SimulationDataset"
        self.batch_size = check_count(batch_size, "batch_size", owner)
        self.buffer_size = check_count(buffer_size, "buffer_size", owner)
        self.seed = check_count(seed, "seed", owner, minimum=0)
        self.shuffle, self.in_memory, self.drop_last = bool(shuffle), bool(in_memory), drop_last
        self.path = str(path)
        with open_file(path, owner) as f:
            found = attributes(f)
            self.theta_shape, self.x_shape = f[THETA].shape[1:], f[X].shape[1:]
        rows, self.segment = found["committed"], found["chunk_rows"]
        if segment is not None:
            self.segment = check_count(segment, "segment", owner)
        while self.segment > 1 and math.ceil(rows / self.segment) < MIN_SEGMENTS:
            self.segment //= 2
        starts = np.arange(0, rows, self.segment)
        self.segments = np.stack([starts, np.minimum(starts + self.segment, rows)], axis=-1)
        r"""The index ranges ``[start, stop)`` of the segments of this dataset, ``(S, 2)``."""
        self.epoch = 0
        self._file: tuple | None = None  # (pid, file, theta, x), opened by the first read
        self._memory: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def rows(self) -> int:
        r"""The number of pairs of this dataset."""

        return int((self.segments[:, 1] - self.segments[:, 0]).sum())

    def split(
        self, validation: float = 0.1, *, seed: int = 0
    ) -> tuple[SimulationDataset, SimulationDataset]:
        r"""Splits the dataset into training and validation datasets by segments.

        A random subset of ``round(validation * S)`` of the ``S`` segments, drawn from
        ``seed``, forms the validation dataset and the others the training one: their index
        ranges never overlap, and the same file, fraction and seed give the same split.

        Arguments:
            validation: The fraction of the segments for validation, in (0, 1).
            seed: The seed of the split.

        Returns:
            The training and the validation dataset, with this dataset's settings.

        Example:
            >>> import tempfile
            >>> from sbikit.data import SimulationDataset, simulate
            >>> from sbikit.distributions import DiagNormal
            >>> prior = DiagNormal(torch.zeros(2), torch.ones(2))
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     _ = simulate(prior, 640, f"{tmp}/a.h5", simulator=torch.sin, progress=False)
            ...     train, valid = SimulationDataset(f"{tmp}/a.h5").split(0.25, seed=1)
            >>> train.rows, valid.rows, len(valid.segments)
            (480, 160, 20)
        """

        fraction = check_number(validation, "validation", "SimulationDataset.split", 0.0, 1.0)
        count = round(fraction * len(self.segments))
        if not 0 < count < len(self.segments):
            raise ValueError(
                f"SimulationDataset.split cannot give a fraction {fraction} of "
                f"{len(self.segments)} segment(s) ({self.rows} rows) to validation and keep "
                f"some for training. Pass a fraction closer to 0.5, or simulate more pairs."
            )
        chosen = np.zeros(len(self.segments), dtype=bool)
        chosen[np.random.default_rng(seed).permutation(len(self.segments))[:count]] = True
        train, valid = copy.copy(self), copy.copy(self)  # without the open file or memory
        train.segments, valid.segments = self.segments[~chosen], self.segments[chosen]
        return train, valid

    def set_epoch(self, epoch: int) -> None:
        r"""Sets the epoch, which with the seed defines the next iteration's shuffle."""

        self.epoch = check_count(epoch, "epoch", "SimulationDataset.set_epoch", minimum=0)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_memory": None}

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        worker = get_worker_info()
        index, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        epoch, self.epoch = self.epoch, self.epoch + 1
        shared = np.random.default_rng([self.seed, epoch])  # the same in every worker
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.in_memory:
            theta, x = self.memory()
            rows = shared.permutation(len(theta)) if self.shuffle else np.arange(len(theta))
            yield from self.batches(theta, x, np.array_split(rows, workers)[index], final=True)
            return
        order = np.arange(len(self.segments))
        order = (shared.permutation(order) if self.shuffle else order)[index::workers]
        per_buffer = max(1, self.buffer_size // self.segment)
        theta = x = None
        for i in range(0, len(order), per_buffer):
            theta, x = self.read(self.segments[order[i : i + per_buffer]], theta, x)
            rows = rng.permutation(len(theta)) if self.shuffle else np.arange(len(theta))
            final = i + per_buffer >= len(order)
            theta, x = yield from self.batches(theta, x, rows, final)

    def batches(
        self, theta: np.ndarray, x: np.ndarray, rows: np.ndarray, final: bool
    ) -> Iterator[tuple[Tensor, Tensor]]:
        r"""Yields the rows ``rows`` of ``theta`` and ``x`` in batches, and returns the rows
        left over for the next buffer (none if ``final``)."""

        n = len(rows)
        if self.drop_last or not final:
            n -= n % self.batch_size
        for i in range(0, n, self.batch_size):
            batch = rows[i : min(i + self.batch_size, n)]
            yield torch.from_numpy(np.take(theta, batch, 0)), torch.from_numpy(np.take(x, batch, 0))
        left = rows[n:] if not final else rows[:0]
        return np.take(theta, left, 0), np.take(x, left, 0)

    def handles(self) -> tuple[h5py.Dataset, h5py.Dataset]:
        r"""The datasets of the file, opened in this process on first use."""

        if self._file is None or self._file[0] != os.getpid():
            f = open_file(self.path, "SimulationDataset", cache=False)
            self._file = (os.getpid(), f, f[THETA], f[X])
        return self._file[2], self._file[3]

    def read(
        self, segments: np.ndarray, theta: np.ndarray | None, x: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        r"""Reads the rows of ``segments`` after the rows ``theta``, ``x`` (or none)."""

        arrays = []
        for dataset, head in zip(self.handles(), (theta, x), strict=True):
            kept = 0 if head is None else len(head)
            rows = kept + int((segments[:, 1] - segments[:, 0]).sum())
            out = np.empty((rows, *dataset.shape[1:]), np.float32)
            if kept:
                out[:kept] = head
            for start, stop in segments.tolist():
                read_rows(dataset, start, stop, out[kept : kept + stop - start])
                kept += stop - start
            arrays.append(out)
        return arrays[0], arrays[1]

    def memory(self) -> tuple[np.ndarray, np.ndarray]:
        r"""All rows of the dataset, read on first use."""

        if self._memory is None:
            self._memory = self.read(self.segments, None, None)
        return self._memory


def read_rows(dataset: h5py.Dataset, start: int, stop: int, out: np.ndarray) -> None:
    r"""Reads rows ``[start, stop)`` of ``dataset`` into the C-contiguous array ``out``
    (one HDF5 read, no intermediate copy)."""

    space = dataset.id.get_space()
    space.select_hyperslab((start, *(0,) * (dataset.ndim - 1)), (stop - start, *dataset.shape[1:]))
    dataset.id.read(h5s.create_simple(out.shape), space, out)
