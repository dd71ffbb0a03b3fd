import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

import sbikit
import simulators
from sbikit.cli import main

SNAPSHOT = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.distributions as D
    import torch.distributions.transforms as T

    def snapshot():
        classes = [getattr(D, n) for n in dir(D) if isinstance(getattr(D, n), type)]
        classes += [getattr(T, n) for n in dir(T) if isinstance(getattr(T, n), type)]
        classes += [torch.Tensor, torch.nn.Module]
        return {
            "attributes": {c.__qualname__: sorted(vars(c)) for c in classes},
            "validate_args": D.Distribution._validate_args,
            "default_dtype": str(torch.get_default_dtype()),
            "grad_enabled": torch.is_grad_enabled(),
            "anomaly": torch.is_anomaly_enabled(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "threads": torch.get_num_threads(),
            "torch_attributes": sorted(vars(torch)),
        }

    before = snapshot()
    import sbikit, sbikit.lazy, sbikit.distributions, sbikit.transforms, sbikit.cli
    after = snapshot()
    json.dump({"same": before == after,
               "diff": [k for k in before if before[k] != after[k]]}, sys.stdout)
    """
)


def run_snapshot(script: str) -> str:
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_leaves_torch_global_state_untouched():
    assert run_snapshot(SNAPSHOT) == '{"same": true, "diff": []}'


def test_snapshot_detects_a_patch_of_torch():
    patched = SNAPSHOT.replace(
        "import sbikit,",
        "T.Transform.call_and_ladj = None; D.Distribution.set_default_validate_args(False)\n"
        "import sbikit,",
    )
    assert run_snapshot(patched) == '{"same": false, "diff": ["attributes", "validate_args"]}'


def test_version_and_packages():
    assert isinstance(sbikit.__version__, str) and sbikit.__version__.count(".") == 2
    assert simulators.__name__ == "simulators"


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"sbikit {sbikit.__version__}"


@pytest.mark.parametrize(
    "command",
    [[os.path.join(sysconfig.get_path("scripts"), "sbikit")], [sys.executable, "-m", "sbikit"]],
)
def test_command_line_entry_points(command):
    result = subprocess.run([*command, "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sbikit {sbikit.__version__}"
