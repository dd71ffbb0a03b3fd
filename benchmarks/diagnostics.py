r"""Calibration diagnostics on NPE posteriors: sbikit's SBC + expected coverage, side by
side with sbi's ``run_sbc``.

For each dimension (2: two_moons, 10: gaussian_linear) it builds an sbikit NPE with the
default architecture (NSF, 5 transforms, hidden features (128, 128), 8 bins),
**untrained** by default (random initial weights: the cost of a draw or a density does
not depend on the weights; ``--epochs E`` trains it for E epochs on 10^4 simulations
first), simulates N = 1000 test pairs from the prior and times, for L = 1000 draws per
pair,

    draws      sbikit.diagnostics.draw: the N x L draws and their log-densities, in batches;
    stats      sbc + expected_coverage on those draws (ranks, histograms, tests, bands);
    sbikit     draws + stats: SBC and expected coverage of HPD regions;
    sbi        sbi.diagnostics.run_sbc on the same posterior, through a small adapter that
               gives it sbi's interface (sample_batched, log_prob), with reduce functions
               for the D marginals and for -log q (expected coverage) in one call, so that
               it draws once, like sbikit; sbi then loops over the test pairs in Python;
    sbi own    sbi's run_sbc, the same way, on sbi's own NPE posterior of the same size (its
               NSF with 5 transforms, hidden features 128 and 8 bins, built on 10^4
               simulations and trained for the same epochs), which draws and evaluates its
               own network: what a user of sbi would run;
    coupling   sbikit's SBC + expected coverage on an NPE of sbi's NSF architecture: a
               coupling NSF (``passes=2``: each transform draws half the parameters from
               the other half, in one network pass), of the same size, against "sbi own";

and prints sbi / sbikit (above 1: sbikit is faster). In the "sbi" column both evaluate
the same network on the same number of draws (the HPD ranks need the density of every
draw), which takes most of the time: sbikit draws in batches of about 2^15 draws that keep
the activations in the CPU caches, sbi samples all N x L draws in one call, then loops over
the pairs. The two columns after it are what sbi spends beyond sbikit's draws (its sampling
in one call, its 2N log_prob calls and N (D + 1) reductions in Python), against sbikit's
vectorised statistics ("stats"), and their ratio. The global random state is seeded once
per library; the HPD coverage at 90 % of each is printed as a cross-check.

Measured with ``--threads 1`` on a 2-core AMD EPYC machine (load 0.6 to 1), sbi 0.27.0,
untrained posteriors:

    2-D   sbikit 7.3 s (draws 7.1 s, stats 0.19 s); sbi on the same network 26.5 s
          (3.6 times as long); sbi on its own NSF 102.1 s (14.0 times); sbikit's coupling
          NSF 7.6 s (sbi's own NSF 13.5 times as long)
    10-D  sbikit 43.3 s (draws 42.9 s, stats 0.38 s); sbi on the same network 114.1 s
          (2.6 times); sbi on its own NSF 99.6 s (2.3 times); sbikit's coupling NSF
          16.4 s (6.1 times)

``--keep-freed-memory`` (for the whole process: both libraries) made no measurable
difference in a run of the same day.

sbi's own NSF is a coupling flow: one network pass per transform draws all D parameters,
where sbikit's default, autoregressive NSF needs D passes (of about a third of the
network each on average), which is why sbi's NSF gains on it in 10-D. Against sbikit's
coupling NSF of the same size, the architecture of sbi's, sbi takes 6 times as long in
10-D and 13 times in 2-D, where its rejection of draws outside the prior's box and its
loops make it the slower. Outside the draws, sbikit's statistics take 0.2-0.4 s where sbi
spends 19 s (2-D) and 71 s (10-D).

This is a benchmark, not a test: nothing is asserted.

Usage::

    python benchmarks/diagnostics.py --threads 1            # 2-D and 10-D, with sbi
    python benchmarks/diagnostics.py --dims 2 --no-sbi
    python benchmarks/diagnostics.py --pairs 500 --draws 500 --epochs 5 --json diag.json
    python benchmarks/diagnostics.py --quick                # N = L = 200, under a minute
    python benchmarks/diagnostics.py --keep-freed-memory    # see sbikit.utils.keep_freed_memory
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
from machine import (  # benchmarks/machine.py
    add_memory_option,
    keep_memory_if_asked,
    machine_info,
    machine_line,
    write_results,
)

import sbikit
import simulators
from sbikit.diagnostics import draw, expected_coverage, sbc
from sbikit.inference import NPE

try:
    import sbi
    from npe import sbi_prior, sbi_trained  # benchmarks/npe.py
    from sbi.diagnostics import run_sbc
    from sbi.inference.posteriors import DirectPosterior
    from sbi.neural_nets import posterior_nn
except ImportError:  # the optional peer: only the sbikit column then
    sbi = None

TASKS = {2: "two_moons", 10: "gaussian_linear"}
WARM_UP = 10
r"""The pairs and draws of the untimed first call of each library."""
QUICK = {"pairs": 200, "draws": 200}
r"""The smaller sizes of ``measure(quick=True)``: N test pairs and L draws per pair."""


class SBIAdapter:
    r"""sbi's posterior interface (``sample_batched``, ``log_prob``) over an sbikit
    posterior, so that ``run_sbc`` runs on the very same network."""

    def __init__(self, posterior: NPE):
        self.posterior = posterior

    def sample_batched(self, sample_shape, x, show_progress_bars=False):
        with torch.no_grad():
            return self.posterior(x).sample(sample_shape)

    def log_prob(self, theta, x):
        with torch.no_grad():
            return self.posterior(x.reshape(-1, *x.shape[-1:])).log_prob(theta)


def build(
    dim: int, pairs: int, epochs: int, seed: int
) -> tuple[object, NPE, torch.Tensor, torch.Tensor]:
    task = simulators.get(TASKS[dim])
    posterior = sbikit_posterior(task, epochs, seed)
    theta = task.prior.sample((pairs,))
    x = task.simulate(theta, generator=torch.Generator().manual_seed(seed))
    return task, posterior, theta, x


def sbikit_posterior(task, epochs: int, seed: int, **flow_options) -> NPE:
    r"""sbikit's NPE posterior with the default architecture, or with ``flow_options``,
    trained for ``epochs`` epochs on 10^4 simulations (0: untrained)."""

    torch.manual_seed(seed)
    posterior = NPE(task.theta_dim, task.x_shape, prior=task.prior, **flow_options)
    if epochs:
        theta = task.prior.sample((10_000,))
        sbikit.fit(posterior, (theta, task.simulate(theta)), epochs=epochs, progress=False)
    return posterior.eval()


def time_sbikit(posterior, theta, x, draws: int, seed: int) -> dict:
    r"""Times sbikit's draws, SBC and expected coverage, after an untimed call on a few
    pairs (the one-time costs of a first call are not timed, here or for sbi)."""

    draw(posterior, theta[:WARM_UP], x[:WARM_UP], WARM_UP, seed=seed, progress=False)
    start = time.perf_counter()
    d = draw(posterior, theta, x, draws, seed=seed, progress=False)
    drawn = time.perf_counter()
    ranks = sbc(d.samples, d.theta, d.log_prob, d.log_prob_theta, seed=seed)
    coverage = expected_coverage(d.samples, d.theta, d.log_prob, d.log_prob_theta, seed=seed)
    end = time.perf_counter()
    return {
        "draws_s": drawn - start,
        "stats_s": end - drawn,
        "total_s": end - start,
        "hpd_coverage_90": float(coverage.hpd_nominal[2]),
        "log_gamma": ranks.log_gamma.tolist(),
    }


def sbi_posterior(task, epochs: int, seed: int) -> DirectPosterior:
    r"""sbi's own NPE posterior with sbikit's default architecture (NSF, 5 transforms,
    hidden features 128, 8 bins), built on 10^4 simulations like sbikit's and trained
    for ``epochs`` epochs (0: untrained)."""

    torch.manual_seed(seed)
    prior = sbi_prior(task)
    theta = task.prior.sample((10_000,))
    x = task.simulate(theta)
    builder = posterior_nn(model="nsf", hidden_features=128, num_transforms=5, num_bins=8)
    if not epochs:
        return DirectPosterior(builder(theta, x), prior)
    return sbi_trained(prior, theta, x, epochs, density_estimator=builder).build_posterior()


def time_sbi(posterior, theta, x, draws: int, seed: int) -> dict:
    r"""Times sbi's ``run_sbc`` with the D marginals and -log q as reduce functions, on an
    sbikit posterior through :class:`SBIAdapter` or on one of sbi's own. sbi's posteriors
    evaluate q unnormalised (``norm_posterior=False``): the normalising constant within the
    prior's support, which sbi would otherwise estimate with 10^4 draws per observation,
    does not change the ranks."""

    if isinstance(posterior, NPE):
        adapter = SBIAdapter(posterior)
        log_prob = adapter.log_prob
    else:
        adapter = posterior

        def log_prob(theta, x):
            return posterior.log_prob(theta, x, norm_posterior=False)

    marginals = [lambda t, x, i=i: t[:, i] for i in range(theta.shape[1])]
    reduce_fns = [*marginals, lambda t, x: -log_prob(t, x)]

    @torch.no_grad()
    def ranks_of(pairs: int, draws: int) -> torch.Tensor:
        return run_sbc(theta[:pairs], x[:pairs], adapter, draws, reduce_fns=reduce_fns,
                       show_progress_bar=False)[0]  # fmt: skip

    torch.manual_seed(seed)
    ranks_of(WARM_UP, WARM_UP)
    start = time.perf_counter()
    ranks = ranks_of(len(theta), draws)
    end = time.perf_counter()
    joint = ranks[:, -1] / draws
    return {"total_s": end - start, "hpd_coverage_90": float((joint < 0.9).float().mean())}


def summary(figures: dict) -> str:
    r"""The times and the HPD coverage at 90 % (a cross-check of the two libraries)."""

    times = ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in figures.items() if k.endswith("_s"))
    return f"{times}, HPD coverage at 90 % {figures['hpd_coverage_90']:.3f}"


def sizes(quick: bool, pairs: int | None, draws: int | None) -> tuple[int, int]:
    r"""The test pairs N and draws per pair L: those given, else 1000 (quick: :data:`QUICK`)."""

    return pairs or (QUICK["pairs"] if quick else 1000), draws or (
        QUICK["draws"] if quick else 1000
    )


def measure(
    quick: bool = False,
    *,
    peer: bool = True,
    dims: Sequence[int] = (2, 10),
    pairs: int | None = None,
    draws: int | None = None,
    epochs: int = 0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    r"""Times SBC and expected coverage of sbikit and, when ``peer`` and sbi is installed,
    sbi's ``run_sbc`` on the same posterior, on torch's current number of threads. Progress
    goes to stderr.

    Arguments:
        quick: The sizes of :data:`QUICK` where no other is given.
        peer: Whether to time sbi's ``run_sbc`` too.
        dims: The dimensions, keys of :data:`TASKS`.
        pairs: The test pairs N (default 1000).
        draws: The draws per pair L (default 1000).
        epochs: The training epochs of the posteriors (0: untrained).
        seed: The seed of the network, of the pairs and of the draws.

    Returns:
        One dict per dimension, operation and library: ``area`` ("diagnostics"),
        ``operation``, ``library``, ``seconds``, ``dim``, ``task``, ``key`` (total: SBC and
        coverage; draws: sbikit's draws and densities; stats: the rest; own: the total
        against sbi on its own NSF; coupling: sbikit's coupling NSF against sbi's). sbi's
        ``stats`` row is derived: its ``run_sbc`` time minus sbikit's draws. The total
        rows have ``hpd_coverage_90``, sbikit's ``log_gamma`` too.
    """

    pairs, draws = sizes(quick, pairs, draws)
    trained = f"trained {epochs} epochs" if epochs else "untrained"
    rows = []
    for dim in dims:
        task, posterior, theta, x = build(dim, pairs, epochs, seed)
        prefix = f"{dim}-D {task.name}"
        ours = time_sbikit(posterior, theta, x, draws, seed)
        print(f"  {prefix} sbikit: {summary(ours)}", file=sys.stderr, flush=True)
        common = {"area": "diagnostics", "dim": dim, "task": task.name}
        total = f"{prefix}: SBC + coverage, {pairs} pairs x {draws} draws, {trained}"
        draws_label = f"{prefix}: the draws and densities alone"
        stats = f"{prefix}: statistics beyond the draws"
        rows += [
            common
            | {"key": "total", "operation": total, "library": "sbikit", "seconds": ours["total_s"]}
            | {k: ours[k] for k in ("hpd_coverage_90", "log_gamma")},
            common
            | {"key": "draws", "operation": draws_label, "library": "sbikit"}
            | {"seconds": ours["draws_s"]},
            common
            | {"key": "stats", "operation": stats, "library": "sbikit", "seconds": ours["stats_s"]},
        ]
        if peer and sbi is not None:
            theirs = time_sbi(posterior, theta, x, draws, seed)
            print(f"  {prefix} sbi: {summary(theirs)}", file=sys.stderr, flush=True)
            rows += [
                common
                | {"key": "total", "operation": total, "library": "sbi"}
                | {"seconds": theirs["total_s"], "hpd_coverage_90": theirs["hpd_coverage_90"]},
                common
                | {"key": "stats", "operation": stats, "library": "sbi", "derived": True}
                | {"seconds": theirs["total_s"] - ours["draws_s"]},
            ]
            own = time_sbi(sbi_posterior(task, epochs, seed), theta, x, draws, seed)
            print(f"  {prefix} sbi, own NSF: {summary(own)}", file=sys.stderr, flush=True)
            # the same sbikit figure, against sbi on its own network of the same size
            against_own = {"key": "own", "operation": f"{total}, sbi on its own NSF"}
            coupled = sbikit_posterior(task, epochs, seed, passes=2)
            coupling = time_sbikit(coupled, theta, x, draws, seed)
            print(f"  {prefix} sbikit, coupling NSF: {summary(coupling)}", file=sys.stderr)
            # sbi's NSF against sbikit's of the same architecture: a coupling flow
            against_coupling = {"key": "coupling", "operation": f"{total}, coupling NSFs"}
            rows += [
                common | against_own | {"library": "sbikit"} | time_and_coverage(ours),
                common | against_own | {"library": "sbi"} | time_and_coverage(own),
                common | against_coupling | {"library": "sbikit"} | time_and_coverage(coupling),
                common | against_coupling | {"library": "sbi"} | time_and_coverage(own),
            ]
    return rows


def time_and_coverage(figures: dict) -> dict:
    r"""The time and HPD coverage at 90 % of a result row."""

    return {"seconds": figures["total_s"], "hpd_coverage_90": figures["hpd_coverage_90"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 10], choices=sorted(TASKS))
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} unless given")
    parser.add_argument("--pairs", type=int, help="test pairs N (default 1000)")
    parser.add_argument("--draws", type=int, help="draws per pair L (default 1000)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--epochs", type=int, default=0, help="training epochs (0: untrained)")
    parser.add_argument("--no-sbi", action="store_true", help="sbikit only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results to this file")
    add_memory_option(parser)
    args = parser.parse_args(argv)
    keep_memory_if_asked(args)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    info = machine_info(peers=("sbi",))
    print(machine_line(info, peers=("sbi",)))
    pairs, draws = sizes(args.quick, args.pairs, args.draws)
    trained = f"{args.epochs} epochs" if args.epochs else "untrained"
    print(f"N = {pairs}, L = {draws}, {trained}", flush=True)
    options = ("dims", "pairs", "draws", "epochs", "seed")
    rows = measure(
        args.quick, peer=not args.no_sbi, **{name: getattr(args, name) for name in options}
    )

    print(f"\n{'':<6}{'task':<17}{'draws (s)':>10}{'stats (s)':>10}{'sbikit (s)':>11}"
          f"{'sbi (s)':>9}{'sbi/sbikit':>11}{'sbi beyond draws (s)':>22}{'ratio':>7}"
          f"{'sbi own NSF (s)':>17}{'own/sbikit':>11}{'sbikit coupling (s)':>21}"
          f"{'own/coupling':>13}")  # fmt: skip
    for dim in args.dims:
        figures = {(r["library"], r["key"]): r for r in rows if r["dim"] == dim}
        ours = {key: figures["sbikit", key]["seconds"] for key in ("draws", "stats", "total")}
        line = (
            f"{f'{dim}-D':<6}{figures['sbikit', 'total']['task']:<17}{ours['draws']:>10.1f}"
            f"{ours['stats']:>10.2f}{ours['total']:>11.1f}"
        )
        if ("sbi", "total") in figures:  # what sbi spends beyond the same draws and densities
            theirs, beyond = figures["sbi", "total"]["seconds"], figures["sbi", "stats"]["seconds"]
            line += f"{theirs:>9.1f}{theirs / ours['total']:>11.2f}{beyond:>22.1f}"
            line += f"{beyond / ours['stats']:>7.1f}"
            own = figures["sbi", "own"]["seconds"]
            line += f"{own:>17.1f}{own / ours['total']:>11.2f}"
            coupling = figures["sbikit", "coupling"]["seconds"]
            line += f"{coupling:>21.1f}{own / coupling:>13.2f}"
        print(line)
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        write_results(args.json, info, rows, settings=vars(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
