r"""Joining shard files into one file of HDF5 virtual datasets."""

from __future__ import annotations

from collections.abc import Sequence
from os.path import relpath
from pathlib import Path

import h5py
import numpy as np

from .format import COUNTS, ERRORS_KEPT, FORMAT, THETA, VERSION, X, check_directory, now, versions
from .info import info


def join(paths: Sequence[str | Path], path: str | Path, *, overwrite: bool = False) -> dict:
    r"""Joins simulation files (typically the shards of one campaign) into one file whose
    ``/theta`` and ``/x`` are HDF5 virtual datasets over their committed rows.

    The files are joined in the order of their ``(seed, shard)``, so the result does not
    depend on the order of ``paths``. They must come from the same simulator and prior,
    with the same shapes, and never share a block: files with the same seed must be
    distinct shards of the same ``num_shards``. The joined file stores the sources' paths
    relative to its own directory (move them together); it reads like any simulation file
    (:class:`sbikit.data.SimulationDataset`, :func:`sbikit.data.info`) and copies no data.
    Rows committed to a source after the join are not part of it: join again.

    Arguments:
        paths: The files to join.
        path: The joined file to write. Its directory must exist.
        overwrite: Whether to replace an existing file at ``path``.

    Returns:
        What the joined file holds, as :func:`sbikit.data.info` returns it.

    Example:
        >>> import tempfile
        >>> from sbikit.data import join, simulate
        >>> from sbikit.distributions import BoxUniform
        >>> prior = BoxUniform(torch.zeros(2), torch.ones(2))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     for i in range(3):
        ...         _ = simulate(prior, 100, f"{tmp}/shard-{i}.h5", simulator=torch.sin,
        ...                      shard=i, num_shards=3, block_size=50, progress=False)
        ...     joined = join([f"{tmp}/shard-{i}.h5" for i in range(3)], f"{tmp}/all.h5")
        >>> joined["rows"], joined["sources"]
        (300, ['shard-0.h5', 'shard-1.h5', 'shard-2.h5'])
    """

    owner = "sbikit.data.join"
    path = check_directory(path, owner).absolute()
    if path.exists() and not overwrite:
        raise ValueError(
            f"{owner} would write {str(path)!r}, but it exists. Pass overwrite=True to replace "
            f"it, or another path."
        )
    sources = [info(p, verbose=False) for p in paths]
    if not sources:
        raise ValueError(f"{owner} expects at least one file to join, but received none.")
    check_joinable(sources, path, owner)
    sources.sort(key=lambda s: (s["seed"], s["shard"]))
    names = [relpath(Path(s["path"]).absolute(), path.parent) for s in sources]
    rows = [s["rows"] for s in sources]
    first = sources[0]
    with h5py.File(path, "w") as f:
        for key in (THETA, X):
            shape = first[f"{key}_shape"]
            layout = h5py.VirtualLayout((sum(rows), *shape), np.float32)
            for name, start, n in zip(names, np.cumsum([0, *rows]).tolist(), rows, strict=False):
                if n:
                    layout[start : start + n] = h5py.VirtualSource(name, key, (n, *shape))
            f.create_virtual_dataset(key, layout)
        f.attrs.update(
            {
                "format": FORMAT,
                "format_version": VERSION,
                "joined": True,
                **{key: first[key] for key in ("simulator", "prior", "vectorized", "chunk_rows")},
                "created": now(),
                **versions(),
                "committed": sum(rows),
                **{key: sum(s[key] for s in sources) for key in COUNTS},
                "sources": names,
                "source_rows": rows,
                "source_seeds": [s["seed"] for s in sources],
                "source_shards": [s["shard"] for s in sources],
            }
        )
        errors = [e for s in sources for e in s.get("errors", [])][:ERRORS_KEPT]
        if errors:
            f.attrs["errors"] = np.array(errors, dtype=h5py.string_dtype())
    return info(path, verbose=False)


def check_joinable(sources: list[dict], path: Path, owner: str) -> None:
    r"""Checks that the files ``sources`` describe may be joined, or raises."""

    for s in sources:
        if s.get("joined"):
            raise ValueError(
                f"{owner} joins files written by sbikit.data.simulate, but {s['path']!r} is "
                f"itself a joined file. Join its sources instead."
            )
        if Path(s["path"]).absolute() == path:
            raise ValueError(f"{owner} cannot write the joined file over its source {path}.")
    first = sources[0]
    for s in sources[1:]:
        for key in ("simulator", "prior", "theta_shape", "x_shape"):
            if s[key] != first[key]:
                raise ValueError(
                    f"{owner} joins files of one simulation campaign, but {first['path']!r} "
                    f"has {key} {first[key]!r} and {s['path']!r} has {s[key]!r}."
                )
    for i, s in enumerate(sources):
        for t in sources[:i]:
            if s["seed"] == t["seed"] and (
                s["num_shards"] != t["num_shards"] or s["shard"] == t["shard"]
            ):
                raise ValueError(
                    f"{owner} would join {t['path']!r} and {s['path']!r}, which share the seed "
                    f"{s['seed']} but are not distinct shards of one campaign (shards "
                    f"{t['shard']} of {t['num_shards']} and {s['shard']} of {s['num_shards']}): "
                    f"they would hold the same pairs. Join files written with distinct seeds, "
                    f"or with shard=i, num_shards=n."
                )
