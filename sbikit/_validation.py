r"""Argument checks shared by the public classes of sbikit.

Each check raises a :class:`TypeError` or :class:`ValueError` whose message says what was
expected, what was received and how to fix it.
"""

from __future__ import annotations

from numbers import Number

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
