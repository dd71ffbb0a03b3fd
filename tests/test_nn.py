import time

import pytest
import torch
import torch.nn as nn
from torch.autograd.functional import jacobian

from sbikit.nn import (
    MLP,
    Conv1dEmbedding,
    DeepSetEmbedding,
    MaskedMLP,
    MLPEmbedding,
    MonotonicMLP,
    ResMLP,
    conditioned,
    dependencies,
    split_first_layer,
)


def random_dag(n: int, density: float, generator: torch.Generator) -> torch.Tensor:
    order = torch.randperm(n, generator=generator)
    lower = torch.rand(n, n, generator=generator) < density
    adjacency = torch.tril(lower, diagonal=-1)
    return adjacency[order][:, order]


@pytest.mark.parametrize("seed", range(3))
def test_masked_mlp_jacobian_sparsity_is_exactly_the_adjacency(seed):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    adjacency = random_dag(7, 0.5, generator)
    adjacency = torch.cat((adjacency, torch.ones(7, 2, dtype=torch.bool)), dim=1)  # context
    net = MaskedMLP(adjacency, hidden_features=(64, 64)).double()
    J = jacobian(net, torch.randn(9, dtype=torch.float64))
    assert torch.equal(J != 0, adjacency)


def test_masked_mlp_repeated_rows_and_empty_rows():
    adjacency = torch.tensor([[False, False], [True, False], [True, False]])
    net = MaskedMLP(adjacency, hidden_features=(8,)).double()
    J = jacobian(net, torch.randn(2, dtype=torch.float64))
    assert torch.equal(J != 0, adjacency)


def test_masked_mlp_construction_is_fast_at_1000_features():
    adjacency = torch.tril(torch.ones(1000, 1000, dtype=torch.bool), diagonal=-1)
    adjacency[0, 0] = True
    start = time.perf_counter()
    net = MaskedMLP(adjacency, hidden_features=(256, 256))
    elapsed = time.perf_counter() - start
    assert net(torch.randn(2, 1000)).shape == (2, 1000)
    # A generous ceiling: construction is one (R, I) x (I, R) product, seconds would mean a
    # quadratic Python loop crept in.
    assert elapsed < 20.0


def test_masked_mlp_rejects_bad_adjacency():
    with pytest.raises(ValueError, match=r"\(O, I\)"):
        MaskedMLP(torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one True"):
        MaskedMLP(torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        MaskedMLP([[True]])


def test_monotonic_mlp_has_a_non_negative_jacobian():
    torch.manual_seed(0)
    net = MonotonicMLP(3, 2, hidden_features=(16, 16)).double()
    for _ in range(5):
        J = jacobian(net, torch.randn(3, dtype=torch.float64) * 3)
        assert (J >= 0).all()
        assert (J > 0).any()


@pytest.mark.parametrize("cls", [MLP, ResMLP])
def test_mlps_shapes_and_gradients(cls):
    net = cls(3, 5, hidden_features=(16, 32))
    y = net(torch.randn(4, 7, 3))
    assert y.shape == (4, 7, 5)
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_mlp_normalize_adds_layer_norms():
    net = MLP(3, 5, hidden_features=(16, 16), normalize=True, activation=nn.ELU)
    assert sum(isinstance(m, nn.LayerNorm) for m in net) == 2
    assert sum(isinstance(m, nn.ELU) for m in net) == 2


def test_conditioned_equals_the_concatenated_network():
    torch.manual_seed(0)
    for net in (
        MLP(3 + 2, 4).double(),
        MaskedMLP(torch.rand(6, 5) < 0.7, hidden_features=(16,)).double(),
    ):
        x = torch.randn(7, 1, 3, dtype=torch.float64)
        c = torch.randn(4, 2, dtype=torch.float64)
        expected = net(torch.cat((x.expand(7, 4, 3), c.expand(7, 4, 2)), dim=-1))
        assert torch.allclose(conditioned(net, c, 3)(x), expected)


def test_split_first_layer_restricted_to_outputs_equals_their_columns():
    torch.manual_seed(0)
    # a MADE over 3 features and 2 context inputs, 4 outputs per feature
    rows = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    adjacency = torch.cat((rows, torch.ones(3, 2, dtype=torch.bool)), 1).repeat_interleave(4, 0)
    net = MaskedMLP(adjacency, hidden_features=(24, 24), activation=nn.ELU).double()
    x = torch.randn(7, 1, 3, dtype=torch.float64)
    c = torch.randn(4, 2, dtype=torch.float64)
    full = net(torch.cat((x.expand(7, 4, 3), c.expand(7, 4, 2)), dim=-1))
    for outputs in (torch.arange(4), torch.arange(4, 12), torch.tensor([1, 9])):
        restricted = split_first_layer(net, c, 3, outputs)(x)
        torch.testing.assert_close(restricted, full[..., outputs])
        # the gradients of the weights (with an in-place activation) are those of the network
        grads = torch.autograd.grad(restricted.square().sum(), list(net.parameters()))
        expected = torch.autograd.grad(
            full[..., outputs].square().sum(), list(net.parameters()), retain_graph=True
        )
        for grad, reference in zip(grads, expected, strict=True):
            torch.testing.assert_close(grad, reference)
    # the first feature's outputs see only the context: a third of the hidden units
    assert [len(units) for units in dependencies(net, torch.arange(4))[:2]] == [8, 8]
    assert dependencies(net, None) == [None, None, None]


def test_mlp_embedding_flattens_and_checks_shape():
    net = MLPEmbedding((3, 4), 6)
    assert net(torch.randn(5, 3, 4)).shape == (5, 6)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 12\)"):
        net(torch.randn(5, 12))


def test_deep_set_embedding_is_permutation_invariant():
    torch.manual_seed(0)
    net = DeepSetEmbedding(2, 4, hidden_features=(16,), pooled_features=8).double()
    x = torch.randn(3, 10, 2, dtype=torch.float64)
    assert net(x).shape == (3, 4)
    assert torch.allclose(net(x), net(x[:, torch.randperm(10)]))
    assert not torch.allclose(net(x), net(x[:, :5]))  # depends on the trials themselves


def test_conv1d_embedding_shapes():
    torch.manual_seed(0)
    net = Conv1dEmbedding(1, 8)
    x = torch.randn(4, 100)
    assert net(x).shape == (4, 8)
    assert net(torch.randn(2, 3, 100)).shape == (2, 3, 8)
    multi = Conv1dEmbedding(3, 8)
    assert multi(torch.randn(4, 3, 50)).shape == (4, 8)
