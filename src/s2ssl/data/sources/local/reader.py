"""Reading one image onto its 10 m grid: the dataset's bands resampled (an image lacking one of
them is skipped, never filled), DN with the baseline offset, the quality mask from the scene
classification."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.bands import (
    MASK_CLEAR,
    MASK_NODATA,
    dn_offset_for_baseline,
    missing_bands,
    processing_baseline_for,
    reflectance_to_dn,
)
from s2ssl.config import LocalDatasetSpec
from s2ssl.data.sources import base
from s2ssl.data.sources.local.files import (
    ImageUnit,
    ImportProblemError,
    acquisition_date,
    multiband_order,
)

_BASELINE_RE: Final = re.compile(r"_N(\d{2})(\d{2})_")
_RESOLUTION: Final[float] = 10.0


@dataclass
class Grid:
    """A north-up 10 m grid: CRS, affine transform (a, b, c, d, e, f) and shape."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    height: int
    width: int


@dataclass
class Image:
    """One image on its 10 m grid."""

    dn: np.ndarray  # [B, H, W] uint16, the dataset's bands
    mask: np.ndarray  # [H, W] uint8
    date: dt.date
    baseline: str
    offset: int


# --------------------------------------------------------------------------- reading
def _grid_of(src: Any, path: Path) -> Grid:
    """The 10 m grid covering a raster's bounds in its own CRS."""
    if src.crs is None:
        raise ImportProblemError("no CRS", f"{path} has no coordinate reference system")
    if not src.crs.is_projected:
        raise ImportProblemError(
            "geographic CRS",
            f"{path} is in {src.crs} (degrees): reproject it to a projected CRS in metres "
            "(e.g. its UTM zone) first",
        )
    t = src.transform
    if t.b != 0 or t.d != 0:
        raise ImportProblemError("rotated grid", f"{path} has a rotated geotransform")
    left, bottom, right, top = src.bounds
    width = round((right - left) / _RESOLUTION)
    height = round((top - bottom) / _RESOLUTION)
    return Grid(
        src.crs.to_string(),
        (_RESOLUTION, 0.0, left, 0.0, -_RESOLUTION, top),
        height,
        width,
    )


def _read_on(src: Any, band: int, grid: Grid, resampling: str) -> np.ndarray:
    """Band ``band`` of an open raster on ``grid`` (a plain read when the grids match)."""
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    from rasterio.warp import Resampling, reproject

    target = Affine(*grid.transform)
    if (
        src.crs == CRS.from_user_input(grid.crs)
        and src.transform == target
        and src.shape
        == (
            grid.height,
            grid.width,
        )
    ):
        return src.read(band)
    out = np.zeros((grid.height, grid.width), np.float32 if src.dtypes[0][0] == "f" else np.int32)
    reproject(
        source=src.read(band),
        destination=out,
        src_transform=src.transform,
        src_crs=src.crs,
        dst_transform=target,
        dst_crs=CRS.from_user_input(grid.crs),
        resampling=getattr(Resampling, resampling),
        src_nodata=src.nodata,
        dst_nodata=0,
    )
    return out


def _to_dn(values: np.ndarray, is_float: bool, offset: int) -> np.ndarray:
    """Float reflectance -> DN (with the baseline offset); integer DN clipped to uint16."""
    if is_float:
        return reflectance_to_dn(np.nan_to_num(values, nan=0.0), offset)
    return np.clip(values, 0, np.iinfo(np.uint16).max).astype(np.uint16)


class Reader:
    """Reads the dataset's ``bands`` of :class:`ImageUnit` s onto 10 m grids, naming every
    problem."""

    def __init__(self, spec: LocalDatasetSpec, bands: Sequence[str]) -> None:
        self.spec = spec
        self.bands = tuple(bands)

    def _require(self, unit: ImageUnit, held: Sequence[str]) -> None:
        absent = missing_bands(held, self.bands)
        if absent:
            raise ImportProblemError(
                "missing bands",
                f"{unit.path} lacks {', '.join(absent)} (the dataset holds "
                f"{', '.join(self.bands)}; it holds {', '.join(held) or 'none'})",
            )

    def baseline(self, unit: ImageUnit, date: dt.date) -> str:
        if self.spec.processing_baseline != "by_date":
            return self.spec.processing_baseline
        m = _BASELINE_RE.search(unit.name)
        return f"{m.group(1)}.{m.group(2)}" if m else processing_baseline_for(date)

    def read(self, unit: ImageUnit, grid: Grid | None = None) -> tuple[Image, Grid]:
        """The image on ``grid`` (its own 10 m grid when None)."""
        from rasterio.errors import RasterioError

        date = acquisition_date(unit)
        baseline = self.baseline(unit, date)
        offset = 0 if self.spec.harmonized else dn_offset_for_baseline(baseline)
        try:
            if unit.kind == "multiband":
                return self._multiband(unit, grid, date, baseline, offset)
            return self._band_files(unit, grid, date, baseline, offset)
        except RasterioError as e:
            raise ImportProblemError("unreadable", f"{unit.path}: {e}") from None
        except OSError as e:
            raise ImportProblemError("unreadable", f"{unit.path}: {e}") from None

    def _multiband(
        self, unit: ImageUnit, grid: Grid | None, date: dt.date, baseline: str, offset: int
    ) -> tuple[Image, Grid]:
        import rasterio

        with rasterio.open(unit.path) as src:
            order = multiband_order(src.count, self.spec.band_order)
            if order is None:
                expected = len(self.spec.band_order) if self.spec.band_order else "13 or 12"
                raise ImportProblemError(
                    "wrong band count",
                    f"{unit.path} has {src.count} band(s), expected {expected} "
                    "(set band_order to name the file's bands)",
                )
            self._require(unit, order)
            grid = grid or _grid_of(src, unit.path)
            is_float = src.dtypes[0].startswith("float")
            dn = np.zeros((len(self.bands), grid.height, grid.width), np.uint16)
            for i, name in enumerate(self.bands):
                dn[i] = _to_dn(
                    _read_on(src, order.index(name) + 1, grid, self.spec.resampling),
                    is_float,
                    offset,
                )
            nodata = (dn == 0).all(axis=0)
        return self._finish(dn, None, nodata, date, baseline, offset), grid

    def _band_files(
        self, unit: ImageUnit, grid: Grid | None, date: dt.date, baseline: str, offset: int
    ) -> tuple[Image, Grid]:
        import rasterio

        self._require(unit, sorted(unit.band_files))
        if grid is None:
            fine = [b for b in ("B02", "B03", "B04", "B08") if b in unit.band_files]
            ref = (fine or sorted(unit.band_files))[0]
            with rasterio.open(unit.band_files[ref]) as src:
                grid = _grid_of(src, unit.band_files[ref])
        dn = np.zeros((len(self.bands), grid.height, grid.width), np.uint16)
        nodata = np.ones((grid.height, grid.width), bool)
        for i, name in enumerate(self.bands):
            path = unit.band_files[name]
            with rasterio.open(path) as src:
                if src.count != 1:
                    raise ImportProblemError(
                        "wrong band count", f"{path} has {src.count} bands, expected 1"
                    )
                if src.crs is None:
                    raise ImportProblemError("no CRS", f"{path} has no coordinate reference system")
                is_float = src.dtypes[0].startswith("float")
                band = _to_dn(_read_on(src, 1, grid, self.spec.resampling), is_float, offset)
            dn[i] = band
            nodata &= band == 0
        scl = None
        if unit.scl is not None:
            with rasterio.open(unit.scl) as src:
                scl = _read_on(src, 1, grid, "nearest")
        return self._finish(dn, scl, nodata, date, baseline, offset), grid

    @staticmethod
    def _finish(
        dn: np.ndarray,
        scl: np.ndarray | None,
        nodata: np.ndarray,
        date: dt.date,
        baseline: str,
        offset: int,
    ) -> Image:
        if scl is None:
            mask = np.where(nodata, MASK_NODATA, MASK_CLEAR).astype(np.uint8)
        else:
            mask = base.mask_from_quality("SCL", scl, (~nodata).astype(np.uint8))
        valid = mask != MASK_NODATA
        dn[:, valid] = np.maximum(dn[:, valid], 1)  # DN 0 is reserved for no data
        dn[:, ~valid] = 0
        return Image(dn=dn, mask=mask, date=date, baseline=baseline, offset=offset)
