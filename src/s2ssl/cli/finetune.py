"""`s2ssl finetune`: the fine-tuning grid of one downstream task."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from s2ssl.cli.common import DataOpt, ParamsOpt, PretrainedOpt, fail, load_or_exit
from s2ssl.progress import progress_bar
from s2ssl.taskspec import task_spec


def finetune(
    task: Annotated[
        str, typer.Option("--task", "-t", help="landcover, croptype or scene (finetune.tasks).")
    ],
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/validated"),
    pretrained: PretrainedOpt = Path("models/pretrain"),
    out: Annotated[
        Path, typer.Option(help="Models root: OUT/TASK/model (the selected model).")
    ] = Path("models/finetune"),
    reports: Annotated[
        Path, typer.Option(help="Reports root: REPORTS/TASK/runs/RUN.json per run.")
    ] = Path("reports/finetune"),
    no_tracking: Annotated[
        bool, typer.Option("--no-tracking", help="Do not log to MLflow.")
    ] = False,
) -> None:
    """Fine-tune / evaluate every init x label fraction of one downstream task.

    Runs the init x protocol x label-fraction x setting (in-domain, region transfer) grid of the
    task's `finetune` section. Each run trains on its fraction of the train split, selects its
    state on val and is scored once on test; its result goes to `<reports>/<task>/runs/`. Runs
    whose result is up to date are skipped (a killed stage resumes). The best in-domain run at
    the largest fraction is exported to `<out>/<task>/model`.
    """
    from s2ssl.data.store import StoreError
    from s2ssl.finetune.run import run_finetune

    cfg = load_or_exit(params)
    try:
        result = run_finetune(
            cfg, task, data, pretrained, out, reports, progress=progress_bar, track=not no_tracking
        )
    except (StoreError, ValueError) as e:
        raise fail(str(e)) from None
    table = Table(title=f"finetune {escape(task)}: test scores")
    for col in ("setting", "init", "protocol", "labels", "n", "val", "test", "s"):
        table.add_column(col, justify="right" if col in ("n", "val", "test", "s") else "left")
    for key, r in result.results.items():
        test = r["test"]
        headline = test[task_spec(task).headline]
        table.add_row(
            r["setting"],
            r["init"],
            r["protocol"],
            f"{r['fraction_label']} %",
            str(r["n_train"]),
            f"{r['val_score']:.3f}",
            f"{headline:.3f}",
            f"{r['wall_s']:.0f}" if key in result.executed else "reused",
        )
    console = Console()
    console.print(table)
    if result.model_dir is not None:
        console.print(
            f"[green]✓[/] {len(result.executed)} run(s) executed, {len(result.reused)} reused; "
            f"model {escape(str(result.selected))} → {escape(str(result.model_dir))}/"
        )
