"""Tests of the calibration report: its summary, JSON and self-contained HTML."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from sbikit.diagnostics import check
from sbikit.diagnostics.figures import corner_figure
from sbikit.distributions import DiagNormal

HISTORY = {  # the structure returned by sbikit.fit
    "epoch": [1, 2, 3],
    "train_loss": [2.0, 1.5, 1.2],
    "validation_loss": [2.1, 1.6, 1.4],
    "learning_rate": [5e-4, 5e-4, 2.5e-4],
    "time": [0.1, 0.2, 0.3],
    "skipped": [0, 0, 0],
    "best_epoch": 3,
    "best_validation_loss": 1.4,
    "stopped": "epochs",
}


def narrow(x):
    r"""Prior N(0, 1), x ~ N(theta, 1): the exact posterior is N(x / 2, 1 / 2); this one has
    sd 0.5 instead of 0.71."""

    return DiagNormal(x / 2, torch.full_like(x, 0.5))


@pytest.fixture(scope="module")
def report():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(200, 3, generator=g)
    x = theta + torch.randn(200, 3, generator=g)
    return check(
        narrow,
        theta,
        x,
        num_samples=100,
        seed=5,
        history=HISTORY,
        description={"model": "narrow Gaussian", "data": "200 test pairs"},
        labels=["a", "b", "c"],
        progress=False,
    )


@pytest.fixture(scope="module")
def page(report, tmp_path_factory):
    path = report.to_html(tmp_path_factory.mktemp("report") / "report.html")
    return path, path.read_text(encoding="utf-8")


class Elements(HTMLParser):
    r"""Collects the start tags, with their attributes, in document order."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> Elements:
    parser = Elements()
    parser.feed(text)
    parser.close()
    return parser


def test_the_verdict_comes_first_with_its_numbers(report):
    lines = report.summary().splitlines()
    assert report.verdict == "overconfident"
    assert lines[0].startswith("Verdict: OVERCONFIDENT")
    assert "gamma-test p" in lines[1] and "Holm" in lines[1]
    assert any(line.startswith("Rule:") for line in lines)
    assert "a: ranks chi2 p" in report.summary()


def test_html_embeds_every_figure_and_fetches_nothing(page):
    _, text = page
    elements = parse(text)
    images = [attrs for tag, attrs in elements.tags if tag == "img"]
    assert (
        len(images) == 9
    )  # coverage, histograms, ECDF, central, TARP, z, recovery, corner, training
    for attrs in images:
        assert attrs["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(attrs["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert attrs.get("alt")
    for tag, attrs in elements.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed")
        for name in ("src", "href"):
            assert not attrs.get(name) or attrs[name].startswith("data:"), (tag, attrs)
    assert "url(" not in text and "@import" not in text


def test_html_has_the_verdict_at_the_top(page):
    _, text = page
    tags = parse(text).tags
    sections = [attrs.get("id") for tag, attrs in tags if tag == "section"]
    assert sections[0] == "verdict"
    assert set(sections) >= {"metadata", "coverage", "sbc", "tarp", "z-score", "posterior"}
    assert "training" in sections
    first_image = next(i for i, (tag, _) in enumerate(tags) if tag == "img")
    verdict = next(i for i, (tag, a) in enumerate(tags) if a.get("id") == "verdict")
    assert verdict < first_image
    head = text[: text.index("<img")]
    assert "Verdict: OVERCONFIDENT" in head and "gamma-test p" in head and "Rule." in head


def test_html_shows_the_metadata(report, page):
    _, text = page
    for needle in ("narrow Gaussian", "sbikit", "num_samples", "elapsed_s", "created"):
        assert needle in text
    assert report.metadata["seed"] == 5 and report.metadata["num_pairs"] == 200


def test_json_holds_the_numbers(report, tmp_path):
    data = json.loads(report.to_json(tmp_path / "report.json").read_text())
    assert data["verdict"] == report.verdict and data["flags"] == report.flags
    assert data["metadata"]["num_samples"] == 100
    assert len(data["sbc"]["ranks"]) == 200 and len(data["coverage"]["levels"]) > 10
    assert data["history"]["epoch"] == [1, 2, 3]
    assert len(data["curves"]) == 2 * 3 + 2
    assert data["observed"]["source"] == "test pair 0"


def test_the_corner_plot_takes_a_reference():
    rng = np.random.default_rng(0)
    uri = corner_figure(
        rng.normal(size=(500, 2)), ["a", "b"], np.zeros(2), rng.normal(size=(300, 2))
    )
    assert uri.startswith("data:image/png;base64,")


def test_matplotlib_is_imported_only_for_figures_and_its_backend_is_kept(tmp_path):
    code = (
        "import sys, torch, sbikit\n"
        "assert 'matplotlib' not in sys.modules, 'import sbikit imported matplotlib'\n"
        "from sbikit.diagnostics import check\n"
        "from sbikit.distributions import DiagNormal\n"
        "theta = torch.randn(50, 2)\n"
        "report = check(lambda x: DiagNormal(x, torch.ones_like(x)), theta, theta,\n"
        "               num_samples=20, progress=False)\n"
        "import matplotlib\n"
        "before = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        f"report.to_html({str(tmp_path / 'r.html')!r})\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == before\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


BROWSER = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)


@pytest.mark.skipif(BROWSER is None, reason="no Chromium or Chrome to render the report")
def test_a_headless_browser_renders_the_report(page, tmp_path):
    path, _ = page
    common = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr"]
    dom = subprocess.run(
        [*common, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr
    assert '<section id="verdict"' in dom.stdout and dom.stdout.count("<img") == 9
    assert "Uncaught" not in dom.stderr and "ERR_" not in dom.stderr
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,4000", path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and shot.stat().st_size > 10_000, result.stderr
