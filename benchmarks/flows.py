r"""Speed of sbikit's conditional MAF and NSF, side by side with zuko when it is installed.

For each flow (MAF, NSF; 5 transforms, hidden features (64, 64), a context of 8 features,
as in neural posterior estimation) and each number of features D, it times

    (a) train   one training step: batch 256, -log_prob(x | c).mean(), backward, Adam step;
    (b) sample  flow(c).sample((10000,)) for one context vector c of shape (8,);
    (c) sample  flow(c).sample((1000,)) for a batch of 100 contexts, c of shape (100, 8);
    (d) lprob   flow(c).log_prob(x) for 10000 (x, c) pairs;
    (e) floor   the hyper-networks alone: the masked MLPs of the 5 transforms applied to
                [x, c] with a sum loss, backward and Adam step (the floor of (a)).

sbikit and zuko (``pip install zuko``, or ``pip install -e ".[bench]"``) are built with the
same configuration in the same process and timed interleaved: warm-up calls first, then the
two libraries alternate on every repeat (which one goes first alternates too), each call
timed with :func:`time.perf_counter`; the figure is the median over the repeats. Sampling
and log_prob run under :func:`torch.no_grad`. The number of threads is torch's default.

It also counts, for one ``sample()`` call, the hyper-network evaluations and the
masked-weight products (``weight * mask``) of each autoregressive transform: an exact
inverse needs D evaluations per transform.

This is a benchmark, not a test: nothing is asserted about the timings.

Usage::

    python benchmarks/flows.py                      # full run (minutes to tens of minutes)
    python benchmarks/flows.py --quick              # D in (2, 10), smaller sizes, ~1-2 min
    python benchmarks/flows.py --repeats 9 --dims 2 10 32 --json flows.json
    python benchmarks/flows.py --no-zuko            # sbikit only
    python benchmarks/flows.py --skip NSF:32:sample_many:zuko  # leave out a row
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn
from machine import machine_info, machine_line  # benchmarks/machine.py
from torch.overrides import TorchFunctionMode

import sbikit.flows

try:
    import zuko
    import zuko.flows
except ImportError:  # the optional peer: only the sbikit columns then
    zuko = None

TRANSFORMS = 5
HIDDEN = (64, 64)
CONTEXT = 8
BINS = 8
LIBRARIES = ("sbikit", "zuko")
SCALE = 10  # the memory probe of an operation runs it on 1/SCALE of its draws or points


@dataclass
class Sizes:
    r"""The workload of each operation."""

    batch: int = 256  # (a), (e)
    draws_one: int = 10000  # (b)
    contexts: int = 100  # (c)
    draws_each: int = 1000  # (c)
    points: int = 10000  # (d)


@dataclass
class Row:
    r"""The timings of one operation of one configuration, in milliseconds."""

    flow: str
    features: int
    operation: str
    key: str
    times_ms: dict[str, list[float]] = field(default_factory=dict)

    def median(self, library: str) -> float | None:
        times = self.times_ms.get(library)
        return statistics.median(times) if times else None

    def spread(self, library: str) -> float | None:
        r"""The interquartile range over the median (a noise figure)."""

        times = self.times_ms.get(library)
        if not times or len(times) < 3:
            return None
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
        return (q3 - q1) / statistics.median(times)

    def ratio(self) -> float | None:
        s, z = self.median("sbikit"), self.median("zuko")
        return s / z if s is not None and z else None


# --------------------------------------------------------------------------- flows


def build(library: str, flow: str, features: int, seed: int) -> nn.Module:
    r"""The conditional flow ``flow`` of ``library`` with the benchmark's configuration."""

    module = sbikit.flows if library == "sbikit" else zuko.flows
    kwargs: dict[str, Any] = {"transforms": TRANSFORMS, "hidden_features": HIDDEN}
    if flow == "NSF":
        kwargs["bins"] = BINS
    torch.manual_seed(seed)
    return getattr(module, flow)(features, CONTEXT, **kwargs)


def hyper_networks(flow: nn.Module) -> list[nn.Module]:
    r"""The masked MLPs of the flow's autoregressive transforms (``.hyper`` in both
    libraries)."""

    networks = [m.hyper for m in flow.modules() if isinstance(getattr(m, "hyper", None), nn.Module)]
    if not networks:
        raise RuntimeError(f"no hyper-network found in {type(flow).__name__}")
    return networks


# --------------------------------------------------------------------------- operations


def operations(
    flow: nn.Module, features: int, sizes: Sizes, seed: int
) -> dict[str, Callable[[], object]]:
    r"""The timed callables (a) to (e) of one flow; the data are drawn from ``seed`` so that
    both libraries see the same tensors."""

    g = torch.Generator().manual_seed(seed)
    x_train = torch.randn(sizes.batch, features, generator=g)
    c_train = torch.randn(sizes.batch, CONTEXT, generator=g)
    c_one = torch.randn(CONTEXT, generator=g)
    c_many = torch.randn(sizes.contexts, CONTEXT, generator=g)
    x_points = torch.randn(sizes.points, features, generator=g)
    c_points = torch.randn(sizes.points, CONTEXT, generator=g)

    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4)
    networks = hyper_networks(flow)
    floor_optimizer = torch.optim.Adam([p for net in networks for p in net.parameters()], lr=1e-4)
    inputs = torch.cat((x_train, c_train), dim=-1)

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = -flow(c_train).log_prob(x_train).mean()
        loss.backward()
        optimizer.step()

    def floor() -> None:
        floor_optimizer.zero_grad(set_to_none=True)
        loss = sum(net(inputs).sum() for net in networks)
        loss.backward()
        floor_optimizer.step()

    def sample_one() -> torch.Tensor:
        with torch.no_grad():
            return flow(c_one).sample((sizes.draws_one,))

    def sample_many() -> torch.Tensor:
        with torch.no_grad():
            return flow(c_many).sample((sizes.draws_each,))

    def log_prob() -> torch.Tensor:
        with torch.no_grad():
            return flow(c_points).log_prob(x_points)

    return {
        "train": train,
        "floor": floor,
        "sample_one": sample_one,
        "sample_many": sample_many,
        "log_prob": log_prob,
    }


def labels(sizes: Sizes) -> dict[str, str]:
    return {
        "train": f"(a) train step, batch {sizes.batch}",
        "floor": f"(e) hyper floor, batch {sizes.batch}",
        "sample_one": f"(b) sample {sizes.draws_one}, 1 context",
        "sample_many": f"(c) sample {sizes.draws_each} x {sizes.contexts} contexts",
        "log_prob": f"(d) log_prob {sizes.points} pairs",
    }


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(f: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    r"""Runs ``f`` once and returns its time in seconds: wall time by default, or the
    process's CPU time with ``clock=time.process_time``."""

    gc.collect()
    start = clock()
    f()
    return clock() - start


def interleaved(
    calls: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    r"""Times the callables alternately: ``warmup`` untimed rounds, then ``repeats`` rounds
    in which each callable runs once, the order reversed every other round."""

    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(timed(calls[name], clock))
    return times


# --------------------------------------------------------------------------- memory


def reset_peak_memory() -> bool:
    r"""Resets the peak resident memory of this process (Linux), or returns False."""

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory() -> int | None:
    r"""The peak resident memory of this process in bytes (Linux ``VmHWM``), or None."""

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> int | None:
    r"""The memory available to new allocations in bytes (Linux ``MemAvailable``), or None."""

    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_estimate(small: Callable[[], object], scale: float) -> int | None:
    r"""Extrapolates the peak memory of an operation from one run of a ``scale`` times
    smaller one (memory grows linearly with the number of draws or points), or None where
    the peak cannot be measured."""

    gc.collect()
    before = peak_memory()
    if before is None or not reset_peak_memory():
        return None
    base = peak_memory()
    small()
    peak = peak_memory()
    if base is None or peak is None:
        return None
    return int(max(peak - base, 0) * scale)


# --------------------------------------------------------------------------- counting


class MaskProducts(TorchFunctionMode):
    r"""Counts the element-wise products that involve one of the given mask tensors."""

    products: ClassVar[frozenset] = frozenset(
        {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__}
    )

    def __init__(self, masks: Sequence[torch.Tensor]):
        super().__init__()
        self.ids = {id(m) for m in masks}
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.products and any(id(a) in self.ids for a in args):
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_evaluations(library: str, flow: nn.Module, features: int) -> dict[str, Any]:
    r"""Counts the hyper-network evaluations and masked-weight products of one
    ``flow(c).sample((10,))`` call, by wrapping each autoregressive transform's ``meta``
    (the function that evaluates its hyper-network)."""

    masks = [b for name, b in flow.named_buffers() if name.endswith("mask")]
    with torch.no_grad():
        with MaskProducts(masks) as mode:
            distribution = flow(torch.randn(CONTEXT))
            built = mode.count  # products done when building the distribution
            counters: list[list[int]] = []
            for t in getattr(distribution.transform, "transforms", [distribution.transform]):
                meta = getattr(t, "meta", None)
                if meta is None:
                    continue
                n = [0]

                def wrapped(*args, _meta=meta, _n=n, **kwargs):
                    _n[0] += 1
                    return _meta(*args, **kwargs)

                t.meta = wrapped
                counters.append(n)
            distribution.sample((10,))
    per_transform = [n[0] for n in counters]
    return {
        "library": library,
        "evaluations_per_transform": per_transform,
        "evaluations": sum(per_transform),
        "mask_products": mode.count,
        "mask_products_at_build": built,
        "expected_per_transform": features,
    }


# --------------------------------------------------------------------------- measure

KEYS = ("train", "floor", "sample_one", "sample_many", "log_prob")
DIMS, QUICK_DIMS = (2, 10, 32), (2, 10)


def workload(quick: bool) -> Sizes:
    r"""The workload of each operation: the full one, or the smaller one of ``--quick``."""

    if quick:
        return Sizes(draws_one=2000, contexts=100, draws_each=100, points=2000)
    return Sizes()


def library_names(peer: bool = True) -> tuple[str, ...]:
    r"""The libraries to time: sbikit, and zuko when ``peer`` and it is installed."""

    return LIBRARIES if peer and zuko is not None else ("sbikit",)


def measure(
    quick: bool = False,
    *,
    peer: bool = True,
    dims: Sequence[int] | None = None,
    flows: Sequence[str] = ("MAF", "NSF"),
    repeats: int | None = None,
    warmup: int = 1,
    clock: str = "wall",
    skip: Sequence[str] = (),
    seed: int = 0,
) -> list[dict[str, Any]]:
    r"""Times the operations (a) to (e) of each flow and number of features, for sbikit
    and, when ``peer`` and zuko is installed, for zuko, interleaved, on torch's current
    number of threads. Progress goes to stderr.

    Arguments:
        quick: The smaller workload and, by default, D in (2, 10) and 3 repeats.
        peer: Whether to time zuko too.
        dims: The numbers of features D (default (2, 10, 32), quick (2, 10)).
        flows: Among "MAF" and "NSF".
        repeats: The timed repeats (default 5, quick 3).
        warmup: The untimed calls before.
        clock: "wall" (:func:`time.perf_counter`) or "cpu" (:func:`time.process_time`).
        skip: Rows not to run, as ``FLOW:D:OPERATION:LIBRARY``.
        seed: The seed of the weights and of the data.

    Returns:
        One dict per operation and library: ``area`` ("flows"), ``operation`` (the same
        label for every library), ``library``, ``seconds`` (the median over the repeats,
        ``None`` for a skipped library), ``times_s`` (every repeat), ``flow``,
        ``features``, ``key``, ``label`` and, for a skipped library, ``skipped`` (why).
    """

    sizes = workload(quick)
    dims = list(dims or (QUICK_DIMS if quick else DIMS))
    repeats = repeats or (3 if quick else 5)
    names = labels(sizes)
    small = Sizes(
        batch=sizes.batch,
        draws_one=max(sizes.draws_one // SCALE, 1),
        contexts=sizes.contexts,
        draws_each=max(sizes.draws_each // SCALE, 1),
        points=max(sizes.points // SCALE, 1),
    )
    timed_libraries = library_names(peer)
    measurements: list[dict[str, Any]] = []
    start = time.perf_counter()
    for features in dims:
        for flow_name in flows:
            built = {lib: build(lib, flow_name, features, seed) for lib in timed_libraries}
            calls = {lib: operations(built[lib], features, sizes, seed + 1) for lib in built}
            probes = {lib: operations(built[lib], features, small, seed + 1) for lib in built}
            for key in KEYS:
                row = {
                    "area": "flows",
                    "operation": f"{flow_name} D={features} {names[key]}",
                    "flow": flow_name,
                    "features": features,
                    "key": key,
                    "label": names[key],
                }
                runnable, skipped = {}, {}
                for lib in timed_libraries:
                    if f"{flow_name}:{features}:{key}:{lib}" in skip:
                        skipped[lib] = f"{row['operation']}: {lib} skipped (--skip)"
                        continue
                    # A library whose peak memory for this row would not fit is skipped
                    # (zuko's inverse keeps every pass alive in reference cycles until the
                    # garbage collector runs, tens of GB for NSF at D=32 with 100 contexts).
                    need = (
                        memory_estimate(probes[lib][key], SCALE)
                        if key in ("sample_one", "sample_many", "log_prob")
                        else None
                    )
                    free = available_memory()
                    if need is not None and free is not None and need > 0.8 * free:
                        skipped[lib] = (
                            f"{row['operation']}: {lib} skipped, it would need about "
                            f"{need / 2**30:.1f} GiB ({free / 2**30:.1f} GiB available)"
                        )
                        print(f"  {skipped[lib]}", file=sys.stderr, flush=True)
                        continue
                    runnable[lib] = calls[lib][key]
                times = interleaved(runnable, repeats, warmup, CLOCKS[clock])
                for lib in timed_libraries:
                    if lib in skipped:
                        measurements.append(
                            row | {"library": lib, "seconds": None, "skipped": skipped[lib]}
                        )
                    else:
                        median = statistics.median(times[lib])
                        measurements.append(
                            row | {"library": lib, "seconds": median, "times_s": times[lib]}
                        )
                cells = ", ".join(
                    f"{lib} {fmt_ms(statistics.median(t) * 1e3)} ms" for lib, t in times.items()
                )
                print(
                    f"  [{time.perf_counter() - start:6.0f} s] {row['operation']}: {cells}",
                    file=sys.stderr,
                    flush=True,
                )
            del built, calls, probes
            gc.collect()
    return measurements


def as_rows(measurements: list[dict[str, Any]]) -> list[Row]:
    r"""The measurements of :func:`measure` gathered into one :class:`Row` per operation."""

    rows: dict[tuple[str, int, str], Row] = {}
    for m in measurements:
        key = (m["flow"], m["features"], m["key"])
        row = rows.setdefault(key, Row(m["flow"], m["features"], m["label"], m["key"]))
        if m["seconds"] is not None:
            row.times_ms[m["library"]] = [t * 1e3 for t in m["times_s"]]
    return list(rows.values())


# --------------------------------------------------------------------------- report


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(rows: list[Row], libraries: Sequence[str]) -> str:
    header = ["flow", "D", "operation", *(f"{lib} ms" for lib in libraries)]
    if "zuko" in libraries:
        header.append("sbikit/zuko")
    header.append("noise (IQR/med)")
    lines = [header]
    for row in rows:
        line = [row.flow, str(row.features), row.operation]
        line += [fmt_ms(row.median(lib)) if lib in row.times_ms else "skipped" for lib in libraries]
        if "zuko" in libraries:
            ratio = row.ratio()
            line.append(f"{ratio:.2f}" if ratio is not None else "-")
        spreads = [s for lib in libraries if (s := row.spread(lib)) is not None]
        line.append(f"{max(spreads):.0%}" if spreads else "-")
        lines.append(line)
        if row.key == "floor":  # the (a) / (e) ratio, right after the floor
            train = next(
                r
                for r in rows
                if r.key == "train" and r.flow == row.flow and r.features == row.features
            )
            line = [row.flow, str(row.features), "    (a)/(e) train / floor"]
            ratios = []
            for lib in libraries:
                t, f = train.median(lib), row.median(lib)
                ratios.append(t / f if t is not None and f else None)
                line.append(f"x{ratios[-1]:.2f}" if ratios[-1] is not None else "-")
            if "zuko" in libraries:
                s, z = ratios[0], ratios[-1]
                line.append(f"{s / z:.2f}" if s is not None and z else "-")
            line.append("")
            lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        cells = [
            cell.ljust(w) if j < 3 else cell.rjust(w)
            for j, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def counts_table(counts: list[dict[str, Any]]) -> str:
    lines = [
        "hyper-network evaluations per sample() call (meta calls; exact inverse: D per "
        "transform) and masked-weight products (weight * mask), building included:"
    ]
    for c in counts:
        lines.append(
            f"  {c['flow']:<4} D={c['features']:<3} {c['library']:<7} "
            f"evaluations {c['evaluations']:>4} = {c['evaluations_per_transform']} "
            f"(expected {c['expected_per_transform']} per transform), "
            f"mask products {c['mask_products']:>4} ({c['mask_products_at_build']} when "
            f"building flow(c))"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time sbikit's conditional MAF and NSF (and zuko's, when installed).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="D in (2, 10), 3 repeats and smaller workloads (about 1-2 minutes)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up calls (default 1)")
    parser.add_argument("--dims", type=int, nargs="+", default=None, help="default 2 10 32")
    parser.add_argument("--flows", nargs="+", default=["MAF", "NSF"], choices=["MAF", "NSF"])
    parser.add_argument("--no-zuko", action="store_true", help="time sbikit only")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) before timing (default: torch's default, untouched)",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: time.perf_counter (default); cpu: time.process_time, which with "
        "--threads 1 is robust to other processes sharing the cores",
    )
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        metavar="FLOW:D:OPERATION:LIBRARY",
        help="rows not to run, e.g. NSF:32:sample_many:zuko (zuko needs more than 24 GB there)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="write all figures to a JSON file")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.dims is None:
        args.dims = list(QUICK_DIMS if args.quick else DIMS)
    if args.repeats < 1 or args.warmup < 0 or min(args.dims) < 2:
        parser.error("expects --repeats >= 1, --warmup >= 0 and every --dims >= 2")
    if args.threads is not None and args.threads < 1:
        parser.error(f"expects --threads >= 1, but received {args.threads}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    libraries = library_names(not args.no_zuko)
    sizes = workload(args.quick)

    info = machine_info(peers=("zuko",))
    print(machine_line(info, peers=("zuko",)))
    print(
        f"flows: {', '.join(args.flows)} | transforms {TRANSFORMS} | hidden {HIDDEN} | "
        f"context {CONTEXT} | bins {BINS} (NSF) | dims {args.dims} | median of "
        f"{args.repeats} interleaved repeats after {args.warmup} warm-up | clock {args.clock}"
    )
    if zuko is None and not args.no_zuko:
        print("zuko is not installed: sbikit columns only (pip install zuko to compare)")
    print(flush=True)

    start = time.perf_counter()
    counts = [
        {"flow": flow_name, "features": features}
        | count_evaluations(lib, build(lib, flow_name, features, args.seed), features)
        for features in args.dims
        for flow_name in args.flows
        for lib in libraries
    ]
    options = ("dims", "flows", "repeats", "warmup", "clock", "skip", "seed")
    measurements = measure(
        args.quick, peer=not args.no_zuko, **{name: getattr(args, name) for name in options}
    )
    rows = as_rows(measurements)
    skipped = [m["skipped"] for m in measurements if "skipped" in m]
    print(table(rows, libraries))
    for line in skipped:
        print(f"  skipped: {line}")
    print()
    print(counts_table(counts))
    print(f"\ntotal time {time.perf_counter() - start:.0f} s")
    info["load_average_end"] = machine_info()["load_average"]
    print(f"load average at the end: {info['load_average_end']}")

    if args.json:
        payload = {
            "machine": info,
            "settings": {
                "transforms": TRANSFORMS,
                "hidden_features": list(HIDDEN),
                "context": CONTEXT,
                "bins": BINS,
                "dims": args.dims,
                "flows": args.flows,
                "repeats": args.repeats,
                "warmup": args.warmup,
                "quick": args.quick,
                "seed": args.seed,
                "threads": torch.get_num_threads(),
                "clock": args.clock,
                "sizes": asdict(sizes),
                "libraries": list(libraries),
            },
            "results": [
                {
                    "flow": r.flow,
                    "features": r.features,
                    "operation": r.key,
                    "label": r.operation,
                    "median_ms": {lib: r.median(lib) for lib in libraries},
                    "min_ms": {
                        lib: min(t) if (t := r.times_ms.get(lib)) else None for lib in libraries
                    },
                    "ratio_sbikit_zuko": r.ratio(),
                    "times_ms": r.times_ms,
                }
                for r in rows
            ],
            "train_over_floor": [
                {
                    "flow": t.flow,
                    "features": t.features,
                    **{
                        lib: t.median(lib) / f.median(lib)
                        if t.median(lib) is not None and f.median(lib)
                        else None
                        for lib in libraries
                    },
                }
                for t in rows
                if t.key == "train"
                for f in rows
                if f.key == "floor" and f.flow == t.flow and f.features == t.features
            ],
            "evaluations_per_sample": counts,
            "skipped": skipped,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
