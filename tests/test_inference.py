"""Tests of the NPE estimator: shapes, supports, embeddings, MAP and bad input."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import LogNormal, constraints

from sbikit.distributions import BoxUniform, DiagNormal, Joint
from sbikit.flows import MAF, RealNVP
from sbikit.inference import NPE
from sbikit.inference.support import Unconstrain, bijection, describe_support
from sbikit.nn import MLPEmbedding

TINY = {"transforms": 1, "hidden_features": (8,)}
BOX = BoxUniform(torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([1.0, 0.5, 10.0]))


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("x_shape", [4, (4,), (2, 3)])
def test_shapes_for_one_and_a_batch_of_observations(x_shape):
    posterior = NPE(3, x_shape, **TINY)
    event = (x_shape,) if isinstance(x_shape, int) else x_shape
    one = posterior(torch.randn(event))
    assert one.batch_shape == () and one.event_shape == (3,)
    assert one.sample((7,)).shape == (7, 3)
    assert one.log_prob(torch.randn(7, 3)).shape == (7,)
    batch = posterior(torch.randn((5, *event)))
    assert batch.batch_shape == (5,)
    theta = batch.sample((7,))
    assert theta.shape == (7, 5, 3)
    assert batch.log_prob(theta).shape == (7, 5)
    assert posterior(torch.randn((2, 5, *event))).sample((7,)).shape == (7, 2, 5, 3)


def test_batched_log_prob_equals_one_observation_at_a_time():
    posterior = NPE(3, 4, **TINY)
    x, theta = torch.randn(5, 4), torch.randn(6, 5, 3)
    batched = posterior(x).log_prob(theta)
    single = torch.stack([posterior(x[i]).log_prob(theta[:, i]) for i in range(5)], dim=1)
    torch.testing.assert_close(batched, single)


def test_samples_drawn_with_their_density_have_that_density():
    posterior = NPE(3, 4, prior=BOX, transforms=2, hidden_features=(8,)).double()
    q = posterior(torch.randn(5, 4, dtype=torch.float64))
    theta, log_q = q.rsample_and_log_prob((6,))
    torch.testing.assert_close(log_q, q.log_prob(theta))


def test_bounded_prior_samples_never_leave_the_box():
    posterior = NPE(3, 2, prior=BOX, **TINY)
    # Standardisation that pushes the flow's mass far into the tails of the bijection.
    posterior.set_standardization(torch.zeros(3), 50 * torch.ones(3), torch.zeros(2), torch.ones(2))
    theta = posterior(torch.randn(4, 2)).sample((20000,))
    assert bool(BOX.support.check(theta).all())
    assert bool(torch.isfinite(BOX.log_prob(theta)).all())  # strictly inside [l, u)
    assert (theta[..., 2] > 9.9).any() and (theta[..., 2] < 2.1).any()  # the tails are reached


def test_density_is_finite_on_the_bounds_and_next_to_them():
    box = BoxUniform(-torch.ones(2), torch.ones(2))
    posterior = NPE(2, 2, prior=box, **TINY)
    posterior.set_standardization(torch.zeros(2), 50 * torch.ones(2), torch.zeros(2), torch.ones(2))
    q = posterior(torch.randn(2))
    theta = q.sample((20000,))
    assert (theta.abs() == 1).any()  # draws piled against a bound round onto it
    assert bool(torch.isfinite(q.log_prob(theta)).all())
    inside = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)).item()  # the float below 1
    edges = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [-inside, 0.0], [inside, 0.0]])
    assert bool(torch.isfinite(q.log_prob(edges)).all())


def test_log_prob_outside_the_prior_is_minus_infinity():
    posterior = NPE(3, 2, prior=BOX, **TINY)
    theta = torch.tensor([[0.0, 0.25, 5.0], [1.5, 0.25, 5.0], [0.0, -0.1, 5.0], [0.0, 0.2, 11.0]])
    log_q = posterior(torch.zeros(2)).log_prob(theta)
    assert torch.isfinite(log_q[0])
    assert torch.equal(log_q[1:], torch.full((3,), -torch.inf))


def test_bounded_posterior_density_is_normalised():
    box = BoxUniform(torch.zeros(1, dtype=torch.float64), 2 * torch.ones(1, dtype=torch.float64))
    posterior = NPE(1, 1, prior=box, **TINY).double()
    # A grid that refines towards the bounds, where the density can pile up.
    grid = 2 * torch.sigmoid(torch.linspace(-30, 30, 200001, dtype=torch.float64))[:, None]
    density = posterior(torch.zeros(1, dtype=torch.float64)).log_prob(grid).exp()
    assert abs(torch.trapezoid(density, grid[:, 0]).item() - 1.0) < 1e-3


def test_lognormal_prior_gives_positive_samples():
    prior = torch.distributions.Independent(LogNormal(torch.zeros(2), torch.ones(2)), 1)
    posterior = NPE(2, 2, prior=prior, **TINY)
    theta = posterior(torch.randn(2)).sample((1000,))
    assert bool((theta > 0).all())
    assert posterior(torch.randn(2)).log_prob(torch.tensor([-1.0, 1.0])) == -torch.inf


# A LogNormal scale, a real location and a box: three kinds of blocks in one vector.
JOINT = Joint(LogNormal(0.0, 1.0), torch.distributions.Normal(0.0, 1.0), BOX)


def test_joint_prior_samples_stay_in_each_block_support():
    posterior = NPE(5, 2, prior=JOINT, **TINY)
    posterior.set_standardization(torch.zeros(5), 8 * torch.ones(5), torch.zeros(2), torch.ones(2))
    theta = posterior(torch.randn(3, 2)).sample((20000,))
    assert bool(JOINT.support.check(theta).all())
    assert bool(torch.isfinite(JOINT.log_prob(theta)).all())
    assert (theta[..., 1] < -10).any() and (theta[..., 1] > 10).any()  # the real block is free
    outside = torch.tensor([[-0.5, 0.0, 0.0, 0.25, 5.0], [1.0, 0.0, 0.0, 0.25, 11.0]])
    assert torch.equal(posterior(torch.zeros(2)).log_prob(outside), torch.full((2,), -torch.inf))


def test_interval_bijection_is_affine_on_the_middle_of_the_interval():
    # A posterior inside the box keeps its shape in the unconstrained space: the slope of
    # b varies by under 2 % over the middle half of each interval (the logistic sigmoid's
    # by a third), so the flow's density there is the posterior's, rescaled.
    low, high = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([1.0, 0.5, 10.0])  # BOX's
    b = bijection(constraints.interval(low.double(), high.double()))
    theta = low + (high - low) * torch.linspace(0.25, 0.75, 101)[:, None]
    u = b.inv(theta.double())
    slopes = torch.exp(b.log_abs_det_jacobian(u, theta.double()))
    assert float((slopes.max(0).values / slopes.min(0).values - 1).max()) < 0.02


def test_joint_support_bijection_log_det_matches_autograd():
    transform = Unconstrain(describe_support(JOINT))()
    theta = JOINT.sample((3,)).double()
    u = transform(theta)
    torch.testing.assert_close(transform.inv(u), theta)
    for row in range(3):
        jacobian = torch.autograd.functional.jacobian(transform, theta[row])
        expected = torch.linalg.slogdet(jacobian).logabsdet
        torch.testing.assert_close(transform.log_abs_det_jacobian(theta[row], u[row]), expected)


def test_joint_support_survives_the_json_description():
    posterior = NPE(5, 2, prior=JOINT, **TINY)
    again = NPE(5, 2, prior=posterior.unconstrain().support, **TINY)
    assert again.config["support"] == posterior.config["support"]
    assert posterior.config["support"]["sizes"] == [1, 1, 3]


def test_a_joint_of_real_blocks_needs_no_bijection():
    prior = Joint(torch.distributions.Normal(0.0, 1.0), DiagNormal(torch.zeros(2), torch.ones(2)))
    assert describe_support(prior) is None


def test_support_given_as_a_constraint_equals_the_prior():
    a = NPE(3, 2, prior=BOX, **TINY)
    torch.manual_seed(0)
    b = NPE(3, 2, prior=BOX.support, **TINY)
    assert a.config == b.config


def test_unsupported_support_is_rejected():
    with pytest.raises(ValueError, match="support"):
        NPE(2, 2, prior=constraints.simplex)


def test_empty_interval_is_rejected_once_at_construction():
    with pytest.raises(ValueError, match="lower < upper"):
        NPE(2, 2, prior=constraints.interval(torch.zeros(2), torch.tensor([1.0, 0.0])))


def test_real_prior_has_no_bijection():
    posterior = NPE(2, 2, prior=DiagNormal(torch.zeros(2), torch.ones(2)), **TINY)
    assert posterior.unconstrain is None and posterior.config["support"] is None


@pytest.mark.parametrize("flow", ["maf", "MAF", MAF, RealNVP, "nice"])
def test_flow_by_name_or_class(flow):
    posterior = NPE(2, 3, flow=flow, transforms=1)
    assert posterior.config["flow"]["name"] in ("MAF", "RealNVP", "NICE")
    assert posterior(torch.randn(3)).sample((4,)).shape == (4, 2)


def test_custom_flow_factory():
    def factory(features, context, **options):
        return MAF(features, context, transforms=1, **options)

    posterior = NPE(2, 3, flow=factory, hidden_features=(8,))
    assert posterior.config["flow"]["name"] is None
    assert posterior.config["flow"]["factory"].endswith("factory")
    assert posterior(torch.randn(3)).sample((4,)).shape == (4, 2)


def test_embedding_by_name_and_as_module_is_trained_jointly():
    named = NPE(
        2,
        (3, 4),
        embedding="MLPEmbedding",
        embedding_options={"in_shape": [3, 4], "out_features": 5},
        **TINY,
    )
    assert named.context == 5 and isinstance(named.embedding, MLPEmbedding)
    module = NPE(2, (3, 4), embedding=MLPEmbedding((3, 4), 6), **TINY)
    assert module.context == 6 and module.config["embedding"]["name"] is None
    loss = module.loss(torch.randn(8, 2), torch.randn(8, 3, 4))
    loss.backward()
    assert all(p.grad is not None for p in module.embedding.parameters())


def test_map_finds_the_mode_of_a_known_flow():
    # A flow whose transform is the identity: q is N(0, I) in the standardised space.
    posterior = NPE(2, 3, flow="maf", transforms=1, hidden_features=(8,))
    for p in posterior.flow.parameters():
        torch.nn.init.zeros_(p)
    posterior.set_standardization(
        torch.tensor([1.0, -2.0]), torch.ones(2), torch.zeros(3), torch.ones(3)
    )
    assert torch.allclose(posterior.map(torch.randn(3)), torch.tensor([1.0, -2.0]), atol=1e-3)
    assert posterior.map(torch.randn(4, 3)).shape == (4, 2)


def test_map_inside_a_bounded_support():
    posterior = NPE(3, 2, prior=BOX, **TINY)
    theta = posterior.map(torch.randn(5, 2), steps=20)
    assert theta.shape == (5, 3) and bool(BOX.support.check(theta).all())


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.zeros(3), ValueError, r"shape \(\*, 4\)"),
        (torch.zeros(2, 5), ValueError, r"shape \(\*, 4\)"),
        (torch.tensor([0.0, float("nan"), 0.0, 0.0]), ValueError, "finite"),
        (torch.tensor([0.0, float("inf"), 0.0, 0.0]), ValueError, "finite"),
        (torch.zeros(4, dtype=torch.float64), TypeError, "dtype"),
        ([0.0] * 4, TypeError, "torch.Tensor"),
    ],
)
def test_bad_observations_are_rejected(x, error, match):
    posterior = NPE(2, 4, **TINY)
    with pytest.raises(error, match=match):
        posterior(x)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"theta_dim": 0}, ValueError, "theta_dim"),
        ({"x_shape": 0}, ValueError, "x_shape"),
        ({"x_shape": "a"}, ValueError, "x_shape"),
        ({"flow": "nope"}, ValueError, "NSF"),
        ({"flow": 3}, TypeError, "flow"),
        ({"embedding": 3}, TypeError, "embedding"),
        ({"embedding_options": {"out_features": 2}}, ValueError, "no embedding"),
        ({"embedding": MLPEmbedding(5, 2)}, ValueError, "embedding"),
    ],
)
def test_bad_construction_is_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        NPE(**{"theta_dim": 2, "x_shape": 4, **kwargs})


def test_set_standardization_checks_its_input():
    posterior = NPE(2, 4, **TINY)
    with pytest.raises(ValueError, match="theta_scale > 0"):
        posterior.set_standardization(torch.zeros(2), torch.zeros(2), torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        posterior.set_standardization(torch.zeros(2), torch.ones(2), torch.zeros(3), torch.ones(4))
