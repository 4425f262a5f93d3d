"""`s2ssl fetch`: build the raw datasets from ``fetch.source``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from s2ssl.cli.common import EX_TEMPFAIL, ParamsOpt, fail, load_or_exit
from s2ssl.progress import progress_bar


def fetch(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[
        Path, typer.Option(help="Directory that receives one dataset per name in fetch.datasets.")
    ] = Path("data/raw"),
    reports: Annotated[
        Path, typer.Option(help="Directory for quicklook PNGs and summary.json (DVC metrics).")
    ] = Path("reports/fetch"),
) -> None:
    """Build the raw datasets (unlabelled, landcover, croptype, scene) from `fetch.source`.

    The default source is the embedded synthetic Sentinel-2 world: offline and deterministic.
    `sentinelhub` downloads real imagery (credentials from SH_CLIENT_ID / SH_CLIENT_SECRET in
    the environment or .env; cached, resumable), `local` imports your GeoTIFFs, `benchmark`
    reads EuroSAT, BigEarthNet v2 or PASTIS from its download (profiles/<name>.yaml,
    docs/benchmarks.md).
    Each dataset is written atomically: if this fails, the previous one stays intact.

    Exit codes: 0 done; 75 (EX_TEMPFAIL) a transient failure — network or connection problems,
    HTTP 429 / 5xx that outlasted the retries — worth retrying later; 2 anything else (bad
    params, credentials, a request the service refuses).
    """
    from s2ssl.data.fetch import fetch as run_fetch
    from s2ssl.data.fetch import not_downloaded_file
    from s2ssl.data.sources.retry import RetriesExhaustedError, TransientError
    from s2ssl.data.store import StoreError

    cfg = load_or_exit(params)
    try:
        result = run_fetch(cfg, out, reports, progress=progress_bar)
    except (TransientError, RetriesExhaustedError, ConnectionError, TimeoutError) as e:
        raise fail(f"transient failure, try again later: {e}", code=EX_TEMPFAIL) from None
    except (StoreError, ValueError) as e:
        raise fail(str(e)) from None
    console = Console()
    for name, path in result.datasets.items():
        n = result.summary[f"{name}.n_samples"]
        console.print(f"[green]✓[/] {name:<11} {n:>6} samples  → {escape(str(path))}")
    if result.skipped:
        counts = Counter(f"{s.dataset}: {s.reason}" for s in result.skipped)
        console.print(f"[yellow]![/] skipped {len(result.skipped)}:")
        for what, n in sorted(counts.items()):
            console.print(f"    {escape(what)} ({n})")
        console.print(f"  every skipped item and why → {escape(str(reports))}/acquisition.json")
    for name, ids in sorted(result.not_downloaded.items()):
        console.print(
            f"[yellow]![/] {name}: {len(ids)} listed sample(s) not in the download (a partial "
            f"download?) → {escape(str(reports))}/{not_downloaded_file(name)}"
        )
    console.print(f"  quicklooks and summary → {escape(str(reports))}/")
