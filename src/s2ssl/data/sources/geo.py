"""Patch georeference: the UTM zone of a point and a north-up 10 m grid centred on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyproj import Transformer


@dataclass(frozen=True, slots=True)
class Georeference:
    """Where a patch lies: centre lon/lat, UTM CRS and 10 m affine transform (GDAL order)."""

    lon: float
    lat: float
    crs: str
    transform: tuple[float, float, float, float, float, float]


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the WGS84 / UTM zone of (lon, lat) (326xx north, 327xx south)."""
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def georeference(lon: float, lat: float, size: int) -> Georeference:
    """A north-up 10 m grid of ``size`` pixels centred on (lon, lat) in its UTM zone."""
    epsg = utm_epsg(lon, lat)
    x, y = _utm_transformer(epsg).transform(lon, lat)
    x0 = float(np.round(x / 10.0) * 10.0 - size * 5.0)
    y0 = float(np.round(y / 10.0) * 10.0 + size * 5.0)
    return Georeference(lon, lat, f"EPSG:{epsg}", (10.0, 0.0, x0, 0.0, -10.0, y0))


_TRANSFORMERS: dict[int, Transformer] = {}


def _utm_transformer(epsg: int) -> Transformer:
    if epsg not in _TRANSFORMERS:
        _TRANSFORMERS[epsg] = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    return _TRANSFORMERS[epsg]
