"""Inspection helpers: `s2ssl info` (a dataset) and `s2ssl check-params`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from s2ssl.cli.common import ParamsOpt, fail, load_or_exit


def info(
    path: Annotated[Path, typer.Argument(help="A dataset directory, e.g. data/raw/landcover.")],
) -> None:
    """Describe a dataset in the store: arrays, sample counts per split and region, dates, the
    bands it holds and the classes of each label array."""
    from s2ssl.data.store import StoreError, open_dataset

    try:
        ds = open_dataset(path)
    except StoreError as e:
        raise fail(str(e)) from None
    console = Console()
    arrays = Table(title=f"{escape(str(path))} — {len(ds)} samples")
    for col in ("array", "dtype", "per-sample shape"):
        arrays.add_column(col)
    for name, spec in ds.specs.items():
        shape = " × ".join(map(str, spec.shape)) if spec.shape else "one value"
        arrays.add_row(name, spec.dtype, shape)
    console.print(arrays)
    idx = ds.index
    if {"region", "split"} <= set(idx.columns):
        counts = idx.groupby(["region", "split"]).size().unstack(fill_value=0)
        table = Table(title="samples per region and split")
        table.add_column("region")
        for split in counts.columns:
            table.add_column(str(split), justify="right")
        for region, row in counts.iterrows():
            table.add_row(str(region), *(str(int(v)) for v in row))
        console.print(table)
    if "dates" in idx.columns:
        dates = sorted(d for ds_dates in idx["dates"] for d in ds_dates if d)
        if dates:
            console.print(f"acquisitions: {len(dates)} from {dates[0]} to {dates[-1]}")
        else:
            console.print("acquisitions: no dates recorded (the source publishes none)")
    if "n_dates" in idx.columns and ds.specs["image"].shape[0] > 1:
        n = idx["n_dates"].astype(int)
        console.print(
            f"series length: {n.min()} to {n.max()} dates (stored padded to "
            f"{ds.specs['image'].shape[0]})"
        )
    try:
        console.print(f"bands ({len(ds.bands)}): {', '.join(ds.bands)}")
    except StoreError as e:
        console.print(f"bands: unknown ({escape(str(e))})")
    for label in ds.specs:
        if label in ("image", "mask"):
            continue
        try:
            classes = ds.classes(label)
        except StoreError:
            continue
        names = ", ".join(f"{c.value}={c.name}" for c in classes.classes)
        ignored = f"; no label: {list(classes.ignored_values)}" if classes.ignored_values else ""
        console.print(f"{label} classes ({len(classes)}, raster value=name): {names}{ignored}")


def check_params(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate params.yaml and print the resolved configuration."""
    cfg = load_or_exit(params)
    Console().print_json(
        cfg.model_dump_json(by_alias=True, exclude={"fetch": {"synthetic": {"regions"}}})
    )
    Console().print(f"[green]✓[/] {params} is valid ({len(cfg.fetch.synthetic.regions)} regions)")
