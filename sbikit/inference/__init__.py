r"""Simulation-based inference: estimators, their training loop, saving and loading.

- :class:`NPE` — neural posterior estimation, a conditional flow :math:`q(\theta \mid x)`;
- :func:`fit` — train an estimator on pairs :math:`(\theta, x)` (tensors or a file);
- :func:`save`, :func:`load` — a directory with a JSON config and the weights, no pickle.

Example:
    >>> from sbikit.distributions import BoxUniform
    >>> prior = BoxUniform(-torch.ones(2), torch.ones(2))
    >>> posterior = NPE(2, 5, prior=prior, transforms=1, hidden_features=(16,))
    >>> posterior(torch.randn(10, 5)).sample((100,)).shape  # 100 draws for 10 observations
    torch.Size([100, 10, 2])
"""

from .fit import fit
from .io import load, save
from .npe import NPE

__all__ = ["NPE", "fit", "load", "save"]
