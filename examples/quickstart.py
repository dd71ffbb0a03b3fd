r"""Quickstart: a conditional normalizing flow learns a posterior p(θ | x).

The toy problem has a known answer. With θ ~ N(0, 1) and x | θ ~ N(θ, 0.5²), the posterior
is Gaussian with mean 0.8·x and variance 0.2. We simulate 5,000 pairs, train a small
conditional flow q(θ | x) by maximum likelihood and compare it with the truth.

Run it with ``python examples/quickstart.py`` (about ten seconds on a laptop CPU).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.distributions import AffineTransform
from tqdm import trange

from sbikit.distributions import DiagNormal
from sbikit.lazy import Flow, LazyTransform, UnconditionalDistribution


class ConditionalAffine(LazyTransform):
    r"""z = shift(x) + exp(log_scale(x)) · θ, with shift and log-scale from a small MLP."""

    def __init__(self, features: int, context: int, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(context, hidden), nn.ReLU(), nn.Linear(hidden, 2 * features)
        )

    def forward(self, c: torch.Tensor | None = None) -> AffineTransform:
        shift, log_scale = self.net(c).chunk(2, dim=-1)
        return AffineTransform(shift, log_scale.exp(), event_dim=1)


def main(num_simulations: int = 5000, steps: int = 1500, progress: bool = True) -> torch.Tensor:
    r"""Trains the flow and returns 10,000 posterior samples at x_obs = 1.5, shape (10000, 1)."""

    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    theta = torch.randn(num_simulations, 1, generator=generator)
    x = theta + 0.5 * torch.randn(num_simulations, 1, generator=generator)

    posterior = Flow(
        ConditionalAffine(features=1, context=1),
        UnconditionalDistribution(DiagNormal, torch.zeros(1), torch.ones(1), buffer=True),
    )
    optimizer = torch.optim.Adam(posterior.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    bar = trange(steps, desc="training", disable=not progress, mininterval=0.5)
    for step in bar:
        index = torch.randint(num_simulations, (512,), generator=generator)
        loss = -posterior.log_prob(theta[index], c=x[index]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")

    x_obs = torch.tensor([1.5])
    with torch.no_grad():
        samples = posterior(x_obs).sample((10000,))
    print(f"posterior at x_obs = {x_obs.item()}:")
    print(f"  learned  mean {samples.mean():.3f}, std {samples.std():.3f}")
    print(f"  analytic mean {0.8 * x_obs.item():.3f}, std {0.2**0.5:.3f}")
    return samples


if __name__ == "__main__":
    main()
