r"""Check the MCMC reference posteriors against an independent importance-sampling estimate.

For each task whose reference posterior is sampled by MCMC (slcp, slcp_distractors,
bernoulli_glm, bernoulli_glm_raw, sir, lotka_volterra) and each chosen observation, it

1. draws ``--samples`` reference samples with the task's own MCMC settings and reports the
   wall time and the convergence diagnostics (largest split R-hat, smallest bulk ESS);
2. estimates the posterior mean and variance independently by self-normalised importance
   sampling: in the unconstrained space of the prior's support, Newton's method on the
   log-posterior (started at the observation's true parameters; gradient and Hessian by
   central finite differences, all points of an iteration in one batched likelihood call)
   finds the mode, and a Student-t proposal (5 degrees of freedom, 1.5 times the Laplace
   scale) centred there gives the weights;
3. prints, per parameter, the z-score of the difference of the two means and of the two
   variances (their combined Monte-Carlo standard errors, the MCMC one from its ESS).

The Laplace proposal suits unimodal posteriors; for slcp's four sign-symmetric modes the
comparison is on the folded parameters :math:`|\theta_3|, |\theta_4|`, whose posterior is
unimodal. This is a check to run by hand (minutes per observation for the ODE tasks), not
a test: it prints figures and asserts nothing.

Usage::

    python benchmarks/references.py --tasks lotka_volterra sir --observations 1
    python benchmarks/references.py --samples 10000 --proposals 100000
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence

import torch
from machine import machine_info, machine_line  # benchmarks/machine.py
from torch import Tensor
from torch.distributions import biject_to

import simulators

MCMC_TASKS = [name for name in simulators.names() if simulators.get(name).mcmc_reference]
FOLDED = {"slcp": [2, 3], "slcp_distractors": [2, 3]}  # sign-symmetric parameters


def log_posterior_in_z(task, x_obs: Tensor) -> tuple[Callable[[Tensor], Tensor], object]:
    r"""The log-posterior of the unconstrained parameters ``z`` (N, D), with the Jacobian
    of the bijection onto the prior's support, and that bijection."""

    bijection = biject_to(task.prior.support)
    likelihood_x = task.informative(x_obs) if hasattr(task, "informative") else x_obs
    likelihood_task = simulators.get("slcp") if hasattr(task, "informative") else task

    def log_p(z: Tensor) -> Tensor:
        theta = bijection(z)
        ladj = bijection.log_abs_det_jacobian(z, theta)
        log_prior = task.prior.log_prob(theta.float()).double()
        log_l = likelihood_task.log_likelihood(theta, likelihood_x.double())
        total = log_prior + log_l + ladj
        return torch.where(torch.isnan(total), -math.inf, total)

    return log_p, bijection


def laplace(log_p: Callable[[Tensor], Tensor], z0: Tensor, step: float = 1e-4, iterations=30):
    r"""The mode and the inverse of the negative Hessian of ``log_p`` by Newton's method
    with central finite differences (one batched call of ``log_p`` per iteration)."""

    d = len(z0)
    eye = torch.eye(d, dtype=torch.float64) * step
    pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
    z = z0.clone()
    for _ in range(iterations):
        points = [z, *(z + eye), *(z - eye)]
        points += [z + eye[i] + eye[j] for i, j in pairs] + [z - eye[i] - eye[j] for i, j in pairs]
        values = log_p(torch.stack(points))
        f0, plus, minus = values[0], values[1 : d + 1], values[d + 1 : 2 * d + 1]
        both_plus = values[2 * d + 1 : 2 * d + 1 + len(pairs)]
        both_minus = values[2 * d + 1 + len(pairs) :]
        grad = (plus - minus) / (2 * step)
        hessian = torch.diag((plus - 2 * f0 + minus) / step**2)
        for (i, j), pp, mm in zip(pairs, both_plus, both_minus, strict=True):
            # f(z + e_i + e_j) + f(z - e_i - e_j) = 2 f + h^2 (H_ii + H_jj + 2 H_ij) + O(h^4)
            value = (pp + mm - 2 * f0) / step**2 - hessian[i, i] - hessian[j, j]
            hessian[i, j] = hessian[j, i] = value / 2
        try:
            newton = torch.linalg.solve(hessian, grad)
        except RuntimeError:
            break
        z = z - newton.clamp(-1.0, 1.0)
        if newton.abs().max() < 1e-6:
            break
    return z, torch.linalg.inv(-hessian)


def importance_moments(task, x_obs: Tensor, start_theta: Tensor, proposals: int, seed: int) -> dict:
    r"""Self-normalised importance-sampling mean and variance of :math:`\theta` (with the
    sign-symmetric parameters folded) and the effective sample size."""

    log_p, bijection = log_posterior_in_z(task, x_obs)
    # Newton's method starts from the parameters the observation was simulated from
    mode, cov = laplace(log_p, bijection.inv(fold(task, start_theta[None])[0]))
    scale = torch.linalg.cholesky(cov * 1.5**2)
    df, d = 5.0, task.theta_dim
    generator = torch.Generator().manual_seed(seed)
    thetas, log_ws = [], []
    for begin in range(0, proposals, 10_000):
        n = min(10_000, proposals - begin)
        normal = torch.randn(n, d, generator=generator, dtype=torch.float64)
        chi2 = 2 * torch._standard_gamma(torch.full((n, 1), df / 2, dtype=torch.float64))
        u = normal / torch.sqrt(chi2 / df)
        z = mode + u @ scale.T
        log_q = -(df + d) / 2 * torch.log1p(u.square().sum(-1) / df)
        log_ws.append(log_p(z) - log_q)
        thetas.append(bijection(z))
    theta, log_w = fold(task, torch.cat(thetas)), torch.cat(log_ws)
    w = torch.softmax(log_w, dim=0)[:, None]
    mean = (w * theta).sum(0)
    var = (w * (theta - mean) ** 2).sum(0)
    ess = 1 / w.square().sum()
    fourth = (w * (theta - mean) ** 4).sum(0)
    return {"mean": mean, "var": var, "fourth": fourth, "ess": ess.item()}


def fold(task, theta: Tensor) -> Tensor:
    theta = theta.clone()
    for i in FOLDED.get(task.name, []):
        theta[:, i] = theta[:, i].abs()
    return theta


def check(name: str, k: int, samples: int, proposals: int, seed: int) -> None:
    task = simulators.get(name)
    task.mcmc_settings = {**task.mcmc_settings, "progress": True}
    torch.manual_seed(seed)
    posterior = task.reference_posterior(k=k)
    start = time.perf_counter()
    theta = fold(task, posterior.sample((samples,)).double())
    seconds = time.perf_counter() - start
    diagnostics = getattr(posterior, "diagnostics", None)
    x_obs = task.observation(k)
    estimate = importance_moments(task, x_obs, task.true_parameters(k).double(), proposals, seed)

    ess_mcmc = min(
        diagnostics.min_ess * samples / (diagnostics.steps * diagnostics.chains), samples
    )
    mean, var = theta.mean(0), theta.var(0)
    fourth = ((theta - mean) ** 4).mean(0)
    se_mean = torch.sqrt(var / ess_mcmc + estimate["var"] / estimate["ess"])
    se_var = torch.sqrt(
        (fourth - var**2) / ess_mcmc + (estimate["fourth"] - estimate["var"] ** 2) / estimate["ess"]
    )
    z_mean = ((mean - estimate["mean"]) / se_mean).abs()
    z_var = ((var - estimate["var"]) / se_var).abs()
    print(
        f"{name} k={k}: {samples} MCMC draws in {seconds:.0f} s, max R-hat "
        f"{diagnostics.max_rhat:.4f}, min ESS {diagnostics.min_ess:.0f} "
        f"({diagnostics.chains} chains x {diagnostics.steps} kept steps, thin "
        f"{diagnostics.thin}, warm-up {diagnostics.warmup}); importance sampling ESS "
        f"{estimate['ess']:.0f} of {proposals}"
    )
    for i, label in enumerate(task.labels):
        print(
            f"  {label:<10} mean {mean[i].item():+.5f} vs {estimate['mean'][i].item():+.5f} "
            f"(|z| {z_mean[i].item():.2f})   var {var[i].item():.3e} vs "
            f"{estimate['var'][i].item():.3e} (|z| {z_var[i].item():.2f})"
        )
    print(f"  largest |z|: {max(z_mean.max().item(), z_var.max().item()):.2f}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=MCMC_TASKS, choices=MCMC_TASKS)
    parser.add_argument("--observations", nargs="+", type=int, default=[1])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--proposals", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(machine_line(machine_info()), flush=True)
    for name in args.tasks:
        for k in args.observations:
            check(name, k, args.samples, args.proposals, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
