r"""The ten simulation-based inference benchmark tasks of Lueckmann et al. (2021),
"Benchmarking Simulation-Based Inference", AISTATS, https://arxiv.org/abs/2101.04653.

Every task has a prior, a vectorised simulator, the ten published observations with their
true parameters and a reference posterior sampler, with the constants of the published
benchmark so that results are comparable with published numbers.

Example:
    >>> import simulators
    >>> simulators.names()[:3]
    ['bernoulli_glm', 'bernoulli_glm_raw', 'gaussian_linear']
    >>> task = simulators.get("two_moons")
    >>> theta = task.prior.sample((1000,))
    >>> x = task.simulate(theta)
    >>> theta.shape, x.shape
    (torch.Size([1000, 2]), torch.Size([1000, 2]))
"""

from __future__ import annotations

from importlib import import_module

from .task import Task, default_cache_dir

__all__ = ["Task", "default_cache_dir", "get", "names"]

TASKS = {
    "bernoulli_glm": "bernoulli_glm:BernoulliGLM",
    "bernoulli_glm_raw": "bernoulli_glm_raw:BernoulliGLMRaw",
    "gaussian_linear": "gaussian_linear:GaussianLinear",
    "gaussian_linear_uniform": "gaussian_linear_uniform:GaussianLinearUniform",
    "gaussian_mixture": "gaussian_mixture:GaussianMixture",
    "lotka_volterra": "lotka_volterra:LotkaVolterra",
    "sir": "sir:SIR",
    "slcp": "slcp:SLCP",
    "slcp_distractors": "slcp_distractors:SLCPDistractors",
    "two_moons": "two_moons:TwoMoons",
}


def names() -> list[str]:
    r"""The names of the benchmark tasks, sorted.

    Example:
        >>> len(names())
        10
    """

    return sorted(TASKS)


def get(name: str) -> Task:
    r"""The benchmark task called ``name`` (see :func:`names`).

    Example:
        >>> get("slcp").theta_dim
        5
    """

    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the known tasks are: {', '.join(names())}.")
    module, cls = TASKS[name].split(":")
    return getattr(import_module(f".{module}", __name__), cls)()
