r"""Diagnostics of trained posteriors.

- :func:`c2st` — the classifier two-sample test of the benchmark (0.5: indistinguishable).

Example:
    >>> from sbikit.diagnostics import c2st
    >>> p, q = torch.randn(1000, 2), torch.randn(1000, 2) + 3.0
    >>> c2st(p, q, steps=200) > 0.9
    True
"""

from .c2st import c2st

__all__ = ["c2st"]
