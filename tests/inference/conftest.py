"""Fixtures of the inference tests: a tiny deterministic segmenter and a GeoTIFF writer
(:mod:`rasterkit`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from rasterkit import smooth_dn, write_geotiff


class TinySegmenter:
    """A fixed 3x3 convolution + softmax: receptive field radius 1 px, far below the overlap's
    dead margin, so tiled prediction must equal a whole-raster pass (up to float rounding)."""

    def __init__(
        self,
        bands: Sequence[str] = ("B02", "B03", "B04", "B08"),
        class_names: Sequence[str] = ("water", "forest", "grassland"),
        tile_size: int = 64,
        seed: int = 0,
    ) -> None:
        self.bands = tuple(bands)
        self.class_names = tuple(class_names)
        self.tile_size = tile_size
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(len(self.bands), len(self.class_names), 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 8.0)
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g))
        self.calls: list[tuple[int, ...]] = []

    def to(self, device: torch.device) -> TinySegmenter:
        self.conv.to(device)
        return self

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        with torch.no_grad():
            return torch.softmax(self.conv(x), dim=1)

    def whole(self, reflectance: np.ndarray) -> np.ndarray:
        """Probabilities ``(K, H, W)`` of one pass over a whole ``(C, H, W)`` reflectance array."""
        return self.predict_proba(torch.from_numpy(np.asarray(reflectance, np.float32))[None])[
            0
        ].numpy()


@pytest.fixture
def tiny() -> TinySegmenter:
    """A 4-band (B02, B03, B04, B08), 3-class tiny segmenter with 64-px tiles."""
    torch.set_num_threads(1)
    return TinySegmenter()


@pytest.fixture
def geotiff() -> Callable[..., Path]:
    """:func:`write_geotiff`."""
    return write_geotiff


@pytest.fixture
def dn_raster() -> Callable[..., np.ndarray]:
    """:func:`smooth_dn`."""
    return smooth_dn


@pytest.fixture
def make_tiny() -> type[TinySegmenter]:
    """The :class:`TinySegmenter` class, to build variants (bands, classes, tile size)."""
    torch.set_num_threads(1)
    return TinySegmenter
