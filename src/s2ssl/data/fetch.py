"""The ``fetch`` stage: build the configured datasets from the configured source into the store.

Each dataset is written atomically (a failure leaves the previous dataset at its path untouched),
then quicklooks and a flat JSON summary (DVC metrics) go to the reports directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2ssl.config import CROP_CLASSES, LANDCOVER_CLASSES, Params
from s2ssl.data import quicklooks
from s2ssl.data.sources import synthetic
from s2ssl.data.sources.synthetic import DatasetName
from s2ssl.data.store import ArraySpec, DatasetWriter, ShardedDataset, open_dataset
from s2ssl.io import write_json_atomic
from s2ssl.progress import ProgressFactory, no_progress


@dataclass(frozen=True)
class FetchResult:
    """Where ``fetch`` put things."""

    datasets: dict[str, Path]
    reports: list[Path]
    summary: dict[str, float | int]


def fetch(
    params: Params,
    out_dir: str | Path,
    reports_dir: str | Path,
    progress: ProgressFactory = no_progress,
) -> FetchResult:
    """Generate / download every dataset in ``params.fetch.datasets`` under ``out_dir``."""
    cfg = params.fetch
    out_dir, reports_dir = Path(out_dir), Path(reports_dir)
    written: dict[str, Path] = {}
    for name in cfg.datasets:
        total = synthetic.dataset_size(cfg.synthetic, name)
        with (
            progress(f"fetch {name}", total) as advance,
            dataset_writer(params, name, out_dir) as writer,
        ):
            for chunk in synthetic.generate(
                cfg.synthetic, name, params.seed, cfg.start_date, cfg.end_date, on_progress=advance
            ):
                writer.append(chunk.arrays, chunk.rows)
        written[name] = out_dir / name

    stores = {name: open_dataset(path) for name, path in written.items()}
    reports = write_quicklooks(stores, reports_dir)
    summary = summarise(stores)
    write_json_atomic(reports_dir / "summary.json", summary)
    return FetchResult(datasets=written, reports=reports, summary=summary)


def dataset_writer(params: Params, name: DatasetName, out_dir: str | Path) -> DatasetWriter:
    """An atomic writer for dataset ``name`` under ``out_dir``, with the source's array specs."""
    cfg = params.fetch
    shapes = synthetic.array_shapes(cfg.synthetic, name)
    return DatasetWriter(
        Path(out_dir) / name,
        [ArraySpec(k, dtype, shape) for k, (shape, dtype) in shapes.items()],
        name=name,
        shard_size=cfg.shard_size,
        attrs=synthetic.dataset_attrs(cfg.synthetic, name, params.seed),
    )


def write_quicklooks(stores: dict[str, ShardedDataset], reports_dir: Path) -> list[Path]:
    """The quicklook PNGs that exist for the datasets at hand."""
    out: list[Path] = []
    if "unlabelled" in stores:
        out.append(quicklooks.seasons_png(stores["unlabelled"], reports_dir / "seasons.png"))
    if "landcover" in stores:
        out.append(quicklooks.landcover_png(stores["landcover"], reports_dir / "landcover.png"))
    if "croptype" in stores:
        out.append(quicklooks.croptype_png(stores["croptype"], reports_dir / "croptype.png"))
        out.append(quicklooks.ndvi_curves_png(stores["croptype"], reports_dir / "ndvi_curves.png"))
    return out


def summarise(stores: dict[str, ShardedDataset]) -> dict[str, Any]:
    """Flat metrics: sample counts per split, class fractions, cloud cover (no timings)."""
    out: dict[str, Any] = {}
    for name, ds in stores.items():
        idx = ds.index
        out[f"{name}.n_samples"] = len(ds)
        for split, n in idx["split"].value_counts().sort_index().items():
            out[f"{name}.n_{split}"] = int(n)
        cloud = np.concatenate([np.asarray(c, float) for c in idx["cloud_fraction"]])
        out[f"{name}.mean_cloud_fraction"] = round(float(cloud.mean()), 5)
        out[f"{name}.n_dates"] = int(ds.specs["image"].shape[0])
        for label, classes in (("landcover", LANDCOVER_CLASSES), ("croptype", CROP_CLASSES)):
            if label in ds.array_names:
                counts = np.zeros(len(classes), np.int64)
                for _, arr in ds.iter_shards(label):
                    counts += np.bincount(np.asarray(arr).ravel(), minlength=len(classes))[
                        : len(classes)
                    ]
                for cls, frac in zip(classes, counts / max(counts.sum(), 1), strict=True):
                    out[f"{name}.{label}_fraction.{cls}"] = round(float(frac), 5)
        if "parcel" in ds.array_names:
            per_patch = [
                np.asarray(a).reshape(len(a), -1).max(axis=1) for _, a in ds.iter_shards("parcel")
            ]
            out[f"{name}.parcels_per_patch"] = round(float(np.concatenate(per_patch).mean()), 2)
    return out
