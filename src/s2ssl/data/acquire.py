"""One scene over an area and a date, from the configured source, as a GeoTIFF for ``predict``.

:func:`acquire_scene` turns a lon/lat box (WGS84) and a date into one georeferenced multi-band
GeoTIFF on a north-up 10 m grid in the UTM zone of the box's centre, covering the whole box (its
UTM envelope, snapped outwards to 10 m), plus a small JSON beside it saying what was used:

* ``fetch.source: sentinelhub`` — catalog search within ± ``window_days`` of the date (default
  ``fetch.sentinelhub.landcover.window_days``) with the scene cloud filter
  (``fetch.sentinelhub.max_cloud_coverage``), the least cloudy acquisition day kept (or the
  closest, ``pick="closest"``), then one Process API request (at most 2500 × 2500 px, i.e.
  25 × 25 km); cached and retried as in ``fetch`` (:func:`~.sources.sentinelhub.area.acquire_area`).
* ``fetch.source: synthetic`` — the synthetic world rendered over the box on that date by the
  region whose lon/lat box contains it (:func:`~.sources.synthetic.area.render_area`);
  deterministic for the same seed, box and date; at most :data:`MAX_SYNTHETIC_PX` pixels a side.
* ``fetch.source: local`` — nothing to fetch: an error pointing at the GeoTIFF itself.

**The GeoTIFF** holds the configured ``bands`` (``params.band_names``, as ``fetch`` stores them) as
uint16 DN in Sentinel-2 order, each named by its band description (``B02`` …; nothing is filled:
Level-2A offers no B10, so asking for it there is an error; tag ``S2SSL_BANDS`` lists them), then a
``mask`` band with the s2ssl quality codes (0 clear, 1 cloud, 2 cloud shadow, 3 snow, 255 no data).
Its radiometry is exactly that of the datasets the models were trained on: ``reflectance = (DN +
offset) / 10000`` with the offset in the ``BOA_ADD_OFFSET`` tag (``BOA_QUANTIFICATION_VALUE`` 10000,
``PROCESSING_BASELINE`` too), which is how :class:`~s2ssl.inference.rasters.RasterInput` reads it.
No-data pixels have DN 0 in every band, and ``predict`` marks pixels flagged cloud, shadow or no
data by the mask band as nodata. Tags also record ``ACQUISITION_DATE``, ``PROCESSING_BASELINE`` and
(Sentinel Hub) ``PRODUCT_ID``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.bands import BAND_NAMES, MASK_NAMES, MASK_NODATA, QUANTIFICATION_VALUE, select_bands
from s2ssl.config import Params
from s2ssl.data.sources.geo import utm_epsg
from s2ssl.data.sources.sentinelhub.area import MAX_PROCESS_PX, acquire_area
from s2ssl.data.sources.sentinelhub.client import estimate_processing_units
from s2ssl.data.sources.synthetic.area import region_containing, render_area
from s2ssl.data.sources.synthetic.world import WORLD_VERSION
from s2ssl.io import atomic_path, write_json_atomic
from s2ssl.progress import ProgressFactory, no_progress
from s2ssl.settings import Settings

__all__ = [
    "AREA_FORMAT",
    "MAX_SYNTHETIC_PX",
    "RESOLUTION_M",
    "AreaGrid",
    "acquire_scene",
    "area_grid",
    "check_fetchable",
    "parse_area",
    "parse_date",
    "read_acquisition",
]

AREA_FORMAT: Final[str] = "LON_MIN,LAT_MIN,LON_MAX,LAT_MAX"
"""How an area is written on the command line (WGS84 degrees)."""
RESOLUTION_M: Final[float] = 10.0
"""Pixel size of every acquired scene (metres, UTM)."""
MAX_SYNTHETIC_PX: Final[int] = 2048
"""Largest width / height of a synthetic rendering (at this size: about 1.4 GB of memory, 20 s)."""
MASK_BAND: Final[str] = "mask"
"""Description of the quality-mask band (one of the names ``predict`` recognises)."""
_LAT_LIMIT: Final[float] = 80.0


@dataclass(frozen=True, slots=True)
class AreaGrid:
    """A north-up grid in a UTM zone: CRS, affine transform (GDAL order) and size."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` in the grid's CRS."""
        a, _, x0, _, e, y0 = self.transform
        return x0, y0 + e * self.height, x0 + a * self.width, y0

    def describe(self) -> str:
        """``W x H px (w x h km)``."""
        res = self.transform[0]
        km_w, km_h = self.width * res / 1000.0, self.height * res / 1000.0
        return f"{self.width} x {self.height} px ({km_w:.2f} x {km_h:.2f} km)"


def parse_area(text: str) -> tuple[float, float, float, float]:
    """``"LON_MIN,LAT_MIN,LON_MAX,LAT_MAX"`` (WGS84 degrees) as four floats.

    Raises:
        ValueError: not four numbers, min >= max, longitude outside [-180, 180] or latitude
            outside [-80, 80] (UTM zones); the message names the expected format.
    """
    parts = [p.strip() for p in re.split(r"[,\s]+", text.strip()) if p.strip()]
    hint = f"expected {AREA_FORMAT} in degrees (WGS84), e.g. 14.50,46.00,14.55,46.04"
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"area {text!r} is not four numbers: {hint}") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"area {text!r} is not four numbers: {hint}")
    lon0, lat0, lon1, lat1 = values
    if not (lon0 < lon1 and lat0 < lat1):
        raise ValueError(f"area {text!r} needs LON_MIN < LON_MAX and LAT_MIN < LAT_MAX: {hint}")
    if not (lon0 >= -180.0 and lon1 <= 180.0):
        raise ValueError(f"area {text!r}: longitudes must lie in [-180, 180]; {hint}")
    if not (lat0 >= -_LAT_LIMIT and lat1 <= _LAT_LIMIT):
        raise ValueError(f"area {text!r}: latitudes must lie in [-80, 80] (UTM); {hint}")
    return lon0, lat0, lon1, lat1


def parse_date(text: str) -> dt.date:
    """``"YYYY-MM-DD"`` as a date.

    Raises:
        ValueError: anything else; the message names the expected format.
    """
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            raise ValueError
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"date {text!r} is not a calendar date YYYY-MM-DD, e.g. 2021-07-01"
        ) from None


def area_grid(
    bbox: Sequence[float], resolution: float = RESOLUTION_M, max_size: int | None = None
) -> AreaGrid:
    """The 10 m grid covering ``bbox`` (lon/lat) in the UTM zone of its centre: the UTM
    envelope of the box (edges densified) snapped outwards to whole pixels.

    Raises:
        ValueError: an invalid box, or a grid larger than ``max_size`` pixels a side (the message
            gives the size in km and asks for a smaller area).
    """
    from pyproj import Transformer

    lon0, lat0, lon1, lat1 = parse_area(",".join(repr(float(v)) for v in bbox))
    epsg = utm_epsg((lon0 + lon1) / 2.0, (lat0 + lat1) / 2.0)
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    minx, miny, maxx, maxy = to_utm.transform_bounds(lon0, lat0, lon1, lat1, densify_pts=21)
    x0 = math.floor(minx / resolution) * resolution
    y1 = math.ceil(maxy / resolution) * resolution
    width = max(1, math.ceil((maxx - x0) / resolution - 1e-9))
    height = max(1, math.ceil((y1 - miny) / resolution - 1e-9))
    grid = AreaGrid(
        f"EPSG:{epsg}", (resolution, 0.0, float(x0), 0.0, -resolution, float(y1)), width, height
    )
    if max_size is not None and max(width, height) > max_size:
        side_km = max_size * resolution / 1000.0
        raise ValueError(
            f"area {AREA_FORMAT}={lon0:g},{lat0:g},{lon1:g},{lat1:g} is {grid.describe()} at "
            f"{resolution:g} m, more than the {max_size} px ({side_km:g} km) a side one scene "
            "may have here: give a smaller area (or split it into several)"
        )
    return grid


# --------------------------------------------------------------------------- the GeoTIFF
def _write_geotiff(
    path: Path,
    image: np.ndarray,
    mask: np.ndarray,
    grid: AreaGrid,
    tags: dict[str, str],
    offset_tag: str,
) -> Path:
    """Write the DN bands (named ``tags["S2SSL_BANDS"]``, comma-joined) + the mask band
    atomically (tiled, deflate, band-interleaved)."""
    import rasterio

    count = image.shape[0] + 1
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": "uint16",
        "crs": grid.crs,
        "transform": rasterio.Affine(*grid.transform),
        "compress": "deflate",
        "predictor": 2,
        "interleave": "band",
        "BIGTIFF": "IF_SAFER",
    }
    if grid.width >= 256 and grid.height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as ds:
        ds.write(image.astype(np.uint16, copy=False), indexes=list(range(1, count)))
        ds.write(mask.astype(np.uint16), count)
        for i, name in enumerate(tags["S2SSL_BANDS"].split(","), start=1):
            ds.set_band_description(i, name)
        ds.set_band_description(count, MASK_BAND)
        codes = ", ".join(f"{k} {v}" for k, v in MASK_NAMES.items())
        ds.update_tags(count, MASK_CODES=codes)
        ds.update_tags(**tags)
        ds.update_tags(**{offset_tag: tags["dn_offset"]})
    return path


def _base_tags(date: dt.date, baseline: str, dn_offset: int, source: str) -> dict[str, str]:
    return {
        "ACQUISITION_DATE": date.isoformat(),
        "PROCESSING_BASELINE": baseline,
        "BOA_QUANTIFICATION_VALUE": str(QUANTIFICATION_VALUE),
        "dn_offset": str(dn_offset),
        "S2SSL_SOURCE": source,
        "S2SSL_RADIOMETRY": "reflectance = (DN + dn_offset) / 10000",
    }


def _grid_json(grid: AreaGrid) -> dict[str, Any]:
    return {
        "crs": grid.crs,
        "transform": list(grid.transform),
        "width": grid.width,
        "height": grid.height,
        "bounds": list(grid.bounds),
    }


# --------------------------------------------------------------------------- sources
def _synthetic(
    params: Params,
    bbox: tuple[float, float, float, float],
    date: dt.date,
    grid: AreaGrid,
    progress: ProgressFactory,
) -> tuple[np.ndarray, np.ndarray, dict[str, str], str, dict[str, Any]]:

    cfg = params.fetch.synthetic
    region = region_containing(cfg, bbox)  # fail before rendering
    with progress(f"render {region.name} on {date}", 1) as advance:
        scene = render_area(cfg, params.seed, bbox, grid.height, grid.width, date)
        advance(1)
    tags = _base_tags(date, scene.processing_baseline, scene.dn_offset, "synthetic")
    tags["S2SSL_REGION"] = scene.region
    info = {
        "acquisition": {
            "date": date.isoformat(),
            "region": scene.region,
            "seed": params.seed,
            "world_version": WORLD_VERSION,
            "cloud_fraction": scene.cloud_fraction,
            "processing_baseline": scene.processing_baseline,
            "dn_offset": scene.dn_offset,
        },
    }
    image = select_bands(scene.image, BAND_NAMES, params.band_names, axis=0, what="the world")
    return image, scene.mask, tags, "BOA_ADD_OFFSET", info


def _sentinelhub(
    params: Params,
    date: dt.date,
    grid: AreaGrid,
    window_days: float | None,
    max_cloud_coverage: float | None,
    pick: str,
    settings: Settings | None,
    sleep: Callable[[float], None],
    progress: ProgressFactory,
) -> tuple[np.ndarray, np.ndarray, dict[str, str], str, dict[str, Any]]:

    cfg = params.fetch.sentinelhub
    if cfg is None:
        raise ValueError("fetch.source is sentinelhub but params.yaml has no fetch.sentinelhub")
    if max_cloud_coverage is not None:
        if not 0.0 <= max_cloud_coverage <= 1.0:
            raise ValueError(
                f"max cloud coverage is a fraction in [0, 1] (0.3 = 30 %), got {max_cloud_coverage}"
            )
        cfg = cfg.model_copy(update={"max_cloud_coverage": max_cloud_coverage})
    window = cfg.landcover.window_days if window_days is None else window_days
    got = acquire_area(
        cfg,
        grid.crs,
        grid.bounds,
        grid.width,
        grid.height,
        date,
        window,
        pick,
        bands=params.band_names,
        settings=settings,
        sleep=sleep,
        progress=progress,
    )
    scene = got.scene
    tags = _base_tags(scene.date, scene.processing_baseline, got.dn_offset, "sentinelhub")
    tags.update(
        PRODUCT_ID=scene.id,
        S2SSL_COLLECTION=cfg.collection,
        S2SSL_HARMONIZE_VALUES=str(cfg.harmonize_values).lower(),
    )
    info = {
        "acquisition": {
            "date": scene.date.isoformat(),
            "datetime": scene.datetime.isoformat(),
            "product_id": scene.id,
            "products": got.products,
            "cloud_cover_percent": scene.cloud_cover,
            "processing_baseline": scene.processing_baseline,
            "baseline_source": scene.baseline_source,
            "dn_offset": got.dn_offset,
            "days_from_requested": (scene.date - date).days,
        },
        "search": {
            "window_days": window,
            "start": (date - dt.timedelta(days=window)).isoformat(),
            "end": (date + dt.timedelta(days=window)).isoformat(),
            "max_cloud_coverage": cfg.max_cloud_coverage,
            "pick": pick,
            "candidates": [
                {
                    "date": s.date.isoformat(),
                    "product_id": s.id,
                    "cloud_cover_percent": s.cloud_cover,
                }
                for s in got.candidates
            ],
        },
        "collection": cfg.collection,
        "harmonize_values": cfg.harmonize_values,
        "from_cache": got.from_cache,
        "requests": got.requests,
        "processing_units_estimated": round(
            estimate_processing_units((grid.width, grid.height), len(params.band_names)), 4
        ),
    }
    offset_tag = "BOA_ADD_OFFSET" if cfg.collection == "L2A" else "RADIO_ADD_OFFSET"
    return got.data.image, got.data.mask, tags, offset_tag, info


def check_fetchable(params: Params) -> None:
    """Refuse a ``fetch.source`` that cannot acquire an area (``local``: nothing to fetch).

    Raises:
        ValueError: what to do instead.
    """
    if params.fetch.source == "local":
        raise ValueError(
            "fetch.source is local: there is nothing to fetch for an area and a date; predict "
            "your GeoTIFF directly (s2ssl predict scene.tif), or set fetch.source to synthetic or "
            "sentinelhub"
        )
    if params.fetch.source == "sentinelhub" and params.fetch.sentinelhub is None:
        raise ValueError("fetch.source is sentinelhub but params.yaml has no fetch.sentinelhub")


def acquire_scene(
    params: Params,
    bbox: Sequence[float],
    date: dt.date,
    out_dir: str | Path,
    *,
    name: str = "scene",
    window_days: float | None = None,
    max_cloud_coverage: float | None = None,
    pick: str = "least_cloudy",
    max_size: int | None = None,
    settings: Settings | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: ProgressFactory = no_progress,
) -> Path:
    """Acquire one scene over ``bbox`` (lon/lat, WGS84) on or near ``date`` from
    ``params.fetch.source`` and write ``<out_dir>/<name>.tif`` + ``<name>.json`` (see the module
    docstring); returns the GeoTIFF's path.

    Args:
        params: validated params (``fetch.source`` and its section, ``seed``).
        bbox: ``(lon_min, lat_min, lon_max, lat_max)``.
        date: the requested date (Sentinel Hub: the centre of the search window).
        out_dir: output folder (created); existing files of the same name are replaced.
        name: file stem of the GeoTIFF and the JSON.
        window_days: Sentinel Hub search window ± days (None:
            ``fetch.sentinelhub.landcover.window_days``).
        max_cloud_coverage: Sentinel Hub scene cloud filter, a fraction (None:
            ``fetch.sentinelhub.max_cloud_coverage``).
        pick: ``least_cloudy`` (default) or ``closest`` acquisition day of the window.
        max_size: largest width / height in pixels (None: 2500 for Sentinel Hub, the Process API
            limit; :data:`MAX_SYNTHETIC_PX` for the synthetic world); never above those.
        settings: credentials and endpoints (None: from the environment / ``.env``).
        sleep: the retry policy's sleep (tests pass a no-op).
        progress: progress factory (``s2ssl.progress.progress_bar`` in a CLI).

    Raises:
        ValueError: an invalid box, an area too large, ``fetch.source: local``, an area outside
            every synthetic region (the regions' boxes are listed), missing or rejected
            credentials (before / at the first request), no acceptable acquisition in the window,
            a failed download.
    """

    check_fetchable(params)
    source = params.fetch.source
    box = parse_area(",".join(repr(float(v)) for v in bbox))
    limit = MAX_PROCESS_PX if source == "sentinelhub" else MAX_SYNTHETIC_PX
    grid = area_grid(box, max_size=limit if max_size is None else min(max_size, limit))
    if source == "sentinelhub":
        image, mask, tags, offset_tag, info = _sentinelhub(
            params, date, grid, window_days, max_cloud_coverage, pick, settings, sleep, progress
        )
    else:
        image, mask, tags, offset_tag, info = _synthetic(params, box, date, grid, progress)
    tags["S2SSL_BANDS"] = ",".join(params.band_names)
    mask = np.asarray(mask)
    image = np.asarray(image).copy()
    image[:, mask == MASK_NODATA] = 0  # DN 0 in every band: Sentinel-2's no data
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = _write_geotiff(out / f"{name}.tif", image, mask, grid, tags, offset_tag)
    record = {
        "source": source,
        "area": {"bbox": list(box), "format": AREA_FORMAT},
        "requested_date": date.isoformat(),
        "geotiff": path.name,
        "grid": _grid_json(grid),
        "bands": [*params.band_names, MASK_BAND],
        "mask_codes": {str(k): v for k, v in MASK_NAMES.items()},
        "radiometry": "reflectance = (DN + dn_offset) / 10000; DN 0 = no data",
        "nodata_fraction": round(float((mask == MASK_NODATA).mean()), 6),
        **info,
    }
    write_json_atomic(path.with_suffix(".json"), record)
    return path


def read_acquisition(path: str | Path) -> dict[str, Any]:
    """The JSON record written beside an acquired GeoTIFF."""
    return dict(json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8")))
