"""One entry point from "a model and an input" to maps: :func:`predict_maps`.

It decides what the input is — a GeoTIFF or a folder of them (:func:`predict_rasters`), a
dataset in the store (:func:`predict_store`), or an area and a date to fetch through
``fetch.source`` first (:func:`~s2ssl.data.acquire.acquire_scene`, then :func:`predict_raster`)
— and resolves the model (an MLflow model URI or a fine-tuned model directory). The
``s2ssl predict`` command parses its options, calls :func:`predict_maps` and prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2ssl.config import load_params
from s2ssl.data.acquire import (
    acquire_scene,
    check_fetchable,
    parse_area,
    parse_date,
    read_acquisition,
)
from s2ssl.data.store import StoreError, open_dataset
from s2ssl.inference.bandmatch import BandSpec, parse_band_option
from s2ssl.inference.outputs import PredictionResult
from s2ssl.inference.predict import predict_raster, predict_rasters
from s2ssl.inference.predict_store import predict_store
from s2ssl.inference.segmenter import check_segmenter, segmenter_from_model
from s2ssl.progress import ProgressFactory, no_progress
from s2ssl.registry.listing import resolve_model

__all__ = ["DEFAULT_MODEL", "MapsRun", "SceneCallback", "predict_maps"]

DEFAULT_MODEL = "models:/s2ssl-landcover@champion"
"""The model :func:`predict_maps` uses unless told: the registered land-cover champion."""

SceneCallback = Callable[[dict[str, Any], Path], None]
"""Called with ``(read_acquisition(scene), scene)`` once an area's scene is fetched, before it is
mapped."""


@dataclass(frozen=True)
class MapsRun:
    """What :func:`predict_maps` wrote."""

    out_dir: Path
    results: tuple[PredictionResult, ...]
    """One per map: the fetched scene, each GeoTIFF, or each store sample."""
    seconds: float
    """Wall time of the prediction (for a store dataset: including its shared files)."""
    scene: Path | None = None
    """The fetched ``OUT/scene.tif`` when the input was an area, else None."""

    @property
    def n_maps(self) -> int:
        """Number of maps written."""
        return len(self.results)


def predict_maps(
    source: Path | None = None,
    *,
    model: str = DEFAULT_MODEL,
    out: Path = Path("predictions"),
    area: str | None = None,
    date: str | None = None,
    params: Path = Path("params.yaml"),
    window_days: float | None = None,
    max_cloud: float | None = None,
    closest: bool = False,
    tile_size: int = 256,
    overlap: int | None = None,
    batch_size: int = 8,
    probabilities: bool = False,
    device: str = "auto",
    progress: ProgressFactory = no_progress,
    on_scene: SceneCallback | None = None,
    input_bands: BandSpec | None = None,
) -> MapsRun:
    """Map ``source`` — or the area ``area`` on ``date`` — with the segmentation model ``model``.

    Exactly one input: ``source`` (a GeoTIFF, a folder of GeoTIFFs, or a dataset directory of
    the store, raw or validated) or ``area`` (``"LON_MIN,LAT_MIN,LON_MAX,LAT_MAX"`` in WGS84
    degrees) with ``date`` (``YYYY-MM-DD``). An area is fetched through ``fetch.source`` of
    ``params`` into ``out/scene.tif`` (with ``out/scene.json``), then mapped into ``out``;
    ``window_days``, ``max_cloud`` and ``closest`` tune that fetch (Sentinel Hub) and only go
    with ``area``. Everything that can be checked without the model (the input form, the area,
    the date, the params, a fetchable source) is checked before the model is resolved, and the
    model before any request is spent.

    Args:
        source: the imagery to map (None with ``area``).
        model: an MLflow model URI (``models:/NAME@alias``, ``models:/NAME/3``, ``runs:/...``)
            or a fine-tuned model directory (``models/finetune/landcover/model``).
        out: output folder.
        area: the area to fetch instead of ``source``.
        date: with ``area``, the acquisition date (Sentinel Hub: the centre of the search
            window).
        params: with ``area``, the params.yaml giving ``fetch.source`` and its settings.
        window_days: with ``area``, Sentinel Hub: search ± this many days around ``date``
            (None: ``fetch.sentinelhub.landcover.window_days``).
        max_cloud: with ``area``, Sentinel Hub: scene cloud filter as a fraction (None:
            ``fetch.sentinelhub.max_cloud_coverage``).
        closest: with ``area``, Sentinel Hub: the acquisition closest to ``date`` instead of the
            least cloudy one of the window.
        tile_size: tile edge in pixels.
        overlap: tile overlap in pixels (None: a quarter tile).
        batch_size: tiles per forward pass.
        probabilities: also write per-class probabilities.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        progress: progress factory (``s2ssl.progress.progress_bar`` in a CLI).
        on_scene: called once an area's scene is fetched, before it is mapped.
        input_bands: the bands of GeoTIFFs whose band descriptions do not name them (a preset
            ``l2a`` / ``l1c`` / ``rgb`` / ``pastis``, or band names in file order); the model's
            bands are selected from the input's by name.

    Raises:
        ValueError: no input or two, fetch options without ``area``, ``input_bands`` malformed
            or with an input that names its bands itself (an area, a store dataset), ``area``
            without ``date``, a malformed area or date, invalid params or a source that cannot
            fetch an area, an unknown model, a time-series model for an area (one date), and
            every error of the prediction functions (bands the model needs missing, ...).
        OSError: unreadable or unwritable files.
    """
    if (source is None) == (area is None):
        raise ValueError(
            "give exactly one input: SOURCE (a GeoTIFF, a folder of them or a store dataset) or "
            "--area LON_MIN,LAT_MIN,LON_MAX,LAT_MAX with --date YYYY-MM-DD"
        )
    fetch_opts = {
        "--date": date,
        "--window-days": window_days,
        "--max-cloud": max_cloud,
        "--closest": closest or None,
    }
    if area is None and any(v is not None for v in fetch_opts.values()):
        used = [k for k, v in fetch_opts.items() if v is not None]
        raise ValueError(f"{', '.join(used)} only go with --area (they select what to fetch)")
    if input_bands is not None:
        parse_band_option(input_bands)  # malformed: fail before the model is resolved
        if area is not None:
            raise ValueError(
                "--bands describes the bands of your GeoTIFFs; a fetched --area scene names its "
                "own bands: drop --bands"
            )
    store = None
    if source is not None:
        try:
            store = open_dataset(source) if source.is_dir() else None
        except StoreError:
            store = None
        if store is not None and input_bands is not None:
            raise ValueError(
                f"--bands describes the bands of GeoTIFFs; the store dataset {source} records its "
                "own bands: drop --bands"
            )
    cfg = None
    if area is not None:
        if date is None:
            raise ValueError("--area needs --date YYYY-MM-DD (the acquisition date)")
        bbox, day = parse_area(area), parse_date(date)
        cfg = load_params(params)
        check_fetchable(cfg)  # before resolving the model
    options: dict[str, Any] = {
        "overlap": overlap,
        "batch_size": batch_size,
        "probabilities": probabilities,
        "device": None if device == "auto" else device,
        "progress": progress,
    }
    with resolve_model(model) as model_dir:
        segmenter = segmenter_from_model(model_dir, tile_size)
    if cfg is not None:
        if check_segmenter(segmenter).n_dates > 1:  # before spending any request
            raise ValueError(
                "the model is a time-series model but --area fetches one date; map a "
                "time-series dataset of the store instead (s2ssl predict data/raw/croptype)"
            )
        scene = acquire_scene(
            cfg,
            bbox,
            day,
            out,
            window_days=window_days,
            max_cloud_coverage=max_cloud,
            pick="closest" if closest else "least_cloudy",
            progress=progress,
        )
        if on_scene is not None:
            on_scene(read_acquisition(scene), scene)
        result = predict_raster(segmenter, scene, out, **options)
        return MapsRun(out_dir=out, results=(result,), seconds=result.seconds, scene=scene)
    if source is None:  # narrowed above: exactly one of source / area
        raise ValueError("give SOURCE or --area")
    if store is not None:
        stored = predict_store(segmenter, store, out, **options)
        return MapsRun(out_dir=out, results=stored.results, seconds=stored.seconds)
    results = predict_rasters(segmenter, source, out, input_bands=input_bands, **options)
    return MapsRun(out_dir=out, results=tuple(results), seconds=sum(r.seconds for r in results))
