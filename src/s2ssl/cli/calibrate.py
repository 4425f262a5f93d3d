"""`s2ssl calibrate`: random init and simple baselines on the downstream tasks, with targets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from s2ssl.cli.common import DataOpt, ParamsOpt, fail, load_or_exit
from s2ssl.progress import progress_bar
from s2ssl.taskspec import task_spec


def calibrate(
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/validated"),
    reports: Annotated[
        Path,
        typer.Option(
            help="Output directory: summary.json, report.md, curves.csv / .png, runs/KEY.json."
        ),
    ] = Path("reports/calibrate"),
) -> None:
    """Calibrate the downstream tasks with random init and simple baselines only.

    Never loads a pre-trained encoder. For each task of `calibrate.tasks`, fine-tunes random
    init at every `finetune.fractions` exactly as the finetune stage would (validation curves,
    best step, gain in the second half of the run; zero-shot on `holdout_region`), then fits
    scikit-learn baselines: per-pixel gradient boosting (landcover, croptype, and single dates
    against the stacked season) and per-tile logistic regression (scene). The numbers are
    checked against `calibrate.targets`; targets that are not met are reported, the exit code
    stays 0. Random-init runs whose stored record is up to date are reused (a killed run
    resumes). The DVC stage is `dvc repro calibrate/dvc.yaml`.
    """
    from s2ssl.calibration import run_calibration
    from s2ssl.data.store import StoreError

    cfg = load_or_exit(params)
    try:
        result = run_calibration(cfg, data, reports, progress=progress_bar)
    except (StoreError, ValueError) as e:
        raise fail(str(e)) from None

    console = Console()
    runs = Table(title="calibrate: random init (in domain, test)")
    for col in ("task", "labels", "n", "test", "best val", "best / last step", "2nd-half gain"):
        runs.add_column(col, justify="left" if col == "task" else "right")
    for key, r in result.records.items():
        gain = r.get("val_gain_second_half")
        runs.add_row(
            f"{r['task']} ({task_spec(r['task']).headline_label})",
            f"{r['fraction_label']} %",
            str(r["n_train"]),
            f"{r['test_score']:.3f}",
            f"{r['val_score']:.3f}",
            f"{r['best_step']} / {r['last_step']}",
            "–" if gain is None else f"{gain:+.3f}",
            style="dim" if key in result.reused else None,
        )
    console.print(runs)

    targets = Table(title="calibrate: targets")
    for col in ("target", "value", "", "threshold", "result"):
        targets.add_column(col, justify="left" if col in ("target", "result") else "right")
    sign = {">=": "≥", "<=": "≤", ">": ">"}
    for t in result.targets:
        verdict = "[green]met[/]" if t.met else "[bold red]NOT met[/]"
        targets.add_row(t.name, f"{t.value:.3f}", sign[t.comparison], f"{t.threshold:.3f}", verdict)
    console.print(targets)
    met = sum(t.met for t in result.targets)
    colour = "green" if met == len(result.targets) else "yellow"
    console.print(
        f"[{colour}]{met} of {len(result.targets)} target(s) met[/]; "
        f"{len(result.executed)} run(s) trained, {len(result.reused)} reused\n"
        f"  report → {escape(str(result.reports_dir / 'report.md'))}"
    )
