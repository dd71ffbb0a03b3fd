r"""The HTML page of a calibration report: one self-contained file, the verdict at the top,
the figures embedded as PNG data URIs, no script and no external resource."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from . import figures
from .report import HEADLINES, CalibrationReport
from .verdict import ALPHA

__all__ = ["page"]

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
.verdict { padding: 0.6em 1em; border-radius: 6px; border: 2px solid; }
.calibrated { background: #e5f5e0; border-color: #31a354; }
.conservative { background: #fff7bc; border-color: #d95f0e; }
.overconfident { background: #fee0d2; border-color: #de2d26; }
.rule, .note { font-size: 0.85em; color: #444; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
figure { margin: 0.8em 0; } img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #444; }
pre { white-space: pre-wrap; font-size: 0.85em; }
"""


def page(report: CalibrationReport) -> str:
    r"""Returns the HTML page of ``report``."""

    family = report.family_band()
    title = f"Calibration report: {report.verdict}"
    parts = [
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>",
        f'<section id="verdict" class="verdict {report.verdict}">\n'
        f"<h2>Verdict: {report.verdict.upper()}</h2>\n<p>{escape(HEADLINES[report.verdict])}</p>\n"
        + bullets(report.decision.reasons)
        + flags_table(report)
        + (f"<p><b>Warnings</b></p>{bullets(report.warnings)}" if report.warnings else "")
        + f'<p class="rule"><b>Rule.</b> {escape(report.decision.rule)}</p>\n</section>',
        section("metadata", "Metadata", metadata_table(report.metadata)),
        section(
            "coverage",
            "Expected coverage of HPD regions",
            figure(figures.coverage_figure(report.coverage, family), COVERAGE)
            + parameter_table(report),
        ),
        section(
            "sbc",
            "Simulation-based calibration",
            figure(figures.rank_histograms(report.sbc), HISTOGRAMS)
            + figure(figures.ecdf_figure(report.sbc, family), ECDF),
        ),
        section(
            "central",
            "Central intervals",
            figure(figures.central_figure(report.coverage, family), CENTRAL),
        ),
        section("tarp", "TARP", figure(figures.tarp_figure(report.tarp, family), TARP)),
        section(
            "z-score",
            "Z-score, contraction and recovery",
            figure(figures.z_contraction_figure(report.summaries), ZSCORE)
            + figure(figures.recovery_figure(report.summaries, report.theta), RECOVERY),
        ),
        section("posterior", "Posterior at one observation", observed(report)),
    ]
    if report.history:
        parts.append(
            section(
                "training",
                "Training",
                figure(figures.history_figure(report.history), TRAINING),
            )
        )
    parts.append("</body>\n</html>\n")
    return "\n".join(parts)


COVERAGE = (
    "Left: the fraction of test pairs whose true θ lies in the HPD region of each "
    "credibility (blue; ribbon: pointwise 95 % Clopper–Pearson intervals) against the "
    "diagonal, with the simultaneous 95 % band of a calibrated posterior (light blue). "
    "Right: the same minus the credibility; dashed: the family-wise band of the verdict."
)
HISTOGRAMS = (
    "Ranks of the true θ among the draws, per parameter and for −log q; light blue: the "
    "pointwise 99 % interval of one bin under uniformity. ∪-shaped: overconfident, "
    "∩-shaped: conservative, sloped: biased."
)
ECDF = (
    "ECDF of the normalised ranks minus the uniform CDF, with the simultaneous 95 % band "
    "(Säilynoja et al. 2022) and, dashed, the family-wise band of the verdict."
)
CENTRAL = "Coverage of each parameter's central credible intervals minus their credibility."
TARP = (
    "Expected coverage probability of balls around random reference points (Lemos et al. "
    "2023); ATC > 0: too wide, ATC < 0: too narrow or biased."
)
ZSCORE = (
    "Posterior z-score (mean − truth) / sd against contraction 1 − var_post / var_prior "
    "for each test pair; light blue: |z| < 2."
)
RECOVERY = "Posterior mean (± sd) against the true value, per parameter."
TRAINING = "Training and validation loss per epoch, and the learning rate."


def observed(report: CalibrationReport) -> str:
    r"""Returns the corner plot of the posterior at one observation, with its caption."""

    obs = report.observed
    truth = obs.get("theta_obs")
    caption = f"Posterior draws at {obs['source']} ({len(obs['samples'])} draws)"
    caption += "; red: the true θ" if truth is not None else ""
    if obs.get("reference") is not None:
        caption += f"; orange: the reference posterior, C2ST = {obs['c2st']:.3f} (0.5: identical)"
    if report.summaries.labels and len(report.summaries.labels) > figures.MAX_CORNER:
        caption += f"; the first {figures.MAX_CORNER} parameters"
    image = figures.corner_figure(obs["samples"], report.sbc.labels, truth, obs.get("reference"))
    return figure(image, caption + ".")


def escape(value: object) -> str:
    r"""Returns ``value`` as escaped HTML text."""

    return html.escape(str(value))


def section(name: str, title: str, body: str) -> str:
    return f'<section id="{name}">\n<h2>{title}</h2>\n{body}\n</section>'


def figure(uri: str, caption: str) -> str:
    alt, text = escape(caption.split(".")[0]), escape(caption)
    return f'<figure><img src="{uri}" alt="{alt}"><figcaption>{text}</figcaption></figure>\n'


def bullets(items: Sequence[str]) -> str:
    return "<ul>\n" + "".join(f"<li>{escape(item)}</li>\n" for item in items) + "</ul>\n"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>\n" for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def flags_table(report: CalibrationReport) -> str:
    rows = [(label, "; ".join(flags) or "none") for label, flags in report.flags.items()]
    return table(("parameter", "flags"), rows)


def parameter_table(report: CalibrationReport) -> str:
    s, c, z = report.sbc, report.coverage, report.summaries
    header = (
        "parameter",
        "ranks χ² p (Holm)",
        "ranks KS p (Holm)",
        "log γ",
        "central 90 % coverage",
        "calibration error",
        "mean z ± sd",
        "contraction",
        "R²",
    )
    rows = [
        (
            label,
            f"{s.chi2_holm[d]:.3g}",
            f"{s.ks_holm[d]:.3g}",
            f"{s.log_gamma[d]:.2f}",
            f"{c.central_nominal[d, 2]:.3f}",
            f"{c.calibration_error[d]:.3f}",
            f"{z.mean_z[d]:+.2f} ± {z.std_z[d]:.2f}",
            f"{z.mean_contraction[d]:.2f}",
            f"{z.r2[d]:.2f}",
        )
        for d, label in enumerate(s.labels)
    ]
    levels = ", ".join(f"{a:.0%}" for a in c.nominal)
    hpd = ", ".join(f"{v:.3f}" for v in c.hpd_nominal)
    note = (
        f'<p class="note">HPD coverage at credibility {levels}: {hpd}. Curves tested: '
        f"{len(report.decision.curves)}, family-wise error {ALPHA:.0%} (Holm).</p>\n"
    )
    return note + table(header, rows)


def metadata_table(metadata: dict) -> str:
    rows = []
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str, indent=1)
        rows.append((key, text))
    body = "".join(
        f"<tr><th>{escape(k)}</th><td><pre>{escape(v)}</pre></td></tr>\n" for k, v in rows
    )
    return f"<table>\n{body}</table>\n"
