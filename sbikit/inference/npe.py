r"""Neural posterior estimation (NPE): a conditional flow :math:`q(\theta \mid x)`.

References:
    | Fast ε-free Inference of Simulation Models with Bayesian Conditional Density
      Estimation (Papamakarios and Murray, 2016)
    | https://arxiv.org/abs/1605.06376

    | Automatic Posterior Transformation for Likelihood-free Inference (Greenberg et al.,
      2019)
    | https://arxiv.org/abs/1905.07488
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Size, Tensor
from torch.distributions import AffineTransform, Distribution, constraints

from .. import flows
from .. import nn as sbikit_nn
from .._validation import check_count, check_like, check_tensor, describe
from ..distributions import NormalizingFlow
from ..lazy import Flow, LazyDistribution
from ..transforms import ComposedTransform
from .support import Unconstrain, describe_support

__all__ = ["NPE"]

DEFAULT_OPTIONS = {
    "NSF": {"transforms": 5, "hidden_features": [128, 128], "bins": 8},
    "MAF": {"transforms": 5, "hidden_features": [128, 128]},
}
r"""The options of the default flows (compared with sbi in ``benchmarks/npe.py``)."""


def qualified_name(obj: object) -> str:
    r"""Returns ``module.qualname`` of a class or function (of the type of other objects)."""

    kind = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def public_class(namespace: Any, spec: object, base: type, what: str) -> str | None:
    r"""Returns the public name in ``namespace`` of the class ``spec`` (a name, any case, or
    the class itself), ``None`` if ``spec`` is another callable, or raises."""

    names = {
        n.lower(): n for n in namespace.__all__ if issubclass_safe(getattr(namespace, n), base)
    }
    if isinstance(spec, str):
        if spec.lower() not in names:
            raise ValueError(
                f"NPE expects {what} to be one of {sorted(names.values())} (any case), a class "
                f"or a callable, but received the name {spec!r}."
            )
        return names[spec.lower()]
    if isinstance(spec, type) and getattr(namespace, spec.__name__, None) is spec:
        return spec.__name__
    return None


def issubclass_safe(obj: object, base: type) -> bool:
    r"""Whether ``obj`` is a class derived from ``base``."""

    return isinstance(obj, type) and issubclass(obj, base)


def plain(options: dict, what: str) -> tuple[dict, str | None]:
    r"""Returns ``options`` as they read back from JSON (tuples become lists), or ``options``
    unchanged and the reason why they are not JSON-serialisable."""

    try:
        return json.loads(json.dumps(options, allow_nan=False)), None
    except (TypeError, ValueError) as error:
        return options, f"the {what} options {options!r} are not JSON-serialisable ({error})"


class NPE(LazyDistribution):
    r"""A neural posterior estimator: a normalizing flow :math:`q(\theta \mid x)` trained on
    pairs :math:`(\theta, x)` by :func:`sbikit.fit`.

    ``posterior(x)`` returns a :class:`~sbikit.distributions.NormalizingFlow` over
    :math:`\theta` built in three steps, from data to base space:

    .. math:: \theta \xrightarrow{b^{-1}} u \xrightarrow{(u - \mu_u) / \sigma_u} v
        \xrightarrow{f(\cdot \mid e(\tilde{x}))} z, \quad
        \tilde{x} = (x - \mu_x) / \sigma_x

    where :math:`b` maps the real space onto the prior's support
    (:func:`torch.distributions.biject_to`), :math:`\mu, \sigma` are the standardisation
    buffers set from the training split by :func:`sbikit.fit`, :math:`e` is the embedding
    network (the identity on the flattened observation by default) and :math:`f` the flow.
    Samples therefore never leave the prior's support, and the log-density of a
    :math:`\theta` outside it is :math:`-\infty`.

    For observations of shape :math:`B + X` (``X`` the event shape ``x_shape``), the
    posterior has batch shape :math:`B`: ``posterior(x).sample((S,))`` has shape
    :math:`(S, *B, D)` and ``log_prob(theta)`` shape :math:`(S, *B)`.

    Arguments:
        theta_dim: The number of parameters :math:`D`.
        x_shape: The event shape of one observation, e.g. ``10`` or ``(20, 2)``.
        flow: The flow, a name or class of :mod:`sbikit.flows` (``"nsf"``, ``"maf"``,
            :class:`~sbikit.flows.RealNVP`, ...) or any callable
            ``flow(features, context, **flow_options)`` that returns a lazy flow.
        embedding: The embedding network of the observations, trained jointly: ``None``
            (the flattened observation), a name or class of :mod:`sbikit.nn` built with
            ``embedding_options``, or any module that maps :math:`(N, *X)` to
            :math:`(N, C)`.
        embedding_options: The keyword arguments of the embedding's class.
        prior: The prior distribution, or its support (a
            :class:`~torch.distributions.constraints.Constraint`); ``None`` for the real
            space.
        flow_options: Keyword arguments of the flow (defaults for NSF: 5 transforms,
            hidden features (128, 128), 8 bins).

    Example:
        >>> from sbikit.distributions import BoxUniform
        >>> prior = BoxUniform(-torch.ones(2), torch.ones(2))
        >>> posterior = NPE(2, 3, prior=prior, transforms=2, hidden_features=(16, 16))
        >>> posterior(torch.randn(3)).sample((100,)).shape
        torch.Size([100, 2])
        >>> q = posterior(torch.randn(5, 3))  # 5 observations
        >>> q.batch_shape, q.sample((100,)).shape
        (torch.Size([5]), torch.Size([100, 5, 2]))
        >>> bool(prior.support.check(q.sample((100,))).all())
        True
    """

    def __init__(
        self,
        theta_dim: int,
        x_shape: int | Sequence[int],
        flow: str | Callable[..., Flow] = "nsf",
        embedding: str | type | nn.Module | None = None,
        embedding_options: dict | None = None,
        prior: Distribution | constraints.Constraint | None = None,
        **flow_options: Any,
    ):
        super().__init__()
        self.theta_dim = check_count(theta_dim, "theta_dim", "NPE")
        self.x_shape = check_shape(x_shape)
        support = None if prior is None else describe_support(prior)
        self.unconstrain = None if support is None else Unconstrain(support)
        self.register_buffer("theta_loc", torch.zeros(self.theta_dim))
        self.register_buffer("theta_scale", torch.ones(self.theta_dim))
        self.register_buffer("x_loc", torch.zeros(self.x_shape))
        self.register_buffer("x_scale", torch.ones(self.x_shape))

        self.unsaveable: list[str] = []  # why sbikit.save cannot describe this estimator
        embedding_config = self.build_embedding(embedding, embedding_options)
        flow_config = self.build_flow(flow, flow_options)
        self.config = {
            "estimator": "NPE",
            "theta_dim": self.theta_dim,
            "x_shape": list(self.x_shape),
            "flow": flow_config,
            "embedding": embedding_config,
            "support": support,
        }
        r"""The architecture as JSON, from which :func:`sbikit.load` rebuilds the estimator."""
        self.history: dict | None = None
        r"""The training history written by :func:`sbikit.fit`."""

    def build_embedding(self, embedding: object, options: dict | None) -> dict | None:
        r"""Builds ``self.embedding`` and ``self.context``, and returns their description."""

        if embedding is None:
            if options:
                raise ValueError(
                    "NPE received embedding_options but no embedding. Pass embedding= a "
                    "class or name of sbikit.nn, e.g. embedding='MLPEmbedding'."
                )
            self.embedding, self.context = None, self.x_shape.numel()
            return None
        if isinstance(embedding, nn.Module):
            if options:
                raise ValueError(
                    "NPE received embedding_options with an embedding module: the options "
                    "are for a class or name of sbikit.nn, which NPE builds. Build the "
                    "module with its options yourself, or pass its class."
                )
            name, module = None, embedding
        else:
            name = public_class(sbikit_nn, embedding, nn.Module, "embedding")
            if name is None:
                raise TypeError(
                    "NPE expects embedding to be None, a class or name of sbikit.nn or an "
                    f"nn.Module, but received {describe(embedding)}."
                )
            options, reason = plain(dict(options or {}), "embedding")
            self.unsaveable += [reason] if reason else []
            module = getattr(sbikit_nn, name)(**options)
        self.embedding, self.context = module, embedding_features(module, self.x_shape)
        described = {"name": name, "options": options if name else None}
        return {**described, "module": qualified_name(module), "features": self.context}

    def build_flow(self, flow: object, options: dict) -> dict:
        r"""Builds ``self.flow`` and returns its description."""

        name = public_class(flows, flow, Flow, "flow")
        if name is None and not callable(flow):
            raise TypeError(
                "NPE expects flow to be a name or class of sbikit.flows or a callable "
                f"flow(features, context, **options), but received {describe(flow)}."
            )
        options, reason = plain({**DEFAULT_OPTIONS.get(name, {}), **options}, "flow")
        factory = getattr(flows, name) if name else flow
        self.unsaveable += [reason] if reason else []
        self.flow = factory(self.theta_dim, self.context, **options)
        if not isinstance(self.flow, LazyDistribution):
            raise TypeError(
                f"NPE expects flow(features, context, **options) to return a lazy flow, but "
                f"{qualified_name(flow)} returned {describe(self.flow)}."
            )
        return {"name": name, "factory": qualified_name(factory), "options": options}

    def extra_repr(self) -> str:
        return f"theta_dim={self.theta_dim}, x_shape={tuple(self.x_shape)}"

    def set_standardization(
        self, theta_loc: Tensor, theta_scale: Tensor, x_loc: Tensor, x_scale: Tensor
    ) -> None:
        r"""Sets the standardisation buffers (:func:`sbikit.fit` does it from the training
        split).

        Arguments:
            theta_loc: The mean :math:`\mu_u` of the unconstrained parameters, :math:`(D,)`.
            theta_scale: Their standard deviation :math:`\sigma_u`, :math:`(D,)`.
            x_loc: The mean :math:`\mu_x` of the observations, with shape ``x_shape``.
            x_scale: Their standard deviation :math:`\sigma_x`, with shape ``x_shape``.

        Example:
            >>> posterior = NPE(2, 3, transforms=1, hidden_features=(8,))
            >>> ones = torch.ones(3)
            >>> posterior.set_standardization(torch.zeros(2), 2 * ones[:2], 0 * ones, ones)
            >>> posterior.theta_scale
            tensor([2., 2.])
        """

        values = {"theta_loc": theta_loc, "theta_scale": theta_scale}
        values |= {"x_loc": x_loc, "x_scale": x_scale}
        for name, value in values.items():
            buffer = getattr(self, name)
            value = check_tensor(value, name)
            if value.shape != buffer.shape or not torch.isfinite(value).all():
                raise ValueError(
                    f"NPE.set_standardization expects a finite {name} of shape "
                    f"{tuple(buffer.shape)}, but received {describe(value)}."
                )
            if "scale" in name and not (value > 0).all():
                raise ValueError(f"NPE.set_standardization expects {name} > 0 everywhere.")
            buffer.copy_(value)

    def unconstrain_theta(self, theta: Tensor) -> Tensor:
        r"""Returns the unconstrained parameters :math:`u = b^{-1}(\theta)`, :math:`(*, D)`.

        Example:
            >>> from sbikit.distributions import BoxUniform
            >>> posterior = NPE(1, 1, prior=BoxUniform(torch.zeros(1), torch.ones(1)))
            >>> posterior.unconstrain_theta(torch.tensor([[0.5]]))
            tensor([[0.]])
        """

        return theta if self.unconstrain is None else self.unconstrain()(theta)

    def check_observation(self, x: object) -> Tensor:
        r"""Returns ``x`` if it is a finite observation of shape :math:`(*, *X)` with the
        estimator's dtype and device, or raises.

        Example:
            >>> NPE(2, 3, transforms=1).check_observation(torch.zeros(4, 3)).shape
            torch.Size([4, 3])
        """

        x = check_tensor(x, "the observation x")
        n = len(self.x_shape)
        if x.shape[x.dim() - n :] != self.x_shape or x.dim() < n:
            raise ValueError(
                f"NPE expects observations of shape (*, {', '.join(map(str, self.x_shape))}) "
                f"(a batch of observations of shape {tuple(self.x_shape)}), but received "
                f"{describe(x)}."
            )
        check_like(x, self.x_loc, "the observation x", "NPE")
        if not torch.isfinite(x).all():
            raise ValueError(
                "NPE expects finite observations, but x holds NaN or infinite values. A "
                "simulator's failed runs cannot be conditioned on: remove those observations."
            )
        return x

    def forward(self, x: Tensor) -> NormalizingFlow:
        r"""
        Arguments:
            x: An observation with shape :math:`X`, or a batch with shape :math:`B + X`.

        Returns:
            The posterior :math:`q(\theta \mid x)`, with batch shape :math:`B` and event
            shape :math:`(D,)`.
        """

        return self.posterior(self.check_observation(x))

    def posterior(self, x: Tensor) -> NormalizingFlow:
        r"""Returns :math:`q(\theta \mid x)` without checking ``x`` (the training path).

        Example:
            >>> NPE(2, 3, transforms=1).posterior(torch.zeros(3)).event_shape
            torch.Size([2])
        """

        batch = x.shape[: x.dim() - len(self.x_shape)]
        x = (x - self.x_loc) / self.x_scale
        if self.embedding is None:
            c = x.reshape((*batch, self.context))
        else:
            c = self.embedding(x.reshape(-1, *self.x_shape)).reshape((*batch, self.context))
        transforms = [] if self.unconstrain is None else [self.unconstrain()]
        transforms.append(self.standardize())
        q = NormalizingFlow(ComposedTransform(*transforms), self.flow(c))
        q.name = "NPE"  # errors about its values name the estimator
        return q

    def standardize(self) -> AffineTransform:
        r"""Returns the standardisation :math:`v = (u - \mu_u) / \sigma_u` of the
        unconstrained parameters.

        Example:
            >>> NPE(2, 3, transforms=1).standardize()(torch.ones(2))
            tensor([1., 1.])
        """

        return AffineTransform(-self.theta_loc / self.theta_scale, 1 / self.theta_scale, 1)

    def loss(self, theta: Tensor, x: Tensor) -> Tensor:
        r"""Returns the training loss, :math:`-\frac{1}{N} \sum_i \log q(\theta_i \mid x_i)`.

        Arguments:
            theta: Parameters, :math:`(N, D)`.
            x: Their observations, :math:`(N, *X)`.

        Returns:
            The mean negative log-density, a 0-d tensor.

        Example:
            >>> posterior = NPE(2, 3, transforms=1)
            >>> posterior.loss(torch.zeros(4, 2), torch.zeros(4, 3)).shape
            torch.Size([])
        """

        return -self.posterior(x).log_prob(theta).mean()

    def map(
        self,
        x: Tensor,
        num_samples: int = 1000,
        starts: int = 10,
        steps: int = 200,
        learning_rate: float = 0.05,
    ) -> Tensor:
        r"""Returns the maximum a posteriori :math:`\arg\max_\theta q(\theta \mid x)`.

        Draws ``num_samples`` samples, keeps the ``starts`` most probable and climbs the
        log-density from each by gradient ascent (Adam) in the standardised unconstrained
        space, where one step size suits every parameter; the best point is returned.

        Arguments:
            x: An observation with shape :math:`X`, or a batch with shape :math:`B + X`.
            num_samples: The number of samples drawn to choose the starting points.
            starts: The number of starting points.
            steps: The number of gradient steps.
            learning_rate: The step size of Adam in the standardised space.

        Returns:
            The maximum a posteriori estimate of each observation, :math:`(*B, D)`.

        Example:
            >>> posterior = NPE(2, 3, transforms=1, hidden_features=(8,))
            >>> posterior.map(torch.zeros(3), steps=10).shape
            torch.Size([2])
            >>> posterior.map(torch.zeros(4, 3), steps=10).shape
            torch.Size([4, 2])
        """

        starts = check_count(starts, "starts", "NPE.map")
        check_count(num_samples, "num_samples", "NPE.map", minimum=starts)
        check_count(steps, "steps", "NPE.map", minimum=0)
        q = self(x)
        prefix = q.transform  # θ → v, the flow's data space
        with torch.no_grad():
            theta = q.sample((num_samples,))
            best = q.log_prob(theta).topk(starts, dim=0).indices
            theta = theta.gather(0, best.unsqueeze(-1).expand((*best.shape, self.theta_dim)))
        v = prefix(theta).requires_grad_()
        optimizer = torch.optim.Adam([v], lr=learning_rate)
        with torch.enable_grad():
            for _ in range(steps):
                loss = -q.log_prob(prefix.inv(v)).nan_to_num(nan=-math.inf).sum()
                optimizer.zero_grad()
                v.grad = torch.autograd.grad(loss, v)[0].nan_to_num(0.0, 0.0, 0.0)
                optimizer.step()
        with torch.no_grad():
            candidates = torch.cat((theta, prefix.inv(v)))
            log_q = q.log_prob(candidates).nan_to_num(nan=-math.inf)
            index = log_q.argmax(dim=0, keepdim=True).unsqueeze(-1)
            return candidates.gather(0, index.expand((*index.shape[:-1], self.theta_dim)))[0]


def check_shape(x_shape: object) -> Size:
    r"""Returns the event shape of the observations, or raises."""

    shape = (x_shape,) if isinstance(x_shape, int) and not isinstance(x_shape, bool) else x_shape
    try:
        shape = Size(shape)
    except TypeError:
        shape = None
    if shape is None or not shape or min(shape) < 1:
        raise ValueError(
            "NPE expects x_shape to be a positive int or a non-empty sequence of positive ints "
            f"(the shape of one observation), but received {x_shape!r}."
        )
    return shape


def embedding_features(module: nn.Module, x_shape: Size) -> int:
    r"""Returns the number of features of the embedding of one observation, or raises."""

    with torch.no_grad():
        reference = next(module.parameters(), None)
        dtype = reference.dtype if reference is not None else None
        try:
            e = module(torch.zeros((2, *x_shape), dtype=dtype))
        except Exception as error:  # the module's own message says what it expects
            raise ValueError(
                f"NPE's embedding {qualified_name(module)} failed on observations of shape "
                f"(2, {', '.join(map(str, x_shape))}): {error}"
            ) from error
    if not isinstance(e, Tensor) or e.shape[:1] != (2,) or e.dim() != 2:
        raise ValueError(
            f"NPE expects the embedding to map observations (N, *x_shape) to features (N, C), "
            f"but it returned {describe(e)} for N=2."
        )
    return e.shape[1]
