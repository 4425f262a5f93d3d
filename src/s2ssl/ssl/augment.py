"""Batched view augmentations for multispectral tensors with exact pixel correspondence.

Two families of augmentation, both batched over the sample axis ``N`` and driven by an explicit
:class:`torch.Generator` (parameters are drawn per sample; the same generator state gives the same
views):

* **Geometry** (:func:`sample_view_geometry`, :func:`apply_geometry`): random resized crop with
  area fraction ``U(0.2, 1)`` and log-uniform aspect ratio in ``[3/4, 4/3]``, the crop of SeCo
  (Mañas et al., "Seasonal Contrast", ICCV 2021, which uses torchvision's
  ``RandomResizedCrop(scale=(0.2, 1.0))``), followed by an optional horizontal flip and a random
  multiple of 90° rotation. A view's geometry is one affine map per sample
  (:class:`ViewGeometry`), so the pixel correspondence between two views of one image is known
  exactly (:func:`sample_correspondences`, :func:`sample_at`), which the dense "Embedding Earth"
  pixel InfoNCE needs.
* **Appearance** (:func:`bandwise_brightness_contrast`, :func:`gaussian_blur`,
  :func:`gaussian_noise`, :func:`appearance`): SeCo's appearance augmentation ``A`` is torchvision
  colour jitter, random grayscale, Gaussian blur and flips on RGB; for multispectral input we use
  band-wise brightness/contrast, blur, noise and (geometric) flips instead — an adaptation that is
  *ours*, not the paper's.

Coordinate conventions (used everywhere in this module):

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
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ViewGeometry",
    "appearance",
    "apply_geometry",
    "apply_geometry_labels",
    "bandwise_brightness_contrast",
    "gaussian_blur",
    "gaussian_noise",
    "normalize",
    "sample_at",
    "sample_correspondences",
    "sample_view_geometry",
]

DeviceLike = torch.device | str | None

CROP_ATTEMPTS: Final[int] = 10
"""Candidate (area, ratio) draws per sample in :func:`sample_view_geometry` (as torchvision)."""

_INSIDE_TOL: Final[float] = 1e-4
"""Tolerance (output pixels) of the inside-the-margin test in :func:`sample_correspondences`."""

_SAMPLE_MODES: Final[tuple[str, ...]] = ("bilinear", "nearest")
_PADDING_MODES: Final[tuple[str, ...]] = ("border", "zeros", "reflection")


# --------------------------------------------------------------------------------------------
# small helpers


def _check_size(size: Sequence[int], name: str) -> tuple[int, int]:
    """``size`` as a ``(height, width)`` tuple of positive ints, else ValueError."""
    try:
        values = tuple(operator.index(v) for v in size if not isinstance(v, bool))
    except TypeError:
        raise ValueError(f"{name} must be a (height, width) pair of ints, got {size!r}") from None
    if len(values) != 2 or len(values) != len(tuple(size)) or min(values) < 1:
        raise ValueError(f"{name} must be a (height, width) pair of positive ints, got {size!r}")
    return values[0], values[1]


def _check_image(x: Tensor, name: str = "x") -> None:
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


def _check_probability(p: float, name: str) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return float(p)


def _check_range(
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


def _generator_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
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
        tuple(shape), generator=generator, device=_generator_device(generator, device), dtype=dtype
    )
    return draw.to(device)


def _rand(
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``U(0, 1)`` draws (see :func:`_draw`)."""
    return _draw(torch.rand, shape, generator, device, dtype)


def _randn(
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``N(0, 1)`` draws (see :func:`_draw`)."""
    return _draw(torch.randn, shape, generator, device, dtype)


def _points_check(points: Tensor, n: int, name: str) -> None:
    if not isinstance(points, Tensor) or points.ndim != 3 or points.shape[-1] != 2:
        shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"{name} must have shape [N, P, 2] holding (x, y), got {shape}")
    if points.shape[0] != n:
        raise ValueError(f"{name} has {points.shape[0]} samples, the geometry has {n}")
    if not points.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {points.dtype}")


def _pixel_to_normalized(size: tuple[int, int], like: Tensor) -> Tensor:
    """``[3, 3]`` map from pixel coordinates to grid_sample's ``[-1, 1]`` (align_corners=False)."""
    h, w = size
    return like.new_tensor([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]])


def _normalized_to_pixel(size: tuple[int, int], like: Tensor) -> Tensor:
    h, w = size
    return like.new_tensor([[w / 2.0, 0.0, w / 2.0], [0.0, h / 2.0, h / 2.0], [0.0, 0.0, 1.0]])


def _normalized_grid(points: Tensor, size: tuple[int, int]) -> Tensor:
    """Pixel ``(x, y)`` points ``[..., 2]`` as grid_sample coordinates (align_corners=False)."""
    h, w = size
    scale = points.new_tensor([2.0 / w, 2.0 / h])
    return points * scale - 1.0


# --------------------------------------------------------------------------------------------
# geometry


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
        object.__setattr__(self, "out_size", _check_size(self.out_size, "out_size"))
        object.__setattr__(self, "src_size", _check_size(self.src_size, "src_size"))

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
                :func:`apply_geometry` then pads).
            src_size: source ``(height, width)``.
            out_size: output ``(height, width)``.
            flip: optional ``[N]`` bool, horizontal flip (mirror the width axis) after the crop.
            rot90: optional ``[N]`` int, number ``k`` of 90° counter-clockwise rotations after the
                flip; needs a square ``out_size``.

        The output equals ``torch.rot90(torch.flip(crop, dims=[-1]) if flip else crop, k,
        dims=(-2, -1))`` where ``crop`` is the resized box.
        """
        src_size = _check_size(src_size, "src_size")
        out_size = _check_size(out_size, "out_size")
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
        _points_check(points, self.n, "points")
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
    src_h, src_w = _check_size(src_size, "src_size")
    out_h, out_w = _check_size(out_size, "out_size")
    s_lo, s_hi = _check_range(scale, "scale", low=0.0, high=1.0)
    r_lo, r_hi = _check_range(ratio, "ratio", low=0.0)
    if rot90 and out_h != out_w:
        raise ValueError(
            f"rot90=True needs a square out_size, got {(out_h, out_w)}; pass rot90=False"
        )
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)

    f64 = torch.float64
    area = float(src_h * src_w)
    frac = s_lo + (s_hi - s_lo) * _rand((n, CROP_ATTEMPTS), generator, device, f64)
    log_r = math.log(r_lo) + (math.log(r_hi) - math.log(r_lo)) * _rand(
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
    pos = _rand((n, 2), generator, device, f64)
    x0 = pos[:, 0] * (src_w - w)
    y0 = pos[:, 1] * (src_h - h)
    boxes = torch.stack([x0, y0, x0 + w, y0 + h], dim=1)

    flips = _rand((n,), generator, device) < 0.5 if flip else None
    turns = (
        torch.randint(
            0, 4, (n,), generator=generator, device=_generator_device(generator, device)
        ).to(device)
        if rot90
        else None
    )
    geometry = ViewGeometry.from_boxes(boxes, (src_h, src_w), (out_h, out_w), flips, turns)
    return geometry.to(dtype=dtype)


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
            pixels: crops of :func:`sample_view_geometry` lie inside the source, but bilinear reads
            within half a pixel of the source edge would otherwise mix in zeros. ``"zeros"`` (or
            ``"reflection"``) for hand-made geometries that leave the source on purpose.
    """
    _check_image(x)
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
    :func:`sample_view_geometry` (crops, flips, rot90) the box *is* the overlap, so the positions
    are uniform over the overlap's ground area and every candidate is accepted; for general affine
    views this is rejection sampling from the bounding box.

    Args:
        g1, g2: the two views of the same source images (same ``N`` and ``src_size``).
        num_points: ``P``, positions per sample.
        generator: source of randomness; None uses torch's global generator.
        margin: minimum distance (output pixels of each view) from the output image's edge;
            the default 0.5 keeps every point between pixel centres, so bilinear reads
            (:func:`sample_at`) need no padding.
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
    candidates = lo[:, None, :] + extent[:, None, :] * _rand((n, m, 2), generator, device, dtype)
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


def sample_at(features: Tensor, points: Tensor, mode: str = "bilinear") -> Tensor:
    """Read feature maps ``[N, D, h, w]`` at output-pixel points ``[N, P, 2]`` → ``[N, P, D]``.

    Points are continuous ``(x, y)`` pixel coordinates with pixel centres at ``i + 0.5`` (the
    convention of :func:`apply_geometry` and :func:`sample_correspondences`); one
    ``grid_sample`` call (bilinear by default, ``align_corners=False``, border padding).
    """
    _check_image(features, "features")
    _points_check(points, features.shape[0], "points")
    if mode not in _SAMPLE_MODES:
        raise ValueError(f"mode must be one of {_SAMPLE_MODES}, got {mode!r}")
    size = (features.shape[-2], features.shape[-1])
    grid = _normalized_grid(points.to(device=features.device, dtype=features.dtype), size)
    out = F.grid_sample(
        features, grid[:, :, None, :], mode=mode, padding_mode="border", align_corners=False
    )  # [N, D, P, 1]
    return out[..., 0].transpose(1, 2)


# --------------------------------------------------------------------------------------------
# appearance


def _selected(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``[N]`` bool: which samples an op with probability ``p`` applies to (always draws)."""
    return _rand((n,), generator, device) < p


def bandwise_brightness_contrast(
    x: Tensor,
    brightness: float = 0.2,
    contrast: float = 0.2,
    generator: torch.Generator | None = None,
    p: float = 1.0,
) -> Tensor:
    """Random per-sample, per-band contrast and brightness.

    For sample ``n`` and band ``c`` with mean ``μ`` and standard deviation ``σ`` over the image:
    ``(x - μ) · k + μ + b · σ`` with ``k ~ U(1 - contrast, 1 + contrast)`` and
    ``b ~ U(-brightness, brightness)`` (brightness in units of the band's own spread, so it is
    comparable across bands). Applied to each sample with probability ``p``. Our multispectral
    adaptation of SeCo's RGB colour jitter (Mañas et al., ICCV 2021).
    """
    _check_image(x)
    if brightness < 0:
        raise ValueError(f"brightness must be >= 0, got {brightness}")
    if not 0 <= contrast <= 1:
        raise ValueError(f"contrast must be in [0, 1] (the factor stays >= 0), got {contrast}")
    p = _check_probability(p, "p")
    n, c = x.shape[:2]
    factor = 1.0 + contrast * (2.0 * _rand((n, c), generator, x.device, x.dtype) - 1.0)
    shift = brightness * (2.0 * _rand((n, c), generator, x.device, x.dtype) - 1.0)
    chosen = _selected(n, p, generator, x.device)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True, correction=0)
    out = (x - mean) * factor[..., None, None] + mean + shift[..., None, None] * std
    return torch.where(chosen[:, None, None, None], out, x)


def gaussian_blur(
    x: Tensor,
    sigma: tuple[float, float] = (0.1, 2.0),
    p: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random per-sample Gaussian blur (σ ~ U(sigma) pixels), applied with probability ``p``.

    Depthwise separable convolution (one grouped conv per axis for the whole batch) with reflect
    padding. The kernel has radius ``ceil(3 · sigma[1])`` (capped at ``size - 1`` for tiny
    images), shared by the batch; each sample's weights use its own σ. Samples not selected are
    returned unchanged. Part of the SeCo appearance augmentation (Mañas et al., ICCV 2021), here
    applied band by band to multispectral input (*ours*).
    """
    _check_image(x)
    lo, hi = _check_range(sigma, "sigma", low=0.0)
    p = _check_probability(p, "p")
    n, c, h, w = x.shape
    sig = lo + (hi - lo) * _rand((n,), generator, x.device, x.dtype)
    chosen = _selected(n, p, generator, x.device)
    radius = min(math.ceil(3.0 * hi), h - 1, w - 1)
    if radius < 1:
        return x.clone()
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(offsets[None, :] ** 2) / (2.0 * sig[:, None] ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [N, K]
    weight = kernel.repeat_interleave(c, dim=0)  # [N*C, K]
    size = 2 * radius + 1
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(y, weight.view(n * c, 1, 1, size), groups=n * c)
    y = F.pad(y, (0, 0, radius, radius), mode="reflect")
    y = F.conv2d(y, weight.view(n * c, 1, size, 1), groups=n * c)
    return torch.where(chosen[:, None, None, None], y.view(n, c, h, w), x)


def gaussian_noise(
    x: Tensor, std: float = 0.02, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Add i.i.d. ``N(0, std²)`` noise (units of ``x``) to each sample with probability ``p``.

    Our addition to the multispectral appearance augmentation (not in SeCo).
    """
    _check_image(x)
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    p = _check_probability(p, "p")
    chosen = _selected(x.shape[0], p, generator, x.device)
    noise = _randn(x.shape, generator, x.device, x.dtype)
    return x + noise * (std * chosen.to(x.dtype))[:, None, None, None]


def appearance(
    x: Tensor,
    generator: torch.Generator | None = None,
    *,
    brightness: float = 0.2,
    contrast: float = 0.2,
    blur_p: float = 0.5,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    noise_p: float = 0.5,
    noise_std: float = 0.02,
) -> Tensor:
    """The multispectral appearance augmentation ``A``: brightness/contrast, blur, noise.

    Our band-wise stand-in for SeCo's RGB colour jitter / grayscale / blur (Mañas et al., ICCV
    2021); flips are part of the geometry (:func:`sample_view_geometry`), so correspondence stays
    tracked. Applies :func:`bandwise_brightness_contrast`, :func:`gaussian_blur` and
    :func:`gaussian_noise` in that order, each with its own per-sample draws.
    """
    out = bandwise_brightness_contrast(x, brightness, contrast, generator)
    out = gaussian_blur(out, blur_sigma, blur_p, generator)
    return gaussian_noise(out, noise_std, noise_p, generator)


def normalize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Per-band standardisation ``(x - mean) / std`` of ``[..., C, H, W]`` images.

    ``mean`` and ``std`` are ``[C]`` (moved to ``x``'s device and dtype); every ``std`` must be
    positive.
    """
    if not isinstance(x, Tensor) or x.ndim < 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must have shape [..., C, H, W], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point, got {x.dtype}; convert with x.float()")
    c = x.shape[-3]
    mean_t = torch.as_tensor(mean, device=x.device, dtype=x.dtype)
    std_t = torch.as_tensor(std, device=x.device, dtype=x.dtype)
    for name, value in (("mean", mean_t), ("std", std_t)):
        if tuple(value.shape) != (c,):
            raise ValueError(
                f"{name} must have shape [C] = [{c}] (one value per band), got {tuple(value.shape)}"
            )
    if not bool((std_t > 0).all()):
        raise ValueError(f"every std must be > 0, got {std_t.tolist()}")
    return (x - mean_t[:, None, None]) / std_t[:, None, None]
