"""`s2ssl tune` (run or resume the Optuna sweep) and `s2ssl tune apply`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from s2ssl.cli.common import DataOpt, ParamsOpt, PretrainedOpt, fail, load_or_exit
from s2ssl.progress import progress_bar
from s2ssl.taskspec import task_spec

tune_app = typer.Typer(
    help=(
        "Optuna sweep of the `tune` section: `s2ssl tune` runs or resumes it (the DVC stage in "
        "tune/dvc.yaml), `s2ssl tune apply` writes its best values into params.yaml."
    ),
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)


@tune_app.callback(invoke_without_command=True)
def tune(
    ctx: typer.Context,
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/validated"),
    pretrained: PretrainedOpt = Path("models/pretrain"),
    out: Annotated[
        Path, typer.Option(help="The study's directory: OUT/study.db (resumable) and its lock.")
    ] = Path("models/tune"),
    reports: Annotated[
        Path,
        typer.Option(help="best_params.yaml, metrics.json, trials.csv, plots (PNG and html/)."),
    ] = Path("reports/tune"),
    n_trials: Annotated[
        int | None,
        typer.Option(min=1, help="Finished trials the study should hold (default: tune.n_trials)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(min=0, help="No new trial after this many seconds (default: tune.timeout_s)."),
    ] = None,
    no_tracking: Annotated[
        bool, typer.Option("--no-tracking", help="Do not log to MLflow.")
    ] = False,
) -> None:
    """Run or resume the Optuna sweep of the `tune` section.

    Each trial fine-tunes `tune.init` on `tune.fraction` of `tune.task`'s train split with
    values drawn from `tune.space` (TPE; median pruner) and is scored on the validation split.
    The study is stored in `<out>/study.db`: a killed sweep resumes where it stopped, trials
    already finished are never repeated. Results go to `<reports>/`.
    """
    if ctx.invoked_subcommand is not None:
        return

    from s2ssl.data.store import StoreError
    from s2ssl.tuning import TrialSummary, run_study

    cfg = load_or_exit(params)
    console = Console()
    metric = f"val {task_spec(cfg.tune.task).headline_label}"

    def show(t: TrialSummary) -> None:
        colour = {"COMPLETE": "green", "PRUNED": "yellow"}.get(t.state, "red")
        value = "-" if t.value is None else f"{t.value:.4f}"
        at = f" at step {t.last_step}" if t.state == "PRUNED" else ""
        prefix = f"finetune.{cfg.tune.task}."
        values = "  ".join(
            f"{k.removeprefix(prefix)}={v:.3g}"
            if isinstance(v, float)
            else f"{k.removeprefix(prefix)}={v}"
            for k, v in t.params.items()
        )
        seconds = "" if t.seconds is None else f"  {t.seconds:.0f} s"
        note = f"  ({escape(t.note)})" if t.note else ""
        console.print(
            f"trial {t.number:>3} [{colour}]{t.state.lower():<8}[/]{at} {metric} {value}  "
            f"{escape(values)}{seconds}{note}",
            highlight=False,
            soft_wrap=True,
        )

    try:
        result = run_study(
            cfg,
            data,
            pretrained,
            out,
            reports,
            n_trials=n_trials,
            timeout_s=timeout,
            progress=progress_bar,
            on_trial=show,
            track=not no_tracking,
        )
    except (StoreError, ValueError) as e:
        raise fail(str(e)) from None
    if result.interrupted:
        console.print(
            f"[yellow]![/] trial(s) {result.interrupted} were interrupted by a previous run: "
            f"marked failed, their values retried"
        )
    best = result.best
    if best is None:  # pragma: no cover - run_study raises first
        raise fail("no trial completed")
    baseline = (
        f" (baseline {result.baseline.value:.4f})"
        if result.baseline is not None and result.baseline.value is not None
        else ""
    )
    stop = " — stopped by the timeout" if result.timed_out else ""
    console.print(
        f"[green]✓[/] study {escape(result.study_name)}: {result.n_finished} finished trial(s), "
        f"{len(result.executed)} run now{stop}; best trial {best.number}: {metric} "
        f"{best.value:.4f}{baseline}\n"
        f"  study → {escape(str(result.storage))}  reports → {escape(str(reports))}/\n"
        f"  apply the best values: s2ssl tune apply"
    )


@tune_app.command("apply")
def tune_apply(
    best: Annotated[Path, typer.Option(help="best_params.yaml written by the sweep.")] = Path(
        "reports/tune/best_params.yaml"
    ),
    params: ParamsOpt = Path("params.yaml"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the changes without writing them.")
    ] = False,
) -> None:
    """Write the sweep's best values into params.yaml (comments and layout kept).

    Prints every changed key as old → new. Refuses (and writes nothing) if the best-params
    file is missing, a key does not exist in params.yaml, or the result does not validate.
    """
    from s2ssl.config import ConfigError
    from s2ssl.tuning import apply_best_params

    try:
        changes = apply_best_params(best, params, dry_run=dry_run)
    except (ConfigError, ValueError) as e:
        raise fail(str(e)) from None
    console = Console()
    if not changes:
        console.print(f"[green]✓[/] {escape(str(params))} already has the best values")
        return
    for c in changes:
        console.print(f"  {escape(c.key)}: {escape(repr(c.old))} → {escape(repr(c.new))}")
    verb = "would change" if dry_run else "changed"
    console.print(f"[green]✓[/] {verb} {len(changes)} key(s) in {escape(str(params))}")
    if not dry_run:
        console.print("  `dvc repro` now re-runs the stages that read them (e.g. finetune)")
