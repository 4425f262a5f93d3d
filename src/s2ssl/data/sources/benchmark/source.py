"""``fetch.source: benchmark``: EuroSAT MS, BigEarthNet v2 / v1 or PASTIS imported into the store.

Each benchmark becomes one store dataset with the arrays, index columns and attrs every other
source writes, so ``validate``, fine-tuning and evaluation take it unchanged:

* **EuroSAT** -> ``scene``: ``image [1, B, 64, 64]``, ``mask``, ``scene`` (the class, one per
  patch); its split lists, else a seeded split stratified by class.
* **BigEarthNet v2** -> ``scene``: ``image [1, B, 120, 120]``, ``mask``, ``multilabel``
  (multi-hot over its 19 classes); its ``split`` column; region = country.
* **BigEarthNet v1** -> the same, its 43-class labels mapped to the 19; the splits of its
  published patch lists (``fetch.benchmark.split_dir``); one region (v1 names no country).
* **PASTIS** -> ``croptype``: ``image [T_max, B, 128, 128]`` padded to the longest series,
  ``mask``, ``croptype`` (background + 18 crops, void as no label), ``parcel``; index column
  ``n_dates`` (the real dates are the first ``n_dates``; padded dates have doy 0, mask 255 and
  zero DN); the official folds as splits (``fetch.benchmark.folds``); region = S2 tile.

The dataset holds the bands of ``bands`` (top-level param), selected by name from what the
benchmark publishes; a band it lacks is an error naming it (PASTIS has no B01, B09, B10).
Benchmarks publish no cloud mask: ``mask`` marks pixels whose bands are all 0 DN as no data and
the rest clear. DN are used as published (reflectance = DN / 10000, ``dn_offset`` 0). A sample
the download lacks (missing or empty files) is skipped and listed in ``acquisition.json``; the
complete ones are imported.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.bands import MASK_CLEAR, MASK_NODATA, missing_bands, select_bands
from s2ssl.classes import ClassSet
from s2ssl.config import BenchmarkSource, Params
from s2ssl.data.sources import base
from s2ssl.data.sources.base import Skip, Source
from s2ssl.data.sources.benchmark.bigearthnet import (
    BIGEARTHNET_BANDS,
    BIGEARTHNET_CLASSES,
    BigEarthNetPatch,
    list_bigearthnet,
    multi_hot,
    read_bigearthnet,
)
from s2ssl.data.sources.benchmark.bigearthnet_v1 import (
    list_bigearthnet_v1,
    split_bigearthnet_v1,
)
from s2ssl.data.sources.benchmark.common import Incomplete, Inventory
from s2ssl.data.sources.benchmark.eurosat import (
    EUROSAT_CLASSES,
    EUROSAT_FILE_BANDS,
    EuroSATSample,
    list_eurosat,
    read_eurosat,
)
from s2ssl.data.sources.benchmark.pastis import (
    PASTIS_CLASSES,
    PASTIS_FILE_BANDS,
    PastisPatch,
    list_pastis,
    pastis_dir,
    read_pastis,
)
from s2ssl.data.sources.types import Chunk, DatasetName
from s2ssl.progress import ProgressFactory

__all__ = ["BenchmarkImagery", "published_bands"]

_CHUNK: Final[int] = 64
_SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
PASTIS_CRS: Final[str] = "EPSG:2154"
"""PASTIS patch geometries are in Lambert-93 (used when ``metadata.geojson`` names no CRS)."""
_BEN_DATE: Final = re.compile(r"_(\d{8})T\d+_")
_BIGEARTHNET: Final[tuple[str, ...]] = ("bigearthnet", "bigearthnet_v1")


def published_bands(fmt: str) -> tuple[str, ...]:
    """The bands a benchmark publishes (Sentinel-2 names)."""
    if fmt == "eurosat":
        return EUROSAT_FILE_BANDS
    if fmt in _BIGEARTHNET:
        return BIGEARTHNET_BANDS
    return PASTIS_FILE_BANDS


def _clear_mask(image: np.ndarray) -> np.ndarray:
    """``[T, H, W]`` uint8: no data where every band is 0 DN, clear elsewhere."""
    empty = (image == 0).all(axis=1)
    return np.where(empty, MASK_NODATA, MASK_CLEAR).astype(np.uint8)


def _centre_lonlat(crs: str, transform: Sequence[float], size: int) -> tuple[float, float]:
    from pyproj import Transformer

    cx = transform[2] + transform[0] * size / 2
    cy = transform[5] + transform[4] * size / 2
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cx, cy)
    return float(lon), float(lat)


def _georef(path: Path) -> tuple[str, list[float]]:
    """CRS (WKT or EPSG string) and affine transform of a GeoTIFF; ``ValueError`` naming it when
    it has no georeference."""
    import rasterio

    with rasterio.open(path) as src:
        if src.crs is None:
            raise ValueError(f"{path}: the GeoTIFF has no CRS; expected a georeferenced patch")
        epsg = src.crs.to_epsg()
        crs = f"EPSG:{epsg}" if epsg is not None else src.crs.to_wkt()
        return crs, list(src.transform)[:6]


def _region_name(text: str) -> str:
    """A region name usable in params (lower case, ``[a-z0-9_]``)."""
    name = re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
    return name if name and name[0].isalpha() else f"r_{name}"


class BenchmarkImagery(Source):
    """The benchmark of ``fetch.benchmark`` as a :class:`~s2ssl.data.sources.base.Source`."""

    kind = "benchmark"

    def __init__(self, params: Params) -> None:
        super().__init__()
        cfg = params.fetch.benchmark
        if cfg is None:
            raise ValueError("fetch.source: benchmark needs a fetch.benchmark section")
        self.params = params
        self.cfg: BenchmarkSource = cfg
        self.bands = params.band_names
        lacking = missing_bands(published_bands(cfg.format), self.bands)
        if lacking:
            raise ValueError(
                f"{cfg.format} publishes no band {', '.join(lacking)} that `bands` "
                f"({', '.join(self.bands)}) asks for: set `bands` to a subset of "
                f"{', '.join(published_bands(cfg.format))}"
                + (" (bands: pastis)" if cfg.format == "pastis" else "")
            )
        root = Path(cfg.path)
        if not root.is_dir():
            raise ValueError(
                f"fetch.benchmark.path {root} is not a directory; unpack the {cfg.format} "
                "download there (see docs/benchmarks.md)"
            )
        self._inventory: Inventory[Any] | None = None

    # ---------------------------------------------------------------- inventory
    def inventory(self) -> Inventory[Any]:
        """The complete samples of the download (split-limited) and what it lacks."""
        if self._inventory is None:
            cfg = self.cfg
            inv: Inventory[Any]
            if cfg.format == "eurosat":
                inv = list_eurosat(
                    cfg.path,
                    split_dir=cfg.split_dir,
                    seed=self.params.seed,
                    fractions=cfg.splits.model_dump(),
                )
            elif cfg.format == "bigearthnet":
                inv = list_bigearthnet(cfg.path, exclude_snow_cloud=cfg.exclude_snow_cloud)
            elif cfg.format == "bigearthnet_v1":
                inv = split_bigearthnet_v1(
                    list_bigearthnet_v1(cfg.path),
                    cfg.split_dir or cfg.path,
                    exclude_snow_cloud=cfg.exclude_snow_cloud,
                    root=cfg.path,
                )
            else:
                inv = list_pastis(cfg.path)
                split_of = {f: s for s, folds in cfg.folds.items() for f in folds}
                inv = Inventory(tuple(p for p in inv.samples if p.fold in split_of), inv.incomplete)
            self._inventory = Inventory(self._limit(inv.samples), inv.incomplete)
        return self._inventory

    def _split(self, sample: Any) -> str:
        if isinstance(sample, PastisPatch):
            return next(s for s, folds in self.cfg.folds.items() if sample.fold in folds)
        return str(sample.split)

    def _limit(self, samples: Sequence[Any]) -> tuple[Any, ...]:
        cap = self.cfg.max_per_split
        if cap is None:
            return tuple(samples)
        taken: dict[str, int] = {}
        out = []
        for s in samples:
            split = self._split(s)
            if taken.get(split, 0) < cap:
                taken[split] = taken.get(split, 0) + 1
                out.append(s)
        return tuple(out)

    # ---------------------------------------------------------------- schema
    def _check(self, dataset: DatasetName) -> None:
        wanted = "croptype" if self.cfg.format == "pastis" else "scene"
        if dataset != wanted:
            raise ValueError(
                f"fetch.benchmark.format {self.cfg.format} imports the {wanted} dataset, "
                f"not {dataset}: set fetch.datasets: [{wanted}]"
            )

    def _n_dates(self) -> int:
        if self.cfg.format != "pastis":
            return 1
        samples = self.inventory().samples
        if not samples:
            return 1
        return max(len(p.dates) for p in samples)

    def _labels(self) -> dict[str, tuple[tuple[int, ...], str]]:
        fmt = self.cfg.format
        if fmt == "eurosat":
            return {"scene": ((), "uint8")}
        if fmt in _BIGEARTHNET:
            return {"multilabel": ((len(BIGEARTHNET_CLASSES),), "uint8")}
        return {"croptype": ((128, 128), "uint8"), "parcel": ((128, 128), "int32")}

    def _size(self) -> int:
        return {"eurosat": 64, "bigearthnet": 120, "bigearthnet_v1": 120, "pastis": 128}[
            self.cfg.format
        ]

    def class_sets(self) -> dict[str, ClassSet]:
        """The benchmark's classes per label array."""
        fmt = self.cfg.format
        if fmt == "eurosat":
            return {"scene": EUROSAT_CLASSES}
        if fmt in _BIGEARTHNET:
            return {"multilabel": BIGEARTHNET_CLASSES}
        return {"croptype": PASTIS_CLASSES}

    def array_shapes(self, dataset: DatasetName) -> dict[str, tuple[tuple[int, ...], str]]:
        """image / mask of the benchmark's size (PASTIS: padded to its longest series) + labels."""
        self._check(dataset)
        size, t = self._size(), self._n_dates()
        shapes: dict[str, tuple[tuple[int, ...], str]] = {
            "image": ((t, len(self.bands), size, size), "uint16"),
            "mask": ((t, size, size), "uint8"),
        }
        shapes.update(self._labels())
        return shapes

    def dataset_attrs(self, dataset: DatasetName) -> dict[str, object]:
        """Attrs like every source's, plus the benchmark and where it was read from."""
        self._check(dataset)
        labels = list(self._labels())
        regions = sorted({r for r in (self._region(s) for s in self.inventory().samples)})
        attrs = base.dataset_attrs(
            "benchmark",
            self.params.seed,
            regions,
            labels,
            self.bands,
            self.class_sets(),
            benchmark=self.cfg.format,
            import_path=str(self.cfg.path),
            radiometric_level="L1C" if self.cfg.format == "eurosat" else "L2A",
        )
        attrs["dated"] = self.cfg.format != "eurosat"
        return attrs

    # ---------------------------------------------------------------- reading
    def _region(self, sample: Any) -> str:
        if isinstance(sample, EuroSATSample):
            return "eurosat"
        if isinstance(sample, BigEarthNetPatch):
            return _region_name(sample.country or "bigearthnet")
        return _region_name(sample.tile or "pastis")

    def chunks(self, dataset: DatasetName, progress: ProgressFactory) -> Iterator[Chunk]:
        """Read every complete sample; incomplete ones and unreadable files are skipped."""
        self._check(dataset)
        inv = self.inventory()
        for inc in inv.incomplete:
            if inc.absent:
                self.not_downloaded.setdefault(dataset, []).append(inc.sample_id)
            else:
                self._skip_incomplete(dataset, inc)
        t = self._n_dates()
        geometry = (
            _pastis_geometry(pastis_dir(self.cfg.path)) if self.cfg.format == "pastis" else {}
        )
        buffer = base.ChunkBuffer(_CHUNK)
        written = 0
        with progress(f"import {self.cfg.format}", len(inv.samples)) as advance:
            for sample in inv.samples:
                try:
                    sample_arrays, row = self._read(dataset, sample, t, geometry)
                except ValueError as e:
                    self.skipped.append(Skip(dataset, self._item(sample), "unreadable", str(e)))
                    advance(1)
                    continue
                written += 1
                if (chunk := buffer.add(sample_arrays, row)) is not None:
                    yield chunk
                advance(1)
        if (chunk := buffer.flush()) is not None:
            yield chunk
        self.report[dataset] = {
            "benchmark": self.cfg.format,
            "samples_found": len(inv.samples),
            "samples_written": written,
            "incomplete": len(inv.incomplete),
            "not_downloaded": len(self.not_downloaded.get(dataset, [])),
            "bands": list(self.bands),
            "n_dates": t,
        }
        if written == 0:
            raise ValueError(
                f"fetch.benchmark: nothing imported from {self.cfg.path} ({len(inv.samples)} "
                f"complete sample(s); skipped: {self.skipped_by_reason(dataset)})"
            )

    def _skip_incomplete(self, dataset: str, inc: Incomplete) -> None:
        self.skipped.append(
            Skip(
                dataset, inc.sample_id, "incomplete download", "missing: " + ", ".join(inc.missing)
            )
        )

    @staticmethod
    def _item(sample: Any) -> str:
        if isinstance(sample, PastisPatch):
            return str(sample.image_path)
        return str(sample.path)

    def _read(
        self,
        dataset: DatasetName,
        sample: Any,
        t: int,
        geometry: dict[int, tuple[str, list[float]]],
    ) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        if isinstance(sample, EuroSATSample):
            dn, names = read_eurosat(sample.path)
            crs, transform = _georef(sample.path)
            image = select_bands(dn, names, self.bands, axis=0, what=str(sample.path))[None]
            arrays = {"scene": np.asarray(sample.label, np.uint8)}
            dates: list[str | None] = []
            doy = [0]
            n_dates = 1
            sample_id = f"eurosat-{sample.sample_id}"
        elif isinstance(sample, BigEarthNetPatch):
            dn, names = read_bigearthnet(sample)
            crs, transform = _georef(sample.band_path("B02"))
            image = select_bands(dn, names, self.bands, axis=0, what=str(sample.path))[None]
            arrays = {"multilabel": multi_hot(sample.labels)}
            m = _BEN_DATE.search(sample.patch_id)
            day = dt.datetime.strptime(m.group(1), "%Y%m%d").date() if m else None
            dates = [day.isoformat()] if day else []
            doy = [day.timetuple().tm_yday if day else 0]
            n_dates = 1
            sample_id = f"bigearthnet-{sample.patch_id}"
        else:
            read = read_pastis(sample)
            if sample.patch_id not in geometry:
                raise ValueError(
                    f"{self.cfg.path}/metadata.geojson: patch {sample.patch_id} has no polygon "
                    "geometry to georeference it"
                )
            crs, transform = geometry[sample.patch_id]
            series = select_bands(
                read.image, read.bands, self.bands, axis=1, what=str(sample.image_path)
            )
            n_dates = series.shape[0]
            image = np.zeros((t, *series.shape[1:]), np.uint16)
            image[:n_dates] = series
            arrays = {"croptype": read.label, "parcel": read.parcels.astype(np.int32)}
            dates = [d.isoformat() for d in read.dates]
            doy = [int(x) for x in read.doy] + [0] * (t - n_dates)
            sample_id = f"pastis-{sample.patch_id}"
        size = self._size()
        if image.shape[-2:] != (size, size):
            raise ValueError(
                f"{self._item(sample)}: {image.shape[-2]} x {image.shape[-1]} pixels; expected "
                f"{self.cfg.format} patches of {size} x {size}"
            )
        mask = _clear_mask(image)
        mask[n_dates:] = MASK_NODATA
        lon, lat = _centre_lonlat(crs, transform, size)
        split = self._split(sample)
        row: dict[str, object] = {
            "sample_id": sample_id,
            "dataset": dataset,
            "region": self._region(sample),
            "hemisphere": "north" if lat >= 0 else "south",
            "location": 0,
            "lon": lon,
            "lat": lat,
            "crs": crs,
            "transform": [float(v) for v in transform],
            "dates": dates,
            "doy": doy,
            "processing_baseline": ["published"] * image.shape[0],
            "dn_offset": [0] * image.shape[0],
            "harmonize_values": True,
            "split": split,
            "source": f"benchmark:{self.cfg.format}",
            "cloud_fraction": [0.0] * image.shape[0],
            "n_dates": n_dates,
            "source_file": self._item(sample),
        }
        return {"image": image, "mask": mask, **arrays}, row


def _pastis_geometry(root: Path) -> dict[int, tuple[str, list[float]]]:
    """``ID_PATCH`` -> (CRS, transform of a 10 m grid whose top-left is the polygon's)."""
    doc = json.loads((root / "metadata.geojson").read_text())
    crs = PASTIS_CRS
    named = (doc.get("crs") or {}).get("properties", {}).get("name")
    if isinstance(named, str):
        m = re.search(r"EPSG:{1,2}(\d+)", named)
        if m:
            crs = f"EPSG:{m.group(1)}"
    out: dict[int, tuple[str, list[float]]] = {}
    for feature in doc.get("features", []):
        props = feature.get("properties") or {}
        geom = feature.get("geometry") or {}
        coords = geom.get("coordinates")
        if "ID_PATCH" not in props or not coords:
            continue
        flat = np.asarray(_flatten(coords), dtype=float).reshape(-1, 2)
        x0, y1 = float(flat[:, 0].min()), float(flat[:, 1].max())
        out[int(props["ID_PATCH"])] = (crs, [10.0, 0.0, x0, 0.0, -10.0, y1])
    return out


def _flatten(coords: Any) -> list[float]:
    if isinstance(coords, int | float):
        return [float(coords)]
    return [v for c in coords for v in _flatten(c)]
