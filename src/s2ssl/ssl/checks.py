"""Argument checks shared by the view augmentations and the contrastive losses.

Each raises :class:`ValueError` (or :class:`TypeError` for a wrong type) naming the argument, the
expected and the received value.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

from torch import Tensor

from s2ssl.training.labels import check_int

__all__ = [
    "check_image",
    "check_int",
    "check_points",
    "check_probability",
    "check_range",
    "check_real",
    "check_size",
    "check_temperature",
    "check_tensor",
]


def check_size(size: Sequence[int], name: str) -> tuple[int, int]:
    """``size`` as a ``(height, width)`` tuple of positive ints, else ValueError."""
    try:
        values = tuple(operator.index(v) for v in size if not isinstance(v, bool))
    except TypeError:
        raise ValueError(f"{name} must be a (height, width) pair of ints, got {size!r}") from None
    if len(values) != 2 or len(values) != len(tuple(size)) or min(values) < 1:
        raise ValueError(f"{name} must be a (height, width) pair of positive ints, got {size!r}")
    return values[0], values[1]


def check_image(x: Tensor, name: str = "x") -> None:
    """ValueError unless ``x`` is a non-empty floating ``[N, C, H, W]`` tensor."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [N, C, H, W], got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape [N, C, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor, got {x.dtype}; convert with x.float()"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one pixel")


def check_probability(p: float, name: str) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return float(p)


def check_range(
    bounds: Sequence[float], name: str, *, low: float, high: float = math.inf
) -> tuple[float, float]:
    """``bounds`` as ``(lo, hi)`` with ``low < lo <= hi <= high``, else ValueError."""
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {bounds!r}") from None
    if not (low < lo <= hi <= high):
        raise ValueError(
            f"{name} must satisfy {low} < low <= high <= {high}, got ({lo}, {hi}); "
            "swap or fix the bounds"
        )
    return lo, hi


def check_points(points: Tensor, n: int, name: str) -> None:
    if not isinstance(points, Tensor) or points.ndim != 3 or points.shape[-1] != 2:
        shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"{name} must have shape [N, P, 2] holding (x, y), got {shape}")
    if points.shape[0] != n:
        raise ValueError(f"{name} has {points.shape[0]} samples, the geometry has {n}")
    if not points.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {points.dtype}")


def check_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def check_temperature(temperature: object) -> float:
    value = check_real("temperature", temperature)
    if value <= 0:
        raise ValueError(f"temperature must be > 0, got {value}")
    return value


def check_tensor(name: str, value: object, ndim: int, *, floating: bool = True) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions, got {value.ndim} (shape {tuple(value.shape)})"
        )
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value
