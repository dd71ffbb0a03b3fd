r"""Diagnostics of trained posteriors: is :math:`q(\theta \mid x)` calibrated?

Everything takes posterior draws for held-out test pairs :math:`(\theta^*, x)` drawn from
the prior and the simulator, or a posterior: any callable that maps a batch of
observations to a torch distribution over :math:`\theta` (a trained
:class:`~sbikit.inference.NPE`, an analytic posterior, ...).

- :func:`check` — every diagnostic below, a verdict (``"calibrated"``,
  ``"conservative"``, ``"overconfident"``) and a :class:`CalibrationReport` with
  ``summary()``, ``to_json(path)`` and ``to_html(path)``;
- :func:`draw` — :math:`L` draws and log-densities for :math:`N` observations, batched;
- :func:`sbc` — simulation-based calibration: ranks, histograms, :math:`\chi^2` and KS
  tests, ECDF with simultaneous bands and :math:`\log \gamma`;
- :func:`expected_coverage` — coverage of HPD regions and central intervals at every
  credibility level;
- :func:`tarp` — expected coverage from random reference points, and the ATC;
- :func:`z_score_contraction` — posterior z-scores, contraction and recovery;
- :func:`c2st` — the classifier two-sample test of the benchmark (0.5: indistinguishable).

Example:
    >>> from sbikit.diagnostics import c2st
    >>> p, q = torch.randn(1000, 2), torch.randn(1000, 2) + 3.0
    >>> c2st(p, q, steps=200) > 0.9
    True
"""

from ._draws import Draws, draw
from .c2st import c2st
from .check import check
from .coverage import CoverageResult, expected_coverage
from .report import CalibrationReport
from .sbc import SBCResult, sbc
from .summaries import ZScoreResult, z_score_contraction
from .tarp import TARPResult, tarp
from .verdict import Verdict

__all__ = [
    "CalibrationReport",
    "CoverageResult",
    "Draws",
    "SBCResult",
    "TARPResult",
    "Verdict",
    "ZScoreResult",
    "c2st",
    "check",
    "draw",
    "expected_coverage",
    "sbc",
    "tarp",
    "z_score_contraction",
]
