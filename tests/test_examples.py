import importlib.util
from pathlib import Path

import torch

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
