"""GeoTIFF input for inference: find the rasters, check their georeference, map their bands to a
model's bands, and read windows as reflectance with a validity mask.

**Band names** come from the band descriptions (``B02``, ``B2``, ``b8a``, ``Band 4``, ``B04 red``
...) or the GDAL ``BANDNAME`` / ``BAND_NAME`` band tag. A raster whose bands carry no names at all
takes its names from the ``input_bands`` argument (``--bands``: a preset of
:data:`~s2ssl.bands.BAND_PRESETS`, or band names in the file's order), else from its band count
where that is unambiguous (:data:`~s2ssl.inference.bandmatch.DEFAULT_BAND_ORDERS`: 13 = ``l1c``,
12 = ``l2a``, 10 = ``pastis``); anything else is an error asking for ``--bands``. The model's
bands are then selected by name (:func:`~s2ssl.inference.bandmatch.model_band_positions`): extra
bands are skipped, any order works, a band the model needs that the raster lacks is an error naming
it (never a filled band).

**Radiometry.** Float rasters hold reflectance (GDAL band scale/offset applied when set). Integer
rasters hold DN: ``reflectance = (DN + offset) / quantification``, as :mod:`s2ssl.bands`; the
offset comes from, in order: the ``dn_offset`` argument; the GDAL band scale/offset (applied as
``DN × scale + offset``); the ``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` / ``dn_offset`` tags;
the ``PROCESSING_BASELINE`` tag (offset −1000 from baseline 04.00); else 0 (pre-04.00 data), with a
logged warning. The quantification value is the ``BOA_QUANTIFICATION_VALUE`` /
``QUANTIFICATION_VALUE`` tag or 10000.

**Validity.** A pixel is invalid (nodata in the output) where any model band equals the band's
nodata value or is NaN, where all model bands are 0 (Sentinel-2's no-data DN), and where the
cloud mask holds one of ``masked_values`` (default: the s2ssl mask codes cloud, cloud shadow and
no data; a 0/1 cloud mask works too). The cloud mask is a band of the raster described as one of
:data:`MASK_BAND_NAMES` (case-insensitive) and/or a separate single-band raster on the same grid.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from s2ssl.bands import (
    MASK_CLOUD,
    MASK_NODATA,
    MASK_SHADOW,
    QUANTIFICATION_VALUE,
    dn_offset_for_baseline,
)
from s2ssl.inference.bandmatch import (
    DEFAULT_BAND_ORDERS,
    BandSpec,
    default_band_order,
    model_band_positions,
    parse_band_name,
    parse_band_option,
)

__all__ = [
    "DEFAULT_BAND_ORDERS",
    "DEFAULT_MASKED_VALUES",
    "MASK_BAND_NAMES",
    "RASTER_SUFFIXES",
    "Radiometry",
    "RasterInput",
    "check_georeferenced",
    "find_rasters",
    "parse_band_name",
    "raster_band_names",
]

log = logging.getLogger(__name__)

RASTER_SUFFIXES: Final[tuple[str, ...]] = (".tif", ".tiff", ".vrt")
"""File suffixes (case-insensitive) taken from a folder of rasters."""

DEFAULT_MASKED_VALUES: Final[tuple[int, ...]] = (MASK_CLOUD, MASK_SHADOW, MASK_NODATA)
"""Cloud-mask values that make a pixel nodata (s2ssl mask codes; a 0/1 cloud mask works too)."""

MASK_BAND_NAMES: Final[tuple[str, ...]] = ("mask", "cloud_mask", "cloud mask", "clm")
"""Band descriptions (case-insensitive) that mark a raster's own cloud-mask band."""

_OFFSET_TAGS: Final[tuple[str, ...]] = ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET", "dn_offset")
_QUANT_TAGS: Final[tuple[str, ...]] = ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE")


def find_rasters(path: str | Path) -> list[Path]:
    """``[path]`` for a file, the sorted ``.tif`` / ``.tiff`` / ``.vrt`` files of a folder.

    Raises:
        ValueError: the path does not exist, or the folder holds no raster.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.exists():
        raise ValueError(f"input {p} does not exist (give a GeoTIFF or a folder of GeoTIFFs)")
    found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in RASTER_SUFFIXES)
    if not found:
        raise ValueError(
            f"folder {p} holds no raster ({', '.join(RASTER_SUFFIXES)} files); give a GeoTIFF "
            "or a folder of them"
        )
    return found


def _is_mask(description: str | None) -> bool:
    return description is not None and description.strip().lower() in MASK_BAND_NAMES


def raster_band_names(
    ds: DatasetReader, input_bands: BandSpec | None = None
) -> tuple[str | None, ...]:
    """The Sentinel-2 band of each raster band (None for bands that are not one, e.g. a mask).

    Band descriptions (or ``BANDNAME`` tags) that name Sentinel-2 bands win; a raster without
    any takes ``input_bands`` (a preset or names in file order; a cloud-mask band, described as
    in :data:`MASK_BAND_NAMES`, is not counted), else the default order of its band count.

    Raises:
        ValueError: a band name on two bands; ``input_bands`` that contradict the descriptions
            or do not match the band count; unnamed bands of a count without a default order.
    """
    names: list[str | None] = []
    for i, desc in enumerate(ds.descriptions, start=1):
        tags = ds.tags(i)
        name = parse_band_name(desc) or parse_band_name(
            tags.get("BANDNAME") or tags.get("BAND_NAME")
        )
        names.append(name)
    given = None if input_bands is None else parse_band_option(input_bands)
    if not any(names):
        masks = [_is_mask(d) for d in ds.descriptions]
        n_bands = masks.count(False)
        if given is None:
            order = iter(default_band_order(n_bands, str(ds.name)))
        elif len(given) != n_bands:
            raise ValueError(
                f"{ds.name} has {n_bands} image band(s) but --bands gives {len(given)} "
                f"({', '.join(given)}); list one name per band, in the file's order"
            )
        else:
            order = iter(given)
        return tuple(None if m else next(order) for m in masks)
    dupes = sorted({n for n in names if n is not None and names.count(n) > 1})
    if dupes:
        raise ValueError(
            f"{ds.name}: band name(s) {dupes} appear on more than one band "
            f"(descriptions: {list(ds.descriptions)})"
        )
    named = tuple(n for n in names if n is not None)
    if given is not None and set(named) != set(given):  # the descriptions give the order
        raise ValueError(
            f"{ds.name}: its band descriptions name the bands {', '.join(named)} but --bands "
            f"gives {', '.join(given)}; drop --bands (the descriptions are used) or fix them"
        )
    return tuple(names)


def check_georeferenced(ds: DatasetReader) -> None:
    """Refuse rasters without a CRS or with an identity / degenerate geotransform.

    Raises:
        ValueError: what is missing and how to add it.
    """
    if ds.crs is None:
        raise ValueError(
            f"{ds.name} is not georeferenced: it has no CRS; assign one (e.g. "
            "`gdal_edit.py -a_srs EPSG:32633 FILE`) or export it with its georeference"
        )
    t = ds.transform
    if t == Affine.identity() or t.is_degenerate:
        raise ValueError(
            f"{ds.name} is not georeferenced: its geotransform is {tuple(t)[:6]} (identity or "
            "degenerate, e.g. only GCPs); warp it to a grid first (`gdalwarp`) or set the "
            "geotransform (`gdal_edit.py -a_ullr`)"
        )


@dataclass(frozen=True, slots=True)
class Radiometry:
    """How raw values of the selected bands become reflectance: ``raw × scale + offset``."""

    scale: tuple[float, ...]
    offset: tuple[float, ...]
    source: str
    dn_offset: int | None = None
    """The DN offset when the conversion is ``(DN + dn_offset) / quantification``."""

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Reflectance (float32) of ``raw`` ``(C, h, w)`` in the selected band order."""
        scale = np.asarray(self.scale, np.float32)[:, None, None]
        offset = np.asarray(self.offset, np.float32)[:, None, None]
        return raw.astype(np.float32) * scale + offset


def _tag(ds: DatasetReader, keys: Sequence[str], indexes: Sequence[int]) -> tuple[str, str] | None:
    """The first of ``keys`` found in the dataset tags, then in the selected bands' tags."""
    lower = {k.lower() for k in keys}
    for tags in (ds.tags(), *(ds.tags(i) for i in indexes)):
        for key, value in tags.items():
            if key.lower() in lower:
                return key, value
    return None


def _radiometry(ds: DatasetReader, indexes: Sequence[int], dn_offset: int | None) -> Radiometry:
    n = len(indexes)
    scales = [float(ds.scales[i - 1]) for i in indexes]
    offsets = [float(ds.offsets[i - 1]) for i in indexes]
    gdal_scaled = any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets)
    is_float = np.dtype(ds.dtypes[indexes[0] - 1]).kind == "f"
    if is_float:
        if gdal_scaled:
            return Radiometry(tuple(scales), tuple(offsets), "float, GDAL band scale/offset")
        return Radiometry((1.0,) * n, (0.0,) * n, "float raster read as reflectance")
    quant_tag = _tag(ds, _QUANT_TAGS, indexes)
    quant = float(quant_tag[1]) if quant_tag else float(QUANTIFICATION_VALUE)
    if dn_offset is not None:
        source = "dn_offset argument"
    elif gdal_scaled:
        return Radiometry(tuple(scales), tuple(offsets), "GDAL band scale/offset")
    elif (found := _tag(ds, _OFFSET_TAGS, indexes)) is not None:
        dn_offset, source = int(float(found[1])), f"tag {found[0]}"
    elif (baseline := _tag(ds, ("PROCESSING_BASELINE",), indexes)) is not None:
        dn_offset, source = (
            dn_offset_for_baseline(baseline[1]),
            f"processing baseline {baseline[1]}",
        )
    else:
        dn_offset, source = 0, "no offset information: assumed 0 (processing baseline < 04.00)"
        log.warning(
            "%s: integer DN without offset information (no PROCESSING_BASELINE / "
            "BOA_ADD_OFFSET tag); using offset 0 — pass dn_offset=-1000 for scenes processed "
            "with baseline >= 04.00 (acquired since 2022-01-25)",
            ds.name,
        )
    return Radiometry(
        (1.0 / quant,) * n,
        (dn_offset / quant,) * n,
        f"DN / {quant:g}, offset from {source}",
        dn_offset,
    )


def _open(path: Path) -> DatasetReader:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioError as e:
        raise ValueError(f"cannot read {path} as a raster: {e}") from None


class RasterInput:
    """A GeoTIFF opened for inference with one model's bands (a :class:`TileSource`).

    Args:
        path: the raster.
        bands: the model's band names, in model order (selected from the raster by name).
        input_bands: the raster's bands when its band descriptions do not name them (a preset
            or names in file order; see :func:`raster_band_names`).
        dn_offset: DN offset for integer rasters (None: from the raster's metadata, see the
            module docstring).
        cloud_mask: optional single-band raster on the same grid; pixels holding one of
            ``masked_values`` become nodata (as in a band described as in
            :data:`MASK_BAND_NAMES`, which is always used).
        masked_values: the cloud-mask values to mask.

    Raises:
        ValueError: unreadable file, not georeferenced, bands not known by name, missing bands
            (named), a cloud mask on another grid.
    """

    def __init__(
        self,
        path: str | Path,
        bands: Sequence[str],
        *,
        input_bands: BandSpec | None = None,
        dn_offset: int | None = None,
        cloud_mask: str | Path | None = None,
        masked_values: Sequence[int] = DEFAULT_MASKED_VALUES,
    ) -> None:
        self.path: Path = Path(path)
        self.bands: tuple[str, ...] = tuple(bands)
        self._ds: DatasetReader = _open(self.path)
        self._mask: DatasetReader | None = None
        try:
            check_georeferenced(self._ds)
            self.band_names: tuple[str | None, ...] = raster_band_names(self._ds, input_bands)
            self.indexes: list[int] = [
                i + 1 for i in model_band_positions(self.band_names, self.bands, str(self.path))
            ]
            self.radiometry: Radiometry = _radiometry(self._ds, self.indexes, dn_offset)
            self.nodata: tuple[float | None, ...] = tuple(
                self._ds.nodatavals[i - 1] for i in self.indexes
            )
            self.masked_values: tuple[int, ...] = tuple(int(v) for v in masked_values)
            self.mask_band: int | None = next(
                (i for i, d in enumerate(self._ds.descriptions, start=1) if _is_mask(d)),
                None,
            )
            if cloud_mask is not None:
                self._mask = self._open_mask(Path(cloud_mask))
        except BaseException:
            self.close()
            raise

    def _open_mask(self, path: Path) -> DatasetReader:
        mask = _open(path)
        ds = self._ds
        problems = []
        if mask.crs != ds.crs:
            problems.append(f"CRS {mask.crs} vs {ds.crs}")
        if not mask.transform.almost_equals(ds.transform):
            problems.append(f"transform {tuple(mask.transform)[:6]} vs {tuple(ds.transform)[:6]}")
        if (mask.height, mask.width) != (ds.height, ds.width):
            problems.append(f"size {mask.height}x{mask.width} vs {ds.height}x{ds.width}")
        if problems:
            mask.close()
            raise ValueError(
                f"cloud mask {path} is not on the grid of {self.path}: {'; '.join(problems)}; "
                "resample it onto the image grid first"
            )
        return mask

    @property
    def input_bands(self) -> tuple[str, ...]:
        """The raster's Sentinel-2 bands, in file order (a mask band left out)."""
        return tuple(b for b in self.band_names if b is not None)

    # -- TileSource
    @property
    def height(self) -> int:
        """Raster height in pixels."""
        return int(self._ds.height)

    @property
    def width(self) -> int:
        """Raster width in pixels."""
        return int(self._ds.width)

    @property
    def crs(self) -> Any:
        """The raster's CRS (a :class:`rasterio.crs.CRS`)."""
        return self._ds.crs

    @property
    def transform(self) -> Affine:
        """The raster's affine geotransform."""
        return self._ds.transform

    def _read(self, ds: DatasetReader, indexes: Sequence[int] | int, **kwargs: Any) -> np.ndarray:
        try:
            return ds.read(indexes, **kwargs)
        except RasterioError as e:
            raise ValueError(f"cannot read {ds.name} (truncated or corrupt?): {e}") from None

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance ``(C, h, w)`` float32 (invalid pixels 0) and validity ``(h, w)``."""
        raw = self._read(self._ds, self.indexes, window=window)
        invalid = np.all(raw == 0, axis=0)
        if raw.dtype.kind == "f":
            invalid |= np.isnan(raw).any(axis=0)
        for c, nd in enumerate(self.nodata):
            if nd is not None and not np.isnan(nd):
                invalid |= raw[c] == nd
        if self.mask_band is not None:
            invalid |= np.isin(
                self._read(self._ds, self.mask_band, window=window), self.masked_values
            )
        if self._mask is not None:
            invalid |= np.isin(self._read(self._mask, 1, window=window), self.masked_values)
        x = self.radiometry.apply(raw)
        x[:, invalid] = 0.0
        return x, ~invalid

    def rgb_preview(self, max_size: int = 1024) -> np.ndarray | None:
        """Reflectance ``(3, h, w)`` of B04, B03, B02 decimated to at most ``max_size`` pixels
        on the long side (nearest), or None when the raster lacks one of them."""
        rgb = ("B04", "B03", "B02")
        if not all(b in self.band_names for b in rgb):
            return None
        idx = [self.band_names.index(b) + 1 for b in rgb]
        f = max(1.0, max(self.height, self.width) / max_size)
        shape = (3, max(1, round(self.height / f)), max(1, round(self.width / f)))
        raw = self._read(self._ds, idx, out_shape=shape, resampling=Resampling.nearest)
        sel = [self.indexes.index(i) if i in self.indexes else None for i in idx]
        if all(s is not None for s in sel):
            r = self.radiometry
            radiometry = Radiometry(
                tuple(r.scale[s] for s in sel if s is not None),
                tuple(r.offset[s] for s in sel if s is not None),
                r.source,
            )
        else:
            radiometry = _radiometry(self._ds, idx, self.radiometry.dn_offset)
        out = radiometry.apply(raw)
        out[:, np.all(raw == 0, axis=0)] = 0.0
        return out

    def close(self) -> None:
        """Close the raster (and the cloud mask)."""
        self._ds.close()
        if self._mask is not None:
            self._mask.close()

    def __enter__(self) -> RasterInput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
