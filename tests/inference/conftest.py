"""Fixtures of the inference tests: a tiny deterministic segmenter and a GeoTIFF writer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

UTM_CRS = "EPSG:32633"
UTM_TRANSFORM = Affine(10.0, 0.0, 465_180.0, 0.0, -10.0, 5_080_250.0)


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


def write_geotiff(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = UTM_CRS,
    transform: Affine | None = UTM_TRANSFORM,
    descriptions: Sequence[str | None] | None = None,
    nodata: float | None = None,
    tags: dict[str, Any] | None = None,
) -> Path:
    """Write ``data`` ``(C, H, W)`` as a GeoTIFF (no CRS / transform when None)."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
    }
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        if descriptions is not None:
            for i, d in enumerate(descriptions, start=1):
                if d is not None:
                    ds.set_band_description(i, d)
        if tags:
            ds.update_tags(**tags)
    return path


@pytest.fixture
def geotiff() -> Callable[..., Path]:
    """:func:`write_geotiff`."""
    return write_geotiff


def smooth_dn(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Spatially varied uint16 DN (200..4000) with structure at several scales."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty(shape, np.float32)
    for k in range(c):
        fy, fx = rng.uniform(0.01, 0.2, 2).tolist()
        ph = float(rng.uniform(0, 6))
        out[k] = np.sin(fy * yy + ph) * np.cos(fx * xx) + rng.normal(0, 0.3, (h, w))
    return (1500 + 900 * out).clip(200, 4000).astype(np.uint16)


@pytest.fixture
def dn_raster() -> Callable[..., np.ndarray]:
    """:func:`smooth_dn`."""
    return smooth_dn


@pytest.fixture
def make_tiny() -> type[TinySegmenter]:
    """The :class:`TinySegmenter` class, to build variants (bands, classes, tile size)."""
    torch.set_num_threads(1)
    return TinySegmenter
