"""Exact pixel correspondences between two views of the same images.

Ground positions seen by both views, as output-pixel points of each view (read features there
with :func:`~s2ssl.ssl.resample.sample_at`); coordinate conventions of :mod:`s2ssl.ssl.geometry`.
"""

from __future__ import annotations

from typing import Final

import torch
from torch import Tensor

from s2ssl.ssl.draws import draw_uniform
from s2ssl.ssl.geometry import ViewGeometry

__all__ = [
    "sample_correspondences",
]

_INSIDE_TOL: Final[float] = 1e-4
"""Tolerance (output pixels) of the inside-the-margin test in :func:`sample_correspondences`."""


def sample_correspondences(
    g1: ViewGeometry,
    g2: ViewGeometry,
    num_points: int,
    generator: torch.Generator | None = None,
    margin: float = 0.5,
    *,
    min_area: float = 0.0,
    oversample: int = 4,
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ``num_points`` ground positions per sample seen by both views.

    Strategy: per sample, the region of each view at least ``margin`` output pixels inside its
    output image is mapped to the source; the two regions' bounding boxes (source pixels) are
    intersected, and ``oversample · num_points`` positions are drawn uniformly in that box. A
    candidate is accepted when it lies ``margin`` px inside both output images (to within 1e-4 px);
    the first ``num_points`` accepted candidates are kept. For the axis-aligned geometries of
    :func:`~s2ssl.ssl.geometry.sample_view_geometry` (crops, flips, rot90) the box *is* the
    overlap, so the positions are uniform over the overlap's ground area and every candidate is
    accepted; for general affine views this is rejection sampling from the bounding box.

    Args:
        g1, g2: the two views of the same source images (same ``N`` and ``src_size``).
        num_points: ``P``, positions per sample.
        generator: source of randomness; None uses torch's global generator.
        margin: minimum distance (output pixels of each view) from the output image's edge;
            the default 0.5 keeps every point between pixel centres, so bilinear reads
            (:func:`~s2ssl.ssl.resample.sample_at`) need no padding.
        min_area: samples whose overlap box covers at most this area (source pixels²) get no
            valid points (default: only empty overlaps).
        oversample: candidates drawn per requested point.

    Returns:
        ``(pts1, pts2, valid)``: ``pts1`` / ``pts2`` ``[N, P, 2]`` output-pixel ``(x, y)`` of the
        same ground position in view 1 and view 2; ``valid`` ``[N, P]`` bool, False where the
        overlap is empty or too small to supply the point (such rows are padded with the output
        images' centres; mask them out).
    """
    for name, g in (("g1", g1), ("g2", g2)):
        if not isinstance(g, ViewGeometry):
            raise ValueError(f"{name} must be a ViewGeometry, got {type(g).__name__}")
    if g1.n != g2.n:
        raise ValueError(f"g1 has {g1.n} samples and g2 has {g2.n}; pass views of the same batch")
    if g1.src_size != g2.src_size:
        raise ValueError(
            f"g1.src_size {g1.src_size} != g2.src_size {g2.src_size}; both views must be of the "
            "same source images"
        )
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 1:
        raise ValueError(f"num_points must be a positive int, got {num_points!r}")
    if isinstance(oversample, bool) or not isinstance(oversample, int) or oversample < 1:
        raise ValueError(f"oversample must be a positive int, got {oversample!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0 output pixels, got {margin}")
    if min_area < 0:
        raise ValueError(f"min_area must be >= 0 source pixels², got {min_area}")

    device = g1.device
    dtype = g1.matrix.dtype
    g2 = g2.to(device=device, dtype=dtype)
    n = g1.n
    inverse1, inverse2 = g1.inverse(), g2.inverse()

    def inset_box(g: ViewGeometry) -> tuple[Tensor, Tensor, Tensor]:
        """Source bounding box (lo [N, 2], hi [N, 2]) of the margin-inset output, and emptiness."""
        h, w = g.out_size
        x0, y0, x1, y1 = margin, margin, w - margin, h - margin
        corners = g.matrix.new_tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        src = g.to_source(corners.expand(n, 4, 2))
        empty = torch.full((n,), x1 < x0 or y1 < y0, device=device)
        return src.amin(dim=1), src.amax(dim=1), empty

    lo1, hi1, empty1 = inset_box(g1)
    lo2, hi2, empty2 = inset_box(g2)
    lo = torch.maximum(lo1, lo2)
    hi = torch.minimum(hi1, hi2)
    extent = (hi - lo).clamp(min=0.0)
    box_area = extent[:, 0] * extent[:, 1]
    usable = (box_area > min_area) & ~empty1 & ~empty2  # [N]

    m = num_points * oversample
    candidates = lo[:, None, :] + extent[:, None, :] * draw_uniform(
        (n, m, 2), generator, device, dtype
    )
    c1 = inverse1.to_source(candidates)
    c2 = inverse2.to_source(candidates)

    def inside(points: Tensor, size: tuple[int, int]) -> Tensor:
        h, w = size
        limit = points.new_tensor([w - margin, h - margin]) + _INSIDE_TOL
        return ((points >= margin - _INSIDE_TOL) & (points <= limit)).all(dim=-1)

    accepted = inside(c1, g1.out_size) & inside(c2, g2.out_size) & usable[:, None]
    order = torch.sort((~accepted).to(torch.uint8), dim=1, stable=True).indices[:, :num_points]
    count = accepted.sum(dim=1)
    valid = torch.arange(num_points, device=device)[None, :] < count[:, None]
    index = order[:, :, None].expand(n, num_points, 2)
    pts1 = torch.gather(c1, 1, index)
    pts2 = torch.gather(c2, 1, index)
    centre1 = pts1.new_tensor([g1.out_size[1] / 2.0, g1.out_size[0] / 2.0])
    centre2 = pts2.new_tensor([g2.out_size[1] / 2.0, g2.out_size[0] / 2.0])
    pts1 = torch.where(valid[..., None], pts1, centre1)
    pts2 = torch.where(valid[..., None], pts2, centre2)
    return pts1, pts2, valid
