"""`s2ssl pretrain`: pre-train one method and export its encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from s2ssl.cli.common import DataOpt, ParamsOpt, fail, load_or_exit


def pretrain(
    method: Annotated[
        str,
        typer.Option(
            "--method", "-m", help="seco, moco, moco_tp, dense or cscl (see pretrain.methods)."
        ),
    ],
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/validated"),
    out: Annotated[
        Path,
        typer.Option(help="Models root: OUT/METHOD/encoder and OUT/METHOD/checkpoints."),
    ] = Path("models/pretrain"),
    reports: Annotated[
        Path, typer.Option(help="Reports root: REPORTS/METHOD/{metrics.json,history.csv}.")
    ] = Path("reports/pretrain"),
) -> None:
    """Pre-train one method and export its encoder (resumes from `last.ckpt` if present).

    Runs Lightning with the settings in the `pretrain` section of params.yaml, logs one MLflow
    run (experiment `pretrain`), selects the checkpoint by the online kNN probe and writes the
    encoder as a plain state_dict with meta.json.
    """
    from s2ssl.data.store import StoreError
    from s2ssl.ssl.pretrain import pretrain as run_pretrain

    cfg = load_or_exit(params)
    try:
        result = run_pretrain(cfg, method, data, out, reports, progress_bar=True)
    except (StoreError, ValueError) as e:
        raise fail(str(e)) from None
    if not result.metrics:  # a non-zero DDP rank: rank 0 reports
        return
    m = result.metrics
    Console().print(
        f"[green]✓[/] {escape(method)}: kNN probe {m['best_knn_acc']:.3f} (random init "
        f"{m['random_init_knn_acc']:.3f}, gain {m['knn_acc_gain']:+.3f}) at epoch "
        f"{int(m['best_epoch'])} of {int(m['epochs'])}, {m['samples_per_s']:.1f} samples/s"
        f"{' (resumed)' if result.resumed else ''}\n"
        f"  encoder → {escape(str(result.encoder_dir))}/  reports → "
        f"{escape(str(reports / method))}/"
    )
