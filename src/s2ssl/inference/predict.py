"""Turn a segmenter into georeferenced maps: of GeoTIFFs (:func:`predict_raster`,
:func:`predict_rasters`) or of the samples of a dataset in the store (:func:`predict_store`).

Outputs of one raster, in ``out_dir``:

* ``classes.tif`` — Cloud-Optimized GeoTIFF of class ids (uint8, 255 = nodata), colour table and
  class names embedded (:mod:`s2ssl.inference.maps`), on the input's grid (CRS, transform, size);
* ``probabilities.tif`` — optional, one uint8 band per class (p × 254, 255 = nodata);
* ``quicklook.png`` — true colour (when the input has B04, B03, B02) and classes, with a legend;
* ``areas.json`` — hectares, pixels and fraction per class, nodata area, grid, model, radiometry.

A folder of GeoTIFFs gives one such folder per raster (``out_dir/<file stem>/``). A store dataset
gives ``out_dir/<sample_id>.tif`` (+ ``<sample_id>_probabilities.tif``) per sample — each sample
has its own CRS and transform, so one GeoTIFF per sample keeps every map on its native grid —
plus one ``areas.json`` (per sample and in total) and one ``quicklook.png`` of the first samples.

The ``s2ssl predict`` command is meant to be a thin wrapper: load the model as a
:class:`~s2ssl.inference.segmenter.Segmenter`, then call :func:`predict_rasters` or
:func:`predict_store` with ``progress=s2ssl.progress.progress_bar``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from affine import Affine
from rasterio.crs import CRS

from s2ssl.bands import BAND_NAMES, dn_to_reflectance
from s2ssl.data.quicklooks import class_colours
from s2ssl.data.store import ShardedDataset, open_dataset
from s2ssl.data.validated import open_validated
from s2ssl.inference.maps import (
    MapWriter,
    QuicklookPanel,
    areas_summary,
    read_decimated,
    render_quicklook,
)
from s2ssl.inference.rasters import (
    DEFAULT_MASKED_VALUES,
    RasterInput,
    find_rasters,
    map_bands,
)
from s2ssl.inference.segmenter import (
    Segmenter,
    SegmenterSpec,
    check_segmenter,
    move_segmenter,
    resolve_device,
)
from s2ssl.inference.tiling import DEFAULT_BLOCK_WIDTH, ArraySource, predict_tiled
from s2ssl.io import write_json_atomic
from s2ssl.progress import ProgressFactory, no_progress

__all__ = [
    "PredictionResult",
    "StorePrediction",
    "predict_raster",
    "predict_rasters",
    "predict_store",
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


@dataclass(frozen=True)
class StorePrediction:
    """What :func:`predict_store` wrote: one result per sample plus the shared files."""

    out_dir: Path
    results: tuple[PredictionResult, ...]
    areas_path: Path
    quicklook_path: Path | None
    seconds: float


@contextmanager
def _work_dir(out: Path) -> Iterator[Path]:
    """A hidden scratch directory inside ``out`` for intermediates, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=".predict-", dir=out))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _model_info(spec: SegmenterSpec, tile: int, overlap: int) -> dict[str, Any]:
    return {
        "bands": list(spec.bands),
        "class_names": list(spec.class_names),
        "n_dates": spec.n_dates,
        "tile_size": tile,
        "overlap": overlap,
    }


def _affine6(t: Affine) -> tuple[float, float, float, float, float, float]:
    return (float(t.a), float(t.b), float(t.c), float(t.d), float(t.e), float(t.f))


def _grid_info(
    crs: CRS, transform: Affine, height: int, width: int, row_area: np.ndarray
) -> dict[str, Any]:
    constant = bool(np.all(row_area == row_area[0]))
    return {
        "crs": crs.to_string(),
        "transform": list(_affine6(transform)),
        "height": height,
        "width": width,
        "pixel_area_m2": float(row_area[0]) if constant else None,
    }


def _tags(spec: SegmenterSpec, source: str, tile: int, overlap: int) -> dict[str, str]:
    return {
        "S2SSL_SOURCE": source,
        "S2SSL_MODEL_BANDS": ",".join(spec.bands),
        "S2SSL_TILE_SIZE": str(tile),
        "S2SSL_OVERLAP": str(overlap),
    }


def _tiling(spec: SegmenterSpec, tile_size: int | None, overlap: int | None) -> tuple[int, int]:
    tile = spec.tile_size if tile_size is None else tile_size
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile_size must be a positive int, got {tile!r}")
    return tile, tile // 4 if overlap is None else overlap


def predict_raster(
    segmenter: Segmenter,
    src: str | Path,
    out_dir: str | Path,
    *,
    overlap: int | None = None,
    batch_size: int = 8,
    probabilities: bool = False,
    device: str | torch.device | None = None,
    progress: ProgressFactory = no_progress,
    tile_size: int | None = None,
    block_width: int = DEFAULT_BLOCK_WIDTH,
    cloud_mask: str | Path | None = None,
    masked_values: Sequence[int] = DEFAULT_MASKED_VALUES,
    dn_offset: int | None = None,
    quicklook: bool = True,
) -> PredictionResult:
    """Predict one GeoTIFF into ``out_dir`` (``classes.tif``, ``areas.json``, optionally
    ``probabilities.tif`` and ``quicklook.png``; see the module docstring).

    Args:
        segmenter: the model (single-date).
        src: the GeoTIFF (bands named by their descriptions, or 12 / 13 bands in the default
            order; see :mod:`s2ssl.inference.rasters`).
        out_dir: output folder (created; existing outputs of the same name are replaced).
        overlap: pixels shared by neighbouring tiles (None: a quarter of the tile).
        batch_size: tiles per forward pass.
        probabilities: also write the per-class probability raster.
        device: ``"auto"`` / None (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        progress: progress factory, advanced per tile (``s2ssl.progress.progress_bar`` in a CLI).
        tile_size: tile edge (None: the segmenter's).
        block_width: widest column block held in memory (see :mod:`s2ssl.inference.tiling`).
        cloud_mask: optional mask raster on the same grid (see ``masked_values``).
        masked_values: mask values that make a pixel nodata (cloud, shadow, nodata by default).
        dn_offset: DN offset of integer rasters (None: from the raster's metadata).
        quicklook: write ``quicklook.png``.

    Raises:
        ValueError: unreadable or non-georeferenced input, bands the model needs missing (named),
            a time-series segmenter, invalid tiling parameters, areas not computable in the CRS.
    """
    spec = check_segmenter(segmenter)
    if spec.n_dates > 1:
        raise ValueError(
            f"the segmenter is a time-series model (n_dates={spec.n_dates}) but a GeoTIFF holds "
            "one date; predict a time-series dataset of the store with predict_store instead"
        )
    tile, ov = _tiling(spec, tile_size, overlap)
    start = time.perf_counter()
    src = Path(src)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colours = class_colours(spec.class_names)
    classes_path = out / CLASSES_FILE
    proba_path = out / PROBABILITIES_FILE if probabilities else None
    with (
        RasterInput(
            src, spec.bands, dn_offset=dn_offset, cloud_mask=cloud_mask, masked_values=masked_values
        ) as raster,
        _work_dir(out) as work,
    ):
        with MapWriter(
            work,
            height=raster.height,
            width=raster.width,
            crs=raster.crs,
            transform=raster.transform,
            class_names=spec.class_names,
            colours=colours,
            probabilities=probabilities,
            tags=_tags(spec, str(src), tile, ov),
        ) as writer:
            stats = predict_tiled(
                segmenter,
                raster,
                writer,
                tile_size=tile,
                overlap=ov,
                batch_size=batch_size,
                block_width=block_width,
                device=device,
                progress=progress,
                description=f"predict {src.name}",
            )
            writer.finish(classes_path, proba_path)
        areas = writer.summary()
        areas.update(
            _grid_info(
                raster.crs, raster.transform, raster.height, raster.width, writer.row_area_m2
            )
        )
        areas["input"] = str(src)
        areas["model"] = _model_info(spec, tile, ov)
        areas["radiometry"] = raster.radiometry.source
        areas["cloud_mask"] = None if cloud_mask is None else str(cloud_mask)
        areas_path = write_json_atomic(out / AREAS_FILE, areas)
        seconds = time.perf_counter() - start
        quicklook_path = None
        if quicklook:
            panel = QuicklookPanel(src.stem, read_decimated(classes_path), raster.rgb_preview())
            quicklook_path = render_quicklook(
                out / QUICKLOOK_FILE,
                [panel],
                spec.class_names,
                colours,
                title=f"{src.name}: {areas['total_area_ha'] / 100:.2f} km²",
                fractions=areas["class_fraction"],
            )
        return PredictionResult(
            classes_path=classes_path,
            probabilities_path=proba_path,
            quicklook_path=quicklook_path,
            areas_path=areas_path,
            areas=areas,
            height=raster.height,
            width=raster.width,
            crs=raster.crs.to_string(),
            transform=_affine6(raster.transform),
            n_tiles=stats.n_tiles,
            seconds=seconds,
            device=stats.device,
        )


def predict_rasters(
    segmenter: Segmenter,
    src: str | Path,
    out_dir: str | Path,
    *,
    overlap: int | None = None,
    batch_size: int = 8,
    probabilities: bool = False,
    device: str | torch.device | None = None,
    progress: ProgressFactory = no_progress,
    tile_size: int | None = None,
    block_width: int = DEFAULT_BLOCK_WIDTH,
    dn_offset: int | None = None,
    quicklook: bool = True,
) -> list[PredictionResult]:
    """Predict a GeoTIFF (outputs in ``out_dir``) or every GeoTIFF of a folder (outputs in
    ``out_dir/<file stem>/``); the other arguments are those of :func:`predict_raster`.

    Raises:
        ValueError: as :func:`predict_raster`; a missing path, an empty folder, two files with
            the same stem.
    """
    paths = find_rasters(src)
    if Path(src).is_file():
        targets = [Path(out_dir)]
    else:
        stems = [p.stem for p in paths]
        dupes = sorted({s for s in stems if stems.count(s) > 1})
        if dupes:
            raise ValueError(
                f"{src} holds several rasters with the stem(s) {dupes}; their outputs would "
                "collide in one folder — rename or separate them"
            )
        targets = [Path(out_dir) / p.stem for p in paths]
    return [
        predict_raster(
            segmenter,
            path,
            target,
            overlap=overlap,
            batch_size=batch_size,
            probabilities=probabilities,
            device=device,
            progress=progress,
            tile_size=tile_size,
            block_width=block_width,
            dn_offset=dn_offset,
            quicklook=quicklook,
        )
        for path, target in zip(paths, targets, strict=True)
    ]


# ------------------------------------------------------------------------------------- store
def _open_store(dataset: str | Path | ShardedDataset) -> ShardedDataset:
    if isinstance(dataset, ShardedDataset):
        return dataset
    p = Path(dataset)
    if (p / "manifest.json").is_file():
        return open_validated(p).store
    return open_dataset(p)


def _safe_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", sample_id) or "sample"


def _select(ds: ShardedDataset, ids: Sequence[str] | None, split: str | None) -> list[int]:
    index = ds.index
    positions = np.arange(len(index))
    if split is not None:
        if "split" not in index.columns:
            raise ValueError(f"dataset {ds.path} has no split column; drop split={split!r}")
        positions = positions[index["split"].to_numpy() == split]
    if ids is not None:
        if "sample_id" not in index.columns:
            raise ValueError(f"dataset {ds.path} has no sample_id column to select ids from")
        where = {s: i for i, s in enumerate(index["sample_id"].astype(str))}
        unknown = [s for s in ids if s not in where]
        if unknown:
            raise ValueError(
                f"unknown sample id(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''} in "
                f"dataset {ds.path} (e.g. {list(where)[:3]})"
            )
        chosen = set(positions.tolist())
        positions = np.array([where[s] for s in ids if where[s] in chosen], dtype=np.int64)
    return positions.tolist()


def _store_bands(ds: ShardedDataset, n_bands: int) -> tuple[str, ...]:
    bands = ds.attrs.get("bands")
    if bands is None:
        if n_bands != len(BAND_NAMES):
            raise ValueError(
                f"dataset {ds.path} names no bands (attrs 'bands') and has {n_bands} bands, not "
                f"the {len(BAND_NAMES)} of the default order"
            )
        return BAND_NAMES
    if len(bands) != n_bands:
        raise ValueError(
            f"dataset {ds.path}: attrs 'bands' lists {len(bands)} bands, images have {n_bands}"
        )
    return tuple(str(b) for b in bands)


def _sample_input(
    image: np.ndarray,
    mask: np.ndarray | None,
    offsets: np.ndarray,
    band_idx: list[int],
    spec: SegmenterSpec,
    date_index: int | None,
    masked_values: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """Model input, output validity ``(H, W)``, per-date validity ``(T, H, W)`` and the chosen
    date (None for time-series segmenters) of one sample."""
    dn = np.asarray(image)[:, band_idx]  # [T, C', H, W]
    invalid = np.all(dn == 0, axis=1)  # [T, H, W]
    if mask is not None:
        invalid |= np.isin(np.asarray(mask), list(masked_values))
    refl = dn_to_reflectance(dn, offsets[:, None, None, None])
    if spec.n_dates > 1:
        refl[np.broadcast_to(invalid[:, None], refl.shape)] = 0.0
        return refl, ~invalid.all(axis=0), ~invalid, None
    t = int(np.argmax((~invalid).sum(axis=(1, 2)))) if date_index is None else date_index
    return refl[t], ~invalid[t], ~invalid, t


def predict_store(
    segmenter: Segmenter,
    dataset_path: str | Path | ShardedDataset,
    out_dir: str | Path,
    ids: Sequence[str] | None = None,
    *,
    split: str | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    probabilities: bool = False,
    device: str | torch.device | None = None,
    progress: ProgressFactory = no_progress,
    tile_size: int | None = None,
    date_index: int | None = None,
    masked_values: Sequence[int] = DEFAULT_MASKED_VALUES,
    quicklook: bool = True,
    quicklook_samples: int = 8,
) -> StorePrediction:
    """Predict samples of a store dataset (raw, or validated: its accepted samples) into
    ``out_dir``: ``<sample_id>.tif`` per sample on the sample's grid (CRS and transform from the
    index), ``<sample_id>_probabilities.tif`` when asked, ``areas.json`` (per sample and total),
    ``quicklook.png`` (the first ``quicklook_samples`` samples).

    Single-date segmenters read one date per sample: ``date_index``, or by default the date with
    the most valid pixels (not masked by ``masked_values`` in the ``mask`` array, not all-zero
    DN). Time-series segmenters (``n_dates = T``) read all T dates (the dataset must have exactly
    T); a pixel is nodata only where every date is. DN become reflectance with each date's
    ``dn_offset`` from the index (0 when the index has none).

    Raises:
        ValueError: a missing or corrupt dataset, unknown ids, bands the model needs missing
            (named), a date count or ``date_index`` that does not fit, no ``crs`` / ``transform``
            in the index.
    """
    spec = check_segmenter(segmenter)
    tile, ov = _tiling(spec, tile_size, overlap)
    start = time.perf_counter()
    ds = _open_store(dataset_path)
    if "image" not in ds.specs:
        raise ValueError(f"dataset {ds.path} has no 'image' array (arrays: {list(ds.specs)})")
    n_t, n_c = ds.specs["image"].shape[:2]
    store_bands = _store_bands(ds, n_c)
    band_idx = [i - 1 for i in map_bands(store_bands, spec.bands, f"dataset {ds.path}")]
    missing = [c for c in ("crs", "transform") if c not in ds.index.columns]
    if missing:
        raise ValueError(
            f"dataset {ds.path} has no {missing} column(s) in its index: its samples cannot be "
            "georeferenced"
        )
    if spec.n_dates > 1 and n_t != spec.n_dates:
        raise ValueError(
            f"the segmenter reads {spec.n_dates} dates but dataset {ds.path} has {n_t} per sample"
        )
    if date_index is not None and (spec.n_dates > 1 or not 0 <= date_index < n_t):
        raise ValueError(
            f"date_index={date_index} does not fit: the dataset has {n_t} date(s) per sample "
            f"and the segmenter reads {spec.n_dates}"
        )
    positions = _select(ds, ids, split)
    if not positions:
        raise ValueError(f"no samples of dataset {ds.path} selected (ids={ids}, split={split})")
    dev = resolve_device(device)
    move_segmenter(segmenter, dev)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colours = class_colours(spec.class_names)
    has_ids = "sample_id" in ds.index.columns
    names = [
        _safe_name(str(ds.index["sample_id"].iloc[i])) if has_ids else f"{i:06d}" for i in positions
    ]
    if len(set(names)) != len(names):
        raise ValueError(f"sample ids of dataset {ds.path} collide as file names: {names[:5]}")
    results: list[PredictionResult] = []
    per_sample: dict[str, Any] = {}
    k = len(spec.class_names)
    total_area = np.zeros(k + 1)
    total_pixels = np.zeros(k + 1, np.int64)
    panels: list[QuicklookPanel] = []
    areas_path = out / AREAS_FILE
    rgb_sel = [store_bands.index(b) for b in ("B04", "B03", "B02") if b in store_bands]
    with (
        progress(f"predict {len(positions)} samples", len(positions)) as advance,
        _work_dir(out) as work,
    ):
        for pos, name in zip(positions, names, strict=True):
            t0 = time.perf_counter()
            row = ds.index.iloc[pos]
            crs = CRS.from_user_input(row["crs"])
            transform = Affine(*[float(v) for v in list(row["transform"])[:6]])
            offsets = np.asarray(
                row["dn_offset"] if "dn_offset" in ds.index.columns else [0] * n_t, np.float32
            ).reshape(-1)
            if offsets.size == 1:
                offsets = np.repeat(offsets, n_t)
            image = ds.read("image", pos)
            mask = ds.read("mask", pos) if "mask" in ds.specs else None
            x, valid, date_valid, t = _sample_input(
                image, mask, offsets, band_idx, spec, date_index, masked_values
            )
            h, w = x.shape[-2:]
            sample_work = work / name
            sample_work.mkdir()
            classes_path = out / f"{name}.tif"
            proba_path = out / f"{name}_probabilities.tif" if probabilities else None
            with MapWriter(
                sample_work,
                height=h,
                width=w,
                crs=crs,
                transform=transform,
                class_names=spec.class_names,
                colours=colours,
                probabilities=probabilities,
                tags=_tags(spec, f"{ds.path}#{name}", tile, ov),
            ) as writer:
                stats = predict_tiled(
                    segmenter,
                    ArraySource(x, valid),
                    writer,
                    tile_size=tile,
                    overlap=ov,
                    batch_size=batch_size,
                    device=dev,
                )
                writer.finish(classes_path, proba_path)
            shutil.rmtree(sample_work, ignore_errors=True)
            areas = writer.summary()
            areas.update(_grid_info(crs, transform, h, w, writer.row_area_m2))
            areas["date_index"] = t
            if "dates" in ds.index.columns and t is not None:
                areas["date"] = str(list(row["dates"])[t])
            per_sample[name] = areas
            total_area += writer.area_m2
            total_pixels += writer.pixels
            results.append(
                PredictionResult(
                    classes_path=classes_path,
                    probabilities_path=proba_path,
                    quicklook_path=None,
                    areas_path=areas_path,
                    areas=areas,
                    height=h,
                    width=w,
                    crs=crs.to_string(),
                    transform=_affine6(transform),
                    n_tiles=stats.n_tiles,
                    seconds=time.perf_counter() - t0,
                    device=stats.device,
                )
            )
            if quicklook and len(panels) < quicklook_samples:
                rgb = None
                if len(rgb_sel) == 3:
                    d = t if t is not None else int(np.argmax(date_valid.sum(axis=(1, 2))))
                    rgb = dn_to_reflectance(np.asarray(image)[d, rgb_sel], offsets[d])
                panels.append(QuicklookPanel(name, read_decimated(classes_path), rgb))
            advance(1)
    summary: dict[str, Any] = {
        "dataset": str(ds.path),
        "model": _model_info(spec, tile, ov),
        "date_selection": (
            "all dates"
            if spec.n_dates > 1
            else "most valid pixels"
            if date_index is None
            else f"date_index {date_index}"
        ),
        "samples": per_sample,
        "total": areas_summary(total_area, total_pixels, spec.class_names),
    }
    write_json_atomic(areas_path, summary)
    quicklook_path = None
    if quicklook and panels:
        quicklook_path = render_quicklook(
            out / QUICKLOOK_FILE,
            panels,
            spec.class_names,
            colours,
            title=f"{ds.path.name}: {len(positions)} samples",
            fractions=summary["total"]["class_fraction"],
        )
    return StorePrediction(
        out_dir=out,
        results=tuple(results),
        areas_path=areas_path,
        quicklook_path=quicklook_path,
        seconds=time.perf_counter() - start,
    )
