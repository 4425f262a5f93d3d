"""Batch view construction for each pre-training method, on the training device.

Everything here is batched over the sample axis and driven by one explicit
:class:`torch.Generator` per training batch (the Lightning tasks seed it from
``(seed, epoch, batch, rank)``, so a resumed run draws the same views). Inputs are reflectance
images (``DN × 1e-4`` after the processing-baseline offset, see :func:`to_reflectance`).

* :func:`seco_views` — Seasonal Contrast (Mañas et al., "Seasonal Contrast", ICCV 2021, official
  ``SeasonalContrastMultiAug``): three dates ``t0, t1, t2`` drawn *with replacement* from the
  location's acquisitions; ``q = P(t0)``, ``k0 = P(A(t1))``, ``k1 = P(t2)``, ``k2 = P(A(t0))``.
* :func:`moco_views` — the two baselines of the same code: ``moco`` (``SeasonalContrastBasic``:
  two MoCo-v2 augmentations of one image) and ``moco_tp`` (``SeasonalContrastTemporal``:
  two dates drawn with replacement, each with the full MoCo-v2 augmentation).
* :func:`dense_views` — Embedding Earth style dense views (Tarasiou & Zafeiriou 2022; design ours):
  two *different* dates, independent crops / flips / rot90 and appearance, plus the
  tracked pixel correspondences of ground positions seen by both views.
* :func:`cscl_batch` — CSCL inputs (Tarasiou, Guler, Zafeiriou 2021/22): the bands as reflectance
  plus ``doy / 365`` as one more channel, random crops / flips / rot90 applied identically to the
  image and its label map.

``P`` is a random resized crop (area fraction ``U(crop_scale)``, SeCo: 0.2–1) to
``crop_size`` followed by per-band standardisation; ``A`` is the appearance augmentation of
:class:`~s2ssl.config.AppearanceConfig` (band-wise brightness/contrast, grayscale for RGB only,
Gaussian blur, noise, horizontal flip). The flip of ``A`` is folded into the crop's geometry
(:func:`~s2ssl.ssl.geometry.sample_view_geometry`): a random resized crop of a flipped image has
the same distribution as a flipped random resized crop, and one resampling is cheaper than two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import torch
from torch import Tensor

from s2ssl.config import AppearanceConfig
from s2ssl.models.unet3d import append_doy_channel
from s2ssl.ssl.appearance import (
    bandwise_brightness_contrast,
    gaussian_blur,
    gaussian_noise,
    normalize,
)
from s2ssl.ssl.correspondence import sample_correspondences
from s2ssl.ssl.geometry import ViewGeometry, sample_view_geometry
from s2ssl.ssl.resample import apply_geometry, apply_geometry_labels

__all__ = [
    "REFLECTANCE_SCALE",
    "RGB_LUMA",
    "S2_RGB_LUMA",
    "ContrastiveViews",
    "DenseViews",
    "appearance_transform",
    "cscl_batch",
    "dense_views",
    "draw_dates",
    "grayscale",
    "moco_views",
    "random_crops",
    "seco_views",
    "take_dates",
    "to_reflectance",
]

REFLECTANCE_SCALE: Final[float] = 1e-4
"""Reflectance per DN (after the processing-baseline offset): ``reflectance = DN × 1e-4``."""

RGB_LUMA: Final[tuple[float, float, float]] = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights of (red, green, blue), as torchvision's ``rgb_to_grayscale``."""

S2_RGB_LUMA: Final[tuple[float, float, float]] = (RGB_LUMA[2], RGB_LUMA[1], RGB_LUMA[0])
"""The same weights for RGB in Sentinel-2 band order: (B02 blue, B03 green, B04 red)."""


def to_reflectance(x: Tensor) -> Tensor:
    """Integer DN (after the offset, e.g. the int16 in-memory cache) → float32 reflectance."""
    if x.is_floating_point():
        return x.float()
    return x.float() * REFLECTANCE_SCALE


def _check_series(images: Tensor, name: str = "images") -> tuple[int, int, int, int, int]:
    if not isinstance(images, Tensor) or images.ndim != 5:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must have shape [N, T, C, H, W], got {shape}")
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be float reflectance (use to_reflectance), got {images.dtype}"
        )
    n, t, c, h, w = images.shape
    if n < 1 or t < 1:
        raise ValueError(
            f"{name} needs at least one sample and one date, got {tuple(images.shape)}"
        )
    return n, t, c, h, w


def draw_dates(
    n: int,
    num_dates: int,
    k: int,
    generator: torch.Generator | None,
    device: torch.device | str | None = None,
    *,
    replace: bool = True,
) -> Tensor:
    """``[n, k]`` date indices in ``[0, num_dates)`` per sample.

    ``replace=True`` draws each independently and uniformly (SeCo's ``np.random.choice(paths,
    3)``, which samples with replacement); ``replace=False`` draws ``k`` distinct dates (needs
    ``k <= num_dates``).
    """
    if n < 1 or num_dates < 1 or k < 1:
        raise ValueError(f"n, num_dates and k must be >= 1, got {n}, {num_dates}, {k}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if replace:
        dates = torch.randint(0, num_dates, (n, k), generator=generator, device=gen_device)
    else:
        if k > num_dates:
            raise ValueError(
                f"cannot draw {k} distinct dates out of {num_dates}; use replace=True or fewer"
            )
        scores = torch.rand((n, num_dates), generator=generator, device=gen_device)
        dates = scores.argsort(dim=1)[:, :k]
    return dates.to(device if device is not None else gen_device)


def take_dates(images: Tensor, dates: Tensor) -> list[Tensor]:
    """Per column of ``dates`` ``[N, k]``, the images ``[N, C, H, W]`` of ``[N, T, C, H, W]``."""
    n = images.shape[0]
    if dates.ndim != 2 or dates.shape[0] != n:
        raise ValueError(f"dates must have shape [N, k] with N = {n}, got {tuple(dates.shape)}")
    rows = torch.arange(n, device=images.device)
    dates = dates.to(images.device)
    return [images[rows, dates[:, j]] for j in range(dates.shape[1])]


def grayscale(
    x: Tensor, p: float, generator: torch.Generator | None, weights: Sequence[float] = RGB_LUMA
) -> Tensor:
    """Random grayscale of RGB images ``[N, 3, H, W]`` with probability ``p`` (MoCo-v2 / SeCo).

    The luma ``Σ w_c x_c`` replaces every band, as torchvision's ``RandomGrayscale``.
    """
    if x.shape[1] != len(weights):
        raise ValueError(f"grayscale needs {len(weights)} bands (RGB), got {x.shape[1]}")
    gen_device = generator.device if generator is not None else x.device
    chosen = (torch.rand((x.shape[0],), generator=generator, device=gen_device) < p).to(x.device)
    w = torch.as_tensor(weights, device=x.device, dtype=x.dtype)
    luma = (x * w[None, :, None, None]).sum(dim=1, keepdim=True).expand_as(x)
    return torch.where(chosen[:, None, None, None], luma, x)


def appearance_transform(
    x: Tensor, cfg: AppearanceConfig, generator: torch.Generator | None, *, rgb: bool
) -> Tensor:
    """The appearance part of ``A`` on reflectance images ``[N, C, H, W]`` (flip excluded).

    Band-wise brightness/contrast with probability ``jitter_p`` (our stand-in for colour jitter),
    grayscale (``rgb`` input only, probability ``grayscale_p``), Gaussian blur (``blur_p``,
    σ ~ U(``blur_sigma``) px) and Gaussian noise (``noise_p``, ``noise_std`` reflectance), in
    the order of the MoCo-v2 pipeline. Every operation draws from ``generator`` even when its
    probability is 0, so the random stream does not depend on the probabilities.
    """
    out = bandwise_brightness_contrast(x, cfg.brightness, cfg.contrast, generator, p=cfg.jitter_p)
    if rgb:
        out = grayscale(out, cfg.grayscale_p, generator, weights=S2_RGB_LUMA)
    out = gaussian_blur(out, cfg.blur_sigma, cfg.blur_p, generator)
    return gaussian_noise(out, cfg.noise_std, cfg.noise_p, generator)


def random_crops(
    x: Tensor,
    crop_size: int,
    generator: torch.Generator | None,
    *,
    scale: tuple[float, float],
    flip: bool,
    rot90: bool = False,
) -> tuple[Tensor, ViewGeometry]:
    """Random resized crops ``[N, C, crop_size, crop_size]`` of ``x`` and their geometry."""
    n, _, h, w = x.shape
    geometry = sample_view_geometry(
        n,
        (h, w),
        (crop_size, crop_size),
        scale=scale,
        flip=flip,
        rot90=rot90,
        generator=generator,
        device=x.device,
    )
    return apply_geometry(x, geometry), geometry


@dataclass(frozen=True)
class ContrastiveViews:
    """Views of a MoCo-style batch: one query view and the key views, all normalised.

    Attributes:
        query: ``[N, C, s, s]`` query images.
        keys: the key views ``[N, C, s, s]`` (3 for SeCo, 1 for the baselines).
        dates: ``[N, k]`` the dates drawn per sample (SeCo: ``t0, t1, t2``; moco: ``t``;
            moco_tp: ``t_q, t_k``).
    """

    query: Tensor
    keys: tuple[Tensor, ...]
    dates: Tensor


def _stats(
    mean: Tensor | Sequence[float], std: Tensor | Sequence[float], x: Tensor
) -> tuple[Tensor, Tensor]:
    return (
        torch.as_tensor(mean, device=x.device, dtype=x.dtype),
        torch.as_tensor(std, device=x.device, dtype=x.dtype),
    )


def seco_views(
    images: Tensor,
    generator: torch.Generator | None,
    *,
    crop_size: int,
    mean: Tensor | Sequence[float],
    std: Tensor | Sequence[float],
    appearance: AppearanceConfig | None,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    rgb: bool = True,
) -> ContrastiveViews:
    """SeCo views (Mañas et al., ICCV 2021, §3.2 and ``SeasonalContrastMultiAug``).

    Per location: ``t0, t1, t2`` uniform over its ``T`` dates with replacement;
    ``q = P(t0)``, ``k0 = P(A(t1))``, ``k1 = P(t2)``, ``k2 = P(A(t0))``, every ``P`` an
    independent random resized crop + normalisation. ``appearance=None`` makes ``A`` the identity
    (tests).

    Args:
        images: reflectance time series ``[N, T, C, H, W]``.
        generator: the batch's generator.
        crop_size: side of the square crops.
        mean, std: ``[C]`` normalisation statistics (reflectance units).
        appearance: the ``A`` parameters, or None for no appearance augmentation.
        crop_scale: area fraction of the random resized crop.
        rgb: the bands are B02, B03, B04 (blue, green, red) — enables grayscale.
    """
    n, t, _, _, _ = _check_series(images)
    mean_t, std_t = _stats(mean, std, images)
    dates = draw_dates(n, t, 3, generator, images.device, replace=True)
    t0, t1, t2 = take_dates(images, dates)

    def view(x: Tensor, augmented: bool) -> Tensor:
        flip = False
        if augmented and appearance is not None:
            x = appearance_transform(x, appearance, generator, rgb=rgb)
            flip = appearance.flip
        crop, _ = random_crops(x, crop_size, generator, scale=crop_scale, flip=flip)
        return normalize(crop, mean_t, std_t)

    q = view(t0, False)
    keys = (view(t1, True), view(t2, False), view(t0, True))
    return ContrastiveViews(query=q, keys=keys, dates=dates)


def moco_views(
    images: Tensor,
    generator: torch.Generator | None,
    *,
    temporal: bool,
    crop_size: int,
    mean: Tensor | Sequence[float],
    std: Tensor | Sequence[float],
    appearance: AppearanceConfig | None,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    rgb: bool = True,
) -> ContrastiveViews:
    """MoCo-v2 baseline views from SeCo's code (Chen et al. 2020; Mañas et al. 2021).

    * ``temporal=False`` (``moco``): one date ``t`` per location (uniform, i.e. every image of the
      dataset is equally likely, as ``SeasonalContrastBasic``); ``q`` and ``k`` are two
      independent MoCo-v2 augmentations of it.
    * ``temporal=True`` (``moco_tp``, temporal positives, Ayush et al. 2021): two dates drawn with
      replacement (``np.random.choice(paths, 2)`` in ``SeasonalContrastTemporal``), each with
      the full MoCo-v2 augmentation, as in the official code.

    The MoCo-v2 augmentation is, in torchvision's order: random resized crop (+ flip, folded in
    the geometry), appearance, normalisation.
    """
    n, t, _, _, _ = _check_series(images)
    mean_t, std_t = _stats(mean, std, images)
    dates = draw_dates(n, t, 2 if temporal else 1, generator, images.device, replace=True)
    picked = take_dates(images, dates)
    sources = picked if temporal else [picked[0], picked[0]]

    def view(x: Tensor) -> Tensor:
        flip = appearance.flip if appearance is not None else False
        crop, _ = random_crops(x, crop_size, generator, scale=crop_scale, flip=flip)
        if appearance is not None:
            crop = appearance_transform(crop, appearance, generator, rgb=rgb)
        return normalize(crop, mean_t, std_t)

    q = view(sources[0])
    k = view(sources[1])
    return ContrastiveViews(query=q, keys=(k,), dates=dates)


@dataclass(frozen=True)
class DenseViews:
    """Two views of each location for pixel-level contrast, with tracked correspondence.

    Attributes:
        view1, view2: normalised views ``[N, C, s, s]``.
        points1, points2: ``[N, P, 2]`` output-pixel ``(x, y)`` of the same ground positions in
            view 1 and view 2 (read features with :func:`~s2ssl.ssl.resample.sample_at`).
        valid: ``[N, P]`` bool, False where the two crops overlap too little for a point.
        dates: ``[N, 2]`` the two (different) dates.
        geometry1, geometry2: the views' geometries (source = the original patch).
    """

    view1: Tensor
    view2: Tensor
    points1: Tensor
    points2: Tensor
    valid: Tensor
    dates: Tensor
    geometry1: ViewGeometry
    geometry2: ViewGeometry


def dense_views(
    images: Tensor,
    generator: torch.Generator | None,
    *,
    crop_size: int,
    num_points: int,
    mean: Tensor | Sequence[float],
    std: Tensor | Sequence[float],
    appearance: AppearanceConfig | None,
    crop_scale: tuple[float, float] = (0.4, 1.0),
    rot90: bool = True,
    rgb: bool = False,
) -> DenseViews:
    """Dense contrastive views (Embedding Earth design).

    Two different dates per location (distinct when ``T >= 2``), each an independent random
    resized crop with flip / rot90 (when ``appearance`` is given) and the appearance
    augmentation, then normalisation; ``num_points`` ground positions seen by both views are
    drawn uniformly over the overlap (:func:`~s2ssl.ssl.correspondence.sample_correspondences`).
    """
    n, t, _, _, _ = _check_series(images)
    mean_t, std_t = _stats(mean, std, images)
    dates = draw_dates(n, t, 2, generator, images.device, replace=t < 2)
    first, second = take_dates(images, dates)
    flip = appearance.flip if appearance is not None else False

    def view(x: Tensor) -> tuple[Tensor, ViewGeometry]:
        crop, geometry = random_crops(
            x, crop_size, generator, scale=crop_scale, flip=flip, rot90=rot90
        )
        if appearance is not None:
            crop = appearance_transform(crop, appearance, generator, rgb=rgb)
        return normalize(crop, mean_t, std_t), geometry

    view1, g1 = view(first)
    view2, g2 = view(second)
    pts1, pts2, valid = sample_correspondences(g1, g2, num_points, generator)
    return DenseViews(
        view1=view1,
        view2=view2,
        points1=pts1,
        points2=pts2,
        valid=valid,
        dates=dates,
        geometry1=g1,
        geometry2=g2,
    )


def _integer_crop_geometry(
    n: int,
    size: tuple[int, int],
    crop_size: int | None,
    generator: torch.Generator | None,
    device: torch.device,
    *,
    flip: bool,
    rot90: bool,
) -> ViewGeometry:
    """Pixel-aligned crops (no resampling) with optional flip / rot90, as a ViewGeometry."""
    h, w = size
    side_h, side_w = (h, w) if crop_size is None else (crop_size, crop_size)
    if side_h > h or side_w > w:
        raise ValueError(f"crop_size {crop_size} is larger than the patch {h}x{w}")
    gen_device = generator.device if generator is not None else device

    def randint(high: int) -> Tensor:
        return torch.randint(0, high, (n,), generator=generator, device=gen_device).to(device)

    x0 = randint(w - side_w + 1).double()
    y0 = randint(h - side_h + 1).double()
    boxes = torch.stack([x0, y0, x0 + side_w, y0 + side_h], dim=1)
    flips = randint(2).bool() if flip else None
    turns = randint(4) if rot90 and side_h == side_w else None
    return ViewGeometry.from_boxes(boxes, (h, w), (side_h, side_w), flips, turns)


def cscl_batch(
    image: Tensor,
    labels: Tensor,
    generator: torch.Generator | None,
    *,
    doy: Tensor | None = None,
    crop_size: int | None = None,
    flip: bool = True,
    rot90: bool = True,
    mean: Tensor | Sequence[float] | None = None,
    std: Tensor | Sequence[float] | None = None,
) -> tuple[Tensor, Tensor]:
    """CSCL inputs and labels, identically cropped / flipped / rotated (pixel-exact).

    * Time series ``image`` ``[N, T, 13, H, W]`` (reflectance) with ``doy`` ``[N, T]``: the
      result is ``[N, T, C + 1, h, w]`` — the bands as reflectance (CSCL: ``DN × 1e-4``) and
      ``doy / 365`` (:func:`~s2ssl.models.unet3d.append_doy_channel`).
    * Single-date ``image`` ``[N, C, H, W]`` (the land-cover option): normalised with ``mean`` /
      ``std`` when given, result ``[N, C, h, w]``.

    Crops are pixel-aligned (``crop_size`` square at a uniform integer position; None keeps the
    whole patch) and images are read with nearest sampling, so values are copied, never mixed;
    labels follow the same geometry.
    """
    if not isinstance(labels, Tensor) or labels.ndim != 3:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must have shape [N, H, W], got {shape}")
    if image.ndim == 5:
        if doy is None:
            raise ValueError("a time series [N, T, C, H, W] needs doy [N, T] (day of year)")
        x = append_doy_channel(image.float(), doy)
        n, t, c, h, w = x.shape
        flat = x.reshape(n, t * c, h, w)
    elif image.ndim == 4:
        x = image.float()
        if mean is not None and std is not None:
            x = normalize(x, *_stats(mean, std, x))
        n, c, h, w = x.shape
        t = 0
        flat = x
    else:
        raise ValueError(f"image must be [N, T, C, H, W] or [N, C, H, W], got {tuple(image.shape)}")
    if tuple(labels.shape) != (n, h, w):
        raise ValueError(f"labels must have shape {(n, h, w)}, got {tuple(labels.shape)}")
    if crop_size is None and not flip and not rot90:
        return x, labels
    geometry = _integer_crop_geometry(
        n, (h, w), crop_size, generator, x.device, flip=flip, rot90=rot90
    ).to(dtype=flat.dtype)
    out = apply_geometry(flat, geometry, mode="nearest")
    out_labels = apply_geometry_labels(labels, geometry)
    hh, ww = geometry.out_size
    if t:
        out = out.reshape(n, t, c, hh, ww)
    return out, out_labels
