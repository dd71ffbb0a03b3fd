r"""Gaussian mixture models (GMM), conditional or not."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import MultivariateNormal

from .._validation import check_count, check_like, check_tensor, describe
from ..distributions import DiagNormal, Mixture
from ..lazy import LazyDistribution, check_context
from ..nn import MLP
from ..utils import unpack

__all__ = ["GMM"]

COVARIANCE_TYPES = ("full", "diagonal", "spherical")
STRATEGIES = ("random", "kmeans++", "kmeans")
MLP_KEYWORDS = ("hidden_features", "activation", "normalize")


def gmm_shapes(
    features: int, components: int, covariance_type: str, tied: bool
) -> list[tuple[int, ...]]:
    r"""Returns the shapes of the parameters of a GMM: logits, means, then the covariance
    parameters (the log-diagonal, and the strict lower triangle for ``"full"``)."""

    leading = 1 if tied else components
    shapes = [(components,), (components, features)]
    if covariance_type == "full":
        shapes += [(leading, features), (leading, features * (features - 1) // 2)]
    elif covariance_type == "diagonal":
        shapes += [(leading, features)]
    else:
        shapes += [(leading, 1)]
    return shapes


def kmeans_pp(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    r"""Returns :math:`k` centers of ``x`` (shape :math:`(N, D)`) drawn by k-means++: the
    first uniformly, each next one with probability proportional to the squared distance
    to the nearest center already drawn."""

    N = x.shape[0]
    index = torch.randint(N, (1,), generator=generator, device=x.device)
    centers = [x[index]]
    nearest = (x - centers[0]).square().sum(dim=-1)
    for _ in range(1, k):
        weights = nearest if nearest.sum() > 0 else torch.ones_like(nearest)
        index = torch.multinomial(weights, 1, generator=generator)
        centers.append(x[index])
        nearest = torch.minimum(nearest, (x - centers[-1]).square().sum(dim=-1))
    return torch.cat(centers, dim=0)


def lloyd(x: Tensor, centers: Tensor, iterations: int) -> Tensor:
    r"""Returns the centers after ``iterations`` of Lloyd's algorithm (assign each point to
    its nearest center, move each center to the mean of its points). A center that loses
    all its points stays where it is."""

    k = centers.shape[0]
    for _ in range(iterations):
        match = F.one_hot(torch.cdist(x, centers).argmin(dim=-1), k).to(x.dtype)
        counts = match.sum(dim=0)
        means = (match.T @ x) / counts.clamp(min=1).unsqueeze(-1)
        centers = torch.where(counts.unsqueeze(-1) > 0, means, centers)
    return centers


class GMM(LazyDistribution):
    r"""A Gaussian mixture model, whose parameters may depend on a context.

    .. math:: p(x \mid c) = \sum_{k=1}^K w_k(c) \, \mathcal{N}(x \mid \mu_k(c),
        \Sigma_k(c)), \quad w(c) = \mathrm{softmax}(\ell(c))

    The logits :math:`\ell`, means :math:`\mu` and covariance parameters are the output of an
    :class:`~sbikit.nn.MLP` of the context, or free parameters when ``context=0``. They
    are, in this order (``self.shapes``), with :math:`L = 1` if ``tied`` else :math:`K`:

    - the logits :math:`\ell`, with shape :math:`(K,)`;
    - the means :math:`\mu`, with shape :math:`(K, D)`;
    - for ``covariance_type="full"``: the log-diagonal :math:`a`, with shape :math:`(L, D)`,
      and the strict lower triangle :math:`t`, with shape :math:`(L, D (D - 1) / 2)` (in
      the row-major order of :func:`torch.tril_indices`), of the Cholesky factor
      :math:`\Sigma = S S^\top`, :math:`S_{ii} = \exp(a_i) + \epsilon`;
    - for ``"diagonal"``: the log-scales :math:`a`, with shape :math:`(L, D)`,
      :math:`\Sigma = \mathrm{diag}(\exp(a) + \epsilon)^2`;
    - for ``"spherical"``: one log-scale :math:`a`, with shape :math:`(L, 1)`,
      :math:`\Sigma = (\exp(a) + \epsilon)^2 I`.

    With ``tied=True``, all components share one covariance. The distribution is a
    :class:`~sbikit.distributions.Mixture` of :class:`torch.distributions.MultivariateNormal`
    (``"full"``) or :class:`~sbikit.distributions.DiagNormal` components, with batch shape
    ``c.shape[:-1]``. For an unconditional model, free parameters start at zero (equal
    weights, unit covariances) except the means, drawn from :math:`\mathcal{N}(0, I)`; use
    :meth:`initialize` to start from the data instead.

    Wikipedia:
        https://wikipedia.org/wiki/Mixture_model#Gaussian_mixture_model

    Arguments:
        features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0 if unconditional).
        components: The number of components :math:`K`.
        covariance_type: ``"full"``, ``"diagonal"`` or ``"spherical"``.
        tied: Whether the components share one covariance.
        epsilon: The floor :math:`\epsilon \ge 0` of the scales, for numerical stability.
        kwargs: Keyword arguments of :class:`~sbikit.nn.MLP` (``hidden_features``,
            ``activation``, ``normalize``), unused when ``context=0``.

    Example:
        >>> gmm = GMM(2, components=3)
        >>> p = gmm()
        >>> p.sample((5,)).shape, p.log_prob(torch.zeros(2)).shape
        (torch.Size([5, 2]), torch.Size([]))
        >>> conditional = GMM(2, context=4, covariance_type="diagonal", tied=True)
        >>> q = conditional(torch.randn(8, 4))
        >>> q.batch_shape, q.sample((5,)).shape
        (torch.Size([8]), torch.Size([5, 8, 2]))
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        components: int = 2,
        covariance_type: Literal["full", "diagonal", "spherical"] = "full",
        tied: bool = False,
        epsilon: float = 1e-6,
        **kwargs: Any,
    ):
        super().__init__()
        owner = type(self).__name__
        self.features = check_count(features, "features", owner, 1)
        self.context = check_count(context, "context", owner, 0)
        self.components = check_count(components, "components", owner, 1)
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"{owner} expects covariance_type to be one of {list(COVARIANCE_TYPES)}, but "
                f"received {covariance_type!r}. Pass e.g. covariance_type='full'."
            )
        if not isinstance(tied, bool):
            raise TypeError(f"{owner} expects tied to be a bool, but received {describe(tied)}.")
        if isinstance(epsilon, bool) or not isinstance(epsilon, int | float):
            raise TypeError(
                f"{owner} expects epsilon to be a real number, but received {describe(epsilon)}."
            )
        if not 0 <= epsilon < math.inf:
            raise ValueError(
                f"{owner} expects a finite epsilon >= 0, but received epsilon={epsilon}. "
                "Pass a small positive floor such as 1e-6."
            )
        unknown = sorted(set(kwargs) - set(MLP_KEYWORDS))
        if unknown:
            raise TypeError(
                f"{owner} received unexpected keyword argument(s) {unknown}. It accepts the "
                f"keyword arguments of sbikit.nn.MLP: {list(MLP_KEYWORDS)}."
            )
        self.covariance_type = covariance_type
        self.tied = tied
        self.epsilon = float(epsilon)
        self.shapes = gmm_shapes(features, components, covariance_type, tied)
        self.total = sum(math.prod(s) for s in self.shapes)

        if context > 0:
            self.hyper = MLP(context, self.total, **kwargs)
        else:
            initial = [torch.zeros(s) for s in self.shapes]
            initial[1] = torch.randn(components, features)
            self.phi = nn.ParameterList([nn.Parameter(p) for p in initial])

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, components={self.components}, "
            f"covariance_type={self.covariance_type!r}, tied={self.tied}"
        )

    def _reference(self) -> Tensor:
        return self.hyper[0].weight if self.context > 0 else self.phi[0]

    def forward(self, c: Tensor | None = None) -> Mixture:
        owner = type(self).__name__
        c = check_context(c, self.context, owner)
        if c is None:
            phi = list(self.phi)
        else:
            check_like(c, self._reference(), "the context c", owner)
            phi = unpack(self.hyper(c), self.shapes)

        logits, loc, *covariance = phi
        scale = covariance[0].exp() + self.epsilon
        if self.covariance_type == "full":
            D = self.features
            rows, cols = torch.tril_indices(D, D, offset=-1, device=loc.device)
            strict = covariance[1].new_zeros(*covariance[1].shape[:-1], D * D)
            strict = strict.index_copy(-1, rows * D + cols, covariance[1])
            scale_tril = strict.unflatten(-1, (D, D)) + torch.diag_embed(scale)
            base = MultivariateNormal(loc, scale_tril=scale_tril, validate_args=False)
        else:
            base = DiagNormal(loc, scale.expand(loc.shape))
        mixture = Mixture(base, logits)
        mixture.name = owner  # errors about its values name this model
        return mixture

    @torch.no_grad()
    def initialize(
        self,
        x: Tensor,
        strategy: Literal["random", "kmeans++", "kmeans"] = "kmeans",
        iterations: int = 10,
        generator: torch.Generator | None = None,
    ) -> None:
        r"""Initializes the mixture from data, by clustering.

        The data are clustered into :math:`K` clusters, each point going to its nearest
        center, where the centers are :math:`K` random points (``"random"``), drawn by
        k-means++ seeding (``"kmeans++"``: each next center with probability proportional
        to the squared distance to the nearest center already drawn), or k-means++ seeding
        followed by ``iterations`` steps of Lloyd's algorithm (``"kmeans"``). Then each
        component gets the weight, mean and maximum-likelihood covariance of its cluster
        (the within-cluster covariance, pooled over clusters, if ``tied``; its diagonal for
        ``"diagonal"``; the mean of the diagonal for ``"spherical"``), with
        :math:`10^{-6}` times the mean variance of the data added to the diagonal. A cluster
        with fewer than two points gets the covariance of all the data, and at least one
        point's worth of weight.

        For an unconditional model, the free parameters are set to these values. For a
        conditional model, the bias of the last layer of the MLP is set to them and its
        weight is scaled by :math:`10^{-2}`, so that :math:`p(x \mid c)` starts close to the
        fitted mixture for every context.

        Arguments:
            x: The samples, with shape :math:`(N, D)` and :math:`N \ge K`.
            strategy: ``"random"``, ``"kmeans++"`` or ``"kmeans"``.
            iterations: The number of Lloyd iterations of ``"kmeans"``.
            generator: The random generator of the seeding (default: torch's global one).

        Example:
            >>> x = torch.cat((torch.randn(100, 2) - 5, torch.randn(100, 2) + 5))
            >>> gmm = GMM(2, components=2)
            >>> gmm.initialize(x)
            >>> gmm().base.mean[:, 0].detach().sort().values.round()  # the cluster means
            tensor([-5.,  5.])
        """

        owner = f"{type(self).__name__}.initialize"
        x = check_tensor(x, "x")
        if x.dim() != 2 or x.shape[-1] != self.features or x.shape[0] < self.components:
            raise ValueError(
                f"{owner} expects samples x of shape (N, {self.features}) with N >= "
                f"{self.components} (the number of components), but received {describe(x)}."
            )
        check_like(x, self._reference(), "x", owner)
        if not torch.isfinite(x).all():
            raise ValueError(
                f"{owner} expects finite samples, but x contains NaN or infinite values. "
                "Remove those rows first."
            )
        if strategy not in STRATEGIES:
            raise ValueError(
                f"{owner} expects strategy to be one of {list(STRATEGIES)}, but received "
                f"{strategy!r}."
            )
        check_count(iterations, "iterations", owner, 0)

        N, D = x.shape
        K = self.components
        if strategy == "random":
            index = torch.randperm(N, generator=generator, device=x.device)[:K]
            centers = x[index]
        else:
            centers = kmeans_pp(x, K, generator)
            if strategy == "kmeans":
                centers = lloyd(x, centers, iterations)

        match = F.one_hot(torch.cdist(x, centers).argmin(dim=-1), K).to(x.dtype)
        counts = match.sum(dim=0)
        means = torch.where(
            counts.unsqueeze(-1) > 0, (match.T @ x) / counts.clamp(min=1).unsqueeze(-1), centers
        )
        centered = x.unsqueeze(-2) - means  # (N, K, D)
        weighted = match.unsqueeze(-1) * centered
        covariances = torch.einsum("nki,nkj->kij", weighted, centered)
        overall = torch.atleast_2d(torch.cov(x.T, correction=0))
        eye = torch.eye(D, dtype=x.dtype, device=x.device)
        regularization = 1e-6 * overall.diagonal().mean().clamp(min=torch.finfo(x.dtype).tiny)
        if self.tied:
            covariances = covariances.sum(dim=0, keepdim=True) / N
        else:
            covariances = covariances / counts.clamp(min=1)[:, None, None]
            covariances = torch.where(counts[:, None, None] >= 2, covariances, overall)
        covariances = covariances + regularization * eye
        logits = counts.clamp(min=1).log()

        tiny = torch.finfo(x.dtype).tiny
        if self.covariance_type == "full":
            cholesky = torch.linalg.cholesky(covariances)
            rows, cols = torch.tril_indices(D, D, offset=-1, device=x.device)
            diagonal = cholesky.diagonal(dim1=-2, dim2=-1)
            covariance = [
                (diagonal - self.epsilon).clamp(min=tiny).log(),
                cholesky[..., rows, cols],
            ]
        else:
            variances = covariances.diagonal(dim1=-2, dim2=-1)
            if self.covariance_type == "spherical":
                variances = variances.mean(dim=-1, keepdim=True)
            covariance = [(variances.sqrt() - self.epsilon).clamp(min=tiny).log()]

        values: Sequence[Tensor] = [logits, means, *covariance]
        if self.context > 0:
            last = self.hyper[-1]
            last.weight.mul_(1e-2)
            last.bias.copy_(torch.cat([v.flatten() for v in values]))
        else:
            for p, v in zip(self.phi, values, strict=True):
                p.copy_(v)
