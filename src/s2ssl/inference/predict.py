"""Turn a segmenter into georeferenced maps of GeoTIFFs: :func:`predict_raster` (one raster),
:func:`predict_rasters` (a raster or a folder of them).

Outputs of one raster, in ``out_dir``:

* ``classes.tif`` — Cloud-Optimized GeoTIFF of class ids (uint8, 255 = nodata), the model's class
  colours as colour table and its class names embedded (:mod:`s2ssl.inference.maps`), on the
  input's grid (CRS, transform, size); tags ``S2SSL_MODEL_BANDS`` / ``S2SSL_INPUT_BANDS``;
* ``probabilities.tif`` — optional, one uint8 band per class (p × 254, 255 = nodata);
* ``quicklook.png`` — true colour (when the input has B04, B03, B02) and classes, with a legend;
* ``areas.json`` — hectares, pixels and fraction per class, nodata area, grid, radiometry, and the
  model: its bands, the input's bands, its classes with their colours.

The input's bands are known by name (band descriptions, else ``input_bands``, else the band count
where unambiguous) and the model's bands are selected from them by name
(:mod:`s2ssl.inference.bandmatch`); a band the model needs that the input lacks is an error
naming it.

A folder of GeoTIFFs gives one such folder per raster (``out_dir/<file stem>/``). Samples of a
dataset in the store are mapped by :mod:`s2ssl.inference.predict_store`; the ``s2ssl predict``
command goes through :func:`s2ssl.inference.dispatch.predict_maps`, which picks between them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch

from s2ssl.inference.bandmatch import BandSpec
from s2ssl.inference.maps import MapWriter, QuicklookPanel, read_decimated, render_quicklook
from s2ssl.inference.outputs import (
    AREAS_FILE,
    CLASSES_FILE,
    PROBABILITIES_FILE,
    QUICKLOOK_FILE,
    PredictionResult,
    affine6,
    grid_info,
    map_tags,
    model_info,
    resolve_tiling,
    work_dir,
)
from s2ssl.inference.rasters import DEFAULT_MASKED_VALUES, RasterInput, find_rasters
from s2ssl.inference.segmenter import Segmenter, check_segmenter
from s2ssl.inference.tiling import DEFAULT_BLOCK_WIDTH, predict_tiled
from s2ssl.io import write_json_atomic
from s2ssl.progress import ProgressFactory, no_progress

__all__ = ["predict_raster", "predict_rasters"]


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
    input_bands: BandSpec | None = None,
) -> PredictionResult:
    """Predict one GeoTIFF into ``out_dir`` (``classes.tif``, ``areas.json``, optionally
    ``probabilities.tif`` and ``quicklook.png``; see the module docstring).

    Args:
        segmenter: the model (single-date).
        src: the GeoTIFF (bands named by their descriptions, by ``input_bands``, or 13 / 12 /
            10 unnamed bands in the ``l1c`` / ``l2a`` / ``pastis`` order; see
            :mod:`s2ssl.inference.rasters`).
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
        input_bands: the GeoTIFF's bands when its descriptions do not name them: a preset
            (``l2a``, ``l1c``, ``rgb``, ``pastis``), a comma-separated list or a sequence of band
            names in the file's order.

    Raises:
        ValueError: unreadable or non-georeferenced input, bands not known by name (unnamed and
            an ambiguous count: give ``input_bands``), bands the model needs missing (named),
            a time-series segmenter, invalid tiling parameters, areas not computable in the CRS.
    """
    spec = check_segmenter(segmenter)
    if spec.n_dates > 1:
        raise ValueError(
            f"the segmenter is a time-series model (n_dates={spec.n_dates}) but a GeoTIFF holds "
            "one date; predict a time-series dataset of the store with predict_store instead"
        )
    tile, ov = resolve_tiling(spec, tile_size, overlap)
    start = time.perf_counter()
    src = Path(src)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colours = spec.class_set.colours
    classes_path = out / CLASSES_FILE
    proba_path = out / PROBABILITIES_FILE if probabilities else None
    with (
        RasterInput(
            src,
            spec.bands,
            input_bands=input_bands,
            dn_offset=dn_offset,
            cloud_mask=cloud_mask,
            masked_values=masked_values,
        ) as raster,
        work_dir(out) as work,
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
            tags=map_tags(spec, str(src), tile, ov, raster.input_bands),
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
            grid_info(raster.crs, raster.transform, raster.height, raster.width, writer.row_area_m2)
        )
        areas["input"] = str(src)
        areas["model"] = model_info(spec, tile, ov, raster.input_bands)
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
            transform=affine6(raster.transform),
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
    input_bands: BandSpec | None = None,
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
            input_bands=input_bands,
        )
        for path, target in zip(paths, targets, strict=True)
    ]
