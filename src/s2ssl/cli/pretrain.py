"""`s2ssl pretrain`: pre-train one method (every replicate / label subset) and export its
encoders."""

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
            "--method",
            "-m",
            help="seco, moco, moco_tp, dense (pretrain.methods) or cscl (CSCL stage 1).",
        ),
    ],
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/validated"),
    out: Annotated[
        Path,
        typer.Option(help="Models root: OUT/METHOD/encoders/UNIT and OUT/METHOD/checkpoints."),
    ] = Path("models/pretrain"),
    reports: Annotated[
        Path, typer.Option(help="Reports root: REPORTS/METHOD/{metrics.json,history.csv}.")
    ] = Path("reports/pretrain"),
) -> None:
    """Pre-train one method once per replicate (evaluate.replicates) and export each encoder.

    Runs Lightning with the settings in the `pretrain` section of params.yaml, one MLflow run
    per unit (experiment `pretrain`), and exports the last epoch's encoder of every unit as a
    plain state_dict with meta.json (the online kNN probe is a monitor; it never selects a
    checkpoint). CSCL stage 1 trains one unit per replicate and label subset of the fine-tuning
    runs it feeds. An interrupted run resumes (finished units are kept, the running one
    continues from its last.ckpt).
    """
    from s2ssl.data.store import StoreError
    from s2ssl.ssl.stage import pretrain as run_pretrain

    cfg = load_or_exit(params)
    try:
        result = run_pretrain(cfg, method, data, out, reports, progress_bar=True)
    except (StoreError, ValueError) as e:
        raise fail(str(e)) from None
    if not result.metrics:  # a non-zero DDP rank: rank 0 reports
        return
    m = result.metrics
    Console().print(
        f"[green]✓[/] {escape(method)}: {int(m['units'])} run(s), mean final kNN probe "
        f"{m['final_knn_acc']:.3f} (random init {m['random_init_knn_acc']:.3f}, gain "
        f"{m['knn_acc_gain']:+.3f}), {m['samples_per_s']:.1f} samples/s, "
        f"{m['fit_wall_s']:.0f} s{' (resumed)' if result.resumed else ''}\n"
        f"  encoders → {escape(str(out / method / 'encoders'))}/  reports → "
        f"{escape(str(reports / method))}/"
    )
