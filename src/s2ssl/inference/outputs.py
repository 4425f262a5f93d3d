"""What every prediction shares: the output file names, :class:`PredictionResult`, and the
helpers that fill ``areas.json`` and the GeoTIFF tags (:mod:`s2ssl.inference.predict` for
GeoTIFFs, :mod:`s2ssl.inference.predict_store` for store datasets)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from s2ssl.inference.bandmatch import band_label
from s2ssl.inference.segmenter import SegmenterSpec

__all__ = [
    "AREAS_FILE",
    "CLASSES_FILE",
    "PROBABILITIES_FILE",
    "QUICKLOOK_FILE",
    "PredictionResult",
    "affine6",
    "grid_info",
    "map_tags",
    "model_info",
    "resolve_tiling",
    "work_dir",
]

CLASSES_FILE = "classes.tif"
PROBABILITIES_FILE = "probabilities.tif"
QUICKLOOK_FILE = "quicklook.png"
AREAS_FILE = "areas.json"


@dataclass(frozen=True)
class PredictionResult:
    """What one prediction wrote and measured."""

    classes_path: Path
    probabilities_path: Path | None
    quicklook_path: Path | None
    areas_path: Path | None
    areas: dict[str, Any]
    """The ``areas.json`` content of this raster / sample."""
    height: int
    width: int
    crs: str
    transform: tuple[float, float, float, float, float, float]
    n_tiles: int
    seconds: float
    """Wall time: reading, inference, writing the rasters and areas (not the quicklook)."""
    device: str

    @property
    def area_km2(self) -> float:
        """Area covered (valid and nodata) in km²."""
        return float(self.areas["total_area_ha"]) / 100.0


@contextmanager
def work_dir(out: Path) -> Iterator[Path]:
    """A hidden scratch directory inside ``out`` for intermediates, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=".predict-", dir=out))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def model_info(
    spec: SegmenterSpec, tile: int, overlap: int, input_bands: Sequence[str]
) -> dict[str, Any]:
    """The ``model`` entry of ``areas.json``: the bands the segmenter read (``bands``, model
    order, selected by name from the input's ``input_bands``, input order), its classes with
    their colours, and how it was tiled."""
    return {
        "bands": list(spec.bands),
        "bands_preset": band_label(spec.bands),
        "input_bands": list(input_bands),
        "input_bands_preset": band_label(input_bands),
        "class_names": list(spec.class_names),
        "classes": spec.class_set.to_json(),
        "n_dates": spec.n_dates,
        "tile_size": tile,
        "overlap": overlap,
    }


def affine6(t: Affine) -> tuple[float, float, float, float, float, float]:
    """The six coefficients ``(a, b, c, d, e, f)`` of ``t`` as plain floats."""
    return (float(t.a), float(t.b), float(t.c), float(t.d), float(t.e), float(t.f))


def grid_info(
    crs: CRS, transform: Affine, height: int, width: int, row_area: np.ndarray
) -> dict[str, Any]:
    """The grid entries of ``areas.json``; ``pixel_area_m2`` is None where ``row_area`` (m² per
    pixel of each row) varies, as in a geographic CRS."""
    constant = bool(np.all(row_area == row_area[0]))
    return {
        "crs": crs.to_string(),
        "transform": list(affine6(transform)),
        "height": height,
        "width": width,
        "pixel_area_m2": float(row_area[0]) if constant else None,
    }


def map_tags(
    spec: SegmenterSpec, source: str, tile: int, overlap: int, input_bands: Sequence[str]
) -> dict[str, str]:
    """GeoTIFF tags that record where a map came from, the bands the model read (model order)
    out of the input's bands (input order), and how it was tiled."""
    return {
        "S2SSL_SOURCE": source,
        "S2SSL_MODEL_BANDS": ",".join(spec.bands),
        "S2SSL_INPUT_BANDS": ",".join(input_bands),
        "S2SSL_TILE_SIZE": str(tile),
        "S2SSL_OVERLAP": str(overlap),
    }


def resolve_tiling(
    spec: SegmenterSpec, tile_size: int | None, overlap: int | None
) -> tuple[int, int]:
    """Tile edge (None: the segmenter's) and overlap (None: a quarter of the tile).

    Raises:
        ValueError: a tile edge that is not a positive int.
    """
    tile = spec.tile_size if tile_size is None else tile_size
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile_size must be a positive int, got {tile!r}")
    return tile, tile // 4 if overlap is None else overlap
