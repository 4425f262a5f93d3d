"""Bring your own imagery (``fetch.source: local``): GeoTIFFs into the same store as the other
sources.

Two layouts, told apart automatically (or forced with ``layout``):

* **multiband** — every ``*.tif`` under ``path`` is one image holding all bands (``band_order``
  names them in file order; by default 13 bands in Sentinel-2 order, or 12 without B10 as in
  Level-2A products);
* **band_files** — one GeoTIFF per band (``<name>_B01.tif`` … ``<name>_B12.tif``, ``_B8A``, and
  optionally ``_SCL`` for the scene classification), one folder per image: the BigEarthNet
  layout. 20 m and 60 m bands are resampled onto the 10 m grid of the 10 m bands.

Every image is put on a 10 m grid in its own (projected) CRS and cut into ``patch_size`` tiles
(centred, the remainder dropped). Integer files are DN; float files are reflectance (converted to
DN with the processing-baseline offset). The acquisition date is read from the name
(``YYYYMMDD``) or the TIFF tags; the processing baseline from an ESA product id (``_N0400_``) or
the date. Optional label rasters lie beside the image as ``<image name><suffix>.tif`` and are
resampled with nearest neighbour. With ``n_dates > 1`` every sub-folder of ``path`` is one
sample whose dated images are stacked on the grid of the first.

A bad file (unreadable, wrong band count, no CRS, no date, too small, missing bands or labels) is
reported by name with the reason and skipped; it never stops the import.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from s2ssl.bands import (
    BAND_NAMES,
    L2A_BAND_NAMES,
    MASK_CLEAR,
    MASK_NODATA,
    N_BANDS,
    band_index,
    dn_offset_for_baseline,
    processing_baseline_for,
    reflectance_to_dn,
)
from s2ssl.classes import CROP_CLASSES, LANDCOVER_CLASSES
from s2ssl.config import LocalDatasetSpec, Params
from s2ssl.data.sources import base
from s2ssl.data.sources.base import Chunk, DatasetName, Skip, Source
from s2ssl.progress import ProgressFactory

_BAND_RE: Final = re.compile(r"(?:^|[_\-.])(B0[1-9]|B1[0-2]|B8A)$", re.IGNORECASE)
_SCL_RE: Final = re.compile(r"(?:^|[_\-.])SCL$", re.IGNORECASE)
_DATE_RE: Final = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)")
_BASELINE_RE: Final = re.compile(r"_N(\d{2})(\d{2})_")
_TIF: Final[tuple[str, ...]] = (".tif", ".tiff")
_CHUNK: Final[int] = 32
_RESOLUTION: Final[float] = 10.0


class ImportProblemError(ValueError):
    """Why one image or sample cannot be imported; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class ImageUnit:
    """One dated image: a multi-band file or a folder of band files."""

    name: str
    path: Path
    """The file (multiband) or the folder (band files)."""
    kind: str
    band_files: dict[str, Path] = field(default_factory=dict)
    scl: Path | None = None

    @property
    def label_dir(self) -> Path:
        """Where this image's label rasters lie."""
        return self.path if self.kind == "band_files" else self.path.parent


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

    dn: np.ndarray  # [13, H, W] uint16
    mask: np.ndarray  # [H, W] uint8
    date: dt.date
    baseline: str
    offset: int


# --------------------------------------------------------------------------- discovery
def band_of(path: Path) -> str | None:
    """The band a single-band file holds, from its name (``..._B8A.tif`` -> ``B8A``)."""
    m = _BAND_RE.search(path.stem)
    return m.group(1).upper() if m else None


def discover(root: Path, spec: LocalDatasetSpec) -> list[ImageUnit]:
    """Every image under ``root`` (recursively), in path order."""
    suffixes = tuple(spec.labels.values())
    units: list[ImageUnit] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        folder = Path(dirpath)
        tifs = sorted(folder / f for f in filenames if f.lower().endswith(_TIF))
        tifs = [t for t in tifs if not (suffixes and t.stem.endswith(suffixes))]
        bands = {b: t for t in tifs if (b := band_of(t)) is not None}
        scl = next((t for t in tifs if _SCL_RE.search(t.stem)), None)
        if bands and spec.layout in ("auto", "band_files"):
            units.append(ImageUnit(folder.name, folder, "band_files", bands, scl))
        if spec.layout in ("auto", "multiband"):
            for t in tifs:
                if t not in bands.values() and t != scl:
                    units.append(ImageUnit(t.stem, t, "multiband"))
    return units


def acquisition_date(unit: ImageUnit) -> dt.date:
    """From the name (``YYYYMMDD``), else from the TIFF date tags."""
    for text in (unit.name, unit.path.name):
        for m in _DATE_RE.finditer(text):
            try:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
    import rasterio
    from rasterio.errors import RasterioError

    probe = unit.path if unit.kind == "multiband" else next(iter(unit.band_files.values()))
    try:
        with rasterio.open(probe) as src:
            tags = src.tags()
    except (RasterioError, OSError) as e:
        raise ImportProblemError("unreadable", f"{probe}: {e}") from None
    for key in ("ACQUISITION_DATE", "DATE", "TIFFTAG_DATETIME", "datetime"):
        value = tags.get(key)
        if value:
            m = _DATE_RE.search(value.replace("-", "").replace(":", ""))
            if m:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    raise ImportProblemError(
        "no acquisition date",
        f"{unit.path}: put YYYYMMDD in the name or an ACQUISITION_DATE tag in the file",
    )


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


class _Reader:
    """Reads :class:`ImageUnit` s onto 10 m grids, naming every problem."""

    def __init__(self, spec: LocalDatasetSpec) -> None:
        self.spec = spec

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
            order = self.spec.band_order
            if order is None:
                order = {N_BANDS: list(BAND_NAMES), N_BANDS - 1: list(L2A_BAND_NAMES)}.get(
                    src.count, []
                )
            if src.count != len(order) or not order:
                expected = len(order) if order else f"{N_BANDS} or {N_BANDS - 1}"
                raise ImportProblemError(
                    "wrong band count",
                    f"{unit.path} has {src.count} band(s), expected {expected} "
                    "(set band_order to name the file's bands)",
                )
            grid = grid or _grid_of(src, unit.path)
            is_float = src.dtypes[0].startswith("float")
            dn = np.zeros((N_BANDS, grid.height, grid.width), np.uint16)
            for i, name in enumerate(order, start=1):
                dn[band_index(name)] = _to_dn(
                    _read_on(src, i, grid, self.spec.resampling), is_float, offset
                )
            nodata = (dn == 0).all(axis=0)
        return self._finish(dn, None, nodata, set(order), date, baseline, offset), grid

    def _band_files(
        self, unit: ImageUnit, grid: Grid | None, date: dt.date, baseline: str, offset: int
    ) -> tuple[Image, Grid]:
        import rasterio

        needed = list(L2A_BAND_NAMES)
        missing = [b for b in needed if b not in unit.band_files]
        if missing:
            raise ImportProblemError(
                "missing bands", f"{unit.path} lacks {', '.join(missing)} (one file per band)"
            )
        if grid is None:
            ref = next(b for b in ("B02", "B03", "B04", "B08") if b in unit.band_files)
            with rasterio.open(unit.band_files[ref]) as src:
                grid = _grid_of(src, unit.band_files[ref])
        dn = np.zeros((N_BANDS, grid.height, grid.width), np.uint16)
        nodata = np.ones((grid.height, grid.width), bool)
        for name, path in unit.band_files.items():
            with rasterio.open(path) as src:
                if src.count != 1:
                    raise ImportProblemError(
                        "wrong band count", f"{path} has {src.count} bands, expected 1"
                    )
                if src.crs is None:
                    raise ImportProblemError("no CRS", f"{path} has no coordinate reference system")
                is_float = src.dtypes[0].startswith("float")
                band = _to_dn(_read_on(src, 1, grid, self.spec.resampling), is_float, offset)
            dn[band_index(name)] = band
            nodata &= band == 0
        scl = None
        if unit.scl is not None:
            with rasterio.open(unit.scl) as src:
                scl = _read_on(src, 1, grid, "nearest")
        return self._finish(dn, scl, nodata, set(unit.band_files), date, baseline, offset), grid

    @staticmethod
    def _finish(
        dn: np.ndarray,
        scl: np.ndarray | None,
        nodata: np.ndarray,
        present: set[str],
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
        for name in BAND_NAMES:
            if name not in present:  # e.g. B10 of Level-2A: reflectance 0
                dn[band_index(name), valid] = max(-offset, 1)
        dn[:, ~valid] = 0
        return Image(dn=dn, mask=mask, date=date, baseline=baseline, offset=offset)


# --------------------------------------------------------------------------- the source
@dataclass
class _Sample:
    """A sample to import: its name, images (oldest first once read) and label folder."""

    name: str
    units: list[ImageUnit]
    label_dir: Path
    label_name: str


class LocalImagery(Source):
    """``fetch.source: local`` (see the module docstring)."""

    kind = "local"

    def __init__(self, params: Params) -> None:
        super().__init__()
        if params.fetch.local is None:
            raise ValueError("fetch.source is local but params.yaml has no fetch.local section")
        self.params = params
        self.local = params.fetch.local

    def _spec(self, dataset: DatasetName) -> LocalDatasetSpec:
        spec = getattr(self.local, dataset)
        if spec is None:
            raise ValueError(f"fetch.local has no {dataset} section (path, layout, patch_size)")
        return spec

    def _labels(self, dataset: DatasetName) -> list[str]:
        spec = self._spec(dataset)
        if dataset == "croptype" and "croptype" in spec.labels:
            return ["croptype", "parcel"]
        if dataset != "unlabelled" and "landcover" in spec.labels:
            return ["landcover"]
        return []

    def array_shapes(self, dataset: DatasetName) -> dict[str, tuple[tuple[int, ...], str]]:
        """image / mask (+ the configured label maps)."""
        spec = self._spec(dataset)
        return base.array_shapes(spec.n_dates, spec.patch_size, self._labels(dataset))

    def dataset_attrs(self, dataset: DatasetName) -> dict[str, object]:
        """Synthetic-compatible attrs plus where the files came from."""
        spec = self._spec(dataset)
        return base.dataset_attrs(
            "local",
            self.params.seed,
            [spec.region],
            self._labels(dataset),
            filled_bands=(),
            import_path=str(spec.path),
            layout=spec.layout,
            resampling=spec.resampling,
            filled_bands_rule="bands absent from a file (e.g. B10 of Level-2A) hold reflectance 0",
        )

    def _samples(self, dataset: DatasetName) -> list[_Sample]:
        spec = self._spec(dataset)
        root = Path(spec.path)
        if not root.is_dir():
            raise ValueError(
                f"fetch.local.{dataset}.path {root} is not a directory (give the folder that "
                "holds your GeoTIFFs)"
            )
        if spec.n_dates == 1:
            return [_Sample(u.name, [u], u.label_dir, u.name) for u in discover(root, spec)]
        return [
            _Sample(d.name, discover(d, spec), d, d.name)
            for d in sorted(p for p in root.iterdir() if p.is_dir())
        ]

    def chunks(self, dataset: DatasetName, progress: ProgressFactory) -> Iterator[Chunk]:
        """Import every sample, tile by tile; bad files are skipped with their reason."""
        spec = self._spec(dataset)
        samples = self._samples(dataset)
        reader = _Reader(spec)
        arrays: dict[str, list[np.ndarray]] = {}
        rows: list[dict[str, object]] = []
        n_tiles = 0
        with progress(f"import {dataset}", len(samples)) as advance:
            for sample in samples:
                try:
                    tiles = self._read_sample(dataset, spec, reader, sample)
                except ImportProblemError as e:
                    self.skipped.append(
                        Skip(dataset, str(sample.label_dir / sample.name), e.reason, e.detail)
                    )
                    advance(1)
                    continue
                for tile_arrays, row in tiles:
                    for k, v in tile_arrays.items():
                        arrays.setdefault(k, []).append(v)
                    rows.append(row)
                    n_tiles += 1
                    if len(rows) == _CHUNK:
                        yield Chunk({k: np.stack(v) for k, v in arrays.items()}, pd.DataFrame(rows))
                        arrays, rows = {}, []
                advance(1)
        if rows:
            yield Chunk({k: np.stack(v) for k, v in arrays.items()}, pd.DataFrame(rows))
        self.report[dataset] = {
            "images_found": len(samples),
            "samples_written": n_tiles,
            "skipped_by_reason": self.skipped_by_reason(dataset),
        }
        if n_tiles == 0:
            raise ValueError(
                f"fetch.local.{dataset}: nothing imported from {spec.path} "
                f"({len(samples)} image(s) found; skipped: {self.skipped_by_reason(dataset)})"
            )

    def _read_sample(
        self, dataset: DatasetName, spec: LocalDatasetSpec, reader: _Reader, sample: _Sample
    ) -> list[tuple[dict[str, np.ndarray], dict[str, object]]]:
        """All tiles of one sample (raises :class:`ImportProblemError`)."""
        fetch = self.params.fetch
        units = sample.units
        if len(units) < spec.n_dates:
            raise ImportProblemError(
                "too few dates", f"{len(units)} image(s) in {sample.label_dir}, need {spec.n_dates}"
            )
        first, grid = reader.read(units[0])
        images = [first]
        for unit in units[1:]:
            images.append(reader.read(unit, grid)[0])
        images.sort(key=lambda im: im.date)
        if spec.n_dates > 1:
            pick = np.round(np.linspace(0, len(images) - 1, spec.n_dates)).astype(int)
            images = [images[int(i)] for i in pick]
            dates = [im.date for im in images]
            if len(set(dates)) != len(dates):
                raise ImportProblemError("duplicate dates", f"{sample.label_dir}: {dates}")
        outside = [im.date for im in images if not fetch.start_date <= im.date <= fetch.end_date]
        if outside:
            raise ImportProblemError(
                "date outside start_date..end_date",
                f"{sample.name}: {', '.join(map(str, outside))} not in "
                f"{fetch.start_date}..{fetch.end_date} (widen fetch.start_date / end_date)",
            )
        ps = spec.patch_size
        ny, nx = grid.height // ps, grid.width // ps
        if ny == 0 or nx == 0:
            raise ImportProblemError(
                "smaller than patch_size",
                f"{sample.name} is {grid.height}x{grid.width} px at 10 m, patch_size is {ps}",
            )
        labels = self._label_rasters(dataset, spec, sample, grid)
        y0, x0 = (grid.height - ny * ps) // 2, (grid.width - nx * ps) // 2
        dn = np.stack([im.dn for im in images])
        mask = np.stack([im.mask for im in images])
        out = []
        for ty in range(ny):
            for tx in range(nx):
                ys, xs = (
                    slice(y0 + ty * ps, y0 + (ty + 1) * ps),
                    slice(x0 + tx * ps, x0 + (tx + 1) * ps),
                )
                a, _, c, _, e, f = grid.transform
                transform = (a, 0.0, c + (x0 + tx * ps) * a, 0.0, e, f + (y0 + ty * ps) * e)
                tile = {"image": dn[:, :, ys, xs], "mask": mask[:, ys, xs]}
                tile.update({name: arr[ys, xs] for name, arr in labels.items()})
                if "parcel" in tile and "parcel" not in spec.labels:
                    tile["parcel"] = base.parcels_from_crops(tile["croptype"])
                row = self._row(dataset, spec, sample, images, grid.crs, transform, tile, ty, tx)
                out.append((tile, row))
        return out

    def _label_rasters(
        self, dataset: DatasetName, spec: LocalDatasetSpec, sample: _Sample, grid: Grid
    ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name in self._labels(dataset):
            if name == "parcel" and "parcel" not in spec.labels:
                out["parcel"] = np.zeros((grid.height, grid.width), np.int32)
                continue
            path = sample.label_dir / f"{sample.label_name}{spec.labels[name]}.tif"
            if not path.is_file():
                raise ImportProblemError("missing label raster", f"{path} not found")
            shape = (grid.height, grid.width)
            try:
                if name == "parcel":
                    values = base.resample_raster(path, grid.crs, grid.transform, shape, "nearest")
                    out[name] = values.astype(np.int32)
                else:
                    classes = LANDCOVER_CLASSES if name == "landcover" else CROP_CLASSES
                    out[name] = base.label_map(
                        path, grid.crs, grid.transform, shape, spec.label_classes.get(name), classes
                    )
            except ValueError as e:
                raise ImportProblemError("bad label raster", f"{path}: {e}") from None
        return out

    def _row(
        self,
        dataset: DatasetName,
        spec: LocalDatasetSpec,
        sample: _Sample,
        images: Sequence[Image],
        crs: str,
        transform: tuple[float, ...],
        tile: dict[str, np.ndarray],
        ty: int,
        tx: int,
    ) -> dict[str, object]:
        from pyproj import Transformer

        size = spec.patch_size
        cx = transform[2] + transform[0] * size / 2
        cy = transform[5] + transform[4] * size / 2
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cx, cy)
        sample_id = f"{dataset}-{spec.region}-{sample.name}-{ty:02d}{tx:02d}"
        u = np.random.default_rng([self.params.seed, zlib.crc32(sample_id.encode())]).random()
        split = (
            "train"
            if dataset == "unlabelled"
            else base.split_of(u, spec.splits.train, spec.splits.val)
        )
        return {
            "sample_id": sample_id,
            "dataset": dataset,
            "region": spec.region,
            "hemisphere": "north" if lat >= 0 else "south",
            "location": ty * 1000 + tx,
            "lon": float(lon),
            "lat": float(lat),
            "crs": crs,
            "transform": list(transform),
            "dates": [im.date.isoformat() for im in images],
            "doy": [im.date.timetuple().tm_yday for im in images],
            "processing_baseline": [im.baseline for im in images],
            "dn_offset": [im.offset for im in images],
            "harmonize_values": spec.harmonized,
            "split": split,
            "source": "local",
            "cloud_fraction": base.cloud_fractions(tile["mask"]),
            "source_file": str(sample.label_dir / sample.name)
            if spec.n_dates > 1
            else str(sample.units[0].path),
        }
