import bz2
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import simulators

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from published import PublishedReferences


def csv(rows: np.ndarray, prefix: str) -> bytes:
    header = ",".join(f"{prefix}_{i + 1}" for i in range(rows.shape[1]))
    lines = [header] + [",".join(repr(float(v)) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def write_wheel(path: Path, task: str, k: int, observation: np.ndarray, draws: np.ndarray):
    # the layout of the published benchmark's wheel, with one observation of one task
    folder = f"sbibm/tasks/{task}/files/num_observation_{k}/"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(folder + "observation.csv", csv(observation[None], "data"))
        samples = bz2.compress(csv(draws, "parameter"))
        wheel.writestr(folder + "reference_posterior_samples.csv.bz2", samples)


def test_published_draws_are_read_from_the_wheel(tmp_path):
    task = simulators.get("slcp")
    draws = np.random.default_rng(0).normal(size=(7, task.theta_dim)).astype(np.float32)
    wheel = tmp_path / "sbibm.whl"
    write_wheel(wheel, "slcp", 2, task.observation(2).numpy(), draws)
    refs = PublishedReferences(wheel)

    torch.testing.assert_close(refs.samples("slcp", 2), torch.from_numpy(draws))
    torch.testing.assert_close(refs.samples("slcp_distractors", 2), torch.from_numpy(draws))
    refs.check_observation("slcp", 2)
    refs.check_observation("slcp_distractors", 2)  # its informative part: slcp's observation


def test_another_observation_or_a_missing_file_is_a_clear_error(tmp_path):
    task = simulators.get("two_moons")
    wheel = tmp_path / "sbibm.whl"
    write_wheel(wheel, "two_moons", 1, task.observation(1).numpy() + 0.1, np.zeros((3, 2)))
    refs = PublishedReferences(wheel)
    with pytest.raises(ValueError, match="differs from the published one"):
        refs.check_observation("two_moons", 1)
    with pytest.raises(KeyError, match="num_observation_2"):
        refs.samples("two_moons", 2)
    with pytest.raises(FileNotFoundError, match="pip download sbibm"):
        PublishedReferences(tmp_path / "missing.whl")
