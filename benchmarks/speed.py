r"""Speed of sbikit against its peers, measured side by side in one run.

It runs the speed measurements of four benchmarks of this folder in one process, each
with sbikit and, when it is installed, the peer that does the same work:

    flows        flows.py: conditional MAF and NSF, train step, sampling, log_prob (zuko);
    data         data.py: simulating pairs into HDF5 and shuffled epochs over it (lampe);
    npe          npe.py: NPE training and sampling on the same simulations (sbi);
    diagnostics  diagnostics.py: SBC + expected coverage on one posterior (sbi's run_sbc);

and prints one table: the sbikit figure, the peer's, and sbikit / peer (below 1 sbikit is
faster). A figure is a median over interleaved repeats where the benchmark repeats (flows,
data epochs), otherwise one run. Accuracy is not measured here: the NPE rows train with a
capped number of epochs under ``--quick`` and no C2ST is computed; see accuracy.py.

The machine (CPU, cores, threads, load, versions of torch, sbikit and the peers) is printed
first and recorded with every figure by ``--json``; ``--markdown`` writes the table.

This is a benchmark, not a test: nothing is asserted about the timings.

Usage::

    python benchmarks/speed.py --quick --threads 1      # under 10 minutes on 2 cores
    python benchmarks/speed.py --threads 1 --json speed.json --markdown speed.md
    python benchmarks/speed.py --quick --skip npe diagnostics
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from machine import machine_info, machine_line  # benchmarks/machine.py

PEERS = ("zuko", "lampe", "sbi")
AREAS = {"flows": "zuko", "data": "lampe", "npe": "sbi", "diagnostics": "sbi"}
r"""The areas, in the order they run, and the peer each is compared with."""


def benchmark(area: str) -> ModuleType:
    r"""Imports this folder's benchmark script of ``area``."""

    return importlib.import_module(area)


def notes(areas: Sequence[str], quick: bool) -> list[str]:
    r"""What the rows of each area measure, in one line each."""

    lines = []
    if "npe" in areas:
        settings = benchmark("npe").QUICK if quick else {}
        tasks = ", ".join(settings.get("tasks", ("two_moons", "slcp")))
        simulations = settings.get("simulations", 10_000)
        if settings.get("max_epochs"):
            training = (
                f"training capped at {settings['max_epochs']} epochs for both libraries "
                f"(sbikit fit(epochs={settings['max_epochs']}), sbi max_num_epochs), so the "
                "posteriors are not converged"
            )
        else:
            training = "training to early stopping (each library's defaults)"
        lines.append(
            f"npe: {tasks}, {simulations:,} simulations, {training}; no C2ST here "
            "(accuracy: benchmarks/accuracy.py)"
        )
    if "diagnostics" in areas:
        lines.append(
            "diagnostics: untrained posteriors (the cost of a draw does not depend on the "
            "weights); sbi's statistics row (*) is its run_sbc time minus sbikit's draws"
        )
    return lines


def figure(row: dict[str, Any] | None) -> str:
    r"""A row's figure as text: seconds or milliseconds with 3 digits, and its detail."""

    if row is None:
        return "-"
    seconds = row.get("seconds")
    if seconds is None:
        return "skipped" if "skipped" in row else "-"
    value, unit = (seconds, "s") if seconds >= 1 else (seconds * 1e3, "ms")
    text = f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    if row.get("derived"):
        text += " *"
    if "detail" in row:
        text += f" ({row['detail']})"
    return text


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r"""One line per area and operation: the sbikit row, the peer's and their ratio."""

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["area"], row["operation"]), []).append(row)
    lines = []
    for (area, operation), group in groups.items():
        ours = next((r for r in group if r["library"] == "sbikit"), None)
        theirs = next((r for r in group if r["library"] != "sbikit"), None)
        a = ours and ours.get("seconds")
        b = theirs and theirs.get("seconds")
        lines.append(
            {
                "area": area,
                "operation": operation,
                "sbikit": figure(ours),
                "peer": theirs["library"] if theirs else "-",
                "peer figure": figure(theirs) if theirs else "-",
                "sbikit/peer": f"{a / b:.2f}" if a and b else "-",
                "sbikit_seconds": a,
                "peer_seconds": b,
                "ratio": a / b if a and b else None,
            }
        )
    return lines


COLUMNS = ("area", "operation", "sbikit", "peer", "peer figure", "sbikit/peer")
FIGURES = ("sbikit_seconds", "peer_seconds", "ratio")


def text_table(lines: list[dict[str, Any]]) -> str:
    r"""The comparison as aligned text, the figures right-aligned."""

    cells = [list(COLUMNS), *([line[c] for c in COLUMNS] for line in lines)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    out = []
    for i, row in enumerate(cells):
        out.append(
            "  ".join(
                cell.ljust(w) if j in (0, 1, 3) else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(lines: list[dict[str, Any]], header: Sequence[str]) -> str:
    r"""The comparison as a Markdown table, after the lines of ``header``."""

    out = [
        *header,
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    out += ["| " + " | ".join(line[c] for c in COLUMNS) + " |" for line in lines]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="the small sizes of each benchmark (minutes)"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--skip", nargs="+", default=[], choices=list(AREAS), metavar="AREA",
                        help=f"areas not to run, among {', '.join(AREAS)}")  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="write every figure and the machine")
    parser.add_argument("--markdown", metavar="PATH", help="write the table")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"expects --threads >= 1, but received {args.threads}")
        torch.set_num_threads(args.threads)
    areas = [area for area in AREAS if area not in args.skip]

    info = machine_info(peers=PEERS) | {"date": datetime.date.today().isoformat()}
    print(machine_line(info, peers=PEERS))
    print(
        f"{'quick' if args.quick else 'full'} run | areas {', '.join(areas) or 'none'} | "
        "sbikit/peer below 1: sbikit is faster"
    )
    for line in notes(areas, args.quick):
        print(line)
    print(flush=True)

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    for area in areas:
        begin = time.perf_counter()
        print(f"[{begin - started:5.0f} s] {area}", file=sys.stderr, flush=True)
        try:
            rows += benchmark(area).measure(args.quick)
        except Exception:  # one failing area does not lose the figures of the others
            errors[area] = traceback.format_exc()
            print(errors[area], file=sys.stderr, flush=True)
        seconds[area] = time.perf_counter() - begin
        gc.collect()

    lines = compare(rows)
    print(text_table(lines))
    if any(row.get("derived") for row in rows):
        print("* derived: sbi's run_sbc time minus sbikit's draws and densities")
    for area, error in errors.items():
        print(f"{area} failed: {error.strip().splitlines()[-1]}")
    info["total_s"] = time.perf_counter() - started
    info["area_s"] = seconds
    info["load_average_end"] = machine_info()["load_average"]
    print(
        f"\ntotal {info['total_s'] / 60:.1f} min ("
        + ", ".join(f"{area} {s:.0f} s" for area, s in seconds.items())
        + f") | load average at the end {info['load_average_end']}"
    )

    if args.json:
        payload = {
            "machine": info,
            "settings": {"quick": args.quick, "threads": torch.get_num_threads(), "areas": areas},
            "notes": notes(areas, args.quick),
            "comparison": [
                {key: line[key] for key in ("area", "operation", "peer", *FIGURES)}
                for line in lines
            ],
            "rows": rows,
            "errors": errors,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")
    if args.markdown:
        header = [
            f"{machine_line(info, peers=PEERS)} | {info['date']}",
            "",
            f"{'Quick' if args.quick else 'Full'} run of `python benchmarks/speed.py`; "
            "sbikit/peer below 1: sbikit is faster.",
            *(f"- {line}" for line in notes(areas, args.quick)),
        ]
        Path(args.markdown).write_text(markdown_table(lines, header))
        print(f"wrote {args.markdown}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
