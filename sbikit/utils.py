r"""General helpers: broadcasting, unpacking, partial modules and the process's memory.

The numerical helpers ``odeint``, ``bisection`` and ``gauss_legendre`` live in
:mod:`sbikit.numerics` and are re-exported here.
"""

from __future__ import annotations

import ctypes
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ._validation import broadcast_shapes
from .numerics import bisection, gauss_legendre, odeint

__all__ = [
    "Partial",
    "bisection",
    "broadcast",
    "gauss_legendre",
    "keep_freed_memory",
    "odeint",
    "unpack",
]

MMAP_THRESHOLD = 32 * 2**20
r"""Below this size (bytes), :func:`keep_freed_memory` has buffers come from the heap."""
TRIM_THRESHOLD = 256 * 2**20
r"""Up to this much freed heap (bytes) stays with the process after :func:`keep_freed_memory`."""
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # the options of mallopt, in glibc's malloc.h


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


def keep_freed_memory() -> bool:
    r"""Lets this process keep the memory it frees, for its next buffers, instead of handing
    it back to the system and faulting it in again, page by page.

    The GNU C library's allocator takes buffers above a threshold that adapts as the
    program runs (from 128 KiB) straight from the system, and gives back the free top of
    its heap beyond twice that. Drawing 10^4 samples of a flow with 128 hidden units needs
    buffers of 5 MB, and, depending on what the process did before, each draw of them can
    cost some 10^4 page faults: 10^4 samples of the default two_moons posterior then take
    about 1.5 times as long. This sets both thresholds for the whole process (buffers below
    :data:`MMAP_THRESHOLD` come from the heap; up to :data:`TRIM_THRESHOLD` of freed heap
    stays), so that the memory of one call is reused by the next.

    It changes a setting of the whole process, so importing sbikit never calls it: the
    ``sbikit`` command does, and a script may, once, at its start. It does nothing and
    returns ``False`` elsewhere than with glibc, or where the environment sets glibc's
    ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` (the user's own choice).

    Returns:
        Whether the thresholds were set.

    Example:
        >>> keep_freed_memory() in (True, False)  # True on Linux with glibc
        True
    """

    if {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & os.environ.keys():
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library the process runs on
    except (OSError, TypeError):  # Windows
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # another C library than glibc
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
