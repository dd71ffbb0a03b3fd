r"""Markov chain Monte Carlo for unnormalised densities.

:class:`MCMCDistribution` turns any unnormalised log-density into a torch
:class:`~torch.distributions.Distribution` whose ``sample`` runs many vectorised Markov
chains (a slice sampler or an adaptive random-walk Metropolis sampler) in the unconstrained
space of the support, and reports their convergence (:mod:`.convergence`).

References:
    | Slice sampling (Neal, 2003)
    | https://doi.org/10.1214/aos/1056562461

    | An adaptive Metropolis algorithm (Haario, Saksman and Tamminen, 2001)
    | https://doi.org/10.2307/3318737

    | Rank-normalization, folding, and localization: An improved R-hat for assessing
      convergence of MCMC (Vehtari, Gelman, Simpson, Carpenter and Bürkner, 2021)
    | https://arxiv.org/abs/1903.08008
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, biject_to, constraints
from tqdm import tqdm

from .._validation import check_count, describe
from ._adaptation import adaptation_ends, within_chain_covariance
from ._helpers import is_real
from .base import DistributionMixin
from .convergence import MCMCDiagnostics, effective_sample_size, split_rhat

__all__ = ["MCMCDistribution"]

METHODS = ("slice", "metropolis")


class MCMCDistribution(DistributionMixin, Distribution):
    r"""A distribution defined by an unnormalised log-density, sampled by Markov chain
    Monte Carlo (MCMC).

    .. math:: p(\theta) \propto \exp(\ell(\theta)), \quad \theta \in \mathcal{S}

    ``sample`` runs ``chains`` Markov chains in parallel, every step evaluating
    :math:`\ell` (``log_prob_fn``) for all chains in one call. The chains move in the
    unconstrained space :math:`z = b^{-1}(\theta)` of the bijection
    :math:`b` = ``torch.distributions.biject_to(support)`` (the bijective counterpart of
    ``transform_to``, the same for real, interval and positive supports) and target
    :math:`\ell(b(z)) + \log |\det J_b(z)|`, so that :math:`b(z)` is distributed as
    :math:`p`. A sample is drawn as follows.

    1. Initial states come from ``init`` or, with a ``proposal`` :math:`q`, by
       sampling-importance-resampling: :attr:`sir_candidates` :math:`\times` ``chains``
       candidates are drawn from :math:`q` and ``chains`` of them are resampled with
       weights :math:`\exp(\ell(\theta) - \log q(\theta))`. The chains therefore start in
       every mode of :math:`p`, in proportion to its mass, which keeps the right weights
       for well-separated modes between which no chain can move.
    2. ``warmup`` steps adapt the sampler and are discarded: at the end of windows of
       doubling length the pooled within-chain covariance :math:`\Sigma` of the window
       (robust to chains in different modes) is estimated.
    3. Then :math:`T = \max(\lceil N / C \rceil, T_{\min})` steps are kept for
       :math:`N` = ``prod(sample_shape)`` draws and :math:`C` chains, each after ``thin``
       steps, and :math:`N` of the :math:`T C` kept draws are picked at random, without
       replacement. :math:`T_{\min}` = :attr:`min_steps` (200) because the split
       :math:`\hat{R}` of converged chains of :math:`T` steps with integrated
       autocorrelation time :math:`\tau` is about :math:`1 + (\tau - 1) / T`, which
       exceeds 1.01 for short chains even when they mix well.

    ``method="slice"`` is a univariate slice sampler with stepping out (at most
    :attr:`max_stepping_out` brackets) and shrinkage (at most :attr:`max_shrinkage`
    proposals, after which a chain stays where it is), applied to each coordinate in a
    random order every step (Neal, 2003). Every chain carries its own bracket, and
    ``log_prob_fn`` is only evaluated for the chains still stepping out or shrinking. The
    coordinates are those of the eigenvectors of :math:`\Sigma` and the initial bracket
    widths :math:`3 \sqrt{\lambda_i}` (:math:`\lambda_i` its eigenvalues), which decouples
    correlated parameters; before the first adaptation, the coordinates are the axes and
    the widths thrice the spread of the initial states (1 if they do not spread).

    ``method="metropolis"`` is a random-walk Metropolis sampler with Gaussian proposals of
    covariance :math:`s^2 \Sigma`, :math:`s^2` starting at :math:`2.38^2 / D` (Haario et
    al., 2001) and adapted during warm-up towards an acceptance rate of 0.44 for
    :math:`D = 1`, decreasing to 0.234 for :math:`D \geq 5` (Roberts and Rosenthal, 2001).

    After the run, :attr:`diagnostics` holds :class:`MCMCDiagnostics` computed on the kept
    chains with :func:`split_rhat` and :func:`effective_sample_size`. A
    :class:`RuntimeWarning` is emitted if the largest :math:`\hat{R}` is not below
    :attr:`rhat_threshold` or the smallest ESS is below :attr:`ess_threshold` (a tenth of
    the draws for runs of fewer than ten times that many draws). Chains started by
    ``proposal`` in well-separated modes never mix and always give a large
    :math:`\hat{R}`, even though the modes' weights are right.

    The random numbers come from torch's global generator: seed runs with
    :func:`torch.manual_seed` (``sample`` has no ``generator`` argument, as in
    :mod:`torch.distributions`). The thresholds and limits (:attr:`rhat_threshold`,
    :attr:`ess_threshold`, :attr:`min_steps`, :attr:`sir_candidates`,
    :attr:`max_stepping_out`, :attr:`max_shrinkage`, :attr:`max_lookahead`) are class
    attributes; assign one on an instance to change it for that instance only.

    References:
        | Slice sampling (Neal, 2003)
        | https://doi.org/10.1214/aos/1056562461

        | An adaptive Metropolis algorithm (Haario, Saksman and Tamminen, 2001)
        | https://doi.org/10.2307/3318737

        | Optimal scaling for various Metropolis-Hastings algorithms (Roberts and
          Rosenthal, 2001)
        | https://doi.org/10.1214/ss/1015346320

    Arguments:
        log_prob_fn: The unnormalised log-density :math:`\ell`, a function that maps a
            tensor of shape :math:`(N, *E)` to one of shape :math:`(N,)`, without a
            Python loop over rows. It may return :math:`-\infty` (outside the model).
            NaN and :math:`+\infty` are treated as :math:`-\infty` by the samplers.
        support: The support :math:`\mathcal{S}`, a
            :class:`~torch.distributions.constraints.Constraint` such as
            ``constraints.real_vector``,
            ``constraints.independent(constraints.interval(lower, upper), 1)`` or
            ``constraints.independent(constraints.positive, 1)``.
        event_shape: The event shape :math:`E`, e.g. ``(D,)``.
        chains: The number of chains :math:`C`.
        warmup: The number of warm-up steps, discarded.
        thin: The number of steps between kept draws.
        method: The sampler, ``"slice"`` or ``"metropolis"``.
        init: The initial states, a tensor of shape :math:`(C, *E)` inside the support or
            a function that maps :math:`C` to one. Its dtype is the dtype of the samples.
        proposal: A distribution with event shape :math:`E` whose samples initialise the
            chains by sampling-importance-resampling, used if ``init`` is ``None``.
        progress: Whether to show a progress bar over the steps.

    Example:
        >>> from torch.distributions import constraints
        >>> _ = torch.manual_seed(0)
        >>> def log_prob_fn(theta):  # an unnormalised Beta(2, 5) in each coordinate
        ...     return (theta.log() + 4 * (1 - theta).log()).sum(-1)
        >>> support = constraints.independent(constraints.interval(0.0, 1.0), 1)
        >>> d = MCMCDistribution(
        ...     log_prob_fn, support, (2,), chains=50, warmup=100,
        ...     init=torch.full((50, 2), 0.5), progress=False,
        ... )
        >>> theta = d.sample((5000,))
        >>> theta.shape
        torch.Size([5000, 2])
        >>> (theta.mean(0) - 2 / 7).abs().max() < 0.02
        tensor(True)
        >>> d.diagnostics.converged
        True
        >>> d.log_prob(torch.tensor([[0.5, 0.5], [0.5, 1.5]]))  # unnormalised
        tensor([-6.9315,    -inf])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}
    has_rsample = False

    #: The largest split-:math:`\hat{R}` of a converged run (exclusive).
    rhat_threshold: float = 1.01
    #: The smallest bulk ESS of a converged run of at least ten times as many draws.
    ess_threshold: float = 400.0
    #: The fewest steps kept per chain, for meaningful diagnostics.
    min_steps: int = 200
    #: The number of proposal candidates per chain for sampling-importance-resampling.
    sir_candidates: int = 100
    #: The most brackets by which the slice sampler steps out, per coordinate update.
    max_stepping_out: int = 32
    #: The most points the slice sampler tries while shrinking, per coordinate update.
    max_shrinkage: int = 100
    #: The most points per chain the slice sampler evaluates ahead in one call: fewer calls
    #: of ``log_prob_fn`` but more points; set 1 for expensive ones, more for cheap ones.
    max_lookahead: int = 8

    def __init__(
        self,
        log_prob_fn: Callable[[Tensor], Tensor],
        support: constraints.Constraint,
        event_shape: Sequence[int] | int,
        *,
        chains: int = 100,
        warmup: int = 500,
        thin: int = 1,
        method: str = "slice",
        init: Tensor | Callable[[int], Tensor] | None = None,
        proposal: Distribution | None = None,
        progress: bool = True,
    ):
        owner = "MCMCDistribution"
        if not callable(log_prob_fn):
            raise ValueError(
                f"{owner} expects log_prob_fn to be a callable that maps a tensor of shape "
                f"(N, *event_shape) to unnormalised log-densities of shape (N,), but "
                f"received {describe(log_prob_fn)}. Pass a function, e.g. "
                f"lambda theta: -0.5 * theta.square().sum(-1)."
            )
        if not isinstance(support, constraints.Constraint):
            raise ValueError(
                f"{owner} expects support to be a torch.distributions.constraints.Constraint, "
                f"but received {describe(support)}. Pass e.g. constraints.real_vector or "
                f"constraints.independent(constraints.interval(lower, upper), 1)."
            )
        if isinstance(event_shape, int) and not isinstance(event_shape, bool):
            event_shape = (event_shape,)
        try:
            event_shape = torch.Size(event_shape)
        except TypeError:
            raise ValueError(
                f"{owner} expects event_shape to be a sequence of ints, e.g. (2,), but "
                f"received {describe(event_shape)}."
            ) from None
        if any(size < 1 for size in event_shape):
            raise ValueError(
                f"{owner} expects an event_shape of positive sizes, but received "
                f"{tuple(event_shape)}."
            )
        if support.is_discrete or support.event_dim > len(event_shape):
            raise ValueError(
                f"{owner} expects a continuous support with at most {len(event_shape)} event "
                f"dimension(s) for event_shape {tuple(event_shape)}, but received {support} "
                f"(event_dim={support.event_dim}, is_discrete={support.is_discrete})."
            )
        try:
            bijection = biject_to(support)
            unconstrained = bijection.inverse_shape(event_shape)
        except NotImplementedError:
            raise ValueError(
                f"{owner} needs a bijection onto the support, but "
                f"torch.distributions.biject_to has none registered for {support}. Pass a "
                f"support such as constraints.real_vector, constraints.independent("
                f"constraints.interval(lower, upper), 1) or constraints.independent("
                f"constraints.positive, 1)."
            ) from None
        self.chains = check_count(chains, "chains", owner, minimum=1)
        self.warmup = check_count(warmup, "warmup", owner, minimum=0)
        self.thin = check_count(thin, "thin", owner, minimum=1)
        if method not in METHODS:
            raise ValueError(
                f"{owner} expects method to be one of {', '.join(map(repr, METHODS))}, but "
                f"received {method!r}."
            )
        if init is not None and proposal is not None:
            raise ValueError(
                f"{owner} expects either init or proposal to start the chains, but received "
                f"both. Pass only one of them."
            )
        if proposal is not None:
            if not isinstance(proposal, Distribution):
                raise ValueError(
                    f"{owner} expects proposal to be a torch.distributions.Distribution, but "
                    f"received {describe(proposal)}."
                )
            if proposal.batch_shape or proposal.event_shape != event_shape:
                raise ValueError(
                    f"{owner} expects a proposal with batch shape () and event shape "
                    f"{tuple(event_shape)}, but received one with batch shape "
                    f"{tuple(proposal.batch_shape)} and event shape "
                    f"{tuple(proposal.event_shape)}. Wrap it in Independent(..., 1) or "
                    f"reshape it."
                )
        if init is not None and not callable(init):
            init = self._check_init(init, event_shape, support)

        super().__init__(torch.Size(), event_shape, validate_args=False)
        self.log_prob_fn = log_prob_fn
        self._support = support
        self.bijection = bijection
        self._identity = is_real(support)
        self.unconstrained_shape = unconstrained
        self.method = method
        self.init = init
        self.proposal = proposal
        self.progress = progress
        self.diagnostics: MCMCDiagnostics | None = None

    def __repr__(self) -> str:
        return (
            f"MCMCDistribution(event_shape: {tuple(self.event_shape)}, support: "
            f"{self._support}, method: {self.method!r}, chains: {self.chains})"
        )

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return self._support

    # ---------------------------------------------------------------------------------------
    # Checks and densities
    # ---------------------------------------------------------------------------------------

    def _check_init(
        self,
        init: object,
        event_shape: torch.Size | None = None,
        support: constraints.Constraint | None = None,
    ) -> Tensor:
        r"""Returns the initial states as a floating-point tensor, or raises."""

        event_shape = self.event_shape if event_shape is None else event_shape
        support = self._support if support is None else support
        owner = "MCMCDistribution"
        if not isinstance(init, Tensor) or init.dtype == torch.bool or init.is_complex():
            raise ValueError(
                f"{owner} expects init as a real tensor of shape (chains, *event_shape), but "
                f"received {describe(init)}."
            )
        if not init.is_floating_point():
            init = init.to(torch.get_default_dtype())
        n = len(event_shape)
        if init.dim() != n + 1 or init.shape[1:] != event_shape:
            raise ValueError(
                f"{owner} expects init of shape (chains, *event_shape) = (chains, "
                f"{', '.join(map(str, event_shape))}), but received shape "
                f"{tuple(init.shape)}. Give one initial state per chain."
            )
        if init.shape[0] != self.chains:
            raise ValueError(
                f"{owner} expects init with one state per chain, of shape "
                f"{(self.chains, *event_shape)}, but received shape {tuple(init.shape)}. "
                f"Give exactly chains={self.chains} initial states."
            )
        ok = self._inside(init, support, n)
        if not ok.all():
            bad = (~ok).nonzero().flatten()[:5].tolist()
            raise ValueError(
                f"{owner} expects init inside the support {support}, but the states of "
                f"chain(s) {bad} lie outside it. Move the initial states into the support."
            )
        return init.detach()

    @staticmethod
    def _inside(value: Tensor, support: constraints.Constraint, event_dims: int) -> Tensor:
        r"""The mask of the events of ``value`` (N, *E) inside ``support``, with shape (N,)."""

        ok = support.check(value)
        return ok.reshape(value.shape[0], -1).all(dim=-1) if event_dims else ok

    def _log_density(self, theta: Tensor) -> Tensor:
        r"""Calls ``log_prob_fn`` on ``theta`` (N, *E) and checks that it returns (N,)."""

        out = self.log_prob_fn(theta)
        if not isinstance(out, Tensor) or out.shape != theta.shape[:1]:
            raise ValueError(
                f"MCMCDistribution expects log_prob_fn to map a tensor of shape "
                f"(N, *event_shape) = {tuple(theta.shape)} to log-densities of shape (N,) "
                f"= ({theta.shape[0]},), but it returned {describe(out)}. Reduce over the "
                f"event dimensions (e.g. with .sum(-1)), in one vectorised call."
            )
        return out

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Returns the *unnormalised* log-density :math:`\ell(\theta)` of ``log_prob_fn``,
        and :math:`-\infty` outside the support.

        The normalising constant is unknown, so the result is not a normalised
        log-density: differences between values are meaningful, absolute values are not.

        Arguments:
            value: The values :math:`\theta`, with shape :math:`(*, *E)`.

        Returns:
            The log-densities, with shape :math:`(*)`.

        Example:
            >>> from torch.distributions import constraints
            >>> d = MCMCDistribution(
            ...     lambda theta: -theta.sum(-1), constraints.independent(
            ...     constraints.positive, 1), (2,))
            >>> d.log_prob(torch.tensor([[1.0, 2.0], [-1.0, 2.0]]))
            tensor([-3., -inf])
        """

        value = self.check_value(value, "value")
        n = len(self.event_shape)
        batch = value.shape[: value.dim() - n]
        flat = value.reshape(-1, *self.event_shape)
        if flat.shape[0] == 0:
            return flat.new_zeros(batch)
        ok = self._inside(flat, self._support, n)
        if not ok.all():  # never show log_prob_fn a value outside the support
            inner = self.bijection(flat.new_zeros((1, *self.unconstrained_shape)))
            flat = torch.where(ok.reshape(-1, *(1,) * n), flat, inner.to(flat.dtype))
        log_p = self._log_density(flat)
        log_p = torch.where(ok, log_p, torch.full_like(log_p, -math.inf))
        return log_p.reshape(batch)

    def _target(self, z: Tensor) -> tuple[Tensor, int]:
        r"""The log-density of the unconstrained states ``z`` (N, D), with NaN and
        :math:`+\infty` mapped to :math:`-\infty`; also returns N, the evaluation count."""

        n = z.shape[0]
        u = z.reshape(n, *self.unconstrained_shape)
        if self._identity:
            total = self._log_density(u).to(z.dtype)
        else:
            theta = self.bijection(u)
            ladj = self.bijection.log_abs_det_jacobian(u, theta)
            ladj = ladj.reshape(n, -1).sum(dim=-1) if ladj.dim() > 1 else ladj.expand(n)
            total = self._log_density(theta).to(z.dtype) + ladj.to(z.dtype)
        bad = torch.isnan(total) | (total == math.inf)
        return torch.where(bad, torch.full_like(total, -math.inf), total), n

    def _initial_states(self) -> tuple[Tensor, int]:
        r"""The initial states in the support (C, *E) and the number of evaluations."""

        owner = "MCMCDistribution"
        if self.init is not None:
            init = self.init(self.chains) if callable(self.init) else self.init
            return self._check_init(init), 0
        if self.proposal is None:
            raise ValueError(
                f"{owner}.sample needs initial states for the chains, but neither init nor "
                f"proposal was given. Pass init=tensor of shape ({self.chains}, "
                f"{', '.join(map(str, self.event_shape))}) inside the support, or "
                f"proposal=a distribution that covers the target (e.g. the prior), from "
                f"which the chains are started by sampling-importance-resampling."
            )
        count = self.sir_candidates * self.chains
        candidates = self.proposal.sample((count,))
        if candidates.shape != (count, *self.event_shape):
            raise ValueError(
                f"{owner} expects proposal.sample(({count},)) of shape "
                f"{(count, *self.event_shape)}, but received {tuple(candidates.shape)}."
            )
        if not candidates.is_floating_point():
            candidates = candidates.to(torch.get_default_dtype())
        ok = self._inside(candidates, self._support, len(self.event_shape))
        ok = ok & torch.isfinite(candidates).reshape(count, -1).all(dim=-1)
        weights = self.log_prob(candidates) - self.proposal.log_prob(candidates)
        weights = torch.where(ok & torch.isfinite(weights), weights, -math.inf)
        if not torch.isfinite(weights).any():
            raise ValueError(
                f"{owner} could not start the chains from the proposal: none of its {count} "
                f"samples has a finite log_prob_fn inside the support. Pass a proposal that "
                f"covers the target, or init."
            )
        probs = torch.softmax(weights.to(torch.float64), dim=0)
        index = torch.multinomial(probs, self.chains, replacement=True)
        return candidates[index].detach(), count

    # ---------------------------------------------------------------------------------------
    # Sampling
    # ---------------------------------------------------------------------------------------

    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        r"""Runs the chains and returns draws of :math:`p`.

        The draws are picked at random from the kept steps of all chains after warm-up; see
        the class description. Diagnostics of the run are stored in :attr:`diagnostics`
        and a :class:`RuntimeWarning` is emitted if the chains have not converged.

        Arguments:
            sample_shape: The sample shape :math:`S`.

        Returns:
            The draws, with shape :math:`S + E` and the dtype of the initial states.

        Example:
            >>> from torch.distributions import Normal, constraints
            >>> _ = torch.manual_seed(0)
            >>> d = MCMCDistribution(
            ...     lambda theta: Normal(1.0, 2.0).log_prob(theta), constraints.real, (),
            ...     chains=50, warmup=100, method="metropolis", thin=5,
            ...     proposal=Normal(0.0, 5.0), progress=False,
            ... )
            >>> theta = d.sample((5000,))
            >>> theta.shape, d.diagnostics.converged
            (torch.Size([5000]), True)
            >>> (theta.mean() - 1).abs() < 0.15
            tensor(True)
        """

        sample_shape = torch.Size(sample_shape)
        with torch.no_grad():
            draws = self._run(sample_shape.numel())
        return draws.reshape(sample_shape + self.event_shape)

    def _run(self, count: int) -> Tensor:
        start = time.perf_counter()
        theta, evaluations = self._initial_states()
        dtype = theta.dtype
        z = self.bijection.inv(theta).reshape(self.chains, -1).to(dtype)
        if not torch.isfinite(z).all():
            bad = (~torch.isfinite(z).all(dim=-1)).nonzero().flatten()[:5].tolist()
            raise ValueError(
                f"MCMCDistribution cannot start chain(s) {bad}: their initial states lie on "
                f"the boundary of the support {self._support}. Move them strictly inside."
            )
        log_p, n = self._target(z)
        evaluations += n
        if not torch.isfinite(log_p).all():
            bad = (~torch.isfinite(log_p)).nonzero().flatten()[:5].tolist()
            raise ValueError(
                f"MCMCDistribution cannot start chain(s) {bad}: log_prob_fn is -inf, NaN or "
                f"+inf at their initial states. Start the chains where the density is "
                f"positive and finite."
            )

        dim = z.shape[-1]
        steps = max(-(-count // self.chains), self.min_steps, 4)
        total = self.warmup + steps * self.thin
        ends = set(adaptation_ends(self.warmup))

        # Scales: the spread of the initial states, in the axes.
        spread = z.to(torch.float64).std(dim=0) if self.chains > 1 else z.new_zeros(dim)
        spread = torch.where(torch.isfinite(spread) & (spread > 0), spread, 1.0)
        cov = torch.diag(spread.square())
        state = self._adapt(cov, dtype, z.device)
        log_scale = torch.tensor(math.log(2.38 / math.sqrt(dim)), dtype=dtype, device=z.device)
        target = max(0.234, 0.44 - 0.05 * (dim - 1))
        accepted = torch.zeros((), dtype=dtype, device=z.device)

        kept, window = [], []
        with tqdm(total=total, disable=not self.progress, desc=f"MCMC ({self.method})") as bar:
            for t in range(total):
                warming = t < self.warmup
                if self.method == "slice":
                    z, log_p, n = self._slice_sweep(z, log_p, *state)
                else:
                    z, log_p, accept, n = self._metropolis_step(z, log_p, state[0], log_scale)
                    rate = accept.to(dtype).mean()
                    if warming:
                        log_scale = log_scale + 0.1 * (rate - target)
                    else:
                        accepted = accepted + rate
                evaluations += n
                if warming:
                    window.append(z)
                    if t + 1 in ends:
                        cov = within_chain_covariance(window)
                        if cov is not None:
                            state = self._adapt(cov, dtype, z.device)
                        window = []
                elif (t + 1 - self.warmup) % self.thin == 0:
                    kept.append(self.bijection(z.reshape(self.chains, *self.unconstrained_shape)))
                bar.update(1)

        chains = torch.stack(kept)  # (steps, chains, *E)
        self.diagnostics = self._diagnose(chains, start, evaluations, accepted / steps / self.thin)
        if not self.diagnostics.converged:
            d = self.diagnostics
            warnings.warn(
                f"MCMCDistribution may not have converged: max split R-hat = "
                f"{d.max_rhat:.4f} (want < {self.rhat_threshold}) and min bulk ESS = "
                f"{d.min_ess:.1f} (want >= {self._ess_needed(d.steps):.0f}) over "
                f"{d.chains} chains x {d.steps} kept steps after {d.warmup} warm-up steps. "
                f"Increase warmup, chains or thin, or start the chains closer to the target "
                f"(init or proposal); see .diagnostics.",
                RuntimeWarning,
                stacklevel=3,
            )
        flat = chains.reshape(-1, *self.event_shape)
        pick = torch.randperm(flat.shape[0], device=flat.device)[:count]
        return flat[pick]

    def _ess_needed(self, steps: int) -> float:
        return min(self.ess_threshold, 0.1 * steps * self.chains)

    def _diagnose(
        self, chains: Tensor, start: float, evaluations: int, acceptance: Tensor
    ) -> MCMCDiagnostics:
        rhat = split_rhat(chains)
        ess = effective_sample_size(chains)
        max_rhat = rhat.max().item() if not rhat.isnan().any() else math.nan
        min_ess = ess.min().item() if not ess.isnan().any() else math.nan
        steps = chains.shape[0]
        converged = max_rhat < self.rhat_threshold and min_ess >= self._ess_needed(steps)
        return MCMCDiagnostics(
            rhat=rhat,
            ess=ess,
            max_rhat=max_rhat,
            min_ess=min_ess,
            converged=bool(converged),
            chains=self.chains,
            steps=steps,
            warmup=self.warmup,
            thin=self.thin,
            method=self.method,
            seconds=time.perf_counter() - start,
            acceptance=1.0 if self.method == "slice" else float(acceptance),
            evaluations=evaluations,
        )

    def _adapt(self, cov: Tensor, dtype: torch.dtype, device: torch.device) -> tuple:
        r"""The sampler's state for a covariance: the Cholesky factor for Metropolis, the
        eigenvectors and bracket widths for the slice sampler."""

        if self.method == "metropolis":
            chol, info = torch.linalg.cholesky_ex(cov)
            if info.item() != 0:  # numerically singular: keep the variances only
                chol = torch.diag(cov.diagonal().clamp(min=1e-300).sqrt())
            return (chol.to(dtype=dtype, device=device),)
        values, vectors = torch.linalg.eigh(cov)
        values = values.clamp(min=1e-12 * values.max().clamp(min=1e-300))
        widths = 3 * values.sqrt()
        return vectors.to(dtype=dtype, device=device), widths.to(dtype=dtype, device=device)

    def _metropolis_step(
        self, z: Tensor, log_p: Tensor, chol: Tensor, log_scale: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, int]:
        r"""One random-walk Metropolis step of all chains."""

        proposal = z + log_scale.exp() * torch.randn_like(z) @ chol.T
        log_q, n = self._target(proposal)
        accept = torch.rand_like(log_p).log() < log_q - log_p
        z = torch.where(accept.unsqueeze(-1), proposal, z)
        log_p = torch.where(accept, log_q, log_p)
        return z, log_p, accept, n

    def _slice_sweep(
        self, z: Tensor, log_p: Tensor, basis: Tensor, widths: Tensor
    ) -> tuple[Tensor, Tensor, int]:
        r"""One slice-sampling update of every coordinate of all chains, in random order.

        Stepping out and shrinkage evaluate, for the chains not yet done, the next
        :math:`k` points they would visit (the positions of the next brackets while
        stepping out; the proposals after :math:`k` rejections while shrinking), with
        :math:`k = 1, 2, 4, \dots` up to :attr:`max_lookahead`: a chain uses the same
        points as the sequential algorithm, in one call per round instead of one per point.
        """

        chains = z.shape[0]
        evaluations = 0
        ramp = torch.arange(
            max(self.max_lookahead, self.max_stepping_out), dtype=z.dtype, device=z.device
        )
        owner = torch.arange(chains, device=z.device).repeat(2)
        sign = torch.cat([-torch.ones_like(log_p), torch.ones_like(log_p)])
        for i in torch.randperm(z.shape[-1]).tolist():
            direction, width = basis[:, i], widths[i]
            level = log_p - torch.empty_like(log_p).exponential_()

            # Stepping out, on both sides at once (the left edges, then the right edges),
            # with at most m brackets in all, randomly split between the sides.
            m = self.max_stepping_out
            left = -width * torch.rand_like(log_p)
            budget = torch.floor(m * torch.rand_like(log_p))
            budget = torch.cat([budget, (m - 1) - budget])
            edge = torch.cat([left, left + width])
            level_2 = level.repeat(2)
            active = budget > 0
            k = 1
            while True:
                index = active.nonzero().flatten()
                if index.numel() == 0:
                    break
                steps = ramp[:k]
                offset = edge[index, None] + (sign[index, None] * width) * steps  # (A, k)
                f, n = self._along(z[owner[index]], offset, direction)
                evaluations += n
                out = (f > level_2[index, None]) & (steps < budget[index, None])
                run = out.to(z.dtype).cumprod(dim=1).sum(dim=1)
                edge[index] += sign[index] * width * run
                budget[index] -= run
                active[index] = (run == k) & (budget[index] > 0)
                k = min(2 * k, self.max_lookahead, m)
            left, right = edge[:chains], edge[chains:]

            # Shrinkage: propose uniformly in the bracket, shrink it towards 0 on rejection.
            moved = torch.zeros_like(log_p)
            active = torch.ones_like(log_p, dtype=torch.bool)
            k, tries = 1, 0
            while tries < self.max_shrinkage:
                index = active.nonzero().flatten()
                if index.numel() == 0:
                    break
                lo, hi = left[index], right[index]
                proposals = []
                for _ in range(k):  # the next k proposals, if all are rejected
                    x = lo + (hi - lo) * torch.rand_like(lo)
                    proposals.append(x)
                    below = x < 0
                    lo, hi = torch.where(below, x, lo), torch.where(below, hi, x)
                offset = torch.stack(proposals, dim=1)  # (A, k)
                f, n = self._along(z[index], offset, direction)
                evaluations += n
                accept = f > level[index, None]
                hit = accept.any(dim=1)
                first = accept.to(torch.uint8).argmax(dim=1)  # the first accepted proposal
                done, rows, cols = index[hit], hit.nonzero().flatten(), first[hit]
                moved[done] = offset[rows, cols]
                log_p[done] = f[rows, cols]
                active[done] = False
                left[index], right[index] = lo, hi
                tries += k
                k = min(2 * k, self.max_lookahead, self.max_shrinkage - tries)
            z = z + moved.unsqueeze(-1) * direction
        return z, log_p, evaluations

    def _along(self, z: Tensor, offset: Tensor, direction: Tensor) -> tuple[Tensor, int]:
        r"""The target at ``z + offset * direction`` for states (A, D) and offsets (A, k),
        with shape (A, k)."""

        points = z.unsqueeze(1) + offset.unsqueeze(-1) * direction
        f, n = self._target(points.reshape(-1, z.shape[-1]))
        return f.reshape(offset.shape), n
