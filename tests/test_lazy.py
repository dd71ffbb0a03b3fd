import math
import warnings

import pytest
import torch
import torch.nn as nn
from torch.distributions import (
    AffineTransform,
    ExpTransform,
    Normal,
    SigmoidTransform,
)

from sbikit.distributions import DiagNormal, NormalizingFlow
from sbikit.lazy import (
    Flow,
    LazyComposedTransform,
    LazyDistribution,
    LazyInverse,
    LazyTransform,
    Unconditional,
    UnconditionalDistribution,
    UnconditionalTransform,
    check_context,
)
from sbikit.transforms import ComposedTransform


class ConditionalShift(LazyTransform):
    """y = x - W c: a context-dependent affine transform with a known context size."""

    def __init__(self, features: int, context: int):
        super().__init__()
        self.context = context
        self.linear = nn.Linear(context, features, dtype=torch.float64)

    def forward(self, c=None):
        c = check_context(c, self.context, "ConditionalShift")
        return AffineTransform(-self.linear(c), 1.0, event_dim=1)


class StandardNormal(LazyDistribution):
    def __init__(self, features: int):
        super().__init__()
        self.register_buffer("loc", torch.zeros(features, dtype=torch.float64))

    def forward(self, c=None):
        return DiagNormal(self.loc, torch.ones_like(self.loc))


def test_unconditional_distribution_example():
    prior = UnconditionalDistribution(DiagNormal, torch.zeros(3), torch.ones(3), buffer=True)
    d = prior()
    assert isinstance(d, DiagNormal)
    assert d.base_dist.loc.shape == (3,)
    assert d.sample().shape == (3,)
    assert prior.num_params() == 0
    assert len(list(prior.buffers())) == 2


def test_unconditional_distribution_parameters_are_trainable():
    q = UnconditionalDistribution(DiagNormal, torch.zeros(3), torch.ones(3))
    assert q.num_params() == 6
    q.log_prob(torch.full((3,), 2.0)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in q.parameters())


def test_unconditional_keyword_tensors_and_integer_tensors():
    t = UnconditionalTransform(AffineTransform, loc=torch.ones(2), scale=torch.tensor(2))
    assert t.num_params() == 2  # the integer scale is a buffer
    assert torch.equal(t()(torch.zeros(2)), torch.ones(2))


def test_unconditional_transform_example():
    x = torch.randn(3)
    assert torch.allclose(UnconditionalTransform(ExpTransform)()(x), x.exp())


def test_unconditional_registers_module_argument():
    inner = nn.Linear(2, 2)
    u = UnconditionalTransform(lambda m: AffineTransform(0.0, 1.0), inner)
    assert u.num_params() == sum(p.numel() for p in inner.parameters())


def test_unconditional_is_deprecated_but_works():
    with pytest.warns(DeprecationWarning, match="UnconditionalDistribution"):
        u = Unconditional(DiagNormal, torch.zeros(2), torch.ones(2), buffer=True)
    assert u().sample((4,)).shape == (4, 2)


def test_new_classes_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        UnconditionalDistribution(DiagNormal, torch.zeros(2), torch.ones(2))
        UnconditionalTransform(ExpTransform)


def test_lazy_inverse():
    f = UnconditionalTransform(ExpTransform)
    assert isinstance(f.inv, LazyInverse)
    assert f.inv.inv is f
    x = torch.rand(4) + 0.5
    assert torch.allclose(f.inv()(x), x.log())


def test_lazy_composed_transform_order_and_inverse():
    shift = UnconditionalTransform(AffineTransform, torch.tensor(1.0), torch.tensor(1.0))
    exp = UnconditionalTransform(ExpTransform)
    t = LazyComposedTransform(shift, exp)  # exp(x + 1)
    x = torch.randn(5)
    assert isinstance(t(), ComposedTransform)
    assert torch.allclose(t()(x), (x + 1).exp())
    assert torch.allclose(t.inv()(t()(x)), x, atol=1e-6)
    assert t.num_params() == 2


def test_flow_with_torch_classes_matches_lognormal():
    """Flow built from torch's own classes: log x maps a log-normal to a normal."""

    flow = Flow(
        UnconditionalTransform(ExpTransform).inv,
        UnconditionalDistribution(Normal, torch.tensor(0.0), torch.tensor(1.0), buffer=True),
    )
    d = flow()
    assert isinstance(d, NormalizingFlow)
    x = torch.rand(100) * 5 + 0.01
    expected = torch.distributions.LogNormal(0.0, 1.0).log_prob(x)
    assert torch.allclose(d.log_prob(x), expected, atol=1e-5)


def test_flow_with_sigmoid_inverse_and_sbikit_base():
    """Logit maps (0, 1)^2 to R^2; the density follows the change of variables."""

    flow = Flow(
        [UnconditionalTransform(SigmoidTransform).inv],
        UnconditionalDistribution(DiagNormal, torch.zeros(2), torch.ones(2), buffer=True),
    )
    d = flow()
    x = torch.rand(10, 2).clamp(0.01, 0.99)
    z = torch.logit(x)
    expected = Normal(0.0, 1.0).log_prob(z).sum(-1) - torch.log(x * (1 - x)).sum(-1)
    assert torch.allclose(d.log_prob(x), expected, atol=1e-5)
    samples = d.sample((1000,))
    assert samples.shape == (1000, 2)
    assert ((samples > 0) & (samples < 1)).all()


def test_conditional_flow_shapes_and_density():
    torch.manual_seed(0)
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    c = torch.randn(5, 2, dtype=torch.float64)
    d = flow(c)
    assert d.batch_shape == (5,) and d.event_shape == (3,)
    assert d.sample().shape == (5, 3)
    assert d.sample((7,)).shape == (7, 5, 3)
    theta = torch.randn(7, 5, 3, dtype=torch.float64)
    assert d.log_prob(theta).shape == (7, 5)
    # p(θ | c) = N(θ; W c + b, I)
    mean = flow.transform.linear(c)
    expected = DiagNormal(mean, torch.ones_like(mean)).log_prob(theta)
    assert torch.allclose(d.log_prob(theta), expected)
    # batched context of shape (2, 4, C)
    assert flow(torch.randn(2, 4, 2, dtype=torch.float64)).sample((6,)).shape == (6, 2, 4, 3)


def test_conditional_flow_rsample_gradients_and_one_pass_log_prob():
    torch.manual_seed(1)
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    c = torch.randn(4, 2, dtype=torch.float64)
    x, log_p = flow(c).rsample_and_log_prob((8,))
    assert torch.allclose(log_p, flow(c).log_prob(x))
    (x.sum() + log_p.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())


def test_convenience_methods():
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    c = torch.randn(4, 2, dtype=torch.float64)
    assert flow.sample((5,), c).shape == (5, 4, 3)
    theta = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(flow.log_prob(theta, c), flow(c).log_prob(theta))
    assert flow.num_params() == 3 * 2 + 3


def test_lazy_modules_are_modules():
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    state = flow.state_dict()
    assert set(state) == {"transform.linear.weight", "transform.linear.bias", "base.loc"}
    clone = Flow(ConditionalShift(3, 2), StandardNormal(3))
    clone.load_state_dict(state)
    c, theta = torch.randn(2, 2, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    assert torch.equal(clone.log_prob(theta, c), flow.log_prob(theta, c))


def test_abstract_classes_cannot_be_instantiated():
    with pytest.raises(TypeError):
        LazyDistribution()
    with pytest.raises(TypeError):
        LazyTransform()


def test_context_with_wrong_last_dimension_is_a_clear_error():
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    with pytest.raises(ValueError, match=r"\(\*, 2\).*shape \(4, 5\)"):
        flow(torch.randn(4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="received none"):
        flow()


def test_non_tensor_context_is_a_type_error():
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    with pytest.raises(TypeError, match=r"torch.Tensor.*list"):
        flow([[0.0, 1.0]])


def test_theta_with_wrong_event_size_is_a_clear_error():
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    c = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\(3,\).*\(4, 5\)"):
        flow.log_prob(torch.randn(4, 5, dtype=torch.float64), c)


def test_theta_with_other_dtype_is_a_clear_error():
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    c = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"float64.*float32"):
        flow.log_prob(torch.randn(4, 3, dtype=torch.float32), c)


def test_flow_rejects_non_modules():
    with pytest.raises(TypeError, match="UnconditionalTransform"):
        Flow(ExpTransform(), StandardNormal(1))
    with pytest.raises(TypeError, match="UnconditionalDistribution"):
        Flow(UnconditionalTransform(ExpTransform), Normal(0.0, 1.0))


def test_flow_moves_with_to_dtype():
    flow = Flow(ConditionalShift(2, 1), StandardNormal(2)).to(torch.float32)
    d = flow(torch.zeros(3, 1))
    assert d.sample().dtype == torch.float32
    assert math.isfinite(d.log_prob(torch.zeros(3, 2)).sum().item())


def test_context_with_other_dtype_or_device_is_a_clear_error():
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    with pytest.raises(TypeError, match=r"context c of dtype torch.float64.*torch.float32"):
        flow(torch.zeros(4, 2, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"context c on cpu.*meta"):
        flow(torch.zeros(4, 2, dtype=torch.float64, device="meta"))


def test_theta_on_other_device_is_a_clear_error():
    flow = Flow(ConditionalShift(3, 2), StandardNormal(3))
    c = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x on cpu.*meta"):
        flow.log_prob(torch.zeros(4, 3, dtype=torch.float64, device="meta"), c)


def test_unconditional_transform_of_a_lambda_returning_torch_inverse():
    logit = UnconditionalTransform(lambda: SigmoidTransform().inv)
    x = torch.tensor([0.25, 0.5, 0.75])
    assert torch.allclose(logit()(x), torch.logit(x))
    flow = Flow([logit], UnconditionalDistribution(Normal, torch.tensor(0.0), torch.tensor(1.0)))
    assert torch.isfinite(flow().log_prob(x)).all()
