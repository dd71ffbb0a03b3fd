r"""General helpers: broadcasting, unpacking and partial modules.

The numerical helpers ``odeint``, ``bisection`` and ``gauss_legendre`` live in
:mod:`sbikit.numerics` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ._validation import broadcast_shapes
from .numerics import bisection, gauss_legendre, odeint

__all__ = ["Partial", "bisection", "broadcast", "gauss_legendre", "odeint", "unpack"]


def broadcast(*tensors: Tensor, ignore: int | Sequence[int] = 0) -> list[Tensor]:
    r"""Broadcasts tensors together, ignoring their rightmost dimensions.

    Arguments:
        tensors: The tensors to broadcast.
        ignore: The number of rightmost dimensions to leave alone, for all tensors or
            for each.

    Returns:
        The broadcast tensors (views, no copies).

    Example:
        >>> x, c = broadcast(torch.rand(3, 1, 5), torch.rand(4, 7), ignore=1)
        >>> x.shape, c.shape
        (torch.Size([3, 4, 5]), torch.Size([3, 4, 7]))
    """

    if isinstance(ignore, int):
        ignore = [ignore] * len(tensors)
    dims = [t.dim() - i for t, i in zip(tensors, ignore, strict=True)]
    common = broadcast_shapes(*(t.shape[:d] for t, d in zip(tensors, dims, strict=True)))
    return [torch.broadcast_to(t, common + t.shape[d:]) for t, d in zip(tensors, dims, strict=True)]


def unpack(x: Tensor, shapes: Sequence[Sequence[int]]) -> list[Tensor]:
    r"""Splits the last dimension of a tensor into tensors of given event shapes.

    Arguments:
        x: A tensor with shape :math:`(*, N)`, where :math:`N` is the total size of
            ``shapes``.
        shapes: The event shapes :math:`S_i` of the pieces.

    Returns:
        The pieces, with shapes :math:`(*, S_i)`.

    Example:
        >>> a, b = unpack(torch.arange(7.0), ((), (2, 3)))
        >>> a.shape, b.shape
        (torch.Size([]), torch.Size([2, 3]))
    """

    sizes = [math.prod(s) for s in shapes]
    if x.shape[-1] != sum(sizes):
        raise ValueError(
            f"unpack expects a last dimension of size {sum(sizes)} for shapes "
            f"{[tuple(s) for s in shapes]}, but received shape {tuple(x.shape)}."
        )
    pieces = x.split(sizes, dim=-1)
    return [p.reshape(x.shape[:-1] + torch.Size(s)) for p, s in zip(pieces, shapes, strict=True)]


class Partial(nn.Module):
    r"""A :func:`functools.partial` that is a module: tensors become parameters or buffers.

    ``Partial(f, *args, **kwargs)(*more, **extra)`` returns ``f(*args, *more, **kwargs,
    **extra)``. Tensor arguments are registered as trainable parameters, or as buffers with
    ``buffer=True`` (non-floating tensors are always buffers), so they follow ``.to()`` and
    appear in ``state_dict()``; a module ``f`` is a submodule.

    Arguments:
        f: A callable.
        args: Positional arguments given first to ``f``.
        buffer: Whether tensors are registered as buffers instead of parameters.
        kwargs: Keyword arguments of ``f``.

    Example:
        >>> shift = Partial(torch.add, torch.ones(3), buffer=True)
        >>> shift(torch.arange(3.0))
        tensor([1., 2., 3.])
        >>> list(shift.state_dict())
        ['_0']
    """

    def __init__(self, f: Callable[..., Any], *args: Any, buffer: bool = False, **kwargs: Any):
        super().__init__()
        self.f = f
        self._num_args = len(args)
        self._keys = tuple(kwargs)
        for i, arg in enumerate(args):
            self._store(f"_{i}", arg, buffer)
        for key, value in kwargs.items():
            self._store(key, value, buffer)

    def _store(self, name: str, value: Any, buffer: bool) -> None:
        if isinstance(value, Tensor):
            if buffer or not (value.is_floating_point() or value.is_complex()):
                self.register_buffer(name, value)
            else:
                self.register_parameter(name, nn.Parameter(value))
        else:
            setattr(self, name, value)

    def extra_repr(self) -> str:
        return f"f={getattr(self.f, '__name__', self.f)}"

    @property
    def args(self) -> list[Any]:
        r"""The stored positional arguments."""

        return [getattr(self, f"_{i}") for i in range(self._num_args)]

    @property
    def kwargs(self) -> dict[str, Any]:
        r"""The stored keyword arguments."""

        return {key: getattr(self, key) for key in self._keys}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.f(*self.args, *args, **self.kwargs, **kwargs)
