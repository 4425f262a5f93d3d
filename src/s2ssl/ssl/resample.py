"""Resampling of images, label maps and feature maps through a :class:`ViewGeometry`.

One ``grid_sample`` call per batch, ``align_corners=False``, in the pixel coordinate conventions
of :mod:`s2ssl.ssl.geometry`.
"""

from __future__ import annotations

from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor

from s2ssl.ssl.checks import check_image, check_points
from s2ssl.ssl.geometry import ViewGeometry

__all__ = [
    "apply_geometry",
    "apply_geometry_labels",
    "sample_at",
]

_SAMPLE_MODES: Final[tuple[str, ...]] = ("bilinear", "nearest")
_PADDING_MODES: Final[tuple[str, ...]] = ("border", "zeros", "reflection")


def _normalized_grid(points: Tensor, size: tuple[int, int]) -> Tensor:
    """Pixel ``(x, y)`` points ``[..., 2]`` as grid_sample coordinates (align_corners=False)."""
    h, w = size
    scale = points.new_tensor([2.0 / w, 2.0 / h])
    return points * scale - 1.0


def _grid(geometry: ViewGeometry, n: int, channels: int, x: Tensor) -> Tensor:
    theta = geometry.theta(dtype=x.dtype).to(x.device)
    h, w = geometry.out_size
    return F.affine_grid(theta, [n, channels, h, w], align_corners=False)


def _check_geometry_input(x: Tensor, geometry: ViewGeometry, name: str) -> None:
    if not isinstance(geometry, ViewGeometry):
        raise ValueError(f"geometry must be a ViewGeometry, got {type(geometry).__name__}")
    if x.shape[0] != geometry.n:
        raise ValueError(f"{name} has {x.shape[0]} samples, the geometry has {geometry.n}")
    if tuple(x.shape[-2:]) != geometry.src_size:
        raise ValueError(
            f"{name} has spatial size {tuple(x.shape[-2:])}, the geometry expects a source of "
            f"{geometry.src_size} (height, width)"
        )


def apply_geometry(
    x: Tensor, geometry: ViewGeometry, mode: str = "bilinear", padding_mode: str = "border"
) -> Tensor:
    """Resample images ``[N, C, H, W]`` into their views ``[N, C, h, w]``.

    One :func:`~torch.nn.functional.affine_grid` + :func:`~torch.nn.functional.grid_sample` call
    for the batch (``align_corners=False``, so output pixel centre ``(j + 0.5, i + 0.5)`` reads the
    source at ``geometry.matrix @ (j + 0.5, i + 0.5, 1)``).

    Args:
        x: floating images ``[N, C, H, W]`` with ``(H, W) == geometry.src_size``.
        geometry: the views, on any device (moved to ``x``'s).
        mode: ``"bilinear"`` for images, ``"nearest"`` for label or mask maps (see
            :func:`apply_geometry_labels` for integer maps).
        padding_mode: what is read outside the source. The default ``"border"`` repeats the edge
            pixels: crops of :func:`~s2ssl.ssl.geometry.sample_view_geometry` lie inside the
            source, but bilinear reads within half a pixel of the source edge would otherwise mix
            in zeros. ``"zeros"`` (or ``"reflection"``) for hand-made geometries that leave the
            source on purpose.
    """
    check_image(x)
    _check_geometry_input(x, geometry, "x")
    if mode not in _SAMPLE_MODES:
        raise ValueError(f"mode must be one of {_SAMPLE_MODES}, got {mode!r}")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    grid = _grid(geometry, x.shape[0], x.shape[1], x)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def apply_geometry_labels(
    labels: Tensor, geometry: ViewGeometry, fill: int | None = None
) -> Tensor:
    """Resample integer label (or mask) maps ``[N, H, W]`` into views ``[N, h, w]``, dtype kept.

    Nearest-neighbour sampling (one ``grid_sample`` call in float64, which holds every int32 label
    exactly). Output pixels whose source position lies outside the source image take ``fill``
    when given (e.g. the ``ignore_index`` of the loss), else the nearest edge label.
    """
    if not isinstance(labels, Tensor) or labels.ndim != 3:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must have shape [N, H, W], got {shape}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"labels must be an integer or bool tensor, got {labels.dtype}; use apply_geometry "
            "with mode='nearest' for float maps"
        )
    if labels.numel() == 0:
        raise ValueError(f"labels is empty (shape {tuple(labels.shape)})")
    _check_geometry_input(labels, geometry, "labels")
    work = labels.to(torch.float64)[:, None]
    grid = _grid(geometry, labels.shape[0], 1, work)
    out = F.grid_sample(work, grid, mode="nearest", padding_mode="border", align_corners=False)
    out = out[:, 0].round()
    if fill is not None:
        outside = (grid.abs() > 1.0).any(dim=-1)
        out = out.masked_fill(outside, float(fill))
    return out.to(labels.dtype)


def sample_at(features: Tensor, points: Tensor, mode: str = "bilinear") -> Tensor:
    """Read feature maps ``[N, D, h, w]`` at output-pixel points ``[N, P, 2]`` → ``[N, P, D]``.

    Points are continuous ``(x, y)`` pixel coordinates with pixel centres at ``i + 0.5`` (the
    convention of :func:`apply_geometry` and
    :func:`~s2ssl.ssl.correspondence.sample_correspondences`); one
    ``grid_sample`` call (bilinear by default, ``align_corners=False``, border padding).
    """
    check_image(features, "features")
    check_points(points, features.shape[0], "points")
    if mode not in _SAMPLE_MODES:
        raise ValueError(f"mode must be one of {_SAMPLE_MODES}, got {mode!r}")
    size = (features.shape[-2], features.shape[-1])
    grid = _normalized_grid(points.to(device=features.device, dtype=features.dtype), size)
    out = F.grid_sample(
        features, grid[:, :, None, :], mode=mode, padding_mode="border", align_corners=False
    )  # [N, D, P, 1]
    return out[..., 0].transpose(1, 2)
