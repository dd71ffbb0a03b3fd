r"""What a simulation file holds."""

from __future__ import annotations

from pathlib import Path

from .format import COUNTS, THETA, X, attributes, open_file


def info(path: str | Path, *, verbose: bool = True) -> dict:
    r"""Returns (and prints) what a simulation file holds.

    Arguments:
        path: A file written by :func:`sbikit.data.simulate` or :func:`sbikit.data.join`.
        verbose: Whether to print a summary.

    Returns:
        The file's attributes (see the file format in the data guide) and ``path``,
        ``rows`` (the committed pairs), ``theta_shape`` ``(D,)``, ``x_shape``,
        ``theta_dtype``, ``x_dtype`` and ``dropped`` (the invalid draws).

    Example:
        >>> import tempfile
        >>> from sbikit.data import info, simulate
        >>> from sbikit.distributions import DiagNormal
        >>> prior = DiagNormal(torch.zeros(3), torch.ones(3))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = simulate(prior, 100, f"{tmp}/a.h5", simulator=torch.exp, seed=3,
        ...                  block_size=50, progress=False)
        ...     held = info(f"{tmp}/a.h5")  # doctest: +ELLIPSIS
        a.h5: 100 pairs, theta (3,) float32, x (3,) float32
          simulator torch..., prior DiagNormal(loc: torch.Size([3]), scale: torch.Size([3]))
          seed 3, block size 50, shard 0 of 1, vectorized
          100 draws simulated, 0 dropped (0 raised, 0 NaN or inf, 0 wrong shape)
          written by sbikit ..., torch ..., numpy ..., h5py ... on ...
        >>> held["rows"], held["x_shape"]
        (100, (3,))
    """

    with open_file(path, "sbikit.data.info") as f:
        held = attributes(f)
        held.update(
            path=str(path),
            rows=held["committed"],
            theta_shape=tuple(f[THETA].shape[1:]),
            x_shape=tuple(f[X].shape[1:]),
            theta_dtype=str(f[THETA].dtype),
            x_dtype=str(f[X].dtype),
            dropped=sum(held[key] for key in COUNTS[1:]),
        )
    if verbose:
        print(summary(held))
    return held


def summary(held: dict) -> str:
    r"""A few lines that describe a file, from the dictionary :func:`info` returns."""

    lines = [
        f"{Path(held['path']).name}: {held['rows']:,} pairs, theta {held['theta_shape']} "
        f"{held['theta_dtype']}, x {held['x_shape']} {held['x_dtype']}",
        f"  simulator {held['simulator']}, prior {held['prior']}",
    ]
    if held.get("joined"):
        joined = ", ".join(
            f"{name} ({rows:,} pairs, seed {seed}, shard {shard})"
            for name, rows, seed, shard in zip(
                held["sources"],
                held["source_rows"],
                held["source_seeds"],
                held["source_shards"],
                strict=True,
            )
        )
        lines.append(f"  joins {len(held['sources'])} files: {joined}")
    else:
        lines.append(
            f"  seed {held['seed']}, block size {held['block_size']}, shard {held['shard']} of "
            f"{held['num_shards']}, {'vectorized' if held['vectorized'] else 'one row per call'}"
        )
    lines.append(
        f"  {held['simulated']:,} draws simulated, {held['dropped']:,} dropped "
        f"({held['dropped_exception']:,} raised, {held['dropped_nonfinite']:,} NaN or inf, "
        f"{held['dropped_shape']:,} wrong shape)"
    )
    if held.get("errors"):
        lines.append("  first errors:")
        lines.extend(f"    {error}" for error in held["errors"])
    lines.append(
        f"  written by sbikit {held['sbikit_version']}, torch {held['torch_version']}, numpy "
        f"{held['numpy_version']}, h5py {held['h5py_version']} on {held['created']}"
    )
    return "\n".join(lines)
