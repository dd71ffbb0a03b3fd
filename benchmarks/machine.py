r"""The machine and the library versions a benchmark's figures were measured with, and the
process's memory setting.

Every benchmark records :func:`machine_info` with its results and prints
:func:`machine_line` first, so that a figure is never separated from where it came from.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

import sbikit
from sbikit.utils import keep_freed_memory


def cpu_model() -> str:
    r"""The CPU model from /proc/cpuinfo, or :func:`platform.processor`."""

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def version(package: str) -> str | None:
    r"""The version of an installed package, or ``None`` when it is not installed."""

    try:
        return getattr(importlib.import_module(package), "__version__", "unknown")
    except ImportError:
        return None


def machine_info(peers: tuple[str, ...] = ()) -> dict[str, Any]:
    r"""The CPU, cores, load, Python, torch and sbikit versions, and those of ``peers``."""

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "load_average": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sbikit": sbikit.__version__,
        **{peer: version(peer) for peer in peers},
    }


def machine_line(info: dict[str, Any], peers: tuple[str, ...] = ()) -> str:
    r"""One line for the top of a benchmark's output."""

    versions = "".join(f" | {peer} {info.get(peer) or 'not installed'}" for peer in peers)
    return (
        f"machine: {info['cpu']} | {info['cores']} cores ({info['usable_cores']} usable, "
        f"torch threads {info['torch_threads']}) | load {info['load_average']} | "
        f"python {info['python']} | torch {info['torch']} | sbikit {info['sbikit']}{versions}"
    )


def write_results(path: str | Path, machine: dict[str, Any], results: Any, **extra: Any) -> None:
    r"""Writes a benchmark's results as JSON, with the machine they were measured on and any
    ``extra`` entries (e.g. ``settings``)."""

    payload = {"machine": machine, **extra, "results": results}
    Path(path).write_text(json.dumps(payload, indent=1))


def add_memory_option(parser: argparse.ArgumentParser) -> None:
    r"""Adds ``--keep-freed-memory``, which :func:`keep_memory_if_asked` acts on."""

    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="call sbikit.utils.keep_freed_memory() first (the whole process: every library)",
    )


def keep_memory_if_asked(args: argparse.Namespace) -> None:
    r"""Calls :func:`sbikit.utils.keep_freed_memory` if ``--keep-freed-memory`` was given,
    and says so when it could not."""

    if args.keep_freed_memory and not keep_freed_memory():
        print("keep_freed_memory() did nothing here (not glibc, or MALLOC_* set)", flush=True)
