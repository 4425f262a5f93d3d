"""`s2ssl register`, `s2ssl promote`, `s2ssl models`: the MLflow model registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from s2ssl.cli.common import ParamsOpt, fail, load_or_exit
from s2ssl.io import write_json_atomic

if TYPE_CHECKING:
    from s2ssl.config import Params


TaskOpt = Annotated[
    list[str] | None,
    typer.Option("--task", "-t", help="Only this task (repeatable; default: register.tasks)."),
]


def _tasks(cfg: Params, tasks: list[str] | None) -> list[str]:
    chosen = tasks or cfg.registered_tasks()
    unknown = sorted(set(chosen) - set(cfg.finetune.tasks))
    if unknown:
        raise fail(f"unknown task(s) {unknown}; fine-tuned tasks: {cfg.finetune.tasks}")
    return chosen


def register(
    params: ParamsOpt = Path("params.yaml"),
    models: Annotated[Path, typer.Option(help="Fine-tuned models root: MODELS/TASK/model.")] = Path(
        "models/finetune"
    ),
    lock: Annotated[Path, typer.Option(help="dvc.lock (lineage hashes).")] = Path("dvc.lock"),
    reports: Annotated[
        Path | None, typer.Option(help="Write REPORTS/registered.json here (DVC stage).")
    ] = None,
    task: TaskOpt = None,
) -> None:
    """Register each task's fine-tuned model in MLflow as `<prefix>-<task>` (alias `challenger`).

    Idempotent: a model whose hash is already registered is not registered again. Loads with
    `mlflow.pyfunc.load_model("models:/s2ssl-landcover@challenger")`."""
    from s2ssl.registry.registration import register_model

    cfg = load_or_exit(params)
    records = {}
    console = Console()
    for name in _tasks(cfg, task):
        try:
            reg = register_model(
                cfg.registry,
                name,
                models / name / "model",
                lock_file=lock,
                params={"register": cfg.registry.model_dump(mode="json")},
            )
        except ValueError as e:
            raise fail(str(e)) from None
        records[name] = reg.as_dict()
        what = "registered as new version" if reg.created else "already registered: version"
        console.print(f"[green]✓[/] {reg.name}: {what} {reg.version} (hash {reg.model_hash[:12]})")
    if reports is not None:
        write_json_atomic(reports / "registered.json", {"tasks": records})


def promote(
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    version: Annotated[
        str | None, typer.Option(help="Consider this version instead of the challenger.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Skip the policy (e.g. roll back to --version).")
    ] = False,
    reports: Annotated[
        Path | None, typer.Option(help="Write REPORTS/decisions.json here (DVC stage).")
    ] = None,
) -> None:
    """Make the challenger `champion` if it beats the champion under `register.promote`.

    The decision and its reason are printed and recorded as tags on the version; a rejected
    challenger is not an error (exit code 0)."""
    from s2ssl.registry.promotion import promote as promote_model

    cfg = load_or_exit(params)
    chosen = _tasks(cfg, task)
    if (version is not None or force) and len(chosen) != 1:
        raise fail("--version / --force need exactly one --task")
    if force and version is None:
        raise fail("--force needs --version (the version to make champion)")
    decisions = {}
    console = Console()
    for name in chosen:
        try:
            result = promote_model(cfg.registry, name, version=version, force=force)
        except ValueError as e:
            raise fail(str(e)) from None
        decisions[name] = result.as_dict()
        mark = "[green]promoted[/]" if result.promoted else "[yellow]not promoted[/]"
        console.print(
            f"{result.model} v{result.candidate_version or '-'}: {mark} — "
            f"{escape(result.reason)} (champion: v{result.champion_version or '-'})"
        )
    if reports is not None:
        write_json_atomic(reports / "decisions.json", {"tasks": decisions})


def models(
    params: ParamsOpt = Path("params.yaml"),
    aliased: Annotated[
        bool, typer.Option("--aliased", help="Only versions with an alias (champion, challenger).")
    ] = False,
) -> None:
    """List the registered models: versions, aliases, test score, init and last decision."""
    from s2ssl.registry.listing import list_models
    from s2ssl.registry.versions import safe_uri
    from s2ssl.tracking.backend import tracking_uri

    cfg = load_or_exit(params)
    try:
        rows = list_models(cfg.registry.model_prefix)
    except ValueError as e:
        raise fail(str(e)) from None
    console = Console()
    if not rows:
        console.print(
            f"no registered models named {cfg.registry.model_prefix}-* at "
            f"{escape(safe_uri(tracking_uri()))}; run `dvc repro` (register + promote stages)"
        )
        return
    table = Table(title="registered models", box=box.SIMPLE_HEAD)
    for col in ("model", "v", "aliases", "test score", "init", "decision"):
        table.add_column(col, no_wrap=True)
    reasons = []
    for row in rows:
        if aliased and not row.aliases:
            continue
        score = "-" if row.value is None else f"{row.value:.3f} {row.metric}"
        table.add_row(
            row.model, row.version, ", ".join(row.aliases), score, row.init, row.decision or "-"
        )
        if row.reason:
            reasons.append(
                f"{row.model} v{row.version} ({row.created}) {row.decision}: {row.reason}"
            )
    console.print(table)
    for line in reasons:
        console.print(escape(line), highlight=False)
