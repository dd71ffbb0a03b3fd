r"""The benchmark task interface: a prior, a vectorised simulator, ten published
observations and a reference posterior."""

from __future__ import annotations

import hashlib
import json
import math
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from sbikit.distributions import MCMCDistribution

__all__ = ["Task", "default_cache_dir"]

OBSERVATIONS = 10


@cache
def published() -> dict:
    r"""The published observations and true parameters of the benchmark (sbibm 1.1.0)."""

    text = resources.files("simulators").joinpath("data/benchmark-observations.json").read_text()
    return json.loads(text)["tasks"]


def default_cache_dir() -> Path:
    r"""Where reference samples are cached: ``$SBIKIT_CACHE`` if set, else ``.sbikit-cache``
    in the current directory (next to the user's data, never inside the package)."""

    return Path(os.environ.get("SBIKIT_CACHE", ".sbikit-cache"))


class Task:
    r"""A simulation-based inference benchmark task.

    A task defines a prior :math:`p(\theta)` over parameters with shape ``(theta_dim,)``, a
    simulator :math:`x \sim p(x \mid \theta)` with observations of shape ``x_shape``, ten
    published observations with the parameters they were simulated from, and a sampler of
    the reference posterior :math:`p(\theta \mid x_o)`.

    Subclasses set the class attributes and implement :meth:`build_prior`,
    :meth:`sample_simulator` and :meth:`build_reference_posterior` (and
    :meth:`likelihood` where it is tractable).

    Example:
        >>> import simulators
        >>> task = simulators.get("gaussian_linear")
        >>> theta = task.prior.sample((4,))
        >>> task.simulate(theta).shape
        torch.Size([4, 10])
        >>> task.reference_posterior(k=1).sample((100,)).shape
        torch.Size([100, 10])
    """

    name: ClassVar[str]
    theta_dim: ClassVar[int]
    x_shape: ClassVar[tuple[int, ...]]
    labels: ClassVar[tuple[str, ...]]
    domain: ClassVar[constraints.Constraint] = constraints.real
    r"""Where the simulator is defined, element-wise (wider than the prior's support)."""
    mcmc_reference: ClassVar[bool] = False
    r"""Whether the reference posterior is sampled by MCMC (and worth caching)."""
    mcmc_settings: ClassVar[dict] = {"chains": 100, "warmup": 500, "thin": 5}
    r"""The settings of :class:`~sbikit.distributions.MCMCDistribution` for the reference."""

    def __init__(self):
        self._prior: Distribution | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, theta_dim={self.theta_dim}, "
            f"x_shape={self.x_shape})"
        )

    # ------------------------------------------------------------------ to implement

    def build_prior(self) -> Distribution:
        raise NotImplementedError

    def sample_simulator(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        r"""Simulates a batch: ``theta`` has shape ``(N, theta_dim)`` (valid, float64) and
        the result ``(N, *x_shape)``."""

        raise NotImplementedError

    def likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        r"""The log-likelihood for ``theta`` with shape ``(N, theta_dim)`` and ``x`` with
        shape ``(N, *x_shape)``, both float64; returns ``(N,)``."""

        raise NotImplementedError(
            f"the likelihood of task {self.name!r} is not tractable: it has no log_likelihood"
        )

    def build_reference_posterior(self, x_obs: Tensor) -> Distribution:
        raise NotImplementedError

    def mcmc_posterior(self, x_obs: Tensor, prior: Distribution | None = None) -> Distribution:
        r"""The posterior for ``x_obs`` sampled by MCMC on the exact likelihood, with chains
        started by importance resampling from the prior and the task's ``mcmc_settings``
        (:class:`~sbikit.distributions.MCMCDistribution`; change its attributes for other
        settings)."""

        prior = self.prior if prior is None else prior

        def log_posterior(theta: Tensor) -> Tensor:
            x = x_obs.expand(len(theta), *self.x_shape)
            return prior.log_prob(theta) + self.likelihood(theta, x)

        return mcmc_distribution(log_posterior, prior, self.mcmc_settings)

    # ------------------------------------------------------------------ public

    @property
    def prior(self) -> Distribution:
        r"""The prior :math:`p(\theta)`, a distribution with event shape ``(theta_dim,)``."""

        if self._prior is None:
            self._prior = self.build_prior()
        return self._prior

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Simulates one observation for each parameter vector.

        Arguments:
            theta: The parameters, with shape ``(*, theta_dim)``.
            generator: A CPU random number generator for reproducible simulations (torch's
                global generator if None).

        Returns:
            The observations, float32, with shape ``(*, *x_shape)``. A failed simulation
            (see the task) is a row of NaN.
        """

        theta = self.check_theta(theta)
        batch = theta.shape[:-1]
        flat = theta.reshape(-1, self.theta_dim).to(dtype=torch.float64, device="cpu")
        x = self.sample_simulator(flat, generator)
        return x.to(torch.float32).reshape(*batch, *self.x_shape)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        r"""The log-likelihood :math:`\log p(x \mid \theta)`, where it is tractable.

        Arguments:
            theta: The parameters, with shape ``(*, theta_dim)``.
            x: The observations, with shape ``(*, *x_shape)``, broadcastable with ``theta``'s
                batch shape.

        Returns:
            The log-likelihoods, float64, with the broadcast batch shape.
        """

        theta = self.check_theta(theta)
        x = self.check_x(x)
        batch = torch.broadcast_shapes(theta.shape[:-1], x.shape[: x.dim() - len(self.x_shape)])
        theta = theta.to(torch.float64).expand(*batch, self.theta_dim)
        x = x.to(torch.float64).expand(*batch, *self.x_shape)
        flat = self.likelihood(theta.reshape(-1, self.theta_dim), x.reshape(-1, *self.x_shape))
        return flat.reshape(batch)

    def observation(self, k: int) -> Tensor:
        r"""The published observation :math:`x_o^{(k)}`, for :math:`k = 1, \dots, 10`, with
        shape ``x_shape``."""

        k = self.check_k(k)
        return torch.tensor(published()[self.name]["observations"][k - 1]).reshape(self.x_shape)

    def true_parameters(self, k: int) -> Tensor:
        r"""The parameters that observation :math:`k` was simulated from, with shape
        ``(theta_dim,)``."""

        k = self.check_k(k)
        return torch.tensor(published()[self.name]["true_parameters"][k - 1])

    def reference_posterior(self, x_obs: Tensor | None = None, *, k: int | None = None):
        r"""The reference posterior :math:`p(\theta \mid x_o)`, a distribution with
        ``sample`` and event shape ``(theta_dim,)``.

        Arguments:
            x_obs: An observation with shape ``x_shape``, or
            k: the number of a published observation (1 to 10).
        """

        if (x_obs is None) == (k is None):
            raise ValueError(
                f"task {self.name!r}: reference_posterior expects either x_obs or k, but "
                f"received {'both' if k is not None else 'neither'}. Pass an observation with "
                f"shape {self.x_shape} or k in 1..{OBSERVATIONS}."
            )
        if k is not None:
            x_obs = self.observation(k)
        x_obs = self.check_x(x_obs)
        if x_obs.shape != torch.Size(self.x_shape):
            raise ValueError(
                f"task {self.name!r}: reference_posterior expects one observation with shape "
                f"{self.x_shape}, but received shape {tuple(x_obs.shape)}."
            )
        return self.build_reference_posterior(x_obs.to(torch.float64))

    def reference_samples(
        self, k: int, num_samples: int = 10_000, cache_dir: str | os.PathLike | None = None
    ) -> Tensor:
        r"""``num_samples`` draws of the reference posterior of observation ``k``, float32
        with shape ``(num_samples, theta_dim)``.

        Draws of MCMC references are cached in ``cache_dir`` (default
        :func:`default_cache_dir`) as ``<task>-<k>-<num_samples>-<settings>.npy``, where
        ``<settings>`` is a digest of :attr:`mcmc_settings`, so they are generated once for
        each setting; the other references are sampled directly.
        """

        k = self.check_k(k)
        if not self.mcmc_reference:
            return self.reference_posterior(k=k).sample((num_samples,)).to(torch.float32)
        path = Path(cache_dir or default_cache_dir()) / self.cache_name(k, num_samples)
        if path.exists():
            return self.load_cached(path, num_samples)
        samples = self.reference_posterior(k=k).sample((num_samples,)).to(torch.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, samples.numpy(), allow_pickle=False)
        os.replace(partial, path)
        return samples

    def cache_name(self, k: int, num_samples: int) -> str:
        r"""The file name of cached reference draws, which names the MCMC settings."""

        settings = json.dumps(self.mcmc_settings, sort_keys=True, default=str)
        digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
        return f"{self.name}-{k}-{num_samples}-{digest}.npy"

    def load_cached(self, path: Path, num_samples: int) -> Tensor:
        r"""Cached reference draws, checked to be ``(num_samples, theta_dim)`` float32."""

        try:
            samples = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"task {self.name!r}: the cached reference samples {path} cannot be read "
                f"({error}). Delete the file to regenerate them."
            ) from None
        expected = (num_samples, self.theta_dim)
        if samples.shape != expected or samples.dtype != np.float32:
            raise ValueError(
                f"task {self.name!r}: the cached reference samples {path} should be float32 "
                f"with shape {expected}, but hold {samples.dtype} with shape "
                f"{samples.shape}. Delete the file to regenerate them."
            )
        return torch.from_numpy(samples)

    # ------------------------------------------------------------------ checks

    def check_theta(self, theta: object) -> Tensor:
        if not isinstance(theta, Tensor) or not theta.is_floating_point():
            raise ValueError(
                f"task {self.name!r} expects theta as a floating-point tensor with shape "
                f"(*, {self.theta_dim}), but received {describe(theta)}."
            )
        if theta.dim() < 1 or theta.shape[-1] != self.theta_dim:
            raise ValueError(
                f"task {self.name!r} expects theta with shape (*, {self.theta_dim}), but "
                f"received shape {tuple(theta.shape)}. Draw parameters with "
                "task.prior.sample((n,))."
            )
        inside = self.domain.check(theta)
        if not bool(inside.all()):
            row = tuple(theta[~inside.all(dim=-1)][0].tolist()) if theta.dim() > 1 else None
            raise ValueError(
                f"task {self.name!r} is defined for theta in {self.domain}, but received "
                f"values outside it{f', e.g. {row}' if row else ''}. Draw parameters from "
                "task.prior."
            )
        return theta

    def check_x(self, x: object) -> Tensor:
        n = len(self.x_shape)
        if (
            not isinstance(x, Tensor)
            or x.dim() < n
            or tuple(x.shape[x.dim() - n :]) != tuple(self.x_shape)
        ):
            raise ValueError(
                f"task {self.name!r} expects x as a tensor with shape (*, "
                f"{', '.join(map(str, self.x_shape))}), but received {describe(x)}."
            )
        return x

    def check_k(self, k: object) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= OBSERVATIONS:
            raise ValueError(
                f"task {self.name!r} has observations k = 1..{OBSERVATIONS}, but received k={k!r}."
            )
        return k


def mcmc_distribution(log_prob_fn, proposal: Distribution, settings: dict) -> Distribution:
    r"""An :class:`~sbikit.distributions.MCMCDistribution` of ``log_prob_fn`` on the support
    of ``proposal``, its chains started by importance resampling from ``proposal``;
    ``settings`` are its keyword arguments and, optionally, its ``min_steps``."""

    settings = dict(settings)
    min_steps = settings.pop("min_steps", None)
    posterior = MCMCDistribution(
        log_prob_fn, proposal.support, proposal.event_shape, proposal=proposal, **settings
    )
    if min_steps is not None:
        posterior.min_steps = min_steps
    return posterior


def describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor with shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"


def log_normal_pdf(x: Tensor, loc: Tensor, scale: float) -> Tensor:
    r"""The element-wise log-density of :math:`\mathcal{N}(x \mid \mu, \sigma^2)`."""

    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)
