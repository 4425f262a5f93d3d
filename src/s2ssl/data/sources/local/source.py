"""``fetch.source: local``: samples of dated images, cut into patches with their labels, as
dataset chunks (see the package docstring).

Bands: a local dataset holds the configured ``bands`` that its files hold (found before the import
from the band files present, or from each multiband file's band count and ``band_order``); an
image lacking one of them is skipped ("missing bands"), a configured band no file holds is left
out of the dataset (``validate`` then names it). Nothing is ever filled in.

Classes: ``label_classes`` (raster value -> class name) defines each label array's class set;
``ignore_values`` are stored as 255; any other value fails the import, naming every such value
with its pixel count over the whole import.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from s2ssl.bands import missing_bands
from s2ssl.classes import ClassSet
from s2ssl.config import LocalDatasetSpec, Params
from s2ssl.data.sources import base
from s2ssl.data.sources.base import Skip, Source
from s2ssl.data.sources.local.files import ImageUnit, ImportProblemError, discover, held_bands
from s2ssl.data.sources.local.reader import Grid, Image, Reader
from s2ssl.data.sources.types import Chunk, DatasetName
from s2ssl.progress import ProgressFactory

_CHUNK: Final[int] = 32


@dataclass
class _Sample:
    """A sample to import: its name, images (oldest first once read) and label folder."""

    name: str
    units: list[ImageUnit]
    label_dir: Path
    label_name: str


class LocalImagery(Source):
    """``fetch.source: local`` (see the package docstring)."""

    kind = "local"

    def __init__(self, params: Params) -> None:
        super().__init__()
        if params.fetch.local is None:
            raise ValueError("fetch.source is local but params.yaml has no fetch.local section")
        self.params = params
        self.local = params.fetch.local
        self._held: dict[str, tuple[str, ...]] = {}
        self._unmapped: dict[str, Counter[int]] = {}

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

    def bands(self, dataset: DatasetName) -> tuple[str, ...]:
        """The bands ``dataset`` holds: the configured ``bands`` that some image holds.

        Raises:
            ValueError: no image holds any configured band (the message names both lists).
        """
        if dataset not in self._held:
            spec = self._spec(dataset)
            units = [u for sample in self._samples(dataset) for u in sample.units]
            held = {b for u in units for b in held_bands(u, spec)}
            wanted = self.params.band_names
            bands = tuple(b for b in wanted if b in held)
            if units and not bands:
                raise ValueError(
                    f"fetch.local.{dataset}: the files under {spec.path} hold none of the "
                    f"configured bands ({', '.join(wanted)}); they hold "
                    f"{', '.join(sorted(held)) or 'no recognised band'} (set `bands` in "
                    "params.yaml to a preset or list they hold, or band_order for multiband files)"
                )
            self._held[dataset] = bands or wanted
        return self._held[dataset]

    def class_sets(self, dataset: DatasetName) -> dict[str, ClassSet]:
        """The class set of each label raster, from ``label_classes`` and ``ignore_values``."""
        spec = self._spec(dataset)
        return {
            name: base.class_set_from_mapping(
                spec.label_classes.get(name, {}),
                spec.ignore_values.get(name, []),
                f"fetch.local.{dataset}.label_classes.{name}",
            )
            for name in self._labels(dataset)
            if name != "parcel"
        }

    def array_shapes(self, dataset: DatasetName) -> dict[str, tuple[tuple[int, ...], str]]:
        """image (the dataset's bands) / mask (+ the configured label maps)."""
        spec = self._spec(dataset)
        return base.array_shapes(
            spec.n_dates, spec.patch_size, self._labels(dataset), self.bands(dataset)
        )

    def dataset_attrs(self, dataset: DatasetName) -> dict[str, object]:
        """Synthetic-compatible attrs plus where the files came from."""
        spec = self._spec(dataset)
        return base.dataset_attrs(
            "local",
            self.params.seed,
            [spec.region],
            self._labels(dataset),
            self.bands(dataset),
            self.class_sets(dataset),
            import_path=str(spec.path),
            layout=spec.layout,
            resampling=spec.resampling,
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
        bands = self.bands(dataset)
        reader = Reader(spec, bands)
        self._unmapped[dataset] = Counter()
        buffer = base.ChunkBuffer(_CHUNK)
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
                    n_tiles += 1
                    if (chunk := buffer.add(tile_arrays, row)) is not None:
                        yield chunk
                advance(1)
        if (chunk := buffer.flush()) is not None:
            yield chunk
        self.report[dataset] = {
            "images_found": len(samples),
            "samples_written": n_tiles,
            "skipped_by_reason": self.skipped_by_reason(dataset),
            "bands": list(bands),
            "configured_bands_in_no_file": list(missing_bands(bands, self.params.band_names)),
        }
        unmapped = self._unmapped.pop(dataset)
        if unmapped:
            setting = f"fetch.local.{dataset}.label_classes"
            raise ValueError(f"fetch.local.{dataset}: {base.describe_unmapped(unmapped, setting)}")
        if n_tiles == 0:
            raise ValueError(
                f"fetch.local.{dataset}: nothing imported from {spec.path} "
                f"({len(samples)} image(s) found; skipped: {self.skipped_by_reason(dataset)})"
            )

    def _read_sample(
        self, dataset: DatasetName, spec: LocalDatasetSpec, reader: Reader, sample: _Sample
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
        class_sets = self.class_sets(dataset)
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
                    lm = base.label_map(
                        path,
                        grid.crs,
                        grid.transform,
                        shape,
                        spec.label_classes[name],
                        class_sets[name],
                    )
                    self._unmapped[dataset].update(lm.unmapped)
                    out[name] = lm.labels
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
