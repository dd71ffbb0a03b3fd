r"""Benchmark and example simulators for sbikit.

The ten benchmark tasks of Lueckmann et al. (2021) arrive in a later release; this package
is installed next to :mod:`sbikit` so that ``import simulators`` already works.
"""

__all__: list[str] = []
