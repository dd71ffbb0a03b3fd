r"""sbikit: simulation-based inference with lazy normalizing flows.

The building blocks live in submodules:

- :mod:`sbikit.distributions` — torch distributions (``DiagNormal``, ``BoxUniform``,
  ``NormalizingFlow``, ...);
- :mod:`sbikit.transforms` — bijective torch transforms with ``call_and_ladj``;
- :mod:`sbikit.lazy` — ``nn.Module`` wrappers whose ``forward(c)`` builds them;
- :mod:`sbikit.nn` — hyper-networks and embedding networks;
- :mod:`sbikit.flows` — flow architectures (``MAF``, ``NSF``, ``RealNVP``, ...);
- :mod:`sbikit.utils` — broadcasting, unpacking and numerical helpers.

Example:
    >>> import sbikit
    >>> sbikit.__version__
    '0.1.0'
"""

__version__ = "0.1.0"

from . import distributions, flows, lazy, nn, transforms, utils

__all__ = ["__version__", "distributions", "flows", "lazy", "nn", "transforms", "utils"]
