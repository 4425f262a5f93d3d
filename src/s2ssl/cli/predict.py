"""`s2ssl predict`: maps of a fine-tuned segmentation model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from s2ssl.cli.common import fail
from s2ssl.progress import progress_bar


def predict(
    source: Annotated[
        Path | None,
        typer.Argument(
            help="A GeoTIFF, a folder of GeoTIFFs, or a dataset in the store (or use --area)."
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="An MLflow model URI (models:/NAME@alias, models:/NAME/3, runs:/...) or a "
            "fine-tuned model directory (models/finetune/landcover/model).",
        ),
    ] = "models:/s2ssl-landcover@champion",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("predictions"),
    area: Annotated[
        str | None,
        typer.Option(
            help="Instead of SOURCE: fetch the area LON_MIN,LAT_MIN,LON_MAX,LAT_MAX (WGS84 "
            "degrees) through fetch.source of --params (synthetic or sentinelhub) into "
            "OUT/scene.tif, then map it. Needs --date.",
            rich_help_panel="Fetch an area",
        ),
    ] = None,
    date: Annotated[
        str | None,
        typer.Option(
            help="With --area: the date YYYY-MM-DD (Sentinel Hub: the centre of the search "
            "window; the least cloudy acquisition in it is used).",
            rich_help_panel="Fetch an area",
        ),
    ] = None,
    params: Annotated[
        Path,
        typer.Option(
            "--params",
            "-p",
            help="With --area: params.yaml giving fetch.source and its settings.",
            rich_help_panel="Fetch an area",
        ),
    ] = Path("params.yaml"),
    window_days: Annotated[
        float | None,
        typer.Option(
            help="With --area, Sentinel Hub: search ± this many days around --date (default: "
            "fetch.sentinelhub.landcover.window_days).",
            rich_help_panel="Fetch an area",
        ),
    ] = None,
    max_cloud: Annotated[
        float | None,
        typer.Option(
            help="With --area, Sentinel Hub: scene cloud filter as a fraction, e.g. 0.3 (default: "
            "fetch.sentinelhub.max_cloud_coverage).",
            rich_help_panel="Fetch an area",
        ),
    ] = None,
    closest: Annotated[
        bool,
        typer.Option(
            "--closest",
            help="With --area, Sentinel Hub: use the acquisition closest to --date instead of "
            "the least cloudy one of the window.",
            rich_help_panel="Fetch an area",
        ),
    ] = False,
    bands: Annotated[
        str | None,
        typer.Option(
            "--bands",
            help="The bands of GeoTIFFs whose band descriptions do not name them: a preset (l2a, "
            "l1c, rgb, pastis) or the file's bands in order (B02,B03,B04,B08). Without it, "
            "unnamed files are read by band count only where unambiguous (13 = l1c, 12 = l2a, "
            "10 = pastis). The model's bands are selected by name; a band it needs that the "
            "file lacks is an error.",
        ),
    ] = None,
    tile_size: Annotated[int, typer.Option(help="Tile edge in pixels (multiple of 32).")] = 256,
    overlap: Annotated[
        int | None, typer.Option(help="Tile overlap in pixels (default: a quarter tile).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Tiles per forward pass.")] = 8,
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Also write per-class probabilities.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = "auto",
) -> None:
    """Turn a fine-tuned segmentation model into maps: a class COG (colour table and class names
    embedded), a quicklook PNG with a legend and the class areas in hectares (areas.json).

    Give SOURCE (your imagery), or `--area LON_MIN,LAT_MIN,LON_MAX,LAT_MAX --date YYYY-MM-DD` to
    fetch one scene through `fetch.source` of `--params` first: `synthetic` renders the synthetic
    world's region containing the area (at most 2048 px a side), `sentinelhub` downloads the
    least cloudy acquisition within the search window (at most 2500 px = 25 km a side;
    credentials from SH_CLIENT_ID / SH_CLIENT_SECRET). The scene lands in OUT/scene.tif with
    OUT/scene.json (what was used), the maps beside it."""
    from s2ssl.inference.dispatch import predict_maps

    console = Console()
    try:
        run = predict_maps(
            source,
            model=model,
            out=out,
            area=area,
            date=date,
            params=params,
            window_days=window_days,
            max_cloud=max_cloud,
            closest=closest,
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            probabilities=probabilities,
            device=device,
            progress=progress_bar,
            on_scene=lambda info, scene: console.print(_acquired(info, scene)),
            input_bands=bands,
        )
    except (ValueError, OSError) as e:
        raise fail(str(e)) from None
    console.print(
        f"[green]✓[/] {run.n_maps} map(s) in {run.seconds:.1f} s → {escape(str(out))}/ "
        "(classes*.tif open in QGIS; quicklook*.png; areas.json)"
    )


def _acquired(info: dict[str, Any], path: Path) -> str:
    """One line saying which scene was fetched (rich markup)."""
    acq, grid = info["acquisition"], info["grid"]
    size = f"{grid['width']} x {grid['height']} px, {grid['crs']}"
    if info["source"] == "sentinelhub":
        what = (
            f"{acq['product_id']} of {acq['date']} (cloud cover {acq['cloud_cover_percent']:g} %, "
            f"{acq['days_from_requested']:+d} days{', from cache' if info['from_cache'] else ''})"
        )
    else:
        cloud = 100 * acq["cloud_fraction"]
        what = f"synthetic {acq['region']} on {acq['date']} (cloud {cloud:.1f} %)"
    return f"[green]✓[/] scene {escape(what)}, {size} → {escape(str(path))}"
