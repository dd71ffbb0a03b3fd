r"""The verdict of a calibration check: an explicit rule on the calibration curves, with
per-parameter flags.

The rule (stated in every report):

1. Every calibration curve is tested with the :math:`\gamma` statistic of its simultaneous
   band (:mod:`sbikit.diagnostics.bands`): the HPD expected coverage, the TARP ECP, and per
   parameter the ECDF of the SBC ranks (the coverage of one-sided intervals) and the
   central-interval coverage, :math:`2D + 2` curves. Their p-values are Holm-corrected so
   that the family-wise error is :data:`ALPHA` (5 %). The side on which a rejected curve
   leaves its band is read from the curve (for TARP, from the sign of its ATC).
2. **overconfident** (fail) if a rejected curve leaves its band on the undercoverage side at
   any level: credible regions hold the truth less often than they claim.
3. **conservative** (acceptable, flagged) if no curve undercovers but one leaves its band
   on the overcoverage side: the regions are wider than needed.
4. **calibrated** otherwise: every curve inside its band.

Per parameter, flags (which do not change the verdict) add: ``ranks rejected`` when the
:math:`\chi^2` or Kolmogorov–Smirnov test of its ranks rejects uniformity (Holm over the
parameters, each test at :data:`ALPHA` / 2), ``biased`` when the mean z-score differs from
0 (Holm over the parameters at :data:`ALPHA`), ``uninformative`` when the mean contraction
is below :data:`UNINFORMATIVE`; and ``overconfident`` or ``conservative`` when one of its
own curves was rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bands import ECDFTest, holm
from .coverage import CoverageResult
from .sbc import SBCResult
from .summaries import ZScoreResult
from .tarp import TARPResult

__all__ = ["ALPHA", "MIN_DRAWS", "MIN_PAIRS", "UNINFORMATIVE", "Verdict", "decide"]

ALPHA = 0.05
r"""The family-wise error rate of the curve tests, and of each family of flags."""
UNINFORMATIVE = 0.1
r"""The mean contraction below which a parameter is flagged uninformative."""
MIN_PAIRS = 100
r"""Below this number of test pairs, the report warns that the tests have little power."""
MIN_DRAWS = 100
r"""Below this number of draws per pair, the report warns that the ranks are coarse."""
SHOWN = 5
r"""The number of rejected curves listed among the reasons of the verdict."""

RULE = (
    "The HPD expected-coverage curve, the TARP ECP curve and, for each of the D parameters, "
    "the ECDF of its SBC ranks (the coverage of one-sided intervals) and its central-interval "
    "coverage are tested against their simultaneous bands (gamma test of Säilynoja et al. "
    "2022), the 2D + 2 p-values Holm-corrected to a family-wise error of 5 % (the side of "
    "a rejected TARP curve: the sign of its ATC). "
    "OVERCONFIDENT (fail): a rejected curve leaves its band on the undercoverage side at some "
    "credibility level. CONSERVATIVE (acceptable, flagged): no undercoverage, but a rejected "
    "curve leaves its band on the overcoverage side. CALIBRATED: every curve stays in its band. "
    "Per-parameter flags (not part of the verdict): 'ranks rejected' (chi-squared or KS test "
    "of uniformity, Holm over parameters, 2.5 % each), 'biased' (mean z-score != 0, Holm over "
    "parameters, 5 %), 'uninformative' (mean contraction < 0.1)."
)


@dataclass
class Verdict:
    r"""The verdict, the per-parameter flags and the numbers behind them.

    Attributes:
        verdict: ``"calibrated"``, ``"conservative"`` or ``"overconfident"``.
        flags: For each parameter name, its flags (``"biased: ..."``, ...).
        curves: For each tested curve: its name, kind, p-value, Holm-adjusted p-value,
            :math:`\log \gamma` and whether it was rejected for under- or overcoverage.
        reasons: The numbers that drove the verdict, as sentences.
        rule: The rule, as text.

    Example:
        >>> from sbikit.diagnostics import expected_coverage, sbc, tarp, z_score_contraction
        >>> g = torch.Generator().manual_seed(0)
        >>> samples, theta = torch.randn(200, 300, 2, generator=g), torch.randn(300, 2, generator=g)
        >>> results = [f(samples, 2 * theta) for f in (sbc, expected_coverage, tarp)]
        >>> decide(*results, z_score_contraction(samples, 2 * theta)).verdict
        'overconfident'
    """

    verdict: str
    flags: dict[str, list[str]]
    curves: list[dict]
    reasons: list[str]
    rule: str = RULE
    thresholds: dict = field(
        default_factory=lambda: {
            "alpha": ALPHA,
            "uninformative": UNINFORMATIVE,
            "min_pairs": MIN_PAIRS,
            "min_draws": MIN_DRAWS,
        }
    )


def decide(
    sbc: SBCResult,
    coverage: CoverageResult,
    tarp: TARPResult | None = None,
    summaries: ZScoreResult | None = None,
) -> Verdict:
    r"""Applies the rule of :mod:`sbikit.diagnostics.verdict` to the results of the
    diagnostics of one posterior.

    Arguments:
        sbc: The result of :func:`~sbikit.diagnostics.sbc`.
        coverage: The result of :func:`~sbikit.diagnostics.expected_coverage`.
        tarp: The result of :func:`~sbikit.diagnostics.tarp`, if run.
        summaries: The result of :func:`~sbikit.diagnostics.z_score_contraction`, if run.

    Returns:
        The verdict, flags and reasons (see :class:`Verdict`).

    Example:
        >>> from sbikit.diagnostics import expected_coverage, sbc
        >>> g = torch.Generator().manual_seed(0)
        >>> samples, theta = torch.randn(200, 300, 2, generator=g), torch.randn(300, 2, generator=g)
        >>> decide(sbc(samples, theta), expected_coverage(samples, theta)).verdict
        'calibrated'
        >>> decide(sbc(samples, theta / 2), expected_coverage(samples, theta / 2)).verdict
        'conservative'
    """

    labels = sbc.labels
    owners: list[str | None] = []  # the parameter of each curve (None: joint)
    tests: list[ECDFTest] = []
    for test, owner in (
        (coverage.hpd, None),
        (None if tarp is None else tarp.test, None),
        *zip(sbc.ecdf, labels, strict=True),
        *zip(coverage.central, labels, strict=True),
    ):
        if test is not None:
            tests.append(test)
            owners.append(owner)
    curves = test_curves(tests)
    if tarp is not None:  # the side of TARP is the sign of its ATC (Lemos et al., 2023)
        curve = curves[0 if coverage.hpd is None else 1]
        rejected = curve["undercoverage"] or curve["overcoverage"]
        curve["undercoverage"], curve["overcoverage"] = (
            bool(rejected and tarp.atc < 0),
            bool(rejected and tarp.atc >= 0),
        )
    flags: dict[str, list[str]] = {label: [] for label in labels}
    for curve, owner in zip(curves, owners, strict=True):
        side = "overconfident" if curve["undercoverage"] else "conservative"
        if owner is not None and (curve["undercoverage"] or curve["overcoverage"]):
            text = f"{side}: {curve['name']} leaves its band (Holm p = {curve['holm']:.2g})"
            if not any(f.startswith(side) for f in flags[owner]):
                flags[owner].append(text)
    if any(c["undercoverage"] for c in curves):
        verdict = "overconfident"
    elif any(c["overcoverage"] for c in curves):
        verdict = "conservative"
    else:
        verdict = "calibrated"
    add_rank_flags(flags, sbc)
    if summaries is not None:
        add_summary_flags(flags, summaries)
    return Verdict(verdict, flags, curves, reasons(curves, coverage, tarp))


def test_curves(tests: list[ECDFTest]) -> list[dict]:
    r"""Returns the Holm-corrected decisions on the curves: a rejected curve leaves its band
    on each side whose p-value is below its Holm threshold."""

    pvalues = np.array([t.pvalue for t in tests])
    adjusted = holm(pvalues)
    order = np.argsort(pvalues, kind="stable")
    threshold = np.empty(len(tests))
    threshold[order] = ALPHA / (len(tests) - np.arange(len(tests)))
    curves = []
    for test, p, t in zip(tests, adjusted, threshold, strict=True):
        rejected = bool(p < ALPHA)
        curves.append(
            {
                "name": test.name,
                "kind": test.kind,
                "pvalue": test.pvalue,
                "holm": float(p),
                "log_gamma": test.log_gamma,
                "undercoverage": bool(rejected and test.undercoverage_pvalue <= t),
                "overcoverage": bool(rejected and test.overcoverage_pvalue <= t),
            }
        )
    return curves


def add_rank_flags(flags: dict[str, list[str]], sbc: SBCResult) -> None:
    r"""Flags the parameters whose ranks fail the :math:`\chi^2` or KS test."""

    for label, chi2, ks in zip(sbc.labels, sbc.chi2_holm, sbc.ks_holm, strict=True):
        if chi2 < ALPHA / 2 or ks < ALPHA / 2:
            flags[label].append(
                f"ranks rejected: chi2 p = {chi2:.2g}, KS p = {ks:.2g} (Holm over parameters)"
            )


def add_summary_flags(flags: dict[str, list[str]], summaries: ZScoreResult) -> None:
    r"""Flags biased and uninformative parameters."""

    for d, label in enumerate(summaries.labels):
        if summaries.bias_holm[d] < ALPHA:
            direction = "over" if summaries.mean_z[d] > 0 else "under"
            flags[label].append(
                f"biased: mean z-score {summaries.mean_z[d]:+.2f} (posterior mean "
                f"{direction}estimates; Holm p = {summaries.bias_holm[d]:.2g})"
            )
        if summaries.mean_contraction[d] < UNINFORMATIVE:
            flags[label].append(
                f"uninformative: mean contraction {summaries.mean_contraction[d]:.2f} < "
                f"{UNINFORMATIVE} (the posterior barely narrows the prior)"
            )


def reasons(curves: list[dict], coverage: CoverageResult, tarp: TARPResult | None) -> list[str]:
    r"""Returns the numbers that drove the verdict, as sentences."""

    lines = []
    rejected = sorted((c for c in curves if c["undercoverage"] or c["overcoverage"]),
                      key=lambda c: c["holm"])  # fmt: skip
    for c in rejected[:SHOWN]:
        side = "undercoverage" if c["undercoverage"] else "overcoverage"
        lines.append(
            f"{c['name']}: {side}, gamma-test p = {c['pvalue']:.2g} (Holm {c['holm']:.2g} "
            f"< {ALPHA}), log gamma = {c['log_gamma']:.2f}"
        )
    if len(rejected) > SHOWN:
        lines.append(f"... and {len(rejected) - SHOWN} more of the {len(curves)} curves rejected")
    if not rejected:
        worst = min(curves, key=lambda c: c["holm"])
        lines.append(
            f"all {len(curves)} curves inside their bands; the closest: {worst['name']}, "
            f"Holm p = {worst['holm']:.2g} >= {ALPHA}"
        )
    if coverage.hpd is not None:
        z, hpd = coverage.levels, coverage.hpd
        k = int(np.argmax(np.abs(hpd.ecdf - z)))
        lines.append(
            f"HPD coverage - credibility: largest {hpd.ecdf[k] - z[k]:+.3f} at credibility "
            f"{z[k]:.2f} (95 % band there: {hpd.lower[k] - z[k]:+.3f} to "
            f"{hpd.upper[k] - z[k]:+.3f})"
        )
        pairs = zip(coverage.nominal, coverage.hpd_nominal, strict=True)
        nominal = ", ".join(f"{a:.0%}: {c:.3f}" for a, c in pairs)
        lines.append(f"HPD coverage at credibility {nominal}")
    if tarp is not None:
        lines.append(f"TARP ATC = {tarp.atc:+.3f} (0 when calibrated, < 0 too narrow)")
    return lines
