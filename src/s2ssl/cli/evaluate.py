"""`s2ssl evaluate`: compare every init with random init."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from s2ssl.cli.common import ParamsOpt, fail, load_or_exit


def evaluate(
    params: ParamsOpt = Path("params.yaml"),
    runs: Annotated[
        Path, typer.Option(help="Fine-tuning reports root: RUNS/TASK/runs/*.json.")
    ] = Path("reports/finetune"),
    data: Annotated[
        Path, typer.Option(help="Validated datasets (test images for the strips).")
    ] = Path("data/validated"),
    out: Annotated[Path, typer.Option(help="Where the report, metrics and figures go.")] = Path(
        "reports/evaluate"
    ),
) -> None:
    """Compare every init with random init over the paired replicates: gains with confidence
    intervals, the papers' claims as holds / refuted / inconclusive verdicts (rules fixed in
    advance), the A/A control, metrics.json, verdicts.json, plots, figures and report.md."""
    from s2ssl.evaluation.report import write_evaluation

    cfg = load_or_exit(params)
    try:
        result = write_evaluation(cfg, runs, data, out)
    except ValueError as e:
        raise fail(str(e)) from None
    console = Console()
    console.print(f"[green]✓[/] {result.n_runs} runs of {len(result.tasks)} task(s) evaluated")
    colour = {"holds": "green", "refuted": "red", "inconclusive": "yellow"}
    for claim in result.claims:
        verdict = claim.verdict or "not evaluated"
        console.print(
            f"  {escape(claim.name)}: [{colour.get(verdict, 'white')}]{verdict}[/]"
            + (f" — {escape(claim.note)}" if claim.note else "")
        )
    console.print(
        f"  report → {escape(str(result.report))}\n  metrics → {escape(str(result.metrics))}"
    )
