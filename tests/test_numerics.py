import pytest
import torch

from sbikit.numerics import softmax


@pytest.mark.parametrize("shape", [(7,), (3, 5, 8), (2, 1)])
def test_softmax_matches_torch_with_gradients(shape):
    x = (10 * torch.randn(shape, generator=torch.Generator().manual_seed(1))).double()
    x.requires_grad_(True)
    weights = torch.randn(shape, dtype=torch.float64)
    ours = softmax(x)
    reference = torch.softmax(x, dim=-1)
    torch.testing.assert_close(ours, reference)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    (grad_reference,) = torch.autograd.grad((reference * weights).sum(), x)
    torch.testing.assert_close(grad_ours, grad_reference)
