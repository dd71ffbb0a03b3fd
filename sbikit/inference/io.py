r"""Saving and loading trained estimators without pickle.

A saved estimator is a directory with two files:

- ``config.json`` — the format and its version, the architecture (flow and embedding by
  name and JSON options, dimensions, the prior's support), the standardisation, the
  training history, the versions of sbikit, torch and Python, and the size and SHA-256
  digest of the weights file;
- ``weights.pt`` — the ``state_dict``, read back with ``torch.load(..., weights_only=True)``,
  which never executes code from the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from .. import __version__
from .._validation import describe
from ..lazy import Flow
from .npe import NPE
from .support import Unconstrain

__all__ = ["load", "save"]

FORMAT = "sbikit-estimator"
FORMAT_VERSION = 2  # 2: intervals unconstrained by SoftBoxTransform (1: the logistic sigmoid)
CONFIG, WEIGHTS = "config.json", "weights.pt"


def save(estimator: NPE, path: str | Path, *, overwrite: bool = False) -> Path:
    r"""Saves an estimator to a directory, from which :func:`load` rebuilds it exactly.

    A flow or embedding given as a custom callable or module is recorded by its qualified
    name only: pass it again to :func:`load`. Flow or embedding options that are not
    JSON-serialisable cannot be saved: wrap them in a factory, e.g.
    ``flow=functools.partial(NSF, activation=nn.ELU)``, and pass it again to :func:`load`.

    Arguments:
        estimator: A (trained) estimator, e.g. :class:`~sbikit.inference.NPE`.
        path: The directory, created if needed.
        overwrite: Whether to replace an estimator already saved there.

    Returns:
        The directory.

    Example:
        >>> import tempfile
        >>> import sbikit
        >>> from sbikit.inference import NPE
        >>> posterior = NPE(2, 3, transforms=1, hidden_features=(8,))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = sbikit.save(posterior, f"{tmp}/posterior")
        ...     loaded = sbikit.load(f"{tmp}/posterior")
        >>> x, theta = torch.randn(3), torch.randn(5, 2)
        >>> torch.equal(posterior(x).log_prob(theta), loaded(x).log_prob(theta))
        True
    """

    if not isinstance(estimator, NPE):
        raise TypeError(
            f"save expects an estimator such as NPE, but received {describe(estimator)}."
        )
    if estimator.unsaveable:
        raise ValueError(
            f"save cannot describe this estimator in JSON: {'; '.join(estimator.unsaveable)}. "
            "Wrap such options in a factory, e.g. flow=functools.partial(NSF, activation="
            "nn.ELU), and pass the same factory to load(path, flow=...)."
        )
    path = Path(path)
    if (path / CONFIG).exists() and not overwrite:
        raise FileExistsError(
            f"save found an estimator already saved in {path}. Pass overwrite=True to replace "
            "it, or choose another directory."
        )
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in estimator.state_dict().items()}
    temporary = path / (WEIGHTS + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path / WEIGHTS)
    data = (path / WEIGHTS).read_bytes()
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": estimator.config,
        "dtype": str(estimator.theta_loc.dtype).removeprefix("torch."),
        "standardization": {
            name: getattr(estimator, name).tolist()
            for name in ("theta_loc", "theta_scale", "x_loc", "x_scale")
        },
        "history": estimator.history,
        "versions": versions(),
        "weights": {"file": WEIGHTS, "bytes": len(data), "sha256": digest(data)},
    }
    text = json.dumps(config, indent=2, allow_nan=True)  # losses may be inf
    (path / (CONFIG + ".tmp")).write_text(text)
    os.replace(path / (CONFIG + ".tmp"), path / CONFIG)
    return path


def load(
    path: str | Path,
    *,
    flow: Callable[..., Flow] | None = None,
    embedding: nn.Module | None = None,
    map_location: str | torch.device = "cpu",
) -> NPE:
    r"""Loads an estimator saved by :func:`save`, identical to the saved one.

    The weights are read with ``torch.load(..., weights_only=True)``: loading never
    executes code from the files. A model saved on a GPU loads on the CPU by default.

    Arguments:
        path: The directory written by :func:`save`.
        flow: The flow factory, required when the estimator was built with a custom one.
        embedding: A module of the embedding's architecture (its weights are replaced),
            required when the estimator was built with a custom embedding module.
        map_location: Where to load the weights.

    Returns:
        The estimator, in evaluation mode, with its training history.

    Example:
        >>> import tempfile
        >>> import sbikit
        >>> from sbikit.inference import NPE
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = sbikit.save(NPE(2, 3, flow="maf", transforms=1), f"{tmp}/posterior")
        ...     loaded = sbikit.load(f"{tmp}/posterior")
        >>> loaded.config["flow"]["name"], loaded.theta_dim
        ('MAF', 2)
    """

    path = Path(path)
    config = read_config(path)
    architecture = config["architecture"]
    estimator = rebuild(architecture, flow, embedding, path)
    state = read_weights(path, config["weights"], map_location)
    estimator.to(getattr(torch, config["dtype"]))
    try:
        estimator.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(
            f"load cannot put the weights of {path / WEIGHTS} into the architecture of its "
            f"config ({error}). If you passed flow= or embedding=, pass the ones it was "
            "trained with."
        ) from None
    estimator.history = config["history"]
    return estimator.to(map_location).eval()


def read_config(path: Path) -> dict:
    r"""Returns the config of a saved estimator, or raises."""

    file = path / CONFIG
    if not file.is_file():
        raise FileNotFoundError(
            f"load expects a directory written by sbikit.save, but {file} does not exist."
        )
    try:
        config = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"load cannot read {file}: it is corrupted or truncated ({error}). Save the "
            "estimator again."
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"load expects {file} to describe a {FORMAT!r}, but it does not.")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{file} has format version {version}, but this sbikit "
            f"({versions()['sbikit']}) reads version {FORMAT_VERSION}. It was saved by sbikit "
            f"{config.get('versions', {}).get('sbikit')}: load it with that version."
        )
    return config


def rebuild(
    architecture: dict, flow: Callable | None, embedding: nn.Module | None, path: Path
) -> NPE:
    r"""Returns an untrained estimator of a saved architecture."""

    flow_config, embedding_config = architecture["flow"], architecture["embedding"]
    for what, given, described in (
        ("flow", flow, flow_config),
        ("embedding", embedding, embedding_config),
    ):
        if described is not None and described["name"] is None and given is None:
            raise ValueError(
                f"The estimator in {path} was built with a custom {what}, "
                f"{described['factory' if what == 'flow' else 'module']}, which a config cannot "
                f"hold. Pass it again: load(path, {what}=...)."
            )
    support = architecture["support"]
    return NPE(
        architecture["theta_dim"],
        architecture["x_shape"],
        flow=flow or flow_config["name"],
        embedding=embedding or (embedding_config and embedding_config["name"]),
        embedding_options=None if embedding else embedding_config and embedding_config["options"],
        prior=None if support is None else Unconstrain(support)().support,
        **flow_config["options"],
    )


def read_weights(path: Path, described: dict, map_location: str | torch.device) -> dict:
    r"""Returns the state dict of a saved estimator, after checking its size and digest."""

    file = path / described["file"]
    if not file.is_file():
        raise FileNotFoundError(f"load expects the weights file {file}, but it does not exist.")
    data = file.read_bytes()
    if len(data) != described["bytes"] or digest(data) != described["sha256"]:
        raise ValueError(
            f"load found {file} corrupted or truncated: it has {len(data)} bytes and digest "
            f"{digest(data)[:12]}..., but {described['bytes']} bytes and "
            f"{described['sha256'][:12]}... were saved. Save the estimator again."
        )
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise ValueError(f"load cannot read the weights {file}: {error}") from None


def digest(data: bytes) -> str:
    r"""Returns the SHA-256 digest of ``data``, in hexadecimal."""

    return hashlib.sha256(data).hexdigest()


def versions() -> dict[str, str]:
    r"""Returns the versions of sbikit, torch and Python."""

    return {"sbikit": __version__, "torch": torch.__version__, "python": platform.python_version()}
