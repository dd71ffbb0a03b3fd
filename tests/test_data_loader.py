"""Tests of sbikit.data's reading side: SimulationDataset (streaming and in memory, with
DataLoader workers, splits, shuffling, memory bound) and files joined from shards."""

from __future__ import annotations

import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sbikit.data import SimulationDataset, info, join, simulate
from sbikit.distributions import BoxUniform

PRIOR = BoxUniform(torch.zeros(3), torch.ones(3))
ROWS = 5000


def simulator(theta, generator=None):
    return torch.cat([theta, theta.sum(-1, keepdim=True)], -1) + 0.01 * torch.randn(
        (len(theta), 4), generator=generator
    )


def write(path, n=ROWS, **kwargs):
    kwargs = {"seed": 0, "block_size": 512, "progress": False, **kwargs}
    return simulate(PRIOR, n, path, simulator=simulator, **kwargs)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.h5"
    write(path)
    return path


def stored(path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        return f["theta"][:], f["x"][:]


def collect(batches) -> tuple[np.ndarray, np.ndarray, list[int]]:
    batches = list(batches)
    theta = torch.cat([t for t, _ in batches]).numpy()
    x = torch.cat([x for _, x in batches]).numpy()
    return theta, x, [len(t) for t, _ in batches]


def as_set(theta: np.ndarray) -> np.ndarray:
    """The rows of theta, sorted (rows are distinct: continuous draws)."""

    return theta[np.lexsort(theta.T[::-1])]


def assert_same_pairs(theta, x, path_or_arrays):
    """theta and x hold every stored pair exactly once, each theta with its own x."""

    reference_theta, reference_x = path_or_arrays
    assert len(theta) == len(reference_theta)
    order, reference = np.lexsort(theta.T[::-1]), np.lexsort(reference_theta.T[::-1])
    np.testing.assert_array_equal(theta[order], reference_theta[reference])
    np.testing.assert_array_equal(x[order], reference_x[reference])


@pytest.mark.parametrize("in_memory", [False, True])
def test_two_dataloader_workers_yield_every_pair_once_per_epoch(path, in_memory):
    dataset = SimulationDataset(path, batch_size=100, buffer_size=1000, in_memory=in_memory)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
    epochs = [collect(loader) for _ in range(2)]
    for theta, x, sizes in epochs:
        assert_same_pairs(theta, x, stored(path))
        assert sum(s < 100 for s in sizes) <= 2  # at most each worker's last batch is short
    assert not np.array_equal(epochs[0][0], epochs[1][0])  # reshuffled between epochs


def test_iterating_in_one_process_yields_every_pair_once(path):
    theta, x, sizes = collect(SimulationDataset(path, batch_size=128, buffer_size=700))
    assert_same_pairs(theta, x, stored(path))
    assert sizes == [128] * (ROWS // 128) + [ROWS % 128]
    _, _, sizes = collect(SimulationDataset(path, batch_size=128, drop_last=True))
    assert sizes == [128] * (ROWS // 128)


def test_the_shuffle_is_reproducible_and_changes_with_the_epoch(path):
    def first_epoch(**kwargs):
        dataset = SimulationDataset(path, batch_size=256, **kwargs)
        return collect(dataset)[0]

    a, b, c = first_epoch(seed=1), first_epoch(seed=1), first_epoch(seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    dataset = SimulationDataset(path, batch_size=256, seed=1)
    dataset.set_epoch(1)
    second = collect(dataset)[0]
    assert not np.array_equal(a, second)
    dataset.set_epoch(1)
    np.testing.assert_array_equal(collect(dataset)[0], second)
    ordered = collect(SimulationDataset(path, batch_size=256, shuffle=False))[0]
    np.testing.assert_array_equal(ordered, stored(path)[0])


def test_the_shuffle_mixes_the_whole_file(path):
    """The first batch of an epoch draws from all over the file, not one region."""

    dataset = SimulationDataset(path, batch_size=500, buffer_size=2000)
    theta = next(iter(dataset))[0].numpy()
    rows = np.flatnonzero(np.isin(stored(path)[0][:, 0], theta[:, 0]))
    assert len(rows) == 500
    assert rows.max() - rows.min() > ROWS / 2
    assert len(np.unique(rows // dataset.segment)) >= 2000 // dataset.segment


def test_memory_is_bounded_by_the_buffer(path, monkeypatch):
    dataset = SimulationDataset(path, batch_size=64, buffer_size=600)
    sizes = []
    read = SimulationDataset.read

    def spy(self, segments, theta, x):
        out = read(self, segments, theta, x)
        sizes.append(len(out[0]))
        return out

    monkeypatch.setattr(SimulationDataset, "read", spy)
    assert sum(len(t) for t, _ in dataset) == ROWS
    assert len(sizes) > 5 and max(sizes) < 600 + dataset.segment + 64


@pytest.mark.parametrize("in_memory", [False, True])
def test_split_ranges_never_overlap_and_are_reproducible(path, in_memory):
    dataset = SimulationDataset(path, batch_size=100, in_memory=in_memory)
    assert len(collect(dataset)[0]) == ROWS  # an in-memory copy of every row, before the split
    train, valid = dataset.split(0.2, seed=3)
    again, other = dataset.split(0.2, seed=3), dataset.split(0.2, seed=4)
    assert abs(valid.rows - 0.2 * ROWS) <= dataset.segment
    assert train.rows + valid.rows == ROWS
    rows = [set(np.concatenate([np.arange(a, b) for a, b in d.segments])) for d in (train, valid)]
    assert not rows[0] & rows[1] and len(rows[0] | rows[1]) == ROWS
    np.testing.assert_array_equal(again[1].segments, valid.segments)
    assert not np.array_equal(other[1].segments, valid.segments)
    theta, x, _ = collect(valid)
    reference_theta, reference_x = stored(path)
    keep = np.concatenate([np.arange(a, b) for a, b in valid.segments])
    assert_same_pairs(theta, x, (reference_theta[keep], reference_x[keep]))


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1e-9, "0.1"])
def test_a_split_that_leaves_a_side_empty_is_refused(path, fraction):
    with pytest.raises((ValueError, TypeError), match=r"validation|segment"):
        SimulationDataset(path).split(fraction)


def test_the_dataset_pickles_without_its_open_file(path):
    dataset = SimulationDataset(path, batch_size=1000, in_memory=True)
    first = collect(dataset)[0]
    assert dataset._file is not None and dataset._memory is not None
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._file is None and copy._memory is None
    copy.set_epoch(0)
    np.testing.assert_array_equal(collect(copy)[0], first)


def test_segments_cover_the_file_in_index_ranges(path):
    # 4096-row chunks, halved until 5000 rows make at least 64 segments: 79 of 64 rows
    for segment, expected in ((None, 64), (100, 50), (60, 60), (7, 7)):
        dataset = SimulationDataset(path, segment=segment)
        starts, stops = dataset.segments.T
        assert dataset.segment == expected
        assert starts[0] == 0 and stops[-1] == ROWS and (starts[1:] == stops[:-1]).all()
        assert (stops - starts).max() == expected
    theta, x, _ = collect(SimulationDataset(path, batch_size=300, segment=7, buffer_size=500))
    assert_same_pairs(theta, x, stored(path))


def test_bad_arguments_and_files_are_refused(tmp_path, path):
    with pytest.raises(ValueError, match="batch_size >= 1"):
        SimulationDataset(path, batch_size=0)
    with pytest.raises(ValueError, match="segment >= 1"):
        SimulationDataset(path, segment=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SimulationDataset(tmp_path / "none.h5")
    (tmp_path / "text.h5").write_text("not a simulation file")
    with pytest.raises(ValueError, match="is not an HDF5 file"):
        SimulationDataset(tmp_path / "text.h5")


# --------------------------------------------------------------------------- shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    paths = [folder / f"shard-{i}.h5" for i in range(3)]
    for i, shard in enumerate(paths):
        write(shard, n=1000 + 100 * i, shard=i, num_shards=3, seed=5)
    return paths


def test_joined_shards_read_back_identically(shards, tmp_path):
    joined = join(shards[::-1], tmp_path / "joined.h5")
    parts = [stored(p) for p in shards]
    theta, x = stored(tmp_path / "joined.h5")
    np.testing.assert_array_equal(theta, np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(x, np.concatenate([p[1] for p in parts]))
    assert joined["rows"] == 3300 and joined["source_shards"] == [0, 1, 2]
    assert joined["simulated"] == sum(info(p, verbose=False)["simulated"] for p in shards)
    loader = DataLoader(SimulationDataset(tmp_path / "joined.h5", 256), None, num_workers=2)
    batches = collect(loader)
    assert_same_pairs(batches[0], batches[1], (theta, x))


def test_shards_hold_distinct_blocks(shards, tmp_path):
    write(tmp_path / "whole.h5", n=2000, seed=5)
    thetas = [stored(p)[0] for p in shards]
    whole = stored(tmp_path / "whole.h5")[0]
    np.testing.assert_array_equal(thetas[0][:512], whole[:512])  # block 0
    np.testing.assert_array_equal(thetas[1][:512], whole[512:1024])  # block 1
    all_rows = np.concatenate(thetas)
    assert len(np.unique(all_rows, axis=0)) == len(all_rows)


def test_a_joined_file_follows_its_shards_when_moved(shards, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for shard in shards:
        shutil.copy(shard, folder)
    join(sorted(folder.glob("shard-*.h5")), folder / "joined.h5")
    moved = shutil.move(folder, tmp_path / "moved")
    assert collect(SimulationDataset(f"{moved}/joined.h5", shuffle=False))[2][-1] > 0
    (tmp_path / "moved" / "shard-1.h5").unlink()
    with pytest.raises(ValueError, match=r"joins shard files that are missing: shard-1\.h5"):
        SimulationDataset(f"{moved}/joined.h5")


def test_files_that_would_duplicate_pairs_are_not_joined(shards, tmp_path):
    write(tmp_path / "same-seed.h5", n=100, seed=5)
    write(tmp_path / "other-seed.h5", n=100, seed=6)
    with pytest.raises(ValueError, match="share the seed 5 but are not distinct shards"):
        join([shards[0], tmp_path / "same-seed.h5"], tmp_path / "joined.h5")
    with pytest.raises(ValueError, match="share the seed 5 but are not distinct shards"):
        join([shards[0], shards[0]], tmp_path / "joined.h5")
    held = join([shards[0], tmp_path / "other-seed.h5"], tmp_path / "joined.h5")
    assert held["rows"] == 1100 and held["source_seeds"] == [5, 6]
    with pytest.raises(ValueError, match=r"exists\. Pass overwrite=True"):
        join([shards[0]], tmp_path / "joined.h5")


def test_files_of_different_campaigns_are_not_joined(shards, tmp_path):
    other = BoxUniform(torch.zeros(2), torch.ones(2))
    simulate(other, 100, tmp_path / "other.h5", simulator=torch.sin, progress=False, seed=9)
    with pytest.raises(ValueError, match="one simulation campaign"):
        join([shards[0], tmp_path / "other.h5"], tmp_path / "joined.h5")
    with pytest.raises(ValueError, match="at least one file"):
        join([], tmp_path / "joined.h5")
    assert not (tmp_path / "joined.h5").exists()
