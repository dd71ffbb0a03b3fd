r"""Checkpoints of a training: written atomically after each epoch, read to resume."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from .npe import NPE

__all__ = ["read_checkpoint", "write_checkpoint"]

CHECKPOINT_VERSION = 3
# 3: the settings hold ``reductions``; 2: intervals unconstrained by SoftBoxTransform
# (1: the logistic sigmoid)


def write_checkpoint(path: str | Path, state: dict) -> None:
    r"""Writes ``state`` to ``path`` through a temporary file, so that an interruption never
    leaves a partial checkpoint."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save({"checkpoint_version": CHECKPOINT_VERSION, **state}, temporary)
    os.replace(temporary, path)


def read_checkpoint(path: str | Path, estimator: NPE, compatibility: dict) -> dict:
    r"""Returns the state of a checkpoint written for a training that matches
    ``compatibility``, or raises."""

    device = estimator.theta_loc.device
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"fit cannot read the checkpoint {path}: it is corrupted or truncated ({error}). "
            "Delete it, or pass resume=False to start again."
        ) from None
    if not isinstance(state, dict) or state.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"fit expects a checkpoint of version {CHECKPOINT_VERSION} in {path}, but it holds "
            f"{state.get('checkpoint_version') if isinstance(state, dict) else 'no version'}. "
            "Delete it, or pass resume=False to start again."
        )
    for key, expected in compatibility.items():
        if state.get(key) != expected:
            raise ValueError(
                f"The checkpoint {path} belongs to another training: its {key} "
                f"{state.get(key)} differ(s) from this one's {expected}. Pass the same "
                "estimator, data and settings to resume it, or resume=False to replace it."
            )
    return state
