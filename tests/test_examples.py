import importlib.util
import sys
from pathlib import Path

import torch

import sbikit
import simulators
from sbikit.diagnostics import CalibrationReport

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_recovers_the_analytic_posterior(capsys):
    samples = load("quickstart").main(progress=False)
    assert samples.shape == (10000, 1)
    # Analytic posterior N(0.8 * 1.5, 0.2). The Monte-Carlo error of 10,000 draws is 0.0045 on
    # the mean; the rest of the tolerance is the training error of a 5,000-pair fit.
    assert abs(samples.mean().item() - 1.2) < 0.05
    assert abs(samples.std().item() - 0.2**0.5) < 0.03
    assert "analytic mean 1.200" in capsys.readouterr().out
    assert torch.isfinite(samples).all()


def test_reference_flow_samples_and_has_finite_density():
    torch.manual_seed(0)
    flow = load("reference_flow").flow
    c = torch.randn(8)
    x = flow(c).sample((64,))
    assert x.shape == (64, 5)
    assert ((x > -0.5) & (x < 255.5)).all()  # the image of the rescaled logit
    log_p = flow(c).log_prob(x)
    assert log_p.shape == (64,) and torch.isfinite(log_p).all()
    assert flow(torch.randn(3, 8)).sample((10,)).shape == (10, 3, 5)


def test_two_moons_runs_end_to_end_on_a_tiny_budget(tmp_path, capsys):
    result = load("two_moons").main(tmp_path, quick=True, progress=False)
    assert result["samples"].shape == (10000, 2)
    assert torch.isfinite(result["samples"]).all()
    assert bool(simulators.get("two_moons").prior.support.check(result["samples"]).all())
    assert 0.0 <= result["c2st"] <= 1.0
    assert result["report"].verdict in ("calibrated", "conservative", "overconfident")
    assert result["identical"]  # the loaded posterior gives the same densities
    assert all(path.exists() for path in result["files"])
    out = capsys.readouterr().out
    assert "C2ST against the reference" in out and "Verdict:" in out


def test_own_simulator_follows_the_simulator_contract():
    module = load("own_simulator")
    theta = module.prior.sample((64,))
    assert theta.shape == (64, 3)
    assert bool(module.prior.support.check(theta).all())
    x = module.simulate(theta, torch.Generator().manual_seed(0))
    assert x.shape == (64, 50) and x.dtype == torch.float32
    again = module.simulate(theta, torch.Generator().manual_seed(0))
    assert torch.equal(x.nan_to_num(), again.nan_to_num())  # randomness from the generator only
    lost = torch.isnan(x).any(-1)
    assert torch.equal(lost, torch.isnan(x).all(-1))  # a lost run is a whole row of NaN
    assert module.simulate(theta[0]).shape == (50,)  # one parameter vector


def test_own_simulator_runs_end_to_end_on_a_tiny_budget(tmp_path, capsys):
    module = load("own_simulator")
    result = module.main(tmp_path, quick=True, progress=False)
    samples = result["samples"]
    assert samples.shape == (10000, 3)
    assert bool(module.prior.support.check(samples).all())  # never outside the prior's box
    assert result["info"]["rows"] == module.BUDGETS["quick"]["simulations"]
    assert result["info"]["dropped_nonfinite"] > 0  # lost runs are counted and dropped
    assert result["report"].metadata["num_dropped"] > 0
    assert result["html"].exists()
    assert "posterior of the recording" in capsys.readouterr().out


def test_own_simulator_works_from_the_command_line(tmp_path, monkeypatch, capsys):
    # As docs/own-simulator.md says: from examples/, `sbikit simulate own_simulator:simulate`.
    from sbikit.cli import main

    monkeypatch.chdir(EXAMPLES)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command puts examples/ first
    try:
        data, run = str(tmp_path / "pairs.h5"), str(tmp_path / "run")
        assert main(["-q", "simulate", "own_simulator:simulate", "-n", "300", "-o", data]) == 0
        assert main(["-q", "train", data, "-o", run, "--epochs", "1", "--transforms", "1",
                     "--hidden-features", "16"]) == 0  # fmt: skip
    finally:
        sys.modules.pop("own_simulator", None)
    assert sbikit.load(run).config["support"]["kind"] == "interval"  # the prior, found again


def test_overconfident_posterior_fails_and_the_exact_one_passes(tmp_path, monkeypatch, capsys):
    def to_html(report, path):  # rendering 10-D figures takes seconds; test_report.py tests it
        Path(path).write_text(report.verdict)
        return Path(path)

    monkeypatch.setattr(CalibrationReport, "to_html", to_html)
    reports = load("overconfident").main(tmp_path, quick=True, progress=False)
    assert reports["exact"].verdict == "calibrated"
    assert reports["overconfident"].verdict == "overconfident"
    assert (tmp_path / "exact.html").exists() and (tmp_path / "overconfident.html").exists()
    assert "verdicts: exact calibrated, shrunk to 70% overconfident" in capsys.readouterr().out
