"""The ``s2ssl`` command line: one thin sub-command per pipeline stage, plus inspection helpers.

Start-up stays fast: heavy libraries (numpy, torch, matplotlib, ...) are imported inside commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from s2ssl.taskspec import task_spec

if TYPE_CHECKING:
    from s2ssl.config import Params

app = typer.Typer(
    name="s2ssl",
    help=(
        "Contrastive pre-training of Sentinel-2 models (SeCo, Embedding Earth, CSCL).\n\n"
        "Each pipeline stage is a sub-command; `dvc repro` runs them in order with the settings "
        "in params.yaml."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

ParamsOpt = Annotated[
    Path, typer.Option("--params", "-p", help="params.yaml to read (validated before any work).")
]
DataOpt = Annotated[Path, typer.Option(help="Directory holding the validated datasets.")]
PretrainedOpt = Annotated[Path, typer.Option(help="Exported encoders: PRETRAINED/METHOD/encoder.")]


EX_TEMPFAIL = 75
"""Exit code of a transient failure (sysexits.h ``EX_TEMPFAIL``: network, HTTP 429 / 5xx that
outlasted the retries): the same command may succeed later, so orchestrators retry it. Other
failures exit 1 (unusable data) or 2 (bad params, a permanent error)."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code=code)


def _load(params: Path) -> Params:
    from s2ssl.config import ConfigError, load_params

    try:
        return load_params(params)
    except ConfigError as e:
        raise _fail(str(e)) from None


@app.command()
def fetch(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[
        Path, typer.Option(help="Directory that receives one dataset per name in fetch.datasets.")
    ] = Path("data/raw"),
    reports: Annotated[
        Path, typer.Option(help="Directory for quicklook PNGs and summary.json (DVC metrics).")
    ] = Path("reports/fetch"),
) -> None:
    """Build the raw datasets (unlabelled, landcover, croptype) from `fetch.source`.

    The default source is the embedded synthetic Sentinel-2 world: offline and deterministic.
    `sentinelhub` downloads real imagery (credentials from SH_CLIENT_ID / SH_CLIENT_SECRET in
    the environment or .env; cached, resumable), `local` imports your GeoTIFFs.
    Each dataset is written atomically: if this fails, the previous one stays intact.

    Exit codes: 0 done; 75 (EX_TEMPFAIL) a transient failure — network or connection problems,
    HTTP 429 / 5xx that outlasted the retries — worth retrying later; 2 anything else (bad
    params, credentials, a request the service refuses).
    """
    from rich.console import Console
    from rich.markup import escape

    from s2ssl.data.fetch import fetch as run_fetch
    from s2ssl.data.sources.retry import RetriesExhaustedError, TransientError
    from s2ssl.data.store import StoreError
    from s2ssl.progress import progress_bar

    cfg = _load(params)
    try:
        result = run_fetch(cfg, out, reports, progress=progress_bar)
    except (TransientError, RetriesExhaustedError, ConnectionError, TimeoutError) as e:
        raise _fail(f"transient failure, try again later: {e}", code=EX_TEMPFAIL) from None
    except (StoreError, ValueError) as e:
        raise _fail(str(e)) from None
    console = Console()
    for name, path in result.datasets.items():
        n = result.summary[f"{name}.n_samples"]
        console.print(f"[green]✓[/] {name:<11} {n:>6} samples  → {escape(str(path))}")
    if result.skipped:
        from collections import Counter

        counts = Counter(f"{s.dataset}: {s.reason}" for s in result.skipped)
        console.print(f"[yellow]![/] skipped {len(result.skipped)}:")
        for what, n in sorted(counts.items()):
            console.print(f"    {escape(what)} ({n})")
        console.print(f"  every skipped item and why → {escape(str(reports))}/acquisition.json")
    console.print(f"  quicklooks and summary → {escape(str(reports))}/")


@app.command()
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
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from s2ssl.data.store import StoreError
    from s2ssl.progress import progress_bar
    from s2ssl.validation.validate import ValidationFailedError, top_reasons
    from s2ssl.validation.validate import validate as run_validate

    cfg = _load(params)
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
        raise _fail(str(e)) from None
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


@app.command()
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
    from rich.console import Console
    from rich.markup import escape

    from s2ssl.data.store import StoreError
    from s2ssl.ssl.pretrain import pretrain as run_pretrain

    cfg = _load(params)
    try:
        result = run_pretrain(cfg, method, data, out, reports, progress_bar=True)
    except (StoreError, ValueError) as e:
        raise _fail(str(e)) from None
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


@app.command()
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
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from s2ssl.data.store import StoreError
    from s2ssl.finetune.run import run_finetune
    from s2ssl.progress import progress_bar

    cfg = _load(params)
    try:
        result = run_finetune(
            cfg, task, data, pretrained, out, reports, progress=progress_bar, track=not no_tracking
        )
    except (StoreError, ValueError) as e:
        raise _fail(str(e)) from None
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


@app.command()
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
    """Compare every init with random init: metrics.json, plots, figures and report.md."""
    from rich.console import Console
    from rich.markup import escape

    from s2ssl.evaluation.report import write_evaluation

    cfg = _load(params)
    try:
        result = write_evaluation(cfg, runs, data, out)
    except ValueError as e:
        raise _fail(str(e)) from None
    Console().print(
        f"[green]✓[/] {result.n_runs} runs of {len(result.tasks)} task(s) evaluated\n"
        f"  report → {escape(str(result.report))}\n  metrics → {escape(str(result.metrics))}"
    )


TaskOpt = Annotated[
    list[str] | None,
    typer.Option("--task", "-t", help="Only this task (repeatable; default: register.tasks)."),
]


def _tasks(cfg: Params, tasks: list[str] | None) -> list[str]:
    chosen = tasks or cfg.registered_tasks()
    unknown = sorted(set(chosen) - set(cfg.finetune.tasks))
    if unknown:
        raise _fail(f"unknown task(s) {unknown}; fine-tuned tasks: {cfg.finetune.tasks}")
    return chosen


@app.command()
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
    from rich.console import Console

    from s2ssl.io import write_json_atomic
    from s2ssl.tracking.registry import register_model

    cfg = _load(params)
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
            raise _fail(str(e)) from None
        records[name] = reg.as_dict()
        what = "registered as new version" if reg.created else "already registered: version"
        console.print(f"[green]✓[/] {reg.name}: {what} {reg.version} (hash {reg.model_hash[:12]})")
    if reports is not None:
        write_json_atomic(reports / "registered.json", {"tasks": records})


@app.command()
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
    from rich.console import Console
    from rich.markup import escape

    from s2ssl.io import write_json_atomic
    from s2ssl.tracking.registry import promote as promote_model

    cfg = _load(params)
    chosen = _tasks(cfg, task)
    if (version is not None or force) and len(chosen) != 1:
        raise _fail("--version / --force need exactly one --task")
    if force and version is None:
        raise _fail("--force needs --version (the version to make champion)")
    decisions = {}
    console = Console()
    for name in chosen:
        try:
            result = promote_model(cfg.registry, name, version=version, force=force)
        except ValueError as e:
            raise _fail(str(e)) from None
        decisions[name] = result.as_dict()
        mark = "[green]promoted[/]" if result.promoted else "[yellow]not promoted[/]"
        console.print(
            f"{result.model} v{result.candidate_version or '-'}: {mark} — "
            f"{escape(result.reason)} (champion: v{result.champion_version or '-'})"
        )
    if reports is not None:
        write_json_atomic(reports / "decisions.json", {"tasks": decisions})


@app.command()
def models(
    params: ParamsOpt = Path("params.yaml"),
    aliased: Annotated[
        bool, typer.Option("--aliased", help="Only versions with an alias (champion, challenger).")
    ] = False,
) -> None:
    """List the registered models: versions, aliases, test score, init and last decision."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from s2ssl.tracking.registry import list_models, safe_uri
    from s2ssl.tracking.runs import tracking_uri

    cfg = _load(params)
    try:
        rows = list_models(cfg.registry.model_prefix)
    except ValueError as e:
        raise _fail(str(e)) from None
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


tune_app = typer.Typer(
    help=(
        "Optuna sweep of the `tune` section: `s2ssl tune` runs or resumes it (the DVC stage in "
        "tune/dvc.yaml), `s2ssl tune apply` writes its best values into params.yaml."
    ),
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)
app.add_typer(tune_app, name="tune")


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
    from rich.console import Console
    from rich.markup import escape

    from s2ssl.data.store import StoreError
    from s2ssl.progress import progress_bar
    from s2ssl.tuning import TrialSummary, run_study

    cfg = _load(params)
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
        raise _fail(str(e)) from None
    if result.interrupted:
        console.print(
            f"[yellow]![/] trial(s) {result.interrupted} were interrupted by a previous run: "
            f"marked failed, their values retried"
        )
    best = result.best
    if best is None:  # pragma: no cover - run_study raises first
        raise _fail("no trial completed")
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
    from rich.console import Console
    from rich.markup import escape

    from s2ssl.config import ConfigError
    from s2ssl.tuning import apply_best_params

    try:
        changes = apply_best_params(best, params, dry_run=dry_run)
    except (ConfigError, ValueError) as e:
        raise _fail(str(e)) from None
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


@app.command()
def predict(
    source: Annotated[
        Path | None,
        typer.Argument(
            help="A GeoTIFF, a folder of GeoTIFFs, or a dataset in the store (or use --area)."
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="An MLflow model URI (models:/NAME@alias, models:/NAME/3, runs:/...) or a "
            "fine-tuned model directory (models/finetune/landcover/model).",
        ),
    ] = "models:/s2ssl-landcover@champion",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("predictions"),
    area: Annotated[
        str | None,
        typer.Option(
            help="Instead of SOURCE: fetch the area LON_MIN,LAT_MIN,LON_MAX,LAT_MAX (WGS84 "
            "degrees) through fetch.source of --params (synthetic or sentinelhub) into "
            "OUT/scene.tif, then map it. Needs --date.",
            rich_help_panel="Fetch an area",
        ),
    ] = None,
    date: Annotated[
        str | None,
        typer.Option(
            help="With --area: the date YYYY-MM-DD (Sentinel Hub: the centre of the search "
            "window; the least cloudy acquisition in it is used).",
            rich_help_panel="Fetch an area",
        ),
    ] = None,
    params: Annotated[
        Path,
        typer.Option(
            "--params",
            "-p",
            help="With --area: params.yaml giving fetch.source and its settings.",
            rich_help_panel="Fetch an area",
        ),
    ] = Path("params.yaml"),
    window_days: Annotated[
        float | None,
        typer.Option(
            help="With --area, Sentinel Hub: search ± this many days around --date (default: "
            "fetch.sentinelhub.landcover.window_days).",
            rich_help_panel="Fetch an area",
        ),
    ] = None,
    max_cloud: Annotated[
        float | None,
        typer.Option(
            help="With --area, Sentinel Hub: scene cloud filter as a fraction, e.g. 0.3 (default: "
            "fetch.sentinelhub.max_cloud_coverage).",
            rich_help_panel="Fetch an area",
        ),
    ] = None,
    closest: Annotated[
        bool,
        typer.Option(
            "--closest",
            help="With --area, Sentinel Hub: use the acquisition closest to --date instead of "
            "the least cloudy one of the window.",
            rich_help_panel="Fetch an area",
        ),
    ] = False,
    tile_size: Annotated[int, typer.Option(help="Tile edge in pixels (multiple of 32).")] = 256,
    overlap: Annotated[
        int | None, typer.Option(help="Tile overlap in pixels (default: a quarter tile).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Tiles per forward pass.")] = 8,
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Also write per-class probabilities.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = "auto",
) -> None:
    """Turn a fine-tuned segmentation model into maps: a class COG (colour table and class names
    embedded), a quicklook PNG with a legend and the class areas in hectares (areas.json).

    Give SOURCE (your imagery), or `--area LON_MIN,LAT_MIN,LON_MAX,LAT_MAX --date YYYY-MM-DD` to
    fetch one scene through `fetch.source` of `--params` first: `synthetic` renders the synthetic
    world's region containing the area (at most 2048 px a side), `sentinelhub` downloads the
    least cloudy acquisition within the search window (at most 2500 px = 25 km a side;
    credentials from SH_CLIENT_ID / SH_CLIENT_SECRET). The scene lands in OUT/scene.tif with
    OUT/scene.json (what was used), the maps beside it."""
    from rich.console import Console
    from rich.markup import escape

    from s2ssl.data.store import StoreError, open_dataset
    from s2ssl.inference.predict import predict_raster, predict_rasters, predict_store
    from s2ssl.inference.segmenter import check_segmenter, segmenter_from_model
    from s2ssl.progress import progress_bar
    from s2ssl.tracking.registry import resolve_model

    if (source is None) == (area is None):
        raise _fail(
            "give exactly one input: SOURCE (a GeoTIFF, a folder of them or a store dataset) or "
            "--area LON_MIN,LAT_MIN,LON_MAX,LAT_MAX with --date YYYY-MM-DD"
        )
    fetch_opts = {
        "--date": date,
        "--window-days": window_days,
        "--max-cloud": max_cloud,
        "--closest": closest or None,
    }
    if area is None and any(v is not None for v in fetch_opts.values()):
        used = [k for k, v in fetch_opts.items() if v is not None]
        raise _fail(f"{', '.join(used)} only go with --area (they select what to fetch)")
    cfg = None
    if area is not None:
        from s2ssl.data.acquire import check_fetchable, parse_area, parse_date

        if date is None:
            raise _fail("--area needs --date YYYY-MM-DD (the acquisition date)")
        try:
            bbox, day = parse_area(area), parse_date(date)
        except ValueError as e:
            raise _fail(str(e)) from None
        cfg = _load(params)
        try:
            check_fetchable(cfg)  # before resolving the model
        except ValueError as e:
            raise _fail(str(e)) from None
    options = {
        "overlap": overlap,
        "batch_size": batch_size,
        "probabilities": probabilities,
        "device": None if device == "auto" else device,
        "progress": progress_bar,
    }
    console = Console()
    try:
        with resolve_model(model) as model_dir:
            segmenter = segmenter_from_model(model_dir, tile_size)
        if cfg is not None:
            from s2ssl.data.acquire import acquire_scene, read_acquisition

            if check_segmenter(segmenter).n_dates > 1:  # before spending any request
                raise ValueError(
                    "the model is a time-series model but --area fetches one date; map a "
                    "time-series dataset of the store instead (s2ssl predict data/raw/croptype)"
                )
            scene = acquire_scene(
                cfg,
                bbox,
                day,
                out,
                window_days=window_days,
                max_cloud_coverage=max_cloud,
                pick="closest" if closest else "least_cloudy",
                progress=progress_bar,
            )
            console.print(_acquired(read_acquisition(scene), scene))
            result = predict_raster(segmenter, scene, out, **options)
            n, seconds = 1, result.seconds
        else:
            assert source is not None
            try:
                store = open_dataset(source) if source.is_dir() else None
            except StoreError:
                store = None
            if store is not None:
                stored = predict_store(segmenter, store, out, **options)
                n, seconds = len(stored.results), stored.seconds
            else:
                results = predict_rasters(segmenter, source, out, **options)
                n, seconds = len(results), sum(r.seconds for r in results)
    except (StoreError, ValueError, OSError) as e:
        raise _fail(str(e)) from None
    console.print(
        f"[green]✓[/] {n} map(s) in {seconds:.1f} s → {escape(str(out))}/ "
        "(classes*.tif open in QGIS; quicklook*.png; areas.json)"
    )


def _acquired(info: dict[str, Any], path: Path) -> str:
    """One line saying which scene was fetched (rich markup)."""
    from rich.markup import escape

    acq, grid = info["acquisition"], info["grid"]
    size = f"{grid['width']} x {grid['height']} px, {grid['crs']}"
    if info["source"] == "sentinelhub":
        what = (
            f"{acq['product_id']} of {acq['date']} (cloud cover {acq['cloud_cover_percent']:g} %, "
            f"{acq['days_from_requested']:+d} days{', from cache' if info['from_cache'] else ''})"
        )
    else:
        cloud = 100 * acq["cloud_fraction"]
        what = f"synthetic {acq['region']} on {acq['date']} (cloud {cloud:.1f} %)"
    return f"[green]✓[/] scene {escape(what)}, {size} → {escape(str(path))}"


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="A dataset directory, e.g. data/raw/landcover.")],
) -> None:
    """Describe a dataset in the store: arrays, sample counts per split and region, dates."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from s2ssl.data.store import StoreError, open_dataset

    try:
        ds = open_dataset(path)
    except StoreError as e:
        raise _fail(str(e)) from None
    console = Console()
    arrays = Table(title=f"{escape(str(path))} — {len(ds)} samples")
    for col in ("array", "dtype", "per-sample shape"):
        arrays.add_column(col)
    for name, spec in ds.specs.items():
        arrays.add_row(name, spec.dtype, " × ".join(map(str, spec.shape)))
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
        dates = sorted(d for ds_dates in idx["dates"] for d in ds_dates)
        console.print(f"acquisitions: {len(dates)} from {dates[0]} to {dates[-1]}")


@app.command("check-params")
def check_params(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate params.yaml and print the resolved configuration."""
    from rich.console import Console

    cfg = _load(params)
    Console().print_json(
        cfg.model_dump_json(by_alias=True, exclude={"fetch": {"synthetic": {"regions"}}})
    )
    Console().print(f"[green]✓[/] {params} is valid ({len(cfg.fetch.synthetic.regions)} regions)")


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        from s2ssl import __version__

        typer.echo(f"s2ssl {__version__}")
        raise typer.Exit()


if __name__ == "__main__":  # pragma: no cover
    app()
