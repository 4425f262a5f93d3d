"""Batched appearance augmentations and per-band standardisation of multispectral tensors.

Batched over the sample axis ``N`` and driven by an explicit :class:`torch.Generator`
(parameters are drawn per sample; the same generator state gives the same views).
:func:`bandwise_brightness_contrast`, :func:`gaussian_blur`, :func:`gaussian_noise`,
:func:`appearance`: SeCo's appearance augmentation ``A`` is torchvision colour jitter, random
grayscale, Gaussian blur and flips on RGB; for multispectral input we use band-wise
brightness/contrast, blur, noise and (geometric) flips instead — an adaptation that is *ours*,
not the paper's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from s2ssl.ssl.checks import check_image, check_probability, check_range
from s2ssl.ssl.draws import draw_normal, draw_uniform

__all__ = [
    "appearance",
    "bandwise_brightness_contrast",
    "gaussian_blur",
    "gaussian_noise",
    "normalize",
]


def _selected(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``[N]`` bool: which samples an op with probability ``p`` applies to (always draws)."""
    return draw_uniform((n,), generator, device) < p


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
    check_image(x)
    if brightness < 0:
        raise ValueError(f"brightness must be >= 0, got {brightness}")
    if not 0 <= contrast <= 1:
        raise ValueError(f"contrast must be in [0, 1] (the factor stays >= 0), got {contrast}")
    p = check_probability(p, "p")
    n, c = x.shape[:2]
    factor = 1.0 + contrast * (2.0 * draw_uniform((n, c), generator, x.device, x.dtype) - 1.0)
    shift = brightness * (2.0 * draw_uniform((n, c), generator, x.device, x.dtype) - 1.0)
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
    check_image(x)
    lo, hi = check_range(sigma, "sigma", low=0.0)
    p = check_probability(p, "p")
    n, c, h, w = x.shape
    sig = lo + (hi - lo) * draw_uniform((n,), generator, x.device, x.dtype)
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
    check_image(x)
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    p = check_probability(p, "p")
    chosen = _selected(x.shape[0], p, generator, x.device)
    noise = draw_normal(x.shape, generator, x.device, x.dtype)
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
    2021); flips are part of the geometry (:func:`~s2ssl.ssl.geometry.sample_view_geometry`), so
    correspondence stays tracked. Applies :func:`bandwise_brightness_contrast`,
    :func:`gaussian_blur` and :func:`gaussian_noise` in that order, each with its own per-sample
    draws.
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
