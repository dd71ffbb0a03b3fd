r"""Linear bijections of vectors: permutations, rotations and LU-factorized maps.

These transforms act on the last dimension of their input (event dimension 1); their
log-absolute-determinant has the shape of the input without its last dimension.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints

from .._validation import broadcast_shapes, check_float_tensor, check_input, check_tensor, describe
from .base import Transform

__all__ = ["LULinearTransform", "PermutationTransform", "RotationTransform"]


def check_square(value: object, name: str, owner: str) -> Tensor:
    r"""Returns ``value`` if it is a floating-point tensor of shape :math:`(*, D, D)`."""

    value = check_float_tensor(value, name, owner, min_dim=2)
    if value.shape[-1] != value.shape[-2] or value.shape[-1] == 0:
        raise ValueError(
            f"{owner} expects {name} to be a square matrix of shape (*, D, D) with D >= 1, "
            f"but received {describe(value)}. Pass a (D, D) matrix for D features."
        )
    return value


class PermutationTransform(Transform):
    r"""The permutation :math:`f(x) = (x_{o_1}, \dots, x_{o_D})` of the last dimension.

    .. math:: \log |\det J_f(x)| = 0

    Arguments:
        order: The permutation :math:`o` of :math:`(0, \dots, D - 1)`, an integer tensor
            with shape :math:`(D,)`.

    Example:
        >>> t = PermutationTransform(torch.tensor([2, 0, 1]))
        >>> t(torch.tensor([10.0, 20.0, 30.0]))
        tensor([30., 10., 20.])
        >>> t.inv(torch.tensor([30.0, 10.0, 20.0]))
        tensor([10., 20., 30.])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, order: Tensor):
        super().__init__()
        owner = type(self).__name__
        order = check_tensor(order, f"{owner}'s order")
        if order.is_floating_point() or order.is_complex() or order.dtype == torch.bool:
            raise TypeError(
                f"{owner} expects order to be an integer tensor, but received "
                f"{describe(order)}. Pass e.g. torch.randperm(D) or torch.arange(D).flip(0)."
            )
        D = order.numel()
        if order.dim() != 1 or D == 0:
            raise ValueError(
                f"{owner} expects order to be a non-empty 1-d tensor of shape (D,), but "
                f"received {describe(order)}. Pass a permutation of torch.arange(D)."
            )
        order = order.long()
        if not torch.equal(order.sort().values, torch.arange(D, device=order.device)):
            raise ValueError(
                f"{owner} expects order to be a permutation of 0, ..., {D - 1} (each index "
                f"exactly once), but received {order.tolist()}. Pass e.g. torch.randperm({D})."
            )
        self.order = order
        self.inverse_order = torch.argsort(order)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.order.tolist()})"

    def _check(self, x: Tensor) -> Tensor:
        return check_input(x, x, type(self).__name__, features=self.order.numel())

    def _call(self, x: Tensor) -> Tensor:
        return self._check(x)[..., self.order]

    def _inverse(self, y: Tensor) -> Tensor:
        return self._check(y)[..., self.inverse_order]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return x.new_zeros(x.shape[:-1])

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._call(x), x.new_zeros(x.shape[:-1])


class RotationTransform(Transform):
    r"""The rotation :math:`f(x) = R^\top x`, with :math:`R = \exp(A - A^\top)`.

    The matrix exponential of the skew-symmetric :math:`A - A^\top` is a rotation
    (orthogonal, with determinant 1), so :math:`\log |\det J_f(x)| = 0` and
    :math:`f^{-1}(y) = R y`. With :math:`x` a row vector, :math:`f(x) = x R`.

    Arguments:
        A: The unconstrained matrix :math:`A`, with shape :math:`(*, D, D)`.

    Example:
        >>> A = torch.tensor([[0.0, 0.0], [torch.pi / 4, 0.0]])
        >>> t = RotationTransform(A)
        >>> t(torch.tensor([1.0, 0.0]))  # x R, with R = exp(A - A^T) a 45 degree rotation
        tensor([ 0.7071, -0.7071])
        >>> x = torch.tensor([1.0, 2.0])
        >>> torch.allclose(t.inv(t(x)), x)
        True
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, A: Tensor):
        super().__init__()
        A = check_square(A, "A", type(self).__name__)
        self.R = torch.linalg.matrix_exp(A - A.mT)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(R: {tuple(self.R.shape)})"

    def _check(self, x: Tensor) -> Tensor:
        return check_input(x, self.R, type(self).__name__, features=self.R.shape[-1])

    def _call(self, x: Tensor) -> Tensor:
        return (self._check(x).unsqueeze(-2) @ self.R).squeeze(-2)

    def _inverse(self, y: Tensor) -> Tensor:
        return (self._check(y).unsqueeze(-2) @ self.R.mT).squeeze(-2)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return y.new_zeros(y.shape[:-1])

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = self._call(x)
        return y, y.new_zeros(y.shape[:-1])


class LULinearTransform(Transform):
    r"""The invertible linear map :math:`f(x) = L U x`, in LU form.

    :math:`L` is unit lower-triangular (ones on the diagonal, the strict lower triangle of
    ``LU`` below it) and :math:`U` upper-triangular (the upper triangle of ``LU``, diagonal
    included), so

    .. math:: \log |\det J_f(x)| = \sum_{i=1}^D \log |U_{ii}|

    and :math:`f^{-1}(y) = U^{-1} L^{-1} y` costs two triangular solves. For a batch of row
    vectors, :math:`f(x) = x (L U)^\top`. The map is invertible if no :math:`U_{ii}` is zero.

    Arguments:
        LU: The packed factors :math:`L` and :math:`U`, with shape :math:`(*, D, D)`.

    Example:
        >>> LU = torch.tensor([[2.0, 1.0], [3.0, 0.5]])  # L = [[1, 0], [3, 1]]
        >>> t = LULinearTransform(LU)  # U = [[2, 1], [0, 0.5]]
        >>> t.call_and_ladj(torch.tensor([1.0, 1.0]))
        (tensor([3.0000, 9.5000]), tensor(0.))
        >>> t.inv(torch.tensor([3.0, 9.5]))
        tensor([1., 1.])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, LU: Tensor):
        super().__init__()
        LU = check_square(LU, "LU", type(self).__name__)
        eye = torch.eye(LU.shape[-1], dtype=LU.dtype, device=LU.device)
        self.L = torch.tril(LU, diagonal=-1) + eye
        self.U = torch.triu(LU)
        self.weight = self.L @ self.U
        self.log_abs_diag = torch.diagonal(self.U, dim1=-2, dim2=-1).abs().log().sum(dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(LU: {tuple(self.U.shape)})"

    def _check(self, x: Tensor) -> Tensor:
        return check_input(x, self.U, type(self).__name__, features=self.U.shape[-1])

    def _call(self, x: Tensor) -> Tensor:
        return (self.weight @ self._check(x).unsqueeze(-1)).squeeze(-1)

    def _inverse(self, y: Tensor) -> Tensor:
        y = self._check(y).unsqueeze(-1)
        z = torch.linalg.solve_triangular(self.L, y, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(self.U, z, upper=True).squeeze(-1)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        batch = broadcast_shapes(x.shape[:-1], y.shape[:-1], self.log_abs_diag.shape)
        return self.log_abs_diag.expand(batch)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = self._call(x)
        return y, self.log_abs_diag.expand(y.shape[:-1])

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = self._inverse(y)
        return x, -self.log_abs_diag.expand(x.shape[:-1])
