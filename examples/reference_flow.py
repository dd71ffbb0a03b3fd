r"""A hand-assembled conditional flow, from lazy building blocks.

Pixel-like data in [0, 256) are rescaled and mapped to the real line by a logit, then go
through a masked autoregressive transform, a learnable rotation and an inverted spline
coupling, onto a uniform base on [-3, 3]^5. Every piece is a lazy module, so the flow is an
``nn.Module`` conditioned on an 8-feature context.

Run it with ``python examples/reference_flow.py``.
"""

import torch

from sbikit.distributions import BoxUniform
from sbikit.flows import GeneralCouplingTransform, MaskedAutoregressiveTransform
from sbikit.lazy import Flow, UnconditionalDistribution, UnconditionalTransform
from sbikit.transforms import (
    AffineTransform,
    MonotonicRQSTransform,
    RotationTransform,
    SigmoidTransform,
)

flow = Flow(
    transform=[
        UnconditionalTransform(
            AffineTransform, torch.tensor(1 / 512), torch.tensor(1 / 256), buffer=True
        ),
        UnconditionalTransform(lambda: SigmoidTransform().inv),
        MaskedAutoregressiveTransform(features=5, context=8, passes=5),
        UnconditionalTransform(RotationTransform, torch.randn(5, 5)),
        GeneralCouplingTransform(
            features=5,
            context=8,
            univariate=MonotonicRQSTransform,
            shapes=([8], [8], [7]),
            hidden_features=(256, 256),
            activation=torch.nn.ELU,
        ).inv,
    ],
    base=UnconditionalDistribution(
        BoxUniform, torch.full([5], -3.0), torch.full([5], +3.0), buffer=True
    ),
)

if __name__ == "__main__":
    c = torch.randn(8)
    x = flow(c).sample((64,))
    print(flow)
    print(
        f"samples: {tuple(x.shape)}, log_prob finite: {bool(flow(c).log_prob(x).isfinite().all())}"
    )
