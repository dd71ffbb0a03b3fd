r"""The layout of a simulation file, and the checks that open one.

A file holds ``/theta`` with shape ``(N, D)`` and ``/x`` with shape ``(N, *x_shape)``, both
float32, chunked and resizable, and the attributes below. Only the first ``committed``
rows are data: whatever lies beyond them was left by an interrupted run.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import torch

from .. import __version__

FORMAT = "sbikit.data"
VERSION = 1
THETA, X = "theta", "x"
ERRORS_KEPT = 5
r"""How many exception messages a file keeps (the first ones, in block order)."""
CHUNK_BYTES = 1 << 20
r"""The target size of one chunk of ``/x`` on disk."""

COUNTS = ("simulated", "dropped_exception", "dropped_nonfinite", "dropped_shape")
r"""The counters of draws, summed over the blocks started."""


def chunk_rows(x_shape: tuple[int, ...]) -> int:
    r"""The number of rows of one chunk: the largest power of two, at most 4096, that keeps
    a chunk of ``/x`` within :data:`CHUNK_BYTES`."""

    row = 4 * int(np.prod(x_shape, dtype=np.int64))
    return 1 << min(12, max(0, (CHUNK_BYTES // max(row, 1)).bit_length() - 1))


def versions() -> dict[str, str]:
    r"""The versions of the packages that wrote a file."""

    found = {"sbikit": __version__, "torch": torch.__version__, "numpy": np.__version__}
    found |= {"h5py": h5py.__version__, "python": platform.python_version()}
    return {f"{name}_version": str(version) for name, version in found.items()}


def now() -> str:
    r"""The current time in UTC, ISO 8601."""

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def attributes(f: h5py.File) -> dict:
    r"""The attributes of a file as Python values (ints, strs, lists)."""

    def plain(value):
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, np.ndarray):
            return [plain(v) for v in value.tolist()]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return {key: plain(value) for key, value in f.attrs.items()}


def check_directory(path: str | Path, owner: str) -> Path:
    r"""Returns ``path`` as a :class:`~pathlib.Path` if its directory exists and it is not
    a directory itself, or raises."""

    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"{owner} writes to {str(path)!r}, but its directory {str(path.parent)!r} does not "
            f"exist. Create it first, e.g. with Path(...).mkdir(parents=True)."
        )
    if path.is_dir():
        raise ValueError(
            f"{owner} expects the path of a file, but {str(path)!r} is a directory. "
            f"Pass a file name such as {str(path / 'simulations.h5')!r}."
        )
    return path


def open_file(path: str | Path, owner: str, cache: bool = True) -> h5py.File:
    r"""Opens a simulation file read-only after checking that it is one, or raises a
    :class:`FileNotFoundError` or :class:`ValueError` that says what is wrong.

    Without ``cache``, HDF5's chunk cache is off: whole-chunk reads go straight into the
    caller's array, which is faster for reading every row once.
    """

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{owner} expects a simulation file, but {str(path)!r} does not exist. "
            f"Write one with sbikit.data.simulate(...)."
        )
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"{owner} expects an HDF5 file written by sbikit.data.simulate, but {str(path)!r} "
            f"is not an HDF5 file (it may be truncated or corrupted). Write it again "
            f"(sbikit.data.simulate(..., overwrite=True) replaces it)."
        )
    try:
        f = h5py.File(path, "r", **({} if cache else {"rdcc_nbytes": 0}))
        problem = check_layout(f)
    except (OSError, KeyError, RuntimeError) as error:
        raise ValueError(
            f"{owner} cannot read {str(path)!r}: HDF5 reports {error}. The file is corrupted; "
            f"write it again (sbikit.data.simulate(..., overwrite=True) replaces it)."
        ) from None
    if problem:
        f.close()
        raise ValueError(
            f"{owner} expects a file written by sbikit.data.simulate (format {FORMAT!r} "
            f"version <= {VERSION}), but {str(path)!r} {problem}. Use another path "
            f"(sbikit.data.simulate(..., overwrite=True) replaces the file)."
        )
    return f


def check_layout(f: h5py.File) -> str | None:
    r"""What is wrong with the layout of an open file, or None."""

    found = attributes(f)
    if found.get("format") != FORMAT:
        return f"has no attribute format={FORMAT!r} (it is a foreign HDF5 file)"
    if not isinstance(found.get("format_version"), int) or found["format_version"] > VERSION:
        return (
            f"has format version {found.get('format_version')!r}, newer than this sbikit's "
            f"{VERSION} (upgrade sbikit to read it)"
        )
    if THETA not in f or X not in f:
        return f"lacks the dataset /{THETA} or /{X}"
    theta, x, committed = f[THETA], f[X], found.get("committed")
    if theta.ndim != 2 or x.ndim < 1 or not isinstance(committed, int):
        return "has datasets or attributes of the wrong kind"
    if not 0 <= committed <= min(len(theta), len(x)):
        return f"records {committed} committed rows but holds {len(theta)} and {len(x)}"
    missing = [s.file_name for s in (theta.virtual_sources() if theta.is_virtual else [])]
    missing = [name for name in missing if not (Path(f.filename).parent / name).is_file()]
    if missing:
        return f"joins shard files that are missing: {', '.join(sorted(set(missing)))}"
    return None
