"""What ``Monitor.log()`` does with each value it is given, at the call and later.

At the call, a value that could change after it (a 0-d tensor or numpy array updated in
place, an accumulator) is turned into a Python number, or, for a tensor on a GPU, into a
detached device-side copy: reading a GPU tensor here would wait for the GPU, stalling the
training thread's pipeline, so the I/O thread reads the copy. Nothing here raises: what
cannot be taken is wrapped in :class:`NotANumber` for the I/O thread to warn about.

No framework is imported: a tensor is recognised by its type's module and attributes.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "NotANumber",
    "OnDevice",
    "capture_count",
    "capture_values",
    "count_value",
    "merged_call",
    "metric_value",
]

MAX_COUNT: Final = 2**53  # (protocol.MAX_STEP)


class OnDevice:
    """A detached copy of a tensor on a GPU (or other device), read on the I/O thread."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def __repr__(self) -> str:
        return f"tensor on {_device(self.tensor)}"


class NotANumber:
    """A value that is not a number (a string, a list, a tensor of several elements)."""

    __slots__ = ("kind", "text")

    def __init__(self, value: object) -> None:
        self.kind = type(value).__name__
        try:
            self.text = repr(value)[:60]
        except Exception:  # a broken __repr__ is still no reason to raise
            self.text = f"<{self.kind}>"

    def __repr__(self) -> str:
        return self.text


def capture_values(named: Mapping[Any, Any]) -> dict[Any, Any]:
    """``named`` with each value as it is now: numbers, device copies, or NotANumber."""
    try:
        return {
            name: value if type(value) is float else _capture(value)
            for name, value in named.items()
        }
    except Exception:  # a mapping that breaks while read: the I/O thread warns about it
        return {}


def capture_count(value: Any) -> Any:
    """A step or epoch as it is now: an int or float where it can be had at once."""
    if type(value) is bool:
        return value  # (an int, but no count: the I/O thread says so)
    try:
        if _is_tensor(value):
            return _tensor_now(value)
        if isinstance(value, (str, bytes)):
            return NotANumber(value)
        if hasattr(value, "__index__"):
            return operator.index(value)  # numpy integers, and the like
        if hasattr(value, "__float__"):
            return float(value)
    except Exception:
        return NotANumber(value)
    return value


def _capture(value: Any) -> Any:
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return value
    try:
        if _is_tensor(value):
            return _tensor_now(value)
        if isinstance(value, (str, bytes)):  # float("0.5") works, but a name is no number
            return NotANumber(value)
        return float(value)  # numpy scalars and 0-d arrays, anything with __float__
    except Exception:
        return NotANumber(value)


def _is_tensor(value: object) -> bool:
    """Whether ``value`` looks like a torch tensor (torch is not imported to tell)."""
    return type(value).__module__.startswith("torch") and hasattr(value, "device")


def _tensor_now(tensor: Any) -> Any:
    """A CPU tensor's value now; a device tensor's detached copy (no wait for the GPU)."""
    if tensor.numel() != 1:  # (the shape is known without the device: no wait)
        return NotANumber(tensor)
    if _device(tensor) == "cpu":
        return tensor.item()
    # A copy on the device, made in the device's stream order: it holds the value as at
    # this call, and keeps no autograd graph alive.
    return OnDevice(tensor.detach().clone())


def _device(tensor: Any) -> object:
    device = getattr(tensor, "device", None)
    return getattr(device, "type", device)  # torch.device("cuda:0").type == "cuda"


def metric_value(value: Any) -> float | int | NotANumber:
    """On the I/O thread: a metric value as a number, or NotANumber."""
    kind = type(value)
    if kind is float or (kind is int and -(2**63) <= value < 2**63):
        return value  # type: ignore[no-any-return]
    if kind is NotANumber:
        return value  # type: ignore[no-any-return]
    try:
        if kind is OnDevice:
            tensor = value.tensor
            if tensor.numel() != 1:
                return NotANumber(tensor)
            return float(tensor.item())  # waits for the device: here, not in training
        return float(value)
    except Exception:
        return NotANumber(value)


def count_value(value: Any, fractional: bool) -> int | float | None:
    """On the I/O thread: a step or epoch from 0 to 2**53, or None if it cannot be one.

    A whole float is an int; a fractional one stands only where ``fractional`` (an
    epoch the Hugging Face Trainer reports as 2.5).
    """
    try:
        if type(value) is OnDevice:
            value = value.tensor.item()
        if type(value) is bool or isinstance(value, (NotANumber, str, bytes)):
            return None
        if type(value) is not int:
            if hasattr(value, "__index__"):
                value = operator.index(value)
            else:
                number = float(value)
                if not math.isfinite(number):
                    return None
                if number.is_integer():
                    value = int(number)
                elif fractional and 0.0 <= number <= MAX_COUNT:
                    return number
                else:
                    return None
    except Exception:
        return None
    return value if 0 <= value <= MAX_COUNT else None


def merged_call(metrics: Any, named: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """log()'s positional mapping and named values as one dict, copied now (the caller
    may reuse its dict); a broken mapping or a non-mapping is left for the I/O thread
    to warn about."""
    if isinstance(metrics, Mapping):
        with contextlib.suppress(Exception):
            return None, {**metrics, **named}
    return metrics, named
