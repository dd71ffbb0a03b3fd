r"""The figures of the calibration report, drawn with matplotlib's object interface (no
pyplot, no change of matplotlib's global backend) and returned as base64 PNG data URIs
that an HTML page embeds. matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .bands import ECDFTest
from .coverage import CoverageResult
from .sbc import SBCResult
from .summaries import ZScoreResult
from .tarp import TARPResult

__all__ = [
    "central_figure",
    "corner_figure",
    "coverage_figure",
    "ecdf_figure",
    "history_figure",
    "rank_histograms",
    "recovery_figure",
    "tarp_figure",
    "z_contraction_figure",
]

BAND = "#c6dbef"
CURVE = "#08519c"
TRUTH = "#cb181d"
REFERENCE = "#ff7f00"
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7}
MAX_CORNER = 10
r"""The corner plot shows at most this many parameters."""

Band = tuple[np.ndarray, np.ndarray]  # lower and upper bounds of a curve, (K,) each


def render(draw: Any, width: float, height: float, space: float = 0.4) -> str:
    r"""Returns the PNG data URI of a new figure of ``width`` × ``height`` inches on which
    ``draw(figure)`` has drawn, with margins for labels and ``space`` between panels (as
    a fraction of their size; a fixed layout is much faster than a constrained one)."""

    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with rc_context(STYLE):
        figure = Figure(figsize=(width, height))
        FigureCanvasAgg(figure)
        figure.subplots_adjust(
            left=0.75 / width,
            right=1 - 0.15 / width,
            bottom=0.45 / height,
            top=1 - 0.45 / height,
            wspace=space,
            hspace=1.8 * space,
        )
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=96)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def panels(figure: Any, count: int, columns: int = 5) -> list[Any]:
    r"""Returns ``count`` axes on a grid of at most ``columns`` columns."""

    columns = min(columns, count)
    rows = math.ceil(count / columns)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_axis_off()
    return list(axes[:count])


def grid_size(count: int, columns: int = 5, size: float = 2.2) -> tuple[float, float]:
    r"""Returns the width and height in inches of a grid of ``count`` panels."""

    return size * min(columns, count) + 0.6, (size + 0.5) * math.ceil(count / columns) + 0.4


def difference_panel(
    ax: Any,
    test: ECDFTest,
    family: Band | None = None,
    interval: np.ndarray | None = None,
    xlabel: str = "credibility level",
) -> None:
    r"""Draws ``test.ecdf - levels`` with its simultaneous band, optionally the family-wise
    band (dashed) and pointwise intervals (a lighter ribbon)."""

    z = test.levels
    ax.fill_between(z, test.lower - z, test.upper - z, color=BAND, label="95 % band", lw=0)
    if family is not None:
        ax.plot(z, family[0] - z, "k--", lw=0.7, label="family-wise band")
        ax.plot(z, family[1] - z, "k--", lw=0.7)
    if interval is not None:
        ax.fill_between(z, interval[0] - z, interval[1] - z, color=CURVE, alpha=0.15, lw=0)
    ax.plot(z, test.ecdf - z, color=CURVE, lw=1.2)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(f"{test.name}\nlog γ = {test.log_gamma:.2f}")


def coverage_figure(coverage: CoverageResult, family: Band | None = None) -> str:
    r"""The HPD expected coverage against credibility, and its difference to the diagonal,
    with the simultaneous band and the pointwise Clopper–Pearson intervals."""

    def draw(figure: Any) -> None:
        left, right = figure.subplots(1, 2)
        test, z = coverage.hpd, coverage.levels
        left.fill_between(z, test.lower, test.upper, color=BAND, lw=0, label="95 % band")
        left.fill_between(z, *coverage.hpd_interval, color=CURVE, alpha=0.2, lw=0, label="95 % CI")
        left.plot([0, 1], [0, 1], color="grey", lw=0.6)
        left.plot(z, test.ecdf, color=CURVE, lw=1.5, label="expected coverage")
        left.set(xlabel="credibility level", ylabel="expected coverage", xlim=(0, 1), ylim=(0, 1))
        left.set_title("HPD regions (above: conservative, below: overconfident)")
        left.legend(loc="upper left")
        difference_panel(right, test, family, coverage.hpd_interval)
        right.set_ylabel("coverage − credibility")
        right.legend(loc="best")

    return render(draw, 8.0, 3.6)


def grid(count: int, panel: Any, ylabel: str) -> str:
    r"""Returns a grid of ``count`` panels, panel ``i`` drawn by ``panel(ax, i)``."""

    def draw(figure: Any) -> None:
        axes = panels(figure, count)
        for i, ax in enumerate(axes):
            panel(ax, i)
        axes[0].set_ylabel(ylabel)

    return render(draw, *grid_size(count))


def central_figure(coverage: CoverageResult, family: Band | None = None) -> str:
    r"""The coverage of each parameter's central intervals minus the credibility level."""

    def panel(ax: Any, i: int) -> None:
        difference_panel(ax, coverage.central[i], family, coverage.central_interval[i])

    return grid(len(coverage.central), panel, "coverage − credibility")


def rank_histograms(sbc: SBCResult) -> str:
    r"""The rank histogram of each parameter (and of :math:`-\log q`) with the pointwise
    99 % interval of a bin's count under uniformity."""

    from scipy.stats import binom

    counts = list(sbc.histogram) + ([] if sbc.joint_histogram is None else [sbc.joint_histogram])
    names = [*sbc.labels, "−log q"]
    n = int(sbc.expected.sum().round())
    bins = len(sbc.expected)
    edges = np.arange(bins + 1)
    low = np.append(binom.ppf(0.005, n, sbc.expected / n), 0)
    high = binom.ppf(0.995, n, sbc.expected / n)
    high = np.append(high, high[-1])
    low[-1] = low[-2]

    def panel(ax: Any, i: int) -> None:
        ax.fill_between(edges, low, high, step="post", color=BAND, lw=0)
        ax.stairs(counts[i], edges, color=CURVE, lw=1.2)
        ax.set(title=names[i], xlabel=f"rank bin (of {bins})", xlim=(0, bins), ylim=(0, None))

    return grid(len(counts), panel, "test pairs")


def ecdf_figure(sbc: SBCResult, family: Band | None = None) -> str:
    r"""The ECDF difference of each parameter's ranks (and of :math:`-\log q`)."""

    tests = sbc.ecdf + ([] if sbc.joint_ecdf is None else [sbc.joint_ecdf])

    def panel(ax: Any, i: int) -> None:
        difference_panel(ax, tests[i], family, xlabel="normalised rank")

    return grid(len(tests), panel, "ECDF − uniform")


def tarp_figure(tarp: TARPResult, family: Band | None = None) -> str:
    r"""The TARP expected coverage probability against credibility, with its band."""

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        test, z = tarp.test, tarp.levels
        ax.fill_between(z, test.lower, test.upper, color=BAND, lw=0, label="95 % band")
        if family is not None:
            ax.plot(z, family[0], "k--", lw=0.7, label="family-wise band")
            ax.plot(z, family[1], "k--", lw=0.7)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6)
        ax.plot(z, tarp.ecp, color=CURVE, lw=1.5, label="ECP")
        ax.set(xlabel="credibility level α", ylabel="expected coverage", xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"TARP: ATC = {tarp.atc:+.3f}, log γ = {test.log_gamma:.2f}")
        ax.legend(loc="upper left")

    return render(draw, 4.0, 3.6)


def z_contraction_figure(summaries: ZScoreResult) -> str:
    r"""The posterior z-score against the contraction of each test pair, per parameter."""

    def panel(ax: Any, d: int) -> None:
        contraction = summaries.contraction[:, d]
        ax.axhspan(-2, 2, color=BAND, lw=0)
        ax.scatter(contraction, summaries.z_score[:, d], s=3, color=CURVE, alpha=0.4, lw=0)
        ax.set(xlim=(min(0.0, contraction.min()), 1), xlabel="contraction")
        ax.set_title(f"{summaries.labels[d]}: mean z {summaries.mean_z[d]:+.2f}")

    return grid(len(summaries.labels), panel, "z-score")


def recovery_figure(summaries: ZScoreResult, truth: np.ndarray) -> str:
    r"""The posterior mean (± one standard deviation) against the true value, per
    parameter."""

    def panel(ax: Any, d: int) -> None:
        t, m = truth[:, d], summaries.posterior_mean[:, d]
        ax.errorbar(t, m, yerr=summaries.posterior_std[:, d], fmt="none", ecolor=BAND, lw=0.6)
        ax.scatter(t, m, s=3, color=CURVE, alpha=0.5, lw=0)
        low, high = min(t.min(), m.min()), max(t.max(), m.max())
        ax.plot([low, high], [low, high], color="grey", lw=0.6)
        ax.set(xlabel="true value", title=f"{summaries.labels[d]}: R² = {summaries.r2[d]:.2f}")

    return grid(len(summaries.labels), panel, "posterior mean")


def corner_figure(
    samples: np.ndarray,
    labels: Sequence[str],
    truth: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> str:
    r"""The one- and two-dimensional marginals of posterior draws :math:`(S, D)` (at most
    :data:`MAX_CORNER` parameters), with the true value and reference draws when known."""

    dim = min(samples.shape[1], MAX_CORNER)

    def draw(figure: Any) -> None:
        axes = figure.subplots(dim, dim, squeeze=False)
        ranges = [np.quantile(samples[:, i], [0.001, 0.999]) for i in range(dim)]
        ranges = [(low, high) if high > low else (low - 0.5, high + 0.5) for low, high in ranges]
        for i in range(dim):
            for j in range(dim):
                ax = axes[i, j]
                if j > i:
                    ax.set_axis_off()
                    continue
                if i == j:
                    for values, color in ((samples, CURVE), (reference, REFERENCE)):
                        if values is not None:
                            ax.hist(values[:, i], bins=40, range=ranges[i], color=color,
                                    histtype="step", density=True)  # fmt: skip
                    ax.set_yticks([])
                else:
                    ax.hist2d(
                        samples[:, j],
                        samples[:, i],
                        bins=40,
                        range=[ranges[j], ranges[i]],
                        cmap="Blues",
                    )
                    if reference is not None:
                        ax.scatter(
                            reference[:500, j],
                            reference[:500, i],
                            s=1,
                            color=REFERENCE,
                            alpha=0.5,
                            lw=0,
                        )
                    if truth is not None:
                        ax.plot(truth[j], truth[i], "o", color=TRUTH, ms=3)
                if truth is not None:
                    ax.axvline(truth[j], color=TRUTH, lw=0.8)
                ax.set_xlim(*ranges[j])
                ax.locator_params(nbins=3)
                if i == dim - 1:
                    ax.set_xlabel(labels[j])
                else:
                    ax.set_xticklabels([])
                if j == 0 and i > 0:
                    ax.set_ylabel(labels[i])
                elif i != j:
                    ax.set_yticklabels([])

    size = min(1.6 * dim + 0.6, 12.0)
    return render(draw, size, size, space=0.08)


def history_figure(history: dict) -> str:
    r"""The training and validation losses per epoch (and the learning rate), as written
    by :func:`sbikit.fit`."""

    def draw(figure: Any) -> None:
        losses, rates = figure.subplots(1, 2, width_ratios=(2, 1))
        epochs = history["epoch"]
        for key, label in (("train_loss", "training"), ("validation_loss", "validation")):
            if history.get(key):
                losses.plot(epochs, history[key], lw=1.2, label=label)
        if history.get("best_epoch"):
            losses.axvline(history["best_epoch"], color="grey", ls="--", lw=0.8, label="best epoch")
        losses.set(xlabel="epoch", ylabel="loss (−log q)", title="training curves")
        losses.legend()
        if history.get("learning_rate"):
            rates.plot(epochs, history["learning_rate"], color=CURVE, lw=1.2)
            rates.set_yscale("log")
        rates.set(xlabel="epoch", title="learning rate")

    return render(draw, 8.0, 3.0)
