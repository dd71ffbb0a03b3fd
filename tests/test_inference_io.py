"""Tests of sbikit.save and sbikit.load: exact round trips, the directory's contents,
custom parts, and corrupted, truncated or incompatible files."""

from __future__ import annotations

import functools
import hashlib
import json

import pytest
import torch
import torch.nn as nn
from torch.distributions import LogNormal

import sbikit
from sbikit.distributions import BoxUniform, Joint
from sbikit.flows import MAF
from sbikit.inference import NPE

PRIOR = BoxUniform(-2 * torch.ones(2), 2 * torch.ones(2))


def trained(**kwargs):
    torch.manual_seed(0)
    posterior = NPE(2, (2, 3), prior=PRIOR, transforms=2, hidden_features=(16,), **kwargs)
    theta = PRIOR.sample((300,))
    x = theta.repeat(1, 3).reshape(300, 3, 2).transpose(1, 2) + 0.1 * torch.randn(300, 2, 3)
    sbikit.fit(posterior, (theta, x), epochs=2, batch_size=64, progress=False)
    return posterior


def assert_identical(a, b):
    torch.manual_seed(1)
    x, theta = torch.randn(4, 2, 3), 1.9 * (2 * torch.rand(10, 4, 2) - 1)
    assert torch.equal(a(x).log_prob(theta), b(x).log_prob(theta))
    torch.manual_seed(2)
    first = a(x).sample((5,))
    torch.manual_seed(2)
    assert torch.equal(first, b(x).sample((5,)))


def test_save_load_round_trip_is_exact(tmp_path):
    posterior = trained(
        embedding="MLPEmbedding", embedding_options={"in_shape": [2, 3], "out_features": 4}
    )
    directory = sbikit.save(posterior, tmp_path / "posterior")
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "weights.pt"]
    loaded = sbikit.load(directory)
    assert_identical(posterior, loaded)
    assert loaded.history == posterior.history
    assert loaded.config == posterior.config
    assert not loaded.training


def test_a_joint_prior_round_trips(tmp_path):
    prior = Joint(LogNormal(0.0, 1.0), BoxUniform(-2 * torch.ones(1), 2 * torch.ones(1)))
    posterior = NPE(2, 3, prior=prior, transforms=1, hidden_features=(8,))
    loaded = sbikit.load(sbikit.save(posterior, tmp_path / "joint"))
    theta = prior.sample((20,))
    x = torch.randn(20, 3)
    assert torch.equal(posterior(x).log_prob(theta), loaded(x).log_prob(theta))
    assert loaded.config["support"] == posterior.config["support"]


def test_the_config_describes_the_model(tmp_path):
    posterior = trained()
    config = json.loads((sbikit.save(posterior, tmp_path / "p") / "config.json").read_text())
    assert config["format"] == "sbikit-estimator" and config["format_version"] == 2
    architecture = config["architecture"]
    assert architecture["flow"] == {
        "name": "NSF",
        "factory": "sbikit.flows.spline.NSF",
        "options": {"transforms": 2, "hidden_features": [16], "bins": 8},
    }
    assert architecture["support"] == {
        "kind": "interval",
        "lower": [-2.0, -2.0],
        "upper": [2.0, 2.0],
        "reinterpreted": 1,
    }
    assert architecture["theta_dim"] == 2 and architecture["x_shape"] == [2, 3]
    assert config["standardization"]["theta_loc"] == posterior.theta_loc.tolist()
    assert config["history"]["epoch"] == [1, 2]
    assert set(config["versions"]) == {"sbikit", "torch", "python"}
    assert config["dtype"] == "float32"


def test_float64_round_trip(tmp_path):
    torch.manual_seed(0)
    posterior = NPE(2, (2, 3), prior=PRIOR, transforms=1).double()
    loaded = sbikit.load(sbikit.save(posterior, tmp_path / "p"))
    assert loaded.theta_loc.dtype == torch.float64
    x, theta = torch.randn(2, 3, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    assert torch.equal(posterior(x).log_prob(theta), loaded(x).log_prob(theta))


def test_custom_embedding_and_flow_are_passed_again(tmp_path):
    def flow(features, context, **options):
        return MAF(features, context, **options)

    class Embedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(6, 4)

        def forward(self, x):
            return self.linear(x.flatten(-2))

    torch.manual_seed(0)
    posterior = NPE(2, (2, 3), flow=flow, embedding=Embedding(), transforms=1)
    path = sbikit.save(posterior, tmp_path / "p")
    with pytest.raises(ValueError, match=r"custom flow.*load\(path, flow=\.\.\.\)"):
        sbikit.load(path, embedding=Embedding())
    with pytest.raises(ValueError, match=r"custom embedding.*Embedding.*load\(path, embedding="):
        sbikit.load(path, flow=flow)
    loaded = sbikit.load(path, flow=flow, embedding=Embedding())
    assert_identical(posterior, loaded)
    with pytest.raises(ValueError, match="trained with"):
        sbikit.load(path, flow=flow, embedding=nn.Flatten(-2))


def test_options_that_json_cannot_hold_are_refused_by_save(tmp_path):
    posterior = NPE(2, 3, flow="maf", transforms=1, activation=nn.ELU)
    with pytest.raises(ValueError, match=r"not JSON-serialisable.*functools.partial"):
        sbikit.save(posterior, tmp_path / "p")
    factory = functools.partial(MAF, activation=nn.ELU)
    torch.manual_seed(0)
    wrapped = NPE(2, 3, flow=factory, transforms=1)
    loaded = sbikit.load(sbikit.save(wrapped, tmp_path / "q"), flow=factory)
    x, theta = torch.randn(3), torch.randn(4, 2)
    assert torch.equal(wrapped(x).log_prob(theta), loaded(x).log_prob(theta))


def test_save_does_not_overwrite_unless_asked(tmp_path):
    posterior = NPE(2, 3, transforms=1)
    sbikit.save(posterior, tmp_path / "p")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        sbikit.save(posterior, tmp_path / "p")
    sbikit.save(posterior, tmp_path / "p", overwrite=True)


@pytest.fixture
def saved(tmp_path):
    return sbikit.save(NPE(2, 3, transforms=1), tmp_path / "p")


def test_truncated_weights_are_detected(saved):
    weights = saved / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        sbikit.load(saved)


def test_corrupted_weights_are_detected(saved):
    weights = saved / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted or truncated"):
        sbikit.load(saved)


def replace_weights(saved, data: bytes) -> None:
    """Writes other weights and records their size and digest: only torch can object."""

    (saved / "weights.pt").write_bytes(data)
    config = json.loads((saved / "config.json").read_text())
    config["weights"] |= {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (saved / "config.json").write_text(json.dumps(config))


def test_weights_that_torch_cannot_read_are_reported(saved):
    replace_weights(saved, b"not a zip file at all")
    with pytest.raises(ValueError, match="cannot read the weights"):
        sbikit.load(saved)


def test_truncated_config_is_detected(saved):
    config = saved / "config.json"
    config.write_text(config.read_text()[:50])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        sbikit.load(saved)


def test_incompatible_format_version_is_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    config["format_version"] = 99
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="format version 99"):
        sbikit.load(saved)


def test_missing_files_are_reported(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        sbikit.load(tmp_path / "nothing")
    (saved / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match="weights"):
        sbikit.load(saved)


def test_weights_never_unpickle_code(saved, tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"x": Payload()}, tmp_path / "payload.pt")
    replace_weights(saved, (tmp_path / "payload.pt").read_bytes())
    with pytest.raises(ValueError, match="cannot read the weights"):
        sbikit.load(saved)
    assert "executed" not in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_saved_on_gpu_loads_on_cpu(tmp_path):
    posterior = trained().to("cuda")
    loaded = sbikit.load(sbikit.save(posterior, tmp_path / "p"))
    assert loaded.theta_loc.device.type == "cpu"
    assert_identical(posterior.cpu(), loaded)
