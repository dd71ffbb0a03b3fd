r"""Simulation data on disk: simulate pairs :math:`(\theta, x)` into HDF5 files, in
parallel and resumably, join shard files, and stream the pairs back for training.

- :func:`simulate` — write (or continue) a file of simulated pairs;
- :func:`info` — what a file holds;
- :func:`join` — join shard files into one file of virtual datasets;
- :class:`SimulationDataset` — shuffled batches for training, safe with DataLoader workers.

This package depends on torch, numpy, h5py and tqdm only: a task is anything with
``.prior``, ``.simulate(theta, generator=None)`` and ``.name``.

Example:
    >>> import tempfile
    >>> import simulators
    >>> from sbikit.data import SimulationDataset, simulate
    >>> task = simulators.get("two_moons")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = simulate(task, 2000, f"{tmp}/two_moons.h5", seed=0, progress=False)
    ...     theta, x = next(iter(SimulationDataset(f"{tmp}/two_moons.h5", batch_size=64)))
    >>> theta.shape, x.shape
    (torch.Size([64, 2]), torch.Size([64, 2]))
"""

from .info import info
from .loader import SimulationDataset
from .shards import join
from .store import simulate

__all__ = ["SimulationDataset", "info", "join", "simulate"]
