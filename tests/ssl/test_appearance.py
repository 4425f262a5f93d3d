"""Appearance augmentations and per-band standardisation."""

from __future__ import annotations

import pytest
import torch

from s2ssl.ssl.appearance import (
    appearance,
    bandwise_brightness_contrast,
    gaussian_blur,
    gaussian_noise,
    normalize,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_brightness_contrast():
    x = torch.rand(4, 3, 8, 8, generator=gen(2), dtype=torch.float64)
    out = bandwise_brightness_contrast(x, generator=gen(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x)
    torch.testing.assert_close(bandwise_brightness_contrast(x, 0.0, 0.0, gen(5)), x)
    # contrast only: band means are kept, band std scales by a factor within [0.8, 1.2]
    only_c = bandwise_brightness_contrast(x, 0.0, 0.2, gen(5))
    torch.testing.assert_close(only_c.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)))
    ratio = only_c.std(dim=(-2, -1)) / x.std(dim=(-2, -1))
    assert (ratio >= 0.8 - 1e-9).all() and (ratio <= 1.2 + 1e-9).all()
    with pytest.raises(ValueError, match="contrast"):
        bandwise_brightness_contrast(x, contrast=1.5)


def test_gaussian_blur():
    noise = torch.randn(4, 2, 16, 16, generator=gen(3))
    assert torch.equal(gaussian_blur(noise, p=0.0, generator=gen()), noise)
    blurred = gaussian_blur(noise, sigma=(1.0, 2.0), p=1.0, generator=gen())
    assert blurred.shape == noise.shape
    assert (blurred.var(dim=(-2, -1)) < 0.7 * noise.var(dim=(-2, -1))).all()
    constant = torch.full((2, 3, 9, 9), 0.25)
    torch.testing.assert_close(gaussian_blur(constant, p=1.0, generator=gen()), constant)
    tiny = torch.randn(2, 1, 3, 3, generator=gen())  # kernel radius capped for tiny images
    assert gaussian_blur(tiny, p=1.0, generator=gen()).shape == tiny.shape
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(noise, sigma=(0.0, 1.0))


def test_gaussian_noise_and_appearance():
    x = torch.zeros(2, 3, 64, 64)
    noisy = gaussian_noise(x, std=0.05, p=1.0, generator=gen())
    assert abs(noisy.std().item() - 0.05) < 0.005
    assert torch.equal(gaussian_noise(x, p=0.0, generator=gen()), x)
    img = torch.rand(4, 3, 12, 12, generator=gen(1))
    a = appearance(img, gen(9))
    b = appearance(img, gen(9))
    assert a.shape == img.shape and torch.equal(a, b)


def test_normalize():
    x = torch.rand(2, 3, 4, 4, generator=gen())
    mean = torch.tensor([0.1, 0.2, 0.3])
    std = torch.tensor([0.5, 1.0, 2.0])
    out = normalize(x, mean, std)
    torch.testing.assert_close(out * std[:, None, None] + mean[:, None, None], x)
    with pytest.raises(ValueError, match="mean"):
        normalize(x, torch.zeros(4), std)
    with pytest.raises(ValueError, match="std"):
        normalize(x, mean, torch.ones(2))
    with pytest.raises(ValueError, match="> 0"):
        normalize(x, mean, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[\.\.\., C, H, W\]"):
        normalize(torch.zeros(3, 4), mean, std)
