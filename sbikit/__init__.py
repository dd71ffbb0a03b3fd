r"""sbikit: simulation-based inference with lazy normalizing flows.

The building blocks live in submodules:

- :mod:`sbikit.distributions` — torch distributions (``DiagNormal``, ``BoxUniform``,
  ``NormalizingFlow``, ...);
- :mod:`sbikit.transforms` — bijective torch transforms with ``call_and_ladj``;
- :mod:`sbikit.lazy` — ``nn.Module`` wrappers whose ``forward(c)`` builds them;
- :mod:`sbikit.nn` — hyper-networks and embedding networks;
- :mod:`sbikit.flows` — flow architectures (``MAF``, ``NSF``, ``RealNVP``, ...);
- :mod:`sbikit.inference` — neural posterior estimation (``NPE``), training, saving;
- :mod:`sbikit.diagnostics` — checks of trained posteriors (``c2st``);
- :mod:`sbikit.utils` — broadcasting, unpacking and numerical helpers.

The main entry points are re-exported: ``sbikit.fit``, ``sbikit.save`` and ``sbikit.load``.

Example:
    >>> import sbikit
    >>> sbikit.__version__
    '0.1.0'
"""

__version__ = "0.1.0"

from . import diagnostics, distributions, flows, inference, lazy, nn, transforms, utils
from .inference import fit, load, save

__all__ = [
    "__version__",
    "diagnostics",
    "distributions",
    "fit",
    "flows",
    "inference",
    "lazy",
    "load",
    "nn",
    "save",
    "transforms",
    "utils",
]
