import ctypes
import os
import subprocess
import sys

import pytest

from sbikit.utils import keep_freed_memory


def has_glibc():
    try:
        return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    except (OSError, TypeError):
        return False


# Draws of a flow with 128 hidden units, smallest first: with glibc's adaptive thresholds,
# their buffers (1 to 10 MB) keep going back to the system and faulting in again.
FAULTS_PER_DRAW = """
import resource, sys
import torch
import sbikit
from sbikit.flows import NSF

torch.set_num_threads(1)
if sys.argv[1] == "keep":
    assert sbikit.utils.keep_freed_memory()
torch.manual_seed(0)
q = NSF(2, context=3)(torch.zeros(3))
sizes = (2000, 4000, 10000, 3000, 20000)
with torch.no_grad():
    for n in sizes:
        q.sample((n,))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        for n in sizes:
            q.sample((n,))
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (3 * len(sizes)))
"""


def faults_per_draw(mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_DRAW, mode], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout)


@pytest.mark.skipif(not has_glibc(), reason="the thresholds are glibc's")
def test_kept_memory_is_reused_without_page_faults():
    # A draw of 10^4 samples touches about 10^4 pages of fresh buffers. Without kept memory,
    # 980 to 2570 of them fault per draw, depending on where the heap happens to lie; with it,
    # at most 8. Each bound is more than three times away from what was observed.
    assert faults_per_draw("keep") < 100
    assert faults_per_draw("default") > 300


def test_the_users_own_allocator_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert keep_freed_memory() is False
