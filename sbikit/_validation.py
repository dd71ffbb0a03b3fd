r"""Argument checks shared by the public classes of sbikit.

Each check raises a :class:`TypeError` or :class:`ValueError` whose message says what was
expected, what was received and how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number, Real

import torch
from torch import Tensor


def describe(value: object) -> str:
    r"""Returns a short description of ``value`` for error messages."""

    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)} on {value.device}"
    return f"an object of type {type(value).__name__}"


def check_tensor(value: object, name: str) -> Tensor:
    r"""Returns ``value`` if it is a tensor, or raises a :class:`TypeError`."""

    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, but received {describe(value)}. "
            f"Convert it with torch.as_tensor(...) first."
        )
    return value


def as_parameter(value: object, name: str) -> Tensor:
    r"""Returns a distribution parameter as a floating-point tensor.

    Tensors are returned as they are (integer tensors are cast to the default dtype) and
    Python numbers become 0-d tensors of the default dtype; anything else raises a
    :class:`TypeError`.
    """

    if isinstance(value, Tensor):
        return value if value.is_floating_point() else value.to(torch.get_default_dtype())
    if isinstance(value, Number) and not isinstance(value, complex | bool):
        return torch.tensor(float(value))
    raise TypeError(
        f"{name} must be a torch.Tensor or a real number, but received {describe(value)}. "
        f"Convert it with torch.as_tensor(...) first."
    )


def check_compatible(**tensors: Tensor) -> None:
    r"""Checks that tensors share one dtype and one device, or raises.

    Python numbers converted by :func:`as_parameter` (0-d tensors of the default dtype on
    the CPU) adapt to the others and never count as a mismatch.
    """

    named = [(k, v) for k, v in tensors.items() if v.dim() > 0 or v.requires_grad]
    if not named:
        return
    first_name, first = named[0]
    for name, value in named[1:]:
        if value.dtype != first.dtype:
            raise TypeError(
                f"{name} has dtype {value.dtype} but {first_name} has dtype {first.dtype}; "
                f"all parameters must share one dtype. Cast them with .to({first.dtype})."
            )
        if value.device != first.device:
            raise ValueError(
                f"{name} is on {value.device} but {first_name} is on {first.device}; "
                f"all parameters must be on one device. Move them with .to({first.device!r})."
            )


def check_like(value: Tensor, reference: Tensor, name: str, owner: str) -> None:
    r"""Checks that ``value`` has the dtype and device of ``reference``, or raises."""

    if value.dtype != reference.dtype:
        raise TypeError(
            f"{owner} expects {name} of dtype {reference.dtype}, but received {value.dtype}. "
            f"Cast it with .to({reference.dtype}) or move the model with .to({value.dtype})."
        )
    if value.device != reference.device:
        raise ValueError(
            f"{owner} expects {name} on {reference.device}, but received it on "
            f"{value.device}. Move it with .to({str(reference.device)!r})."
        )


def check_trailing_shape(value: Tensor, shape: torch.Size, name: str, owner: str) -> None:
    r"""Checks that the rightmost dimensions of ``value`` equal ``shape``, or raises."""

    n = len(shape)
    if n == 0:
        return
    if value.dim() < n or value.shape[-n:] != shape:
        raise ValueError(
            f"{owner} expects {name} whose last dimension(s) are {tuple(shape)}, but received "
            f"shape {tuple(value.shape)}. Pass a tensor of shape (*, {', '.join(map(str, shape))})."
        )


def check_number(
    value: object,
    name: str,
    owner: str,
    low: float = -math.inf,
    high: float = math.inf,
) -> float:
    r"""Returns ``value`` as a float if it is a real number in the open interval
    :math:`(low, high)`, or raises a :class:`TypeError` or :class:`ValueError`."""

    if not isinstance(value, Real) or isinstance(value, bool):
        raise TypeError(
            f"{owner} expects {name} to be a real number, but received {describe(value)}. "
            f"Pass a Python float, e.g. {name}=1.0 (use .item() on a 0-d tensor)."
        )
    value = float(value)
    if not low < value < high:
        raise ValueError(
            f"{owner} expects {name} in the open interval ({low}, {high}), but received "
            f"{value}. Pass a value strictly inside that interval."
        )
    return value


def check_float_tensor(value: object, name: str, owner: str, min_dim: int = 0) -> Tensor:
    r"""Returns ``value`` as a floating-point tensor with at least ``min_dim`` dimensions.

    Integer tensors are cast to the default dtype; anything that is not a tensor raises a
    :class:`TypeError`, a tensor with too few dimensions a :class:`ValueError`.
    """

    value = check_tensor(value, f"{owner}'s {name}")
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(
            f"{owner} expects {name} to be a real floating-point tensor, but received "
            f"{describe(value)}. Cast it with .to(torch.float32) or .to(torch.float64)."
        )
    if not value.is_floating_point():
        value = value.to(torch.get_default_dtype())
    if value.dim() < min_dim:
        raise ValueError(
            f"{owner} expects {name} with at least {min_dim} dimension(s), but received "
            f"{describe(value)}. Add the missing dimension(s), e.g. with .unsqueeze(-1)."
        )
    return value


def broadcast_shapes(*shapes: Sequence[int]) -> torch.Size:
    r"""Returns the broadcast of shapes, as :func:`torch.broadcast_shapes` does (and with its
    :class:`RuntimeError` when they do not broadcast), in about a twentieth of its time:
    transforms call it on every evaluation.

    Example:
        >>> broadcast_shapes(torch.Size([3, 1]), (4,), ())
        torch.Size([3, 4])
    """

    ndim = max(map(len, shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape, ndim - len(shape)):
            if size != 1:
                if out[i] != 1 and out[i] != size:
                    raise RuntimeError(
                        f"shape mismatch: objects cannot be broadcast to a single shape: "
                        f"{[tuple(s) for s in shapes]}"
                    )
                out[i] = size
    return torch.Size(out)


def broadcast_batch(owner: str, **shapes: torch.Size) -> torch.Size:
    r"""Returns the broadcast of the batch shapes ``shapes``, or raises a :class:`ValueError`."""

    try:
        return broadcast_shapes(*shapes.values())
    except RuntimeError:
        listed = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        raise ValueError(
            f"{owner} expects parameters whose batch shapes broadcast together, but received "
            f"batch shapes {listed}. Give them equal or broadcastable leading dimensions."
        ) from None


def check_input(x: object, reference: Tensor, owner: str, features: int | None = None) -> Tensor:
    r"""Checks an input of a transform: a tensor with the dtype and device of ``reference``
    and, if ``features`` is given, a last dimension of that size."""

    x = check_tensor(x, f"the input of {owner}")
    check_like(x, reference, "inputs", owner)
    if features is not None and (x.dim() == 0 or x.shape[-1] != features):
        raise ValueError(
            f"{owner} expects inputs of shape (*, {features}), but received {describe(x)}. "
            f"The last dimension must be the number of features, {features}."
        )
    return x


def check_count(value: object, name: str, owner: str, minimum: int = 1) -> int:
    r"""Returns ``value`` if it is an integer at least ``minimum``, or raises."""

    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner} expects {name} to be an int, but received {describe(value)}.")
    if value < minimum:
        raise ValueError(f"{owner} expects {name} >= {minimum}, but received {name}={value}.")
    return value
