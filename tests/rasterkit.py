"""GeoTIFF test helpers (importable as ``rasterkit``): write a raster, make varied DN."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

UTM_CRS = "EPSG:32633"
UTM_TRANSFORM = Affine(10.0, 0.0, 465_180.0, 0.0, -10.0, 5_080_250.0)


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
