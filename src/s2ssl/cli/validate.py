"""`s2ssl validate`: check the raw datasets, quarantine bad samples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from s2ssl.cli.common import ParamsOpt, fail, load_or_exit
from s2ssl.progress import progress_bar


def validate(
    params: ParamsOpt = Path("params.yaml"),
    raw: Annotated[Path, typer.Option(help="Directory holding the raw datasets.")] = Path(
        "data/raw"
    ),
    out: Annotated[
        Path, typer.Option(help="Directory that receives one validated dataset per name.")
    ] = Path("data/validated"),
    reports: Annotated[
        Path,
        typer.Option(
            help="Directory for summary.json (DVC metrics), quarantine.csv, band_stats.png "
            "and the Data Docs site (datadocs/index.html)."
        ),
    ] = Path("reports/validate"),
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", "-d", help="Validate only this dataset (repeatable)."),
    ] = None,
) -> None:
    """Check the raw datasets with great-expectations; quarantine bad samples.

    Every sample is profiled (bands, dtype, georeference, dates, DN range after the
    processing-baseline offset, NaN / nodata / cloud fractions, label values) and checked
    against thresholds in the `validate` section of params.yaml. Failing samples are
    quarantined with every reason; nothing is deleted from the raw data. Exits with code 1 and
    a summary when a dataset is unusable (schema mismatch, too many failures, an empty split).
    """
    from s2ssl.data.store import StoreError
    from s2ssl.validation.validate import ValidationFailedError, top_reasons
    from s2ssl.validation.validate import validate as run_validate

    cfg = load_or_exit(params)
    try:
        result = run_validate(cfg, raw, out, reports, datasets=dataset, progress=progress_bar)
    except ValidationFailedError as e:
        Console(stderr=True).print(f"[bold red]✗[/] {escape(str(e))}", highlight=False)
        Console(stderr=True).print(
            f"  details: {escape(str(reports))}/quarantine.csv, "
            f"{escape(str(reports))}/datadocs/index.html"
        )
        raise typer.Exit(code=1) from None
    except (StoreError, ValueError) as e:
        raise fail(str(e)) from None
    table = Table(title="validation")
    for col in ("dataset", "samples", "accepted", "quarantined", "most common reasons"):
        table.add_column(
            col, justify="left" if col in ("dataset", "most common reasons") else "right"
        )
    for v in result.validations:
        top = top_reasons(v.quarantine, 3)
        table.add_row(
            v.name,
            str(v.n_samples),
            str(len(v.accepted)),
            str(len(v.quarantine)),
            escape(", ".join(f"{k} ({n})" for k, n in top)) or "-",
        )
    console = Console()
    console.print(table)
    console.print(f"  validated datasets → {escape(str(out))}/")
    console.print(f"  reports → {escape(str(reports))}/ (open datadocs/index.html in a browser)")
