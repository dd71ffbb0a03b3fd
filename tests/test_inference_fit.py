"""Tests of sbikit.fit: data sources, early stopping, determinism, checkpoints and resume,
the non-finite guard and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sbikit
import simulators
from sbikit.data import SimulationDataset, simulate
from sbikit.inference import NPE
from sbikit.inference.fit import adamw

TINY = {"transforms": 1, "hidden_features": (16,)}
FAST = {"epochs": 3, "batch_size": 64, "progress": False}


def make_pairs(n=600, seed=0):
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, 2, generator=generator)
    x = torch.cat([theta, theta.sum(-1, keepdim=True)], -1)
    return theta, x + 0.1 * torch.randn(n, 3, generator=generator)


def make_npe(**options):
    torch.manual_seed(0)
    return NPE(2, 3, **{**TINY, **options})


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "gaussian_linear.h5"
    simulate(simulators.get("gaussian_linear"), 640, path, seed=0, progress=False)
    return path


def test_fit_from_tensors_learns_and_records_its_history():
    posterior = make_npe()
    history = sbikit.fit(posterior, make_pairs(), epochs=8, batch_size=64, progress=False)
    assert history is posterior.history
    assert history["epoch"] == list(range(1, 9))
    for key in ("train_loss", "validation_loss", "learning_rate", "time", "skipped"):
        assert len(history[key]) == 8, key
    assert history["validation_loss"][-1] < history["validation_loss"][0] - 0.5
    assert history["train_rows"] == 540 and history["validation_rows"] == 60
    assert history["stopped"] == "epochs" and sum(history["skipped"]) == 0
    assert history["best_validation_loss"] == min(history["validation_loss"])
    assert not posterior.training  # left in evaluation mode


def test_standardization_comes_from_the_training_split():
    theta, x = make_pairs()
    theta, x = 3.0 + 2.0 * theta, x - 5.0
    posterior = NPE(2, 3, **TINY)
    sbikit.fit(posterior, (theta, x), epochs=1, progress=False)
    order = torch.randperm(600, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(posterior.theta_loc, theta.mean(0), atol=0.3)
    assert torch.allclose(posterior.theta_scale, theta.std(0), rtol=0.1)
    assert torch.allclose(posterior.x_loc, x.mean(0), atol=0.3)
    assert not torch.allclose(posterior.theta_loc, theta[order[:60]].mean(0), atol=1e-4)


def test_fit_from_a_file_and_from_a_dataset(data_file):
    torch.manual_seed(0)
    posterior = NPE(10, 10, **TINY)
    history = sbikit.fit(posterior, data_file, **FAST)
    assert history["train_rows"] + history["validation_rows"] == 640
    torch.manual_seed(0)
    streamed = NPE(10, 10, **TINY)
    dataset = SimulationDataset(data_file, batch_size=64)
    history = sbikit.fit(streamed, dataset, **FAST)
    assert history["train_rows"] + history["validation_rows"] == 640
    assert history["validation_loss"][-1] < history["validation_loss"][0]


def test_a_file_streams_when_not_in_memory(data_file):
    torch.manual_seed(0)
    a = NPE(10, 10, **TINY)
    history_a = sbikit.fit(a, data_file, in_memory=False, **FAST)
    torch.manual_seed(0)
    b = NPE(10, 10, **TINY)
    history_b = sbikit.fit(b, data_file, in_memory=True, **FAST)
    assert history_a["train_rows"] == history_b["train_rows"]
    assert math.isfinite(history_a["validation_loss"][-1])


def test_same_seed_same_weights_other_seed_other_weights():
    results = []
    for seed in (0, 0, 1):
        posterior = make_npe()
        sbikit.fit(posterior, make_pairs(), seed=seed, **FAST)
        results.append(posterior.state_dict())
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    assert not all(torch.equal(results[0][k], results[2][k]) for k in results[0])


def test_early_stopping_restores_the_best_weights():
    theta, x = make_pairs(200)
    x = torch.randn_like(x)  # nothing to learn: the validation loss soon stops improving
    posterior = make_npe(hidden_features=(64, 64))
    history = sbikit.fit(
        posterior, (theta, x), epochs=200, patience=3, learning_rate=1e-2, progress=False
    )
    assert history["stopped"] == "early_stopping"
    assert len(history["epoch"]) == history["best_epoch"] + 3 < 200
    valid = torch.from_numpy(np.random.default_rng(0).permutation(200))[:20]  # fit's split
    with torch.no_grad():
        loss = posterior.loss(theta[valid], x[valid]).item()
    assert loss == pytest.approx(history["best_validation_loss"], abs=1e-5)
    assert loss < history["validation_loss"][-1]


def test_learning_rate_schedules():
    plateau = sbikit.fit(
        make_npe(), make_pairs(100), epochs=40, patience=8, learning_rate=1e-2, progress=False
    )
    assert min(plateau["learning_rate"]) < 1e-2  # halved on a plateau
    cosine = sbikit.fit(make_npe(), make_pairs(), epochs=4, schedule="cosine", progress=False)
    assert cosine["learning_rate"] == pytest.approx(
        [1e-3 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    )
    constant = sbikit.fit(make_npe(), make_pairs(), epochs=3, schedule=None, progress=False)
    assert constant["learning_rate"] == [1e-3] * 3


def test_a_plateau_after_the_last_reduction_stops_the_training(tmp_path):
    theta, x = make_pairs(200)
    x = torch.randn_like(x)  # nothing to learn: plateau after plateau
    options = {"epochs": 300, "patience": 40, "learning_rate": 1e-2, "progress": False}
    checkpoint = tmp_path / "checkpoint.pt"
    limited = sbikit.fit(make_npe(), (theta, x), reductions=2, checkpoint=checkpoint, **options)
    assert limited["stopped"] == "plateau"
    resumed = sbikit.fit(make_npe(), (theta, x), reductions=2, checkpoint=checkpoint, **options)
    assert resumed["epoch"] == limited["epoch"]  # a finished training: its result, no more
    assert sorted(set(limited["learning_rate"]), reverse=True) == [1e-2, 5e-3, 2.5e-3]
    assert len(limited["epoch"]) < limited["best_epoch"] + 40  # before early stopping
    assert limited["best_validation_loss"] == min(limited["validation_loss"])
    unlimited = sbikit.fit(make_npe(), (theta, x), reductions=None, **options)
    assert unlimited["stopped"] == "early_stopping"
    assert len(unlimited["epoch"]) == unlimited["best_epoch"] + 40
    assert min(unlimited["learning_rate"]) < 2.5e-3
    shared = len(limited["epoch"])  # the rule only stops: the same epochs until then
    assert unlimited["validation_loss"][:shared] == limited["validation_loss"]


def test_adamw_is_fused_where_a_kernel_exists_and_updates_as_the_multi_tensor_one():
    meta = adamw([torch.zeros(2, device="meta", requires_grad=True)], 0.1, 0.0)
    assert meta.defaults["foreach"] and not meta.defaults["fused"]  # no fused kernel there
    steps = []
    for fused in (True, False):
        weights = torch.linspace(-1, 1, 6).requires_grad_()
        optimizer = adamw([weights], 1e-2, 0.1)
        if not fused:
            optimizer = torch.optim.AdamW([weights], lr=1e-2, weight_decay=0.1, foreach=True)
        assert bool(optimizer.defaults["fused"]) is fused
        for _ in range(3):
            optimizer.zero_grad()
            (weights**3).sum().backward()
            optimizer.step()
        steps.append(weights.detach())
    assert torch.allclose(steps[0], steps[1], atol=1e-6)
    assert not torch.allclose(steps[0], torch.linspace(-1, 1, 6))  # it did update


def test_resumed_training_equals_an_uninterrupted_one(tmp_path):
    data = make_pairs()
    whole = make_npe()
    expected = sbikit.fit(whole, data, epochs=6, batch_size=64, progress=False)

    resumed = make_npe()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    first = sbikit.fit(
        resumed, data, epochs=3, batch_size=64, checkpoint=checkpoint, progress=False
    )
    assert first["epoch"] == [1, 2, 3] and checkpoint.exists()
    fresh = make_npe()  # a new process would start from a new estimator
    history = sbikit.fit(
        fresh, data, epochs=6, batch_size=64, checkpoint=checkpoint, progress=False
    )
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert history["validation_loss"] == expected["validation_loss"]
    state, other = whole.state_dict(), fresh.state_dict()
    assert all(torch.equal(state[k], other[k]) for k in state)


def test_a_finished_checkpoint_returns_its_result(tmp_path):
    data = make_pairs()
    checkpoint = tmp_path / "checkpoint.pt"
    posterior = make_npe()
    history = sbikit.fit(posterior, data, checkpoint=checkpoint, **FAST)
    again = make_npe(hidden_features=(16,))
    assert sbikit.fit(again, data, checkpoint=checkpoint, **FAST)["epoch"] == history["epoch"]
    assert torch.equal(again.theta_loc, posterior.theta_loc)
    restarted = sbikit.fit(
        make_npe(), data, checkpoint=checkpoint, resume=False, epochs=1, progress=False
    )
    assert restarted["epoch"] == [1]


def test_a_checkpoint_of_another_training_is_refused(tmp_path):
    data = make_pairs()
    checkpoint = tmp_path / "checkpoint.pt"
    sbikit.fit(make_npe(), data, checkpoint=checkpoint, **FAST)
    with pytest.raises(ValueError, match="another training"):
        sbikit.fit(make_npe(), data, checkpoint=checkpoint, **{**FAST, "batch_size": 32})
    with pytest.raises(ValueError, match="another training"):
        sbikit.fit(make_npe(hidden_features=(8,)), data, checkpoint=checkpoint, **FAST)
    state = torch.load(checkpoint, weights_only=True)
    torch.save({**state, "checkpoint_version": 2}, checkpoint)  # without reductions: refused
    with pytest.raises(ValueError, match=r"version 3 .* holds 2"):
        sbikit.fit(make_npe(), data, checkpoint=checkpoint, **FAST)
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        sbikit.fit(make_npe(), data, checkpoint=checkpoint, **FAST)


def test_nan_batches_are_skipped_and_counted():
    theta, x = make_pairs()
    x[::50, 0] = float("nan")  # 12 rows with NaN
    posterior = make_npe()
    with pytest.warns(RuntimeWarning, match=r"skipped \d+ batch"):
        history = sbikit.fit(posterior, (theta, x), validation=0.05, **FAST)
    per_epoch = history["skipped"]
    assert all(0 < n <= 12 for n in per_epoch)
    assert all(math.isfinite(v) for v in history["train_loss"] + history["validation_loss"])
    assert all(torch.isfinite(p).all() for p in posterior.parameters())
    assert torch.isfinite(posterior.x_loc).all()  # the standardisation ignores NaN rows


def test_repeated_non_finite_batches_stop_with_the_best_weights():
    theta, x = make_pairs()
    posterior = make_npe()
    sbikit.fit(posterior, (theta, x), **FAST)
    before = {k: v.clone() for k, v in posterior.named_parameters()}
    poisoned = x.clone()
    poisoned[::3, 0] = float("inf")  # every batch holds inf: no step can be taken
    with pytest.warns(RuntimeWarning, match="consecutive batches"):
        history = sbikit.fit(posterior, (theta, poisoned), max_nonfinite=2, **FAST)
    assert history["stopped"] == "non-finite" and history["epoch"] == [1]
    assert history["skipped"] == [2] and history["best_epoch"] == 0
    assert all(torch.equal(p, before[k]) for k, p in posterior.named_parameters())


def test_data_without_a_finite_pair_is_rejected():
    theta, x = make_pairs()
    with pytest.raises(ValueError, match="0 finite pair"):
        sbikit.fit(make_npe(), (theta, torch.full_like(x, float("nan"))), **FAST)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ((torch.zeros(0, 2), torch.zeros(0, 3)), ValueError, "at least 10 pairs"),
        ((torch.zeros(5, 2), torch.zeros(5, 3)), ValueError, "at least 10 pairs"),
        ((torch.zeros(20, 3), torch.zeros(20, 3)), ValueError, r"theta of shape \(2,\)"),
        ((torch.zeros(20, 2), torch.zeros(20, 4)), ValueError, r"x of shape \(3,\)"),
        ((torch.zeros(20, 2), torch.zeros(19, 3)), ValueError, "same N"),
        ((torch.zeros(20, 2),), ValueError, "pair"),
        ({"theta": 1}, TypeError, "pair of tensors"),
    ],
)
def test_bad_data_is_rejected(data, error, match):
    with pytest.raises(error, match=match):
        sbikit.fit(make_npe(), data, **FAST)


def test_a_file_of_another_dimension_is_rejected(data_file):
    with pytest.raises(ValueError, match=r"theta of shape \(10,\)"):
        sbikit.fit(make_npe(), data_file, **FAST)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"validation": 1.0}, "validation"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"schedule": "linear"}, "schedule"),
        ({"reductions": -1}, "reductions"),
        ({"weight_decay": -0.5}, "weight_decay"),
    ],
)
def test_bad_settings_are_rejected(settings, match):
    with pytest.raises((TypeError, ValueError), match=match):
        sbikit.fit(make_npe(), make_pairs(), **{**FAST, **settings})


def test_device_selection_moves_the_estimator():
    posterior = make_npe()
    sbikit.fit(posterior, make_pairs(), device="cpu", **FAST)
    assert posterior.theta_loc.device.type == "cpu"
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device to train on")
    sbikit.fit(posterior, make_pairs(), device="cuda", **FAST)
    assert posterior.theta_loc.device.type == "cuda"
