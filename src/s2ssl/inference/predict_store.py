"""Turn a segmenter into georeferenced maps of the samples of a dataset in the store
(:func:`predict_store`).

A store dataset gives ``out_dir/<sample_id>.tif`` (+ ``<sample_id>_probabilities.tif``) per
sample — each sample has its own CRS and transform, so one GeoTIFF per sample keeps every map on
its native grid — plus one ``areas.json`` (per sample and in total) and one ``quicklook.png`` of
the first samples. The files are those of :mod:`s2ssl.inference.predict` (see there).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from affine import Affine
from rasterio.crs import CRS

from s2ssl.bands import dn_to_reflectance
from s2ssl.data.store import ShardedDataset, StoreError, open_dataset
from s2ssl.data.validated import open_validated
from s2ssl.inference.bandmatch import default_band_order, model_band_positions
from s2ssl.inference.maps import (
    MapWriter,
    QuicklookPanel,
    areas_summary,
    read_decimated,
    render_quicklook,
)
from s2ssl.inference.outputs import (
    AREAS_FILE,
    QUICKLOOK_FILE,
    PredictionResult,
    affine6,
    grid_info,
    map_tags,
    model_info,
    resolve_tiling,
    work_dir,
)
from s2ssl.inference.rasters import DEFAULT_MASKED_VALUES
from s2ssl.inference.segmenter import (
    Segmenter,
    SegmenterSpec,
    check_segmenter,
    move_segmenter,
    resolve_device,
)
from s2ssl.inference.tiling import ArraySource, predict_tiled
from s2ssl.io import write_json_atomic
from s2ssl.progress import ProgressFactory, no_progress

__all__ = ["StorePrediction", "predict_store"]


@dataclass(frozen=True)
class StorePrediction:
    """What :func:`predict_store` wrote: one result per sample plus the shared files."""

    out_dir: Path
    results: tuple[PredictionResult, ...]
    areas_path: Path
    quicklook_path: Path | None
    seconds: float


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
    """The bands on the image array's band axis: the dataset's own list
    (:attr:`ShardedDataset.bands`), else the default order of an unambiguous band count."""
    try:
        bands = ds.bands
    except StoreError:
        return default_band_order(n_bands, f"dataset {ds.path} (no 'bands' attribute)")
    if len(bands) != n_bands:
        raise ValueError(
            f"dataset {ds.path}: attrs 'bands' lists {len(bands)} bands, images have {n_bands}"
        )
    return bands


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

    The dataset's bands are its recorded band list (:attr:`ShardedDataset.bands`; an older
    dataset without one: the default order of its band count); the model's bands are selected
    from them by name.

    Raises:
        ValueError: a missing or corrupt dataset, unknown ids, bands the model needs missing
            (named), a date count or ``date_index`` that does not fit, no ``crs`` / ``transform``
            in the index.
    """
    spec = check_segmenter(segmenter)
    tile, ov = resolve_tiling(spec, tile_size, overlap)
    start = time.perf_counter()
    ds = _open_store(dataset_path)
    if "image" not in ds.specs:
        raise ValueError(f"dataset {ds.path} has no 'image' array (arrays: {list(ds.specs)})")
    n_t, n_c = ds.specs["image"].shape[:2]
    store_bands = _store_bands(ds, n_c)
    band_idx = model_band_positions(store_bands, spec.bands, f"dataset {ds.path}")
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
    colours = spec.class_set.colours
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
        work_dir(out) as work,
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
                tags=map_tags(spec, f"{ds.path}#{name}", tile, ov, store_bands),
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
            areas.update(grid_info(crs, transform, h, w, writer.row_area_m2))
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
                    transform=affine6(transform),
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
        "model": model_info(spec, tile, ov, store_bands),
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
