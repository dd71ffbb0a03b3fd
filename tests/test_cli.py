import json
import os
import subprocess
import sys
import sysconfig
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

import sbikit
import sbikit.diagnostics
from sbikit.cli import demo as demo_module
from sbikit.cli import main

TINY = ["--epochs", "3", "--transforms", "1", "--hidden-features", "16", "-q"]

USER_MODULE = """
import torch
from sbikit.distributions import BoxUniform

prior = BoxUniform(torch.zeros(3), torch.ones(3))


def make_prior():
    return BoxUniform(-torch.ones(3), torch.ones(3))


def simulate(theta, generator=None):
    noise = torch.randn(theta.shape[0], 4, generator=generator)
    return torch.cat([theta, theta.sum(-1, keepdim=True)], -1) + 0.1 * noise
"""


def cli(*argv):
    return main([str(a) for a in argv])


def invoke(capsys, *argv):
    code = cli(*argv)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(capsys, *argv):
    code, _, err = invoke(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("sbikit: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    r"""A tiny two_moons run: training and test files and the run directory."""

    root = tmp_path_factory.mktemp("trained")
    assert cli("simulate", "two_moons", "-n", "500", "-o", root / "train.h5", "-q") == 0
    assert cli("simulate", "two_moons", "-n", "200", "-o", root / "test.h5", "--seed", "1") == 0
    assert cli("train", root / "train.h5", "-o", root / "run", *TINY) == 0
    return SimpleNamespace(train=root / "train.h5", test=root / "test.h5", run=root / "run")


@pytest.fixture
def fake_check(monkeypatch):
    r"""Replaces sbikit.diagnostics.check by a stand-in returning a chosen verdict."""

    calls = []

    class Report:
        def __init__(self, verdict):
            self.verdict = verdict

        def summary(self):
            return f"calibration check: {self.verdict}"

        def to_html(self, path):
            open(path, "w").write("<html></html>")

        def to_json(self, path):
            open(path, "w").write(json.dumps({"verdict": self.verdict}))

    def check(posterior, theta, x, **kwargs):
        calls.append(SimpleNamespace(posterior=posterior, theta=theta, x=x, **kwargs))
        return Report(fake.verdict)

    fake = SimpleNamespace(verdict="calibrated", calls=calls)
    monkeypatch.setattr(sbikit.diagnostics, "check", check, raising=False)
    return fake


def test_end_to_end(trained, tmp_path, capsys):
    held = sbikit.data.info(trained.train, verbose=False)
    assert held["rows"] == 500 and held["cli_simulator"] == "two_moons"
    assert sbikit.load(trained.run).theta_dim == 2  # the run directory is a saved estimator
    described = json.loads((trained.run / "run.json").read_text())
    assert described["simulator"] == "two_moons" and described["prior"] is None

    for suffix in ("npy", "csv", "h5"):
        output = tmp_path / f"samples.{suffix}"
        code, out, _ = invoke(capsys, "sample", trained.run, "--obs", "two_moons:1", "-n", 300,
                           "-o", output, "-q")  # fmt: skip
        assert code == 0 and "true" in out
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (300, 2) and np.all(np.abs(samples) <= 1)
    csv = np.loadtxt(tmp_path / "samples.csv", delimiter=",", skiprows=1)
    assert open(tmp_path / "samples.csv").readline().strip() == "theta_1,theta_2"
    np.testing.assert_allclose(csv, samples, rtol=1e-6)  # the same seed, the same draws
    with h5py.File(tmp_path / "samples.h5") as f:
        assert f["theta"].shape == (300, 2) and f.attrs["observation"] == "two_moons:1"

    code, out, _ = invoke(capsys, "info", trained.run)
    assert code == 0 and "NPE" in out and "best epoch" in out and "simulator two_moons" in out
    code, out, _ = invoke(capsys, "info", trained.train)
    assert code == 0 and "500 pairs" in out
    code, out, _ = invoke(capsys, "info", tmp_path / "samples.h5")
    assert code == 0 and "300 posterior draws" in out


def test_check_with_the_diagnostics(trained, tmp_path, capsys):
    report = tmp_path / "report.html"
    code, out, _ = invoke(capsys, "check", trained.run, trained.test, "-o", report, "--json",
                       tmp_path / "report.json", "--num-samples", 50, "--obs", "two_moons:1",
                       "-q")  # fmt: skip
    verdict = json.loads((tmp_path / "report.json").read_text())["verdict"]
    assert code == {"calibrated": 0, "conservative": 0, "overconfident": 3}[verdict]
    assert f"verdict: {verdict}" in out and report.stat().st_size > 0


@pytest.mark.parametrize(("verdict", "expected"), [("calibrated", 0), ("conservative", 0),
                                                   ("overconfident", 3)])  # fmt: skip
def test_check_exit_codes(trained, tmp_path, capsys, fake_check, verdict, expected):
    fake_check.verdict = verdict
    code, out, _ = invoke(capsys, "check", trained.run, trained.test, "-o", tmp_path / "r.html",
                       "--num-samples", 20, "--obs", "two_moons:2", "--seed", 3, "-q")  # fmt: skip
    assert code == expected and f"verdict: {verdict}" in out
    assert ("flag: " in out) == (verdict == "conservative")
    assert (tmp_path / "r.html").exists()
    call = fake_check.calls[-1]
    assert call.theta.shape == (200, 2) and call.x.shape == (200, 2)
    assert call.num_samples == 20 and call.seed == 3 and call.progress is False
    assert call.x_obs.shape == (2,) and call.theta_obs.shape == (2,)
    assert call.prior is not None and call.history["best_epoch"] >= 1
    assert call.description["simulator"] == "two_moons"


def test_check_warns_about_the_training_seed(trained, capsys, fake_check):
    code, _, err = invoke(capsys, "check", trained.run, trained.train, "--num-pairs", 50)
    assert code == 0 and "training data" in err


def test_user_module(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command adds the current directory
    monkeypatch.delitem(sys.modules, "usersim", raising=False)
    (tmp_path / "usersim.py").write_text(USER_MODULE)
    code, out, _ = invoke(capsys, "simulate", "usersim:simulate", "-n", 400, "-o", "data.h5", "-q")
    assert code == 0 and "theta (3,), x (4,)" in out, _
    assert cli("train", "data.h5", "-o", "run", *TINY) == 0  # the prior: usersim:prior
    np.save("obs.npy", np.array([[0.5, 0.5, 0.5, 1.5]]))  # a leading 1 is dropped
    code, out, _ = invoke(capsys, "sample", "run", "--obs", "obs.npy", "-n", 100, "-o", "s.npy")
    assert code == 0 and np.load("s.npy").shape == (100, 3)
    assert np.all((np.load("s.npy") >= 0) & (np.load("s.npy") <= 1))  # inside the prior

    # another prior, given by a function, recorded in the file and found again by train
    code, _, _ = invoke(capsys, "simulate", "usersim:simulate", "-n", 300, "-o", "wide.h5",
                     "--prior", "usersim:make_prior", "-q")  # fmt: skip
    assert code == 0
    assert cli("train", "wide.h5", "-o", "wide", *TINY) == 0
    assert json.loads(open("wide/run.json").read())["prior"] == "usersim:make_prior"
    assert sbikit.load("wide").config["support"]["lower"] == [-1.0, -1.0, -1.0]

    line = error_line(capsys, "simulate", "usersim:missing", "-n", 10, "-o", "x.h5")
    assert "has no attribute 'missing'" in line
    line = error_line(capsys, "simulate", "nomodule:simulate", "-n", 10, "-o", "x.h5")
    assert "no module 'nomodule'" in line


def test_resume_more_and_merge(tmp_path, capsys):
    one = tmp_path / "one.h5"
    assert cli("simulate", "two_moons", "-n", "300", "-o", one, "--block-size", "100", "-q") == 0
    line = error_line(capsys, "simulate", "two_moons", "-n", 500, "-o", one)
    assert "--resume" in line and "--more" in line and "--overwrite" in line
    assert cli("simulate", "two_moons", "--more", "200", "-o", one, "-q") == 0
    assert cli("simulate", "two_moons", "-n", "600", "--resume", "-o", one, "-q") == 0
    assert sbikit.data.info(one, verbose=False)["rows"] == 600  # the file's block size kept

    for i in range(2):
        shard = tmp_path / f"shard-{i}.h5"
        assert cli("simulate", "two_moons", "-n", "100", "-o", shard, "--shard", f"{i}/2",
                     "--block-size", "50", "-q") == 0  # fmt: skip
    code, out, _ = invoke(capsys, "merge", tmp_path / "shard-0.h5", tmp_path / "shard-1.h5",
                       "-o", tmp_path / "all.h5")  # fmt: skip
    assert code == 0 and "200 pairs" in out
    assert sbikit.data.info(tmp_path / "all.h5", verbose=False)["cli_simulator"] == "two_moons"


def test_train_resume(trained, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", trained.train, "-o", run, *TINY, "--reductions", "2") == 0
    line = error_line(capsys, "train", trained.train, "-o", tmp_path / "other", "--resume")
    assert "cannot resume" in line
    # the architecture and settings come from the checkpoint; a larger --epochs trains on
    code, out, _ = invoke(capsys, "train", trained.train, "-o", run, "--resume", "--epochs", 5)
    assert code == 0 and "of 5" in out
    assert sbikit.load(run).config["flow"]["options"]["transforms"] == 1
    assert sbikit.load(run).history["settings"]["reductions"] == 2


def test_error_messages(trained, tmp_path, capsys):
    line = error_line(capsys, "train", tmp_path / "missing.h5", "-o", tmp_path / "run")
    assert "missing.h5" in line and "does not exist" in line
    line = error_line(capsys, "simulate", "three_moons", "-n", 10, "-o", tmp_path / "a.h5")
    assert "unknown task 'three_moons'" in line and "two_moons" in line
    line = error_line(capsys, "sample", trained.run, "--obs", "three_moons:1", "-o",
                      tmp_path / "s.npy")  # fmt: skip
    assert "unknown task 'three_moons'" in line
    np.save(tmp_path / "obs.npy", np.zeros(3))
    line = error_line(capsys, "sample", trained.run, "--obs", tmp_path / "obs.npy", "-o",
                      tmp_path / "s.npy")  # fmt: skip
    assert "shape (3,)" in line and "shape (2,)" in line
    line = error_line(capsys, "sample", trained.run, "--obs", "slcp:1", "-o", tmp_path / "s.npy")
    assert "shape (8,)" in line
    line = error_line(capsys, "sample", trained.run, "--obs", tmp_path / "nothing.npy", "-o",
                      tmp_path / "s.npy")  # fmt: skip
    assert "does not exist" in line
    for not_a_run in (tmp_path, tmp_path / "nowhere"):
        line = error_line(capsys, "sample", not_a_run, "--obs", "two_moons:1", "-o",
                          tmp_path / "s.npy")  # fmt: skip
        assert "run directory" in line
    line = error_line(capsys, "check", tmp_path, trained.test)
    assert "is not a run directory" in line
    line = error_line(capsys, "train", trained.train, "-o", trained.run)
    assert "--overwrite" in line and "--resume" in line
    line = error_line(capsys, "info", tmp_path / "nothing.h5")
    assert "does not exist" in line

    code, _, err = invoke(capsys, "--debug", "info", tmp_path / "nothing.h5")
    assert code == 1 and "Traceback" in err and err.strip().endswith("does not exist.")


def test_usage_errors(capsys):
    for argv in (["simulate"], ["train", "data.h5"], ["nosuchcommand"], ["sample", "run",
                 "--obs", "two_moons:1", "-o", "s.npy", "-n", "0"]):  # fmt: skip
        with pytest.raises(SystemExit) as exit:
            main(argv)
        assert exit.value.code == 2
    capsys.readouterr()
    assert cli() == 0 and "simulate" in capsys.readouterr().out
    assert cli("train", "x.h5", "-o", "run", "--quiet") == 1  # options after the command
    assert cli("--quiet", "train", "x.h5", "-o", "run") == 1  # and before it


def test_tasks(capsys):
    code, out, _ = invoke(capsys, "tasks")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 11
    assert any(line.split()[:3] == ["two_moons", "2", "(2,)"] for line in lines)


def test_demo(tmp_path, monkeypatch, capsys, fake_check):
    budget = {"simulations": 300, "test pairs": 100, "epochs": 2, "transforms": 1,
              "hidden features": 8, "draws per test pair": 20, "samples": 500}  # fmt: skip
    monkeypatch.setattr(demo_module, "BUDGET", budget)
    fake_check.verdict = "conservative"
    code, out, _ = invoke(capsys, "demo", "--out", tmp_path / "demo", "-q")
    assert code == 0
    for name in ("train.h5", "test.h5", "run", "samples.npy", "report.html", "report.json"):
        assert (tmp_path / "demo" / name).exists()
    assert "$ sbikit train" in out and "verdict        conservative" in out and "C2ST" in out

    fake_check.verdict = "overconfident"  # the demo reports it; `check` is the gate
    code, out, _ = invoke(capsys, "demo", "--out", tmp_path / "demo", "-q")
    assert code == 0 and "verdict        overconfident" in out


def test_entry_point():
    script = os.path.join(sysconfig.get_path("scripts"), "sbikit")
    result = subprocess.run([script, "tasks"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "two_moons" in result.stdout
