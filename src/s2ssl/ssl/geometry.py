"""View geometry: per-sample affine maps from a view's output pixels to its source pixels.

Batched over the sample axis ``N`` and driven by an explicit :class:`torch.Generator`
(parameters are drawn per sample; the same generator state gives the same views).
:func:`sample_view_geometry` draws a random resized crop with area fraction ``U(0.2, 1)`` and
log-uniform aspect ratio in ``[3/4, 4/3]``, the crop of SeCo (Mañas et al., "Seasonal Contrast",
ICCV 2021, which uses torchvision's ``RandomResizedCrop(scale=(0.2, 1.0))``), followed by an
optional horizontal flip and a random multiple of 90° rotation. A view's geometry is one affine
map per sample (:class:`ViewGeometry`), so the pixel correspondence between two views of one
image is known exactly (:func:`~s2ssl.ssl.correspondence.sample_correspondences`,
:func:`~s2ssl.ssl.resample.sample_at`), which the dense "Embedding Earth" pixel InfoNCE needs.
Images are resampled into their views by :func:`~s2ssl.ssl.resample.apply_geometry`.

Coordinate conventions (used by :mod:`s2ssl.ssl.geometry`, :mod:`s2ssl.ssl.resample` and
:mod:`s2ssl.ssl.correspondence`):

* Points are continuous pixel coordinates ``(x, y)`` (``x`` along the width / last axis, ``y``
  along the height): pixel ``[i, j]`` (row ``i``, column ``j``) covers ``[j, j + 1] × [i, i + 1]``
  and its centre is ``(j + 0.5, i + 0.5)``. An image of size ``(H, W)`` covers ``[0, W] × [0, H]``.
* Sizes are ``(height, width)``, like torch shapes; points are ``(x, y)``.
* Sampling uses ``align_corners=False``, so a value stored at a pixel is read back exactly at its
  centre, and bilinear interpolation reproduces an image that is linear in ``(x, y)`` exactly
  anywhere between pixel centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import torch
from torch import Tensor

from s2ssl.ssl.checks import check_points, check_range, check_size
from s2ssl.ssl.draws import draw_uniform, generator_device

__all__ = [
    "CROP_ATTEMPTS",
    "DeviceLike",
    "ViewGeometry",
    "sample_view_geometry",
]

DeviceLike = torch.device | str | None

CROP_ATTEMPTS: Final[int] = 10
"""Candidate (area, ratio) draws per sample in :func:`sample_view_geometry` (as torchvision)."""


def _pixel_to_normalized(size: tuple[int, int], like: Tensor) -> Tensor:
    """``[3, 3]`` map from pixel coordinates to grid_sample's ``[-1, 1]`` (align_corners=False)."""
    h, w = size
    return like.new_tensor([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]])


def _normalized_to_pixel(size: tuple[int, int], like: Tensor) -> Tensor:
    h, w = size
    return like.new_tensor([[w / 2.0, 0.0, w / 2.0], [0.0, h / 2.0, h / 2.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class ViewGeometry:
    """Per-sample affine map from a view's output pixels to its source image's pixels.

    ``matrix[n] @ (x_out, y_out, 1) = (x_src, y_src)`` in continuous pixel coordinates (pixel
    centres at ``i + 0.5``). ``out_size`` and ``src_size`` are ``(height, width)``. A geometry
    made by :func:`sample_view_geometry` or :meth:`from_boxes` is a crop of an axis-aligned box,
    resized to ``out_size``, then flipped and rotated by multiples of 90°; any invertible affine
    matrix is accepted (e.g. hand-made in tests).
    """

    matrix: Tensor
    out_size: tuple[int, int]
    src_size: tuple[int, int]

    def __post_init__(self) -> None:
        m = self.matrix
        if not isinstance(m, Tensor) or m.ndim != 3 or tuple(m.shape[1:]) != (2, 3):
            shape = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
            raise ValueError(f"ViewGeometry.matrix must have shape [N, 2, 3], got {shape}")
        if not m.is_floating_point():
            raise ValueError(f"ViewGeometry.matrix must be floating point, got {m.dtype}")
        object.__setattr__(self, "out_size", check_size(self.out_size, "out_size"))
        object.__setattr__(self, "src_size", check_size(self.src_size, "src_size"))

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def identity(
        cls,
        n: int,
        size: tuple[int, int],
        device: DeviceLike = None,
        dtype: torch.dtype = torch.float32,
    ) -> ViewGeometry:
        """The geometry that returns each of ``n`` images of ``size`` unchanged."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        eye = torch.eye(2, 3, device=device, dtype=dtype).expand(n, 2, 3).clone()
        return cls(eye, size, size)

    @classmethod
    def from_boxes(
        cls,
        boxes: Tensor,
        src_size: tuple[int, int],
        out_size: tuple[int, int],
        flip: Tensor | None = None,
        rot90: Tensor | None = None,
    ) -> ViewGeometry:
        """Crop ``boxes``, resize to ``out_size``, then flip and rotate (all per sample).

        Args:
            boxes: ``[N, 4]`` float ``(x0, y0, x1, y1)`` in source pixel coordinates (continuous
                edges; ``x1 > x0``, ``y1 > y0``; boxes may extend past the source, which
                :func:`~s2ssl.ssl.resample.apply_geometry` then pads).
            src_size: source ``(height, width)``.
            out_size: output ``(height, width)``.
            flip: optional ``[N]`` bool, horizontal flip (mirror the width axis) after the crop.
            rot90: optional ``[N]`` int, number ``k`` of 90° counter-clockwise rotations after the
                flip; needs a square ``out_size``.

        The output equals ``torch.rot90(torch.flip(crop, dims=[-1]) if flip else crop, k,
        dims=(-2, -1))`` where ``crop`` is the resized box.
        """
        src_size = check_size(src_size, "src_size")
        out_size = check_size(out_size, "out_size")
        if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4:
            shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
            raise ValueError(f"boxes must have shape [N, 4] as (x0, y0, x1, y1), got {shape}")
        if not boxes.is_floating_point():
            raise ValueError(f"boxes must be floating point, got {boxes.dtype}")
        n = boxes.shape[0]
        if n < 1:
            raise ValueError("boxes is empty; pass at least one box")
        if bool(((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any()):
            raise ValueError("every box needs x1 > x0 and y1 > y0 (boxes are (x0, y0, x1, y1))")
        h_out, w_out = out_size
        work = boxes.to(torch.float64)
        mat = torch.zeros(n, 3, 3, dtype=torch.float64, device=boxes.device)
        mat[:, 0, 0] = (work[:, 2] - work[:, 0]) / w_out
        mat[:, 0, 2] = work[:, 0]
        mat[:, 1, 1] = (work[:, 3] - work[:, 1]) / h_out
        mat[:, 1, 2] = work[:, 1]
        mat[:, 2, 2] = 1.0
        if flip is not None:
            if not isinstance(flip, Tensor) or tuple(flip.shape) != (n,):
                raise ValueError(f"flip must be a [N] = [{n}] bool tensor")
            mirror = mat.new_tensor([[-1.0, 0.0, float(w_out)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            eye = torch.eye(3, dtype=torch.float64, device=boxes.device)
            f = torch.where(flip.to(boxes.device, torch.bool)[:, None, None], mirror, eye)
            mat = mat @ f
        if rot90 is not None:
            if h_out != w_out:
                raise ValueError(
                    f"rot90 needs a square out_size, got {out_size}; use rot90=False or make "
                    "out_size square"
                )
            if not isinstance(rot90, Tensor) or tuple(rot90.shape) != (n,):
                raise ValueError(f"rot90 must be a [N] = [{n}] integer tensor")
            if rot90.is_floating_point():
                raise ValueError(f"rot90 must be an integer tensor, got {rot90.dtype}")
            # out(x, y) = in(w - y, x) for one counter-clockwise quarter turn (torch.rot90)
            quarter = mat.new_tensor([[0.0, -1.0, float(w_out)], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
            powers = [torch.eye(3, dtype=torch.float64, device=boxes.device)]
            for _ in range(3):
                powers.append(powers[-1] @ quarter)
            k = torch.remainder(rot90.to(boxes.device, torch.long), 4)
            mat = mat @ torch.stack(powers)[k]
        return cls(mat[:, :2, :].to(boxes.dtype), out_size, src_size)

    # -- properties and maps ---------------------------------------------------------------

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.matrix.shape[0])

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def to(self, device: DeviceLike = None, dtype: torch.dtype | None = None) -> ViewGeometry:
        """The same geometry with its matrix on ``device`` / in ``dtype``."""
        return ViewGeometry(
            self.matrix.to(device=device, dtype=dtype), self.out_size, self.src_size
        )

    def homogeneous(self) -> Tensor:
        """``[N, 3, 3]`` homogeneous form of :attr:`matrix`."""
        bottom = self.matrix.new_tensor([0.0, 0.0, 1.0]).expand(self.n, 1, 3)
        return torch.cat([self.matrix, bottom], dim=1)

    def to_source(self, points: Tensor) -> Tensor:
        """Map output-pixel points ``[N, P, 2]`` ``(x, y)`` to source-pixel points ``[N, P, 2]``."""
        check_points(points, self.n, "points")
        m = self.matrix.to(points.dtype)
        return points @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]

    def inverse(self) -> ViewGeometry:
        """The geometry mapping source pixels to output pixels (sizes swapped)."""
        m = self.matrix.to(torch.float64)
        a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
        d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
        det = a * e - b * d
        if bool((det.abs() < 1e-12).any()):
            raise ValueError("ViewGeometry.matrix is singular for some sample; it has no inverse")
        inv = (
            torch.stack(
                [
                    torch.stack([e, -b, b * f - c * e], dim=-1),
                    torch.stack([-d, a, c * d - a * f], dim=-1),
                ],
                dim=1,
            )
            / det[:, None, None]
        )
        return ViewGeometry(inv.to(self.matrix.dtype), self.src_size, self.out_size)

    def from_source(self, points: Tensor) -> Tensor:
        """Map source-pixel points ``[N, P, 2]`` ``(x, y)`` to this view's output pixels."""
        return self.inverse().to_source(points)

    def compose(self, second: ViewGeometry) -> ViewGeometry:
        """The geometry of applying ``self`` and then ``second`` to an image.

        ``apply_geometry(apply_geometry(x, self), second)`` ≈
        ``apply_geometry(x, self.compose(second))`` (exactly equal for images linear in the
        pixel coordinates, up to edge padding); ``second.src_size`` must be ``self.out_size``.
        """
        if second.n != self.n:
            raise ValueError(f"cannot compose geometries of {self.n} and {second.n} samples")
        if second.src_size != self.out_size:
            raise ValueError(
                f"second.src_size {second.src_size} must equal self.out_size {self.out_size} "
                "to compose the two geometries"
            )
        first = self.homogeneous().to(torch.float64)
        inner = second.homogeneous().to(device=first.device, dtype=torch.float64)
        combined = (first @ inner)[:, :2, :].to(self.matrix.dtype)
        return ViewGeometry(combined, second.out_size, self.src_size)

    def source_corners(self) -> Tensor:
        """``[N, 4, 2]`` source positions of the output corners (0, 0), (w, 0), (w, h), (0, h)."""
        h, w = self.out_size
        corners = self.matrix.new_tensor([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
        return self.to_source(corners.expand(self.n, 4, 2))

    def source_area(self) -> Tensor:
        """``[N]`` area (source pixels²) of the source region the view covers."""
        h, w = self.out_size
        m = self.matrix
        det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
        return det.abs() * (h * w)

    def theta(self, dtype: torch.dtype | None = None) -> Tensor:
        """``[N, 2, 3]`` matrix for :func:`torch.nn.functional.affine_grid` (align_corners=False).

        Maps normalised output coordinates to normalised source coordinates.
        """
        m = self.homogeneous().to(torch.float64)
        theta = _pixel_to_normalized(self.src_size, m) @ m @ _normalized_to_pixel(self.out_size, m)
        return theta[:, :2, :].to(dtype or self.matrix.dtype)


def sample_view_geometry(
    n: int,
    src_size: tuple[int, int],
    out_size: tuple[int, int],
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    rot90: bool = True,
    generator: torch.Generator | None = None,
    device: DeviceLike = None,
    dtype: torch.dtype = torch.float32,
) -> ViewGeometry:
    """Draw ``n`` random view geometries: random resized crop, then flip and rot90.

    Random resized crop as in SeCo (Mañas et al., ICCV 2021; torchvision's
    ``RandomResizedCrop(scale=(0.2, 1.0))``): area fraction ``s ~ U(scale)`` of the source,
    aspect ratio (width / height) log-uniform in ``ratio``; :data:`CROP_ATTEMPTS` candidates are
    drawn per sample (vectorised) and the first whose box fits inside the source is used. Where no
    candidate fits (only for extreme sources or ratios), the first candidate's ratio is clamped to
    the nearest ratio for which a box of that area fits — unlike torchvision, which falls back to a
    centre crop, so the area always stays within ``scale``. The box position is continuous and
    uniform over the positions inside the source.

    Then, per sample: with probability 1/2 a horizontal flip (if ``flip``), and a rotation by
    ``k · 90°`` counter-clockwise, ``k`` uniform in {0, 1, 2, 3} (if ``rot90``; needs a square
    ``out_size``). Everything is folded into one affine matrix per sample.

    Args:
        n: number of samples.
        src_size: source ``(height, width)`` in pixels.
        out_size: output ``(height, width)`` in pixels.
        scale: bounds of the crop's area fraction, ``0 < low <= high <= 1``.
        ratio: bounds of the crop's aspect ratio, ``0 < low <= high``.
        flip: random horizontal flip.
        rot90: random multiple of 90° rotation.
        generator: source of randomness (draws happen on its device); None uses torch's global
            generator.
        device: device of the returned matrices; None uses the generator's device (CPU without a
            generator).
        dtype: floating dtype of the returned matrices.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    src_h, src_w = check_size(src_size, "src_size")
    out_h, out_w = check_size(out_size, "out_size")
    s_lo, s_hi = check_range(scale, "scale", low=0.0, high=1.0)
    r_lo, r_hi = check_range(ratio, "ratio", low=0.0)
    if rot90 and out_h != out_w:
        raise ValueError(
            f"rot90=True needs a square out_size, got {(out_h, out_w)}; pass rot90=False"
        )
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)

    f64 = torch.float64
    area = float(src_h * src_w)
    frac = s_lo + (s_hi - s_lo) * draw_uniform((n, CROP_ATTEMPTS), generator, device, f64)
    log_r = math.log(r_lo) + (math.log(r_hi) - math.log(r_lo)) * draw_uniform(
        (n, CROP_ATTEMPTS), generator, device, f64
    )
    aspect = torch.exp(log_r)
    box_w = torch.sqrt(frac * area * aspect)
    box_h = torch.sqrt(frac * area / aspect)
    fits = (box_w <= src_w) & (box_h <= src_h)
    first = torch.argmax(fits.to(torch.int8), dim=1)  # 0 where none fits
    any_fit = fits.any(dim=1)
    rows = torch.arange(n, device=device)
    frac_pick = frac[rows, first]
    # fallback: clamp the first candidate's ratio into [s W / H, W / (s H)], where a box fits
    aspect_fb = torch.minimum(
        torch.maximum(aspect[:, 0], frac[:, 0] * src_w / src_h), src_w / (frac[:, 0] * src_h)
    )
    aspect_pick = torch.where(any_fit, aspect[rows, first], aspect_fb)
    frac_pick = torch.where(any_fit, frac_pick, frac[:, 0])
    w = torch.sqrt(frac_pick * area * aspect_pick).clamp(max=float(src_w))
    h = torch.sqrt(frac_pick * area / aspect_pick).clamp(max=float(src_h))
    pos = draw_uniform((n, 2), generator, device, f64)
    x0 = pos[:, 0] * (src_w - w)
    y0 = pos[:, 1] * (src_h - h)
    boxes = torch.stack([x0, y0, x0 + w, y0 + h], dim=1)

    flips = draw_uniform((n,), generator, device) < 0.5 if flip else None
    turns = (
        torch.randint(
            0, 4, (n,), generator=generator, device=generator_device(generator, device)
        ).to(device)
        if rot90
        else None
    )
    geometry = ViewGeometry.from_boxes(boxes, (src_h, src_w), (out_h, out_w), flips, turns)
    return geometry.to(dtype=dtype)
