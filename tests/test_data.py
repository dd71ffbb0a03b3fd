"""Tests of sbikit.data's writing side: determinism across workers, executors and
interruptions, resume and append, faults, and errors on bad input.

Expected fault counts are derived from the fault rule, not tuned: the prior's draws of block
k depend only on (seed, k), so a clean simulator run with the same seed and block size
lists every draw, and the rule says which of them the faulty simulator drops.
"""

from __future__ import annotations

import ast
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import simulators
from sbikit.data import info, join, simulate
from sbikit.data.executors import local_pool
from sbikit.data.format import attributes
from sbikit.distributions import BoxUniform, DiagNormal

PRIOR = BoxUniform(torch.zeros(2), torch.ones(2))
N, BLOCK = 1000, 100
RAISE, NAN = 0.05, 0.10  # theta_0 below RAISE raises, below NAN gives NaN: 5 % and 5 %


def features(theta: torch.Tensor) -> torch.Tensor:
    return torch.stack([theta[..., 0].sin(), theta[..., 1] ** 2, theta[..., 0] * theta[..., 1]], -1)


class Faulty:
    """x = features(theta) + 0.01 noise, shape (3,); raises on a batch holding a row with
    theta_0 < raise_below, NaN for the rows with theta_0 < nan_below; hangs (to be killed)
    after ``hang_after`` calls, first touching ``marker``."""

    name = "faulty"

    def __init__(self, raise_below=RAISE, nan_below=NAN, hang_after=None, marker=None):
        self.raise_below, self.nan_below = raise_below, nan_below
        self.hang_after, self.marker, self.calls = hang_after, marker, 0

    def __call__(self, theta, generator=None):
        self.calls += 1
        if self.hang_after is not None and self.calls > self.hang_after:
            Path(self.marker).touch()
            time.sleep(600)
        if (theta[..., 0] < self.raise_below).any():
            raise ValueError(f"theta_0 = {theta[..., 0].min():.3f} is below {self.raise_below}")
        noise = torch.randn((*theta.shape[:-1], 3), generator=generator)
        x = features(theta) + 0.01 * noise
        x[theta[..., 0] < self.nan_below] = torch.nan
        return x


CLEAN = Faulty(raise_below=-1.0, nan_below=-1.0)


def global_rng_simulator(theta):
    """A simulator without a generator argument: torch's and numpy's global generators."""

    return features(theta) + torch.randn(len(theta), 3) + torch.from_numpy(np.random.randn(3))  # noqa: NPY002


def contents(path) -> tuple[bytes, bytes, dict]:
    """The bytes of /theta and /x and the deterministic attributes."""

    with h5py.File(path, "r") as f:
        found = attributes(f)
        found.pop("created")
        return f["theta"][:].tobytes(), f["x"][:].tobytes(), found


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write(path, n=N, simulator=None, **kwargs):
    kwargs = {"seed": 7, "block_size": BLOCK, "progress": False, **kwargs}
    return simulate(PRIOR, n, path, simulator=simulator or Faulty(), **kwargs)


# --------------------------------------------------------------------------- determinism


def test_files_are_identical_for_one_and_two_worker_processes(tmp_path):
    """On the default pool (spawned processes, one torch thread each), started once here for
    two runs; test_no_row_is_missing_or_duplicated lets simulate start its own."""

    task = simulators.get("two_moons")
    one = simulate(task, 3000, tmp_path / "one.h5", seed=3, block_size=500, progress=False)
    write(tmp_path / "faulty-1.h5")
    with local_pool(2) as pool:
        assert pool.submit(torch.get_num_threads).result() == 1
        two = {"executor": pool, "workers": 2, "progress": False}
        simulate(task, 3000, tmp_path / "two.h5", seed=3, block_size=500, **two)
        write(tmp_path / "faulty-2.h5", **two)
    assert one["rows"] == 3000 and one["dropped"] == 0
    assert contents(tmp_path / "one.h5") == contents(tmp_path / "two.h5")
    assert contents(tmp_path / "faulty-1.h5") == contents(tmp_path / "faulty-2.h5")
    assert contents(tmp_path / "one.h5") != contents(tmp_path / "faulty-1.h5")


@pytest.mark.parametrize("simulator", [Faulty(), global_rng_simulator])
def test_files_are_identical_on_a_thread_pool(tmp_path, simulator):
    write(tmp_path / "serial.h5", simulator=simulator)
    with ThreadPoolExecutor(4) as pool:
        write(tmp_path / "threads.h5", simulator=simulator, executor=pool, workers=4)
    assert contents(tmp_path / "serial.h5") == contents(tmp_path / "threads.h5")


def test_the_seed_changes_the_file(tmp_path):
    write(tmp_path / "a.h5")
    write(tmp_path / "b.h5", seed=8)
    assert contents(tmp_path / "a.h5")[1] != contents(tmp_path / "b.h5")[1]


@pytest.mark.parametrize(
    "processes",
    [False, pytest.param(True, marks=pytest.mark.slow)],  # worker processes: 5-15 s to start
)
def test_a_dask_cluster_writes_the_identical_file(tmp_path, processes):
    distributed = pytest.importorskip("distributed")
    write(tmp_path / "local.h5")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        write(tmp_path / "dask.h5", executor=client.get_executor(), workers=2)
    assert contents(tmp_path / "local.h5") == contents(tmp_path / "dask.h5")


# --------------------------------------------------------------------------- resume, append


KILLED = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_data import Faulty, write
    write({path!r}, simulator=Faulty(raise_below=-1.0, hang_after=4, marker={marker!r}))
    """
)


def test_a_killed_run_resumes_to_the_identical_file(tmp_path):
    path, marker = tmp_path / "killed.h5", tmp_path / "hanging"
    script = KILLED.format(tests=str(Path(__file__).parent), path=str(path), marker=str(marker))
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the simulation never reached its fifth block"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert 0 < info(path, verbose=False)["rows"] < N  # killed mid-way, 4 blocks committed

    write(path, simulator=Faulty(raise_below=-1.0))
    write(tmp_path / "reference.h5", simulator=Faulty(raise_below=-1.0))
    assert contents(path) == contents(tmp_path / "reference.h5")


def test_rows_beyond_the_committed_count_are_ignored_and_overwritten(tmp_path):
    path = tmp_path / "crashed.h5"
    write(path, n=450)
    with h5py.File(path, "r+") as f:  # what a crash between writing and committing leaves
        for name in ("theta", "x"):
            f[name].resize(700, axis=0)
            f[name][450:] = -1.0
    assert info(path, verbose=False)["rows"] == 450
    write(path, n=450)  # nothing to simulate: the rows beyond are dropped
    write(tmp_path / "reference-450.h5", n=450)
    assert contents(path) == contents(tmp_path / "reference-450.h5")
    with h5py.File(path, "r+") as f:
        for name in ("theta", "x"):
            f[name].resize(700, axis=0)
            f[name][450:] = -1.0
    write(path)
    write(tmp_path / "reference.h5")
    assert contents(path) == contents(tmp_path / "reference.h5")


@pytest.mark.parametrize("first", [1, 450, 999])
def test_appending_gives_the_file_of_one_run(tmp_path, first):
    path = tmp_path / "appended.h5"
    assert write(path, n=first)["rows"] == first
    held = write(path, n=N)
    write(tmp_path / "reference.h5")
    assert held["rows"] == N
    assert contents(path) == contents(tmp_path / "reference.h5")


def test_a_finished_file_is_left_as_it_is(tmp_path):
    path = tmp_path / "done.h5"
    write(path)
    before = contents(path)
    assert write(path)["rows"] == N
    assert contents(path) == before


def test_no_row_is_missing_or_duplicated(tmp_path):
    """The faulty file holds exactly the valid draws of the clean stream, in order."""

    write(tmp_path / "faulty.h5", n=300)
    write(tmp_path / "faulty.h5", n=N, workers=2)  # resumed on a process pool
    write(tmp_path / "clean.h5", n=2 * N, simulator=CLEAN)
    with h5py.File(tmp_path / "faulty.h5") as f, h5py.File(tmp_path / "clean.h5") as g:
        theta, draws = f["theta"][:], g["theta"][:]
    valid = draws[draws[:, 0] >= NAN]
    assert len(np.unique(theta, axis=0)) == len(theta) == N
    np.testing.assert_array_equal(theta, valid[:N])


# --------------------------------------------------------------------------- faults


def expected_counts(tmp_path, block_size=BLOCK, n=N):
    """The draws of the blocks needed for n valid pairs, and what the fault rule drops."""

    write(tmp_path / "all-draws.h5", n=3 * n, simulator=CLEAN, block_size=block_size)
    with h5py.File(tmp_path / "all-draws.h5") as f:
        draws = f["theta"][:]
    valid = (draws[:, 0] >= NAN).reshape(-1, block_size).sum(axis=1)
    blocks = int(np.searchsorted(np.cumsum(valid), n)) + 1
    used = draws[: blocks * block_size, 0]
    return {
        "simulated": blocks * block_size,
        "dropped_exception": int((used < RAISE).sum()),
        "dropped_nonfinite": int(((used >= RAISE) & (used < NAN)).sum()),
        "dropped_shape": 0,
    }, draws[draws[:, 0] >= NAN][:n]


@pytest.mark.parametrize("vectorized", [True, False])
def test_a_faulty_simulator_drops_and_counts_the_bad_rows(tmp_path, vectorized):
    counts, theta = expected_counts(tmp_path)
    held = write(tmp_path / "faulty.h5", vectorized=vectorized)
    assert {key: held[key] for key in counts} == counts
    assert held["dropped"] == sum(counts.values()) - counts["simulated"] > 0.08 * held["simulated"]
    assert held["rows"] == N
    assert len(held["errors"]) == 5
    assert (
        held["errors"][0].startswith("block 0, row ")
        and "ValueError: theta_0 = 0.0" in held["errors"][0]
    )
    with h5py.File(tmp_path / "faulty.h5") as f:
        np.testing.assert_array_equal(f["theta"][:], theta)
        x = torch.from_numpy(f["x"][:])
    assert torch.isfinite(x).all()
    assert (x - features(torch.from_numpy(theta))).abs().max() < 0.1


class WrongShape:
    """Returns 4 values instead of 3 where theta_1 < 0.1 (one row at a time)."""

    name = "wrong_shape"

    def __call__(self, theta, generator=None):
        return torch.zeros(4 if theta[1] < 0.1 else 3)


def test_rows_of_the_wrong_shape_are_dropped(tmp_path):
    held = write(tmp_path / "shape.h5", simulator=WrongShape(), vectorized=False, n=500)
    write(tmp_path / "clean.h5", n=held["simulated"], simulator=CLEAN)
    with h5py.File(tmp_path / "clean.h5") as f:
        draws = f["theta"][:]
    assert held["dropped_shape"] == (draws[:, 1] < 0.1).sum() > 0
    assert held["dropped"] == held["dropped_shape"] and held["rows"] == 500


def test_the_summary_is_printed_at_the_end(tmp_path, capsys):
    write(tmp_path / "a.h5", progress=True)
    printed = capsys.readouterr().err
    assert "a.h5: 1,000 pairs, theta (2,) float32, x (3,) float32" in printed
    assert "first errors:" in printed and "pair/s" in printed
    write(tmp_path / "b.h5")
    assert capsys.readouterr() == ("", "")


class Breaks:
    """Works once (on the check before the run), then raises on every call."""

    def __init__(self):
        self.calls = 0

    def __call__(self, theta):
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError("the license server is gone")
        return features(theta)


def test_a_simulator_that_fails_on_every_row_stops_early(tmp_path):
    path = tmp_path / "failing.h5"
    with pytest.raises(RuntimeError, match=r"failed on all 3 x 100 draws.*300 raised") as error:
        write(path, simulator=Breaks())
    assert "block 0, row 0: ConnectionError: the license server is gone" in str(error.value)
    assert "Nothing was committed" in str(error.value)
    assert info(path, verbose=False)["rows"] == 0
    assert info(path, verbose=False)["simulated"] == 0


@pytest.mark.parametrize(
    ("simulator", "first"),
    [
        (Faulty(raise_below=2.0), "ValueError: theta_0 = "),
        (Faulty(raise_below=-1.0, nan_below=2.0), "non-finite output"),
    ],
)
def test_a_simulator_that_fails_on_every_probe_is_refused(tmp_path, simulator, first):
    with pytest.raises(ValueError, match=f"every one failed; the first: {first}"):
        write(tmp_path / "a.h5", simulator=simulator)
    assert not (tmp_path / "a.h5").exists()


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "written.h5"
    write(path, n=300)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": 8}, r"seed 7 \(this call: 8\)"),
        ({"block_size": 50}, r"block_size 100 \(this call: 50\)"),
        ({"vectorized": False}, r"vectorized True \(this call: False\)"),
        ({"simulator": global_rng_simulator}, r"simulator 'faulty' \(this call: 'test_data"),
        ({"shard": 0, "num_shards": 2}, r"num_shards 1 \(this call: 2\)"),
        ({"n": 200}, r"num_simulations >= the 300 pairs"),
    ],
)
def test_a_file_written_differently_is_refused_and_left_intact(written, change, message):
    before = digest(written)
    with pytest.raises(ValueError, match=message) as error:
        write(written, **change)
    assert "overwrite=True" in str(error.value)
    assert digest(written) == before


def test_a_file_of_other_shapes_or_prior_is_refused(written):
    before = digest(written)
    with pytest.raises(ValueError, match=r"theta shape \(2,\) \(this call: \(3,\)\)"):
        simulate(BoxUniform(torch.zeros(3), torch.ones(3)), N, written, simulator=Faulty(), seed=7)
    with pytest.raises(ValueError, match=r"prior 'BoxUniform.*\(this call: 'DiagNormal"):
        simulate(DiagNormal(torch.ones(2), torch.ones(2)), N, written, simulator=Faulty(), seed=7)
    task = simulators.get("slcp")
    with pytest.raises(ValueError, match=r"simulator 'faulty' \(this call: 'slcp'\)"):
        simulate(task, N, written, seed=7, block_size=BLOCK)
    assert digest(written) == before


def test_overwrite_replaces_the_file(written):
    held = write(written, seed=8, n=200, overwrite=True)
    assert held["rows"] == 200 and held["seed"] == 8


def test_a_missing_directory_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"directory .*missing' does not exist"):
        write(tmp_path / "missing" / "a.h5")
    with pytest.raises(ValueError, match="is a directory"):
        write(tmp_path)


def test_a_prior_that_does_not_fit_the_simulator_is_refused(tmp_path):
    task = simulators.get("two_moons")
    prior = DiagNormal(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match=r"prior \(shape \(3,\)\), and every one failed"):
        simulate(prior, N, tmp_path / "a.h5", simulator=task.simulate, progress=False)
    with pytest.raises(ValueError, match=r"returned shape \(3,\).*vectorized=False"):
        simulate(PRIOR, N, tmp_path / "a.h5", simulator=lambda theta: torch.ones(3))
    with pytest.raises(ValueError, match=r"event shape \(D,\) and batch shape \(\)"):
        simulate(torch.distributions.Normal(0.0, 1.0), N, tmp_path / "a.h5", simulator=torch.sin)
    assert not (tmp_path / "a.h5").exists()


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"n": 0}, ValueError, "num_simulations >= 1"),
        ({"seed": -1}, ValueError, "seed >= 0"),
        ({"block_size": 1.5}, TypeError, "block_size to be an int"),
        ({"workers": 0}, ValueError, "workers >= 1"),
        ({"executor": "dask"}, TypeError, "concurrent.futures.Executor"),
        ({"shard": 1}, ValueError, "shard and num_shards together"),
        ({"shard": 2, "num_shards": 2}, ValueError, "0 <= shard < num_shards"),
        ({"simulator": "model"}, TypeError, "simulator to be a callable"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, arguments, error, message):
    simulator = arguments.pop("simulator", None)
    with pytest.raises(error, match=message):
        if simulator is None:
            write(tmp_path / "a.h5", **arguments)
        else:
            simulate(PRIOR, N, tmp_path / "a.h5", simulator=simulator)
    assert not (tmp_path / "a.h5").exists()


def test_a_task_is_taken_by_its_interface(tmp_path):
    with pytest.raises(TypeError, match="brings its own simulator"):
        simulate(simulators.get("two_moons"), N, tmp_path / "a.h5", simulator=Faulty())
    with pytest.raises(TypeError, match=r"a prior .* or a task"):
        simulate("two_moons", N, tmp_path / "a.h5")


def corrupt(path: Path, kind: str) -> None:
    if kind == "not HDF5":
        path.write_bytes(b"theta,x\n" * 100)
    elif kind == "truncated":
        write(path, n=300)
        path.write_bytes(path.read_bytes()[:4000])
    elif kind == "foreign":
        with h5py.File(path, "w") as f:
            f["data"] = np.zeros((10, 2))
    elif kind == "newer":
        write(path, n=300)
        with h5py.File(path, "r+") as f:
            f.attrs["format_version"] = 99


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("not HDF5", "is not an HDF5 file"),
        ("truncated", "HDF5 reports .* corrupted"),
        ("foreign", "foreign HDF5 file"),
        ("newer", "format version 99, newer"),
    ],
)
def test_corrupted_and_foreign_files_give_a_clear_error(tmp_path, kind, message):
    path = tmp_path / "bad.h5"
    corrupt(path, kind)
    before = digest(path)
    with pytest.raises(ValueError, match=message):
        write(path)
    with pytest.raises(ValueError, match=message):
        info(path)
    assert digest(path) == before
    assert write(path, overwrite=True)["rows"] == N


def test_info_prints_what_a_file_holds(written, capsys):
    held = info(written)
    printed = capsys.readouterr().out
    assert held["rows"] == 300 and held["theta_shape"] == (2,) and held["x_shape"] == (3,)
    assert held["seed"] == 7 and held["simulator"] == "faulty" and held["format_version"] == 1
    assert held["torch_version"] == str(torch.__version__) and "created" in held
    assert "written.h5: 300 pairs, theta (2,) float32, x (3,) float32" in printed
    assert f"{held['dropped_exception']} raised, {held['dropped_nonfinite']} NaN or inf" in printed
    with pytest.raises(FileNotFoundError, match="does not exist"):
        info(written.parent / "none.h5")


def test_a_joined_file_cannot_be_extended(tmp_path):
    write(tmp_path / "a.h5", n=300)
    join([tmp_path / "a.h5"], tmp_path / "joined.h5")
    with pytest.raises(ValueError, match="it joins shard files"):
        write(tmp_path / "joined.h5")


# --------------------------------------------------------------------------- layering


def test_the_data_package_imports_nothing_above_distributions():
    allowed = {"__future__", "torch", "numpy", "h5py", "tqdm", *sys.stdlib_module_names}
    for module in Path(__file__).parents[1].glob("sbikit/data/*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom):  # relative: within data, or sbikit's helpers
                assert node.level == 1 or node.module in (None, "_validation"), module
                continue
            else:
                continue
            assert all(name.split(".")[0] in allowed for name in names), (module, names)
