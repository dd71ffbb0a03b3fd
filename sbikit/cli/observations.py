r"""Observations named on the command line: ``TASK:k``, a task's k-th published
observation, or a file (``.npy``, ``.csv``, ``.pt`` or ``.json``) holding one observation."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Size, Tensor

from .errors import CommandError
from .specs import get_task

SUFFIXES = (".npy", ".csv", ".pt", ".json")


@dataclass
class Observation:
    r"""One observation, and the parameters it was simulated from when they are known."""

    spec: str
    x: Tensor
    theta: Tensor | None = None
    task: str | None = None


def read_observation(spec: str, x_shape: Size | tuple[int, ...]) -> Observation:
    r"""The observation ``spec`` (``TASK:k`` or a file), checked to have shape ``x_shape``
    (a leading dimension of size 1 is dropped).

    Example:
        >>> obs = read_observation("two_moons:1", (2,))
        >>> obs.x.shape, obs.theta.shape
        (torch.Size([2]), torch.Size([2]))
    """

    path = Path(spec)
    match = re.fullmatch(r"(\w+):(\d+)", spec)
    if path.is_file():
        x, theta, task = read_file(path), None, None
    elif match and not path.suffix:
        name, k = match[1], int(match[2])
        task = get_task(name)
        x, theta, task = task.observation(k), task.true_parameters(k), name
    elif path.suffix in SUFFIXES:
        raise CommandError(f"the observation file {spec!r} does not exist.")
    else:
        raise CommandError(
            f"expected the observation as TASK:k (e.g. two_moons:1) or a file ("
            f"{', '.join(SUFFIXES)}), but {spec!r} is neither."
        )
    x = x.to(torch.float32)
    shape = Size(x_shape)
    if x.shape != shape and x.shape == (1, *shape):
        x = x[0]
    if x.shape != shape:
        raise CommandError(
            f"the observation {spec} has shape {tuple(x.shape)}, but the posterior expects one "
            f"observation of shape {tuple(shape)}."
        )
    if not torch.isfinite(x).all():
        raise CommandError(f"the observation {spec} holds NaN or infinite values.")
    return Observation(spec, x, theta, task)


def read_file(path: Path) -> Tensor:
    r"""The array held by a ``.npy``, ``.csv``, ``.pt`` or ``.json`` file."""

    try:
        if path.suffix == ".npy":
            value = np.load(path, allow_pickle=False)
        elif path.suffix == ".csv":
            value = read_csv(path)
        elif path.suffix == ".pt":
            value = torch.load(path, map_location="cpu", weights_only=True)
        elif path.suffix == ".json":
            value = json.loads(path.read_text())
            value = value.get("x", value) if isinstance(value, dict) else value
        else:
            raise CommandError(
                f"cannot read the observation {str(path)!r}: expected a file ending in "
                f"{', '.join(SUFFIXES)}."
            )
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except CommandError:
        raise
    except Exception as error:
        raise CommandError(
            f"cannot read an observation from {str(path)!r}: {type(error).__name__}: {error}"
        ) from None


def read_csv(path: Path) -> np.ndarray:
    r"""The numbers of a CSV file, without its header line if it has one."""

    lines = [line for line in path.read_text().splitlines() if line.strip()]
    try:
        float(lines[0].split(",")[0])
    except (ValueError, IndexError):
        lines = lines[1:]
    return np.loadtxt(lines, delimiter=",", ndmin=1)
