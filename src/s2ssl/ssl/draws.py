"""Random draws for the batched view augmentations from an explicit :class:`torch.Generator`.

Draws happen on the generator's device (so one generator state gives the same numbers on any
target device) and are then moved to the target device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "draw_normal",
    "draw_uniform",
    "generator_device",
]


def generator_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """The generator's device, or ``device`` without a generator (torch's global generator)."""
    return generator.device if generator is not None else device


def _draw(
    sampler: Callable[..., Tensor],
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """``sampler`` (torch.rand / torch.randn) on the generator's device, moved to ``device``."""
    draw = sampler(
        tuple(shape), generator=generator, device=generator_device(generator, device), dtype=dtype
    )
    return draw.to(device)


def draw_uniform(
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``U(0, 1)`` draws (see :func:`_draw`)."""
    return _draw(torch.rand, shape, generator, device, dtype)


def draw_normal(
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``N(0, 1)`` draws (see :func:`_draw`)."""
    return _draw(torch.randn, shape, generator, device, dtype)
