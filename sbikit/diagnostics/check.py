r"""The coverage check of a posterior: every diagnostic on held-out test pairs, the verdict
and the report."""

from __future__ import annotations

import datetime
import math
import platform
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from .. import __version__
from .._validation import check_count, check_tensor, describe
from ._draws import DRAWS_PER_BATCH, draw, draw_batch, placement, seeded
from .c2st import c2st
from .coverage import expected_coverage
from .report import CalibrationReport
from .sbc import check_labels, sbc
from .summaries import z_score_contraction
from .tarp import tarp
from .verdict import MIN_DRAWS, MIN_PAIRS, decide

__all__ = ["check"]

OBSERVED_DRAWS = 10_000
r"""The number of draws of the posterior at ``x_obs`` (for the corner plot and C2ST)."""
PRIOR_DRAWS = 100_000
r"""The number of prior draws that estimate the prior variance when it has no formula."""


def check(
    posterior: Callable[[Tensor], Distribution],
    theta: Tensor,
    x: Tensor,
    *,
    num_samples: int = 1000,
    batch_size: int | None = None,
    seed: int = 0,
    x_obs: Tensor | None = None,
    theta_obs: Tensor | None = None,
    prior: Distribution | None = None,
    history: dict | None = None,
    description: str | dict | None = None,
    reference: Tensor | None = None,
    labels: Sequence[str] | None = None,
    progress: bool = True,
) -> CalibrationReport:
    r"""Checks the calibration of a posterior on held-out test pairs and returns a report
    with a verdict: ``"calibrated"``, ``"conservative"`` or ``"overconfident"``.

    Draws :math:`L` samples of :math:`q(\theta \mid x_i)` for each test pair
    :math:`(\theta^*_i, x_i)` (see :func:`~sbikit.diagnostics.draw`), then runs SBC, the
    expected coverage of HPD regions and central intervals, TARP, and the z-scores and
    contraction, and applies the rule of :mod:`sbikit.diagnostics.verdict`. The pairs must
    be drawn from the prior and the simulator, and not used for training. Pairs with NaN or
    infinite values are dropped and counted; too few pairs or draws for meaningful tests
    give warnings in the report.

    Arguments:
        posterior: A callable that maps observations :math:`(B, *X)` to a distribution over
            :math:`\theta` with batch shape :math:`(B,)`, e.g. a trained
            :class:`~sbikit.inference.NPE` or an analytic posterior.
        theta: The true parameters of the test pairs, :math:`(N, D)`.
        x: The observations simulated from them, :math:`(N, *X)`.
        num_samples: The number of draws :math:`L` per test pair.
        batch_size: The number of test observations per batch of draws.
        seed: The seed of the draws, of the randomised ranks and of the TARP references.
        x_obs: An observation :math:`X` at which the report shows the posterior (default:
            the first test pair).
        theta_obs: The true parameters of ``x_obs`` when known, :math:`(D,)`.
        prior: The prior, whose variance sets the contraction (default: the variance of
            ``theta``, an unbiased estimate since the test pairs are drawn from the prior).
        history: The training history returned by :func:`sbikit.fit`, for the training
            curves.
        description: What the model and data are (text or a JSON-serialisable dict).
        reference: Draws of a reference posterior at ``x_obs``, :math:`(M, D)`: the report
            then shows them and their C2ST against the posterior's draws.
        labels: The names of the parameters (default ``theta_1``, ...).
        progress: Whether to show a progress bar.

    Returns:
        The report: ``verdict``, ``flags``, ``warnings``, ``summary()``, ``to_json(path)``,
        ``to_html(path)`` (see :class:`~sbikit.diagnostics.CalibrationReport`).

    Example:
        >>> from sbikit.distributions import DiagNormal
        >>> g = torch.Generator().manual_seed(0)
        >>> theta = torch.randn(300, 2, generator=g)  # prior N(0, 1), x ~ N(theta, 1)
        >>> x = theta + torch.randn(300, 2, generator=g)
        >>> narrow = lambda x: DiagNormal(x / 2, torch.full_like(x, 0.4))  # exact: 0.71
        >>> report = check(narrow, theta, x, num_samples=100, progress=False)
        >>> report.verdict
        'overconfident'
        >>> [flag.split(":")[0] for flag in report.flags["theta_1"]]
        ['overconfident', 'ranks rejected']
    """

    started = time.perf_counter()
    num_samples = check_count(num_samples, "num_samples", "check", minimum=2)
    check_count(seed, "seed", "check", minimum=0)
    if history is not None and not (isinstance(history, dict) and "epoch" in history):
        raise TypeError(
            "check expects history to be the dict returned by sbikit.fit (with the key "
            f"'epoch'), but received {describe(history)}. Pass history=posterior.history."
        )
    draws = draw(posterior, theta, x, num_samples, batch_size=batch_size, seed=seed,
                 progress=progress)  # fmt: skip
    drawn = time.perf_counter() - started
    num_pairs, dim = draws.theta.shape
    labels = check_labels(labels, dim, "check")
    variance, variance_source = prior_variance(prior, draws.theta, seed)
    arguments = (draws.samples, draws.theta, draws.log_prob, draws.log_prob_theta)
    sbc_result = sbc(*arguments, labels=labels, seed=seed)
    coverage = expected_coverage(*arguments, labels=labels, seed=seed)
    tarp_result = tarp(draws.samples, draws.theta, seed=seed)
    summaries = z_score_contraction(draws.samples, draws.theta, variance, labels=labels)
    decision = decide(sbc_result, coverage, tarp_result, summaries)
    observed = observe(posterior, theta, x, draws.kept, x_obs, theta_obs, reference, seed)

    notes = list(draws.warnings)
    notes += sample_size_warnings(num_pairs, num_samples, len(sbc_result.expected))
    if draws.dropped:
        reasons = ", ".join(f"{k}: {v}" for k, v in draws.dropped.items())
        notes.insert(0, f"{sum(draws.dropped.values())} of {len(theta)} test pairs dropped "
                        f"({reasons}).")  # fmt: skip
    metadata = {
        "sbikit": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "num_pairs": num_pairs,
        "num_pairs_given": len(theta),
        "num_dropped": sum(draws.dropped.values()),
        "dropped": draws.dropped,
        "num_samples": num_samples,
        "batch_size": batch_size or max(1, DRAWS_PER_BATCH // num_samples),
        "elapsed_s": round(time.perf_counter() - started, 3),
        "draw_s": round(drawn, 3),
        "device": str(placement(posterior, x)[0]),
        "posterior": describe_model(posterior),
        "prior": None if prior is None else repr(prior),
        "prior_variance": variance_source,
        "description": description,
        "labels": labels,
        "observation": observed["source"],
    }
    return CalibrationReport(
        verdict=decision.verdict,
        flags=decision.flags,
        warnings=notes,
        metadata=metadata,
        decision=decision,
        sbc=sbc_result,
        coverage=coverage,
        tarp=tarp_result,
        summaries=summaries,
        theta=draws.theta.double().numpy(),
        observed=observed,
        history=history,
    )


def prior_variance(prior: object, theta: Tensor, seed: int) -> tuple[Tensor, str]:
    r"""Returns the prior variance of each parameter and where it comes from."""

    if prior is None:
        return theta.double().var(dim=0), f"estimated from the {len(theta)} test parameters"
    if not isinstance(prior, Distribution):
        raise TypeError(
            f"check expects prior to be a torch Distribution (or None), but received "
            f"{describe(prior)}. Pass the prior the test pairs were drawn from, e.g. "
            "task.prior."
        )
    try:
        variance = prior.variance.detach().cpu().double().expand(theta.shape[1:])
        if torch.isfinite(variance).all() and (variance > 0).all():
            return variance, "the prior's variance"
    except (NotImplementedError, RuntimeError):
        pass
    with seeded(seed, torch.device("cpu")), torch.no_grad():
        draws = prior.sample((PRIOR_DRAWS,)).detach().cpu().double()
    return draws.reshape(PRIOR_DRAWS, -1).var(dim=0), f"estimated from {PRIOR_DRAWS} prior draws"


def observe(
    posterior: Callable[[Tensor], Distribution],
    theta: Tensor,
    x: Tensor,
    kept: Tensor,
    x_obs: Tensor | None,
    theta_obs: Tensor | None,
    reference: Tensor | None,
    seed: int,
) -> dict:
    r"""Returns draws of the posterior at ``x_obs`` (default: the first kept test pair),
    with the truth, the reference draws and their C2ST when known."""

    dim = theta.shape[1]
    if x_obs is None:
        index = int(torch.nonzero(kept)[0])
        x_obs, source = x[index], f"test pair {index}"
        theta_obs = theta[index] if theta_obs is None else theta_obs
    else:
        x_obs, source = check_tensor(x_obs, "check's x_obs"), "x_obs"
        if x_obs.shape not in (x.shape[1:], (1, *x.shape[1:])):
            raise ValueError(
                f"check expects x_obs of shape {tuple(x.shape[1:])} (one observation like the "
                f"rows of x), but received {describe(x_obs)}."
            )
        x_obs = x_obs.reshape(x.shape[1:])
    if theta_obs is not None:
        theta_obs = check_tensor(theta_obs, "check's theta_obs").detach().cpu().double()
        if theta_obs.numel() != dim:
            raise ValueError(
                f"check expects theta_obs of shape ({dim},), but received {describe(theta_obs)}."
            )
        theta_obs = theta_obs.reshape(dim)
    device, dtype = placement(posterior, x_obs)
    rows = x_obs.unsqueeze(0).to(device=device, dtype=dtype)
    count = OBSERVED_DRAWS if reference is None else min(len(reference), OBSERVED_DRAWS)
    truth = torch.zeros(1, dim) if theta_obs is None else theta_obs.unsqueeze(0)
    with seeded(seed, device), torch.no_grad():
        samples, _, _ = draw_batch(posterior, rows, truth, count)
    samples = samples[:, 0].double()
    observed = {
        "source": source,
        "x_obs": x_obs.detach().cpu().numpy() if x_obs.numel() <= 1000 else None,
        "theta_obs": None if theta_obs is None else theta_obs.numpy(),
        "samples": samples.numpy(),
        "num_samples": count,
        "reference": None,
        "c2st": None,
    }
    if reference is not None:
        reference = check_tensor(reference, "check's reference").detach().cpu().float()
        if reference.dim() != 2 or reference.shape[1] != dim or len(reference) < 10:
            raise ValueError(
                f"check expects reference draws of shape (M, {dim}) with M >= 10, but "
                f"received {describe(reference)}."
            )
        reference = reference[:count]
        observed["reference"] = reference.double().numpy()
        observed["c2st"] = c2st(reference, samples.float(), seed=seed)
    return observed


def sample_size_warnings(num_pairs: int, num_samples: int, bins: int) -> list[str]:
    r"""Returns the warnings about too few test pairs or draws."""

    notes = []
    if num_pairs < MIN_PAIRS:
        width = 1.96 * math.sqrt(0.25 / num_pairs)
        notes.append(
            f"Only {num_pairs} test pairs: the coverage at one level is known to about "
            f"±{width:.2f}, so the tests have little power and a 'calibrated' verdict means "
            f"little. Use at least {MIN_PAIRS} test pairs, better 500 to 1000."
        )
    if num_samples < MIN_DRAWS:
        notes.append(
            f"Only {num_samples} draws per test pair: ranks and credibility levels move in "
            f"steps of 1/{num_samples + 1}. Use num_samples of at least {MIN_DRAWS}."
        )
    if bins < 2:
        notes.append("Too few test pairs for the chi-squared test of the rank histograms.")
    return notes


def describe_model(posterior: object) -> dict:
    r"""Returns what is known of the posterior: its class, its number of parameters and
    its JSON ``config`` when it has one."""

    kind = type(posterior)
    described: dict = {"class": f"{kind.__module__}.{kind.__qualname__}"}
    if isinstance(posterior, torch.nn.Module):
        described["parameters"] = sum(p.numel() for p in posterior.parameters())
    config = getattr(posterior, "config", None)
    if isinstance(config, dict):
        described["config"] = config
    return described
