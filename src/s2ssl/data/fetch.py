"""The ``fetch`` stage: build the configured datasets from the configured source into the store.

Sources (``fetch.source``): ``synthetic`` (the embedded world), ``sentinelhub`` (real imagery,
:mod:`s2ssl.data.sources.sentinelhub`), ``local`` (your GeoTIFFs,
:mod:`s2ssl.data.sources.local`) and ``benchmark`` (EuroSAT, BigEarthNet v2 or PASTIS from
their published layouts, :mod:`s2ssl.data.sources.benchmark.source`); all write the same
arrays, index columns and attrs.
Each dataset is written atomically (a failure leaves the previous dataset at its path untouched),
then quicklooks, a flat JSON summary (DVC metrics) and ``acquisition.json`` (what was skipped and
why, requests and processing units) go to the reports directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2ssl.config import Params
from s2ssl.data import quicklooks
from s2ssl.data.sources.base import Skip, Source
from s2ssl.data.sources.benchmark.source import BenchmarkImagery
from s2ssl.data.sources.local.source import LocalImagery
from s2ssl.data.sources.sentinelhub.source import SentinelHubImagery
from s2ssl.data.sources.synthetic import source as synthetic_source
from s2ssl.data.sources.types import Chunk, DatasetName
from s2ssl.data.store import ArraySpec, DatasetWriter, ShardedDataset, open_dataset
from s2ssl.io import write_json_atomic, write_text_atomic
from s2ssl.progress import ProgressFactory, no_progress


@dataclass(frozen=True)
class FetchResult:
    """Where ``fetch`` put things."""

    datasets: dict[str, Path]
    reports: list[Path]
    summary: dict[str, float | int]
    skipped: list[Skip] = field(default_factory=list)
    """What the source could not import, and why."""
    not_downloaded: dict[str, list[str]] = field(default_factory=dict)
    """Per dataset, the samples a benchmark's listing names that the download does not hold."""


class SyntheticImagery(Source):
    """``fetch.source: synthetic``: the embedded world (:mod:`.sources.synthetic`)."""

    kind = "synthetic"

    def __init__(self, params: Params) -> None:
        super().__init__()
        self.params = params

    def array_shapes(self, dataset: DatasetName) -> dict[str, tuple[tuple[int, ...], str]]:
        """The synthetic arrays of ``dataset``."""
        return synthetic_source.array_shapes(
            self.params.fetch.synthetic, dataset, bands=self.params.band_names
        )

    def dataset_attrs(self, dataset: DatasetName) -> dict[str, object]:
        """The synthetic attrs of ``dataset``."""
        return synthetic_source.dataset_attrs(
            self.params.fetch.synthetic, dataset, self.params.seed, bands=self.params.band_names
        )

    def chunks(self, dataset: DatasetName, progress: ProgressFactory) -> Iterator[Chunk]:
        """Generate ``dataset`` chunk by chunk."""
        cfg = self.params.fetch
        total = synthetic_source.dataset_size(cfg.synthetic, dataset)
        with progress(f"fetch {dataset}", total) as advance:
            yield from synthetic_source.generate(
                cfg.synthetic,
                dataset,
                self.params.seed,
                cfg.start_date,
                cfg.end_date,
                on_progress=advance,
                bands=self.params.band_names,
            )


def open_source(params: Params) -> Source:
    """The imagery source selected by ``fetch.source`` (credentials are checked here)."""
    source = params.fetch.source
    if source == "sentinelhub":
        return SentinelHubImagery(params)
    if source == "local":
        return LocalImagery(params)
    if source == "benchmark":
        return BenchmarkImagery(params)
    return SyntheticImagery(params)


def fetch(
    params: Params,
    out_dir: str | Path,
    reports_dir: str | Path,
    progress: ProgressFactory = no_progress,
    source: Source | None = None,
) -> FetchResult:
    """Generate / download every dataset in ``params.fetch.datasets`` under ``out_dir``.

    ``source`` overrides the one ``fetch.source`` selects (tests inject configured ones).
    """
    cfg = params.fetch
    out_dir, reports_dir = Path(out_dir), Path(reports_dir)
    src = source if source is not None else open_source(params)
    written: dict[str, Path] = {}
    for name in cfg.datasets:
        with dataset_writer(params, name, out_dir, src) as writer:
            for chunk in src.chunks(name, progress):
                writer.append(chunk.arrays, chunk.rows)
        written[name] = out_dir / name

    stores = {name: open_dataset(path) for name, path in written.items()}
    reports = write_quicklooks(stores, reports_dir)
    summary = summarise(stores)
    for name in written:
        if src.kind != "synthetic":
            summary[f"{name}.n_skipped"] = sum(src.skipped_by_reason(name).values())
        if name in src.not_downloaded:
            summary[f"{name}.n_not_downloaded"] = len(src.not_downloaded[name])
    summary = dict(sorted(summary.items()))
    write_json_atomic(reports_dir / "summary.json", summary)
    reports.append(write_acquisition_report(src, list(written), reports_dir))
    return FetchResult(
        datasets=written,
        reports=reports,
        summary=summary,
        skipped=src.skipped,
        not_downloaded=src.not_downloaded,
    )


def not_downloaded_file(dataset: str) -> str:
    """The file (in the fetch reports) listing a dataset's samples the download does not hold."""
    return f"not_downloaded_{dataset}.txt"


def write_acquisition_report(source: Source, datasets: list[str], reports_dir: Path) -> Path:
    """``acquisition.json``: per dataset, skips by reason and the source's request counts and
    processing units; then every skipped item with its reason. Samples that a benchmark's
    listing names but the download does not hold at all are counted there and their ids
    written one per line to :func:`not_downloaded_file` (hundreds of thousands for a partial
    BigEarthNet)."""
    for name in datasets:
        ids, path = source.not_downloaded.get(name), reports_dir / not_downloaded_file(name)
        if ids:
            write_text_atomic(path, "\n".join(ids) + "\n")
        else:
            path.unlink(missing_ok=True)  # from an earlier fetch into the same folder
    report = {
        "source": source.kind,
        "datasets": {
            name: {
                "skipped_by_reason": source.skipped_by_reason(name),
                **source.report.get(name, {}),
            }
            for name in datasets
        },
        "skipped": [s.to_json() for s in source.skipped],
    }
    return write_json_atomic(reports_dir / "acquisition.json", report)


def dataset_writer(
    params: Params, name: DatasetName, out_dir: str | Path, source: Source | None = None
) -> DatasetWriter:
    """An atomic writer for dataset ``name`` under ``out_dir``, with the source's array specs
    (the synthetic world's when ``source`` is None)."""
    cfg = params.fetch
    src = source if source is not None else SyntheticImagery(params)
    shapes = src.array_shapes(name)
    return DatasetWriter(
        Path(out_dir) / name,
        [ArraySpec(k, dtype, shape) for k, (shape, dtype) in shapes.items()],
        name=name,
        shard_size=cfg.shard_size,
        attrs=src.dataset_attrs(name),
    )


def write_quicklooks(stores: dict[str, ShardedDataset], reports_dir: Path) -> list[Path]:
    """The quicklook PNGs that exist for the datasets at hand."""
    out: list[Path] = []
    if "unlabelled" in stores:
        out.append(quicklooks.seasons_png(stores["unlabelled"], reports_dir / "seasons.png"))
    if "landcover" in stores:
        out.append(quicklooks.landcover_png(stores["landcover"], reports_dir / "landcover.png"))
    if "scene" in stores:
        out.append(quicklooks.scenes_png(stores["scene"], reports_dir / "scenes.png"))
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
        for label in ("landcover", "croptype", "scene"):
            if label in ds.array_names:
                classes = ds.classes(label).names
                counts = np.zeros(len(classes), np.int64)
                for _, arr in ds.iter_shards(label):
                    counts += np.bincount(np.asarray(arr).ravel(), minlength=len(classes))[
                        : len(classes)
                    ]
                for cls, frac in zip(classes, counts / max(counts.sum(), 1), strict=True):
                    out[f"{name}.{label}_fraction.{cls}"] = round(float(frac), 5)
        if "multilabel" in ds.array_names:
            names = ds.classes("multilabel").names
            counts = np.zeros(len(names), np.int64)
            for _, arr in ds.iter_shards("multilabel"):
                counts += np.asarray(arr, np.int64).sum(axis=0)
            for cls, n in zip(names, counts / max(len(ds), 1), strict=True):
                out[f"{name}.multilabel_fraction.{cls}"] = round(float(n), 5)
        if "parcel" in ds.array_names:
            per_patch = [
                np.asarray(a).reshape(len(a), -1).max(axis=1) for _, a in ds.iter_shards("parcel")
            ]
            out[f"{name}.parcels_per_patch"] = round(float(np.concatenate(per_patch).mean()), 2)
    return out
