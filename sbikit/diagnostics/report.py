r"""The calibration report: the numbers of every diagnostic, the verdict, and their JSON
and self-contained HTML forms."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .bands import simultaneous_band
from .coverage import CoverageResult
from .sbc import SBCResult
from .summaries import ZScoreResult
from .tarp import TARPResult
from .verdict import ALPHA, Verdict

__all__ = ["CalibrationReport"]

HEADLINES = {
    "calibrated": "coverage and ranks inside their simultaneous bands",
    "conservative": "credible regions wider than needed (acceptable, flagged)",
    "overconfident": "credible regions hold the truth less often than they claim (fail)",
}


@dataclass
class CalibrationReport:
    r"""The result of :func:`~sbikit.diagnostics.check`.

    Attributes:
        verdict: ``"calibrated"``, ``"conservative"`` or ``"overconfident"`` (see
            :mod:`sbikit.diagnostics.verdict` for the rule).
        flags: For each parameter name, its flags (``"biased: ..."``, ...).
        warnings: What limits the check (too few pairs or draws, dropped pairs, ...).
        metadata: Versions, seed, numbers of pairs and draws, time taken, descriptions.
        decision: The verdict with its reasons and the test of every curve.
        sbc, coverage, tarp, summaries: The results of :func:`~sbikit.diagnostics.sbc`,
            :func:`~sbikit.diagnostics.expected_coverage`, :func:`~sbikit.diagnostics.tarp`
            and :func:`~sbikit.diagnostics.z_score_contraction`.
        theta: The true parameters of the test pairs that were kept, :math:`(N, D)`.
        observed: The posterior at one observation: its ``samples`` :math:`(S, D)`, the
            ``theta_obs`` when known, ``reference`` draws and their ``c2st`` when given.
        history: The training history, when given.

    Example:
        >>> from sbikit.diagnostics import check
        >>> from sbikit.distributions import DiagNormal
        >>> g = torch.Generator().manual_seed(1)
        >>> theta = torch.randn(200, 2, generator=g)  # x ~ N(theta, 1): the exact sd is 0.71
        >>> wide = lambda x: DiagNormal(x / 2, torch.ones_like(x))
        >>> x = theta + torch.randn(200, 2, generator=g)
        >>> report = check(wide, theta, x, num_samples=100, progress=False)
        >>> report.verdict, [flag.split(":")[0] for flag in report.flags["theta_2"]]
        ('conservative', ['conservative', 'ranks rejected', 'uninformative'])
        >>> print(report.summary().splitlines()[0])
        Verdict: CONSERVATIVE (credible regions wider than needed (acceptable, flagged))
    """

    verdict: str
    flags: dict[str, list[str]]
    warnings: list[str]
    metadata: dict
    decision: Verdict
    sbc: SBCResult
    coverage: CoverageResult
    tarp: TARPResult
    summaries: ZScoreResult
    theta: np.ndarray
    observed: dict
    history: dict | None = None

    def summary(self) -> str:
        r"""Returns the verdict, the numbers that drove it, the per-parameter numbers and
        flags, and the warnings, as lines of text."""

        m = self.metadata
        lines = [f"Verdict: {self.verdict.upper()} ({HEADLINES[self.verdict]})"]
        lines += [f"  {reason}" for reason in self.decision.reasons]
        lines.append(f"Parameters ({len(self.flags)}):")
        for d, label in enumerate(self.sbc.labels):
            lines.append(f"  {label}: {parameter_numbers(self, d)}")
            lines += [f"    flag: {flag}" for flag in self.flags[label]]
        if self.observed.get("c2st") is not None:
            lines.append(f"C2ST against the reference at x_obs: {self.observed['c2st']:.3f}")
        lines += ["Warnings:"] + [f"  - {w}" for w in self.warnings] if self.warnings else []
        lines.append(f"Rule: {self.decision.rule}")
        lines.append(
            f"N = {m['num_pairs']} test pairs ({m['num_dropped']} dropped), L = "
            f"{m['num_samples']} draws per pair, seed {m['seed']}, {m['elapsed_s']:.1f} s"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        r"""Returns every number of the report as JSON-serialisable values (NaN as None)."""

        observed = {k: v for k, v in self.observed.items() if k not in ("samples", "reference")}
        samples = self.observed["samples"]
        observed |= {"posterior_mean": samples.mean(0), "posterior_std": samples.std(0)}
        return plain(
            {
                "verdict": self.verdict,
                "flags": self.flags,
                "warnings": self.warnings,
                "reasons": self.decision.reasons,
                "rule": self.decision.rule,
                "thresholds": self.decision.thresholds,
                "curves": self.decision.curves,
                "metadata": self.metadata,
                "sbc": self.sbc.to_dict(),
                "coverage": self.coverage.to_dict(),
                "tarp": self.tarp.to_dict(),
                "summaries": self.summaries.to_dict(),
                "observed": observed,
                "history": self.history,
            }
        )

    def to_json(self, path: str | Path) -> Path:
        r"""Writes :meth:`to_dict` to ``path`` as JSON and returns the path."""

        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    def to_html(self, path: str | Path) -> Path:
        r"""Writes the report to ``path`` as one self-contained HTML file (figures embedded
        as PNG data, no external resource) and returns the path."""

        from .page import page  # matplotlib is imported only here

        path = Path(path)
        path.write_text(page(self), encoding="utf-8")
        return path

    def family_band(self) -> tuple[np.ndarray, np.ndarray]:
        r"""Returns the band of the curves at the family-wise level of the verdict
        (Bonferroni over the tested curves: outside it, a curve is rejected)."""

        return simultaneous_band(
            len(self.theta), self.coverage.levels, 1 - ALPHA / len(self.decision.curves)
        )


def parameter_numbers(report: CalibrationReport, d: int) -> str:
    r"""Returns the numbers of parameter ``d`` as one line."""

    s, c, z = report.sbc, report.coverage, report.summaries
    return (
        f"ranks chi2 p {s.chi2_holm[d]:.2g}, KS p {s.ks_holm[d]:.2g} (Holm), "
        f"log gamma {s.log_gamma[d]:.2f}; central 90 % coverage {c.central_nominal[d, 2]:.3f} "
        f"(calibration error {c.calibration_error[d]:.3f}); z {z.mean_z[d]:+.2f} ± "
        f"{z.std_z[d]:.2f}; contraction {z.mean_contraction[d]:.2f}; R² {z.r2[d]:.2f}"
    )


def plain(value: object) -> object:
    r"""Returns ``value`` with arrays, tensors and NumPy scalars as Python values and
    non-finite floats as ``None``."""

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return repr(value)
