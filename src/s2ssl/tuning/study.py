"""The Optuna sweep of the ``tune`` stage: a resumable study of short fine-tuning runs.

Each trial applies its sampled values (``tune.space``) and ``tune.fixed`` as overrides to a
validated copy of the params, fine-tunes ``tune.init`` on ``tune.fraction`` of ``tune.task``'s
train split with the fine-tuning stage's own code (:func:`s2ssl.finetune.fitting.fit_run`, same
seed as that stage's run of the same init and fraction) and returns the best **validation**
score (mIoU, or balanced accuracy for scenes); the test split is never read. The TPE sampler
proposes values, the median pruner stops trials whose validation score at an optimiser step falls
below the median of earlier trials at that step (:class:`~s2ssl.tuning.pruning.PruningCallback`).

**Storage and identity.** The study lives in a sqlite database (``<out>/study.db``, a DVC
``persist`` output). Its Optuna name is ``<tune.study_name>-<fingerprint>``: the fingerprint
covers everything a trial's score depends on (the search space, fixed values, pruner and
sampler settings, the task's other fine-tuning settings, seeds, the validated data and the
encoder weights), so changed settings start a new study beside the old one, and restoring them
resumes the old one. The current values of the searched keys are not part of it, so
``s2ssl tune apply`` does not start a new study.

**Resume semantics.** ``tune.n_trials`` is the number of *finished* trials the study should
hold: completed, pruned, or failed inside the trial (a non-finite loss, an invalid combination
of values). Running the stage again only adds the missing ones, so a killed sweep continues
where it stopped and a finished one is a no-op. One process at a time works on a database (an
exclusive lock file beside it); so at start-up a trial still marked ``RUNNING`` belongs to a
process that died: it is marked ``FAIL`` (user attribute ``interrupted``) and its parameters are
enqueued again (``retry_of``), as are trials that failed on an error that stopped the sweep.
The sampler is re-seeded before each trial from ``(seed, number of finished trials)``, so a
resumed sweep proposes what an uninterrupted one would have (given deterministic training).

**MLflow.** One parent run (experiment ``tune``, :func:`~s2ssl.tracking.stage_run`, lineage
tags) per execution of the sweep — a resumed sweep gets a new parent run, since the code and
data it runs with are what the lineage tags describe; parents left ``RUNNING`` by a killed
execution are ended as ``KILLED`` on resume. One nested run per trial, created when the trial
has finished: its values (full dotted keys), state, value and validation curve.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch

from s2ssl.config import RANDOM_INITS, Params
from s2ssl.finetune.data import load_task_data
from s2ssl.finetune.inits import encoder_path
from s2ssl.finetune.plan import RunSpec, encoder_unit
from s2ssl.finetune.store import encoder_sha256
from s2ssl.progress import ProgressFactory, no_progress
from s2ssl.taskspec import task_spec
from s2ssl.tracking import hash_input, log_metrics, stage_run
from s2ssl.tracking.runs import end_stale_runs
from s2ssl.training.runtime import quiet_lightning
from s2ssl.tuning.objective import EXPERIMENT, TrialTracker, make_objective
from s2ssl.tuning.reports import write_reports
from s2ssl.tuning.storage import (
    STUDY_DB,
    enqueue_retries,
    make_sampler,
    open_study,
    optuna_name,
    recover_interrupted,
    sqlite_storage,
    study_fingerprint,
    study_lock,
)
from s2ssl.tuning.trials import TrialSummary, is_finished, summarize

__all__ = ["TuneResult", "run_study"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneResult:
    """What :func:`run_study` did and where the results are."""

    study_name: str
    storage: Path
    n_finished: int
    executed: list[TrialSummary]
    interrupted: list[int]
    retried: list[int]
    best: TrialSummary | None
    baseline: TrialSummary | None
    timed_out: bool
    reports: dict[str, Path] = field(default_factory=dict)


def _inputs(params: Params, data_dir: Path, models_dir: Path) -> dict[str, Path]:
    cfg = params.tune
    dataset = data_dir / task_spec(cfg.task).dataset
    if not dataset.exists():
        raise ValueError(
            f"validated dataset {dataset} not found; run `dvc repro validate` (or s2ssl validate)"
        )
    inputs = {dataset.name: dataset}
    if cfg.init not in RANDOM_INITS:
        spec = RunSpec(cfg.task, "in_domain", cfg.init, "finetune", cfg.fraction)
        encoder = encoder_path(models_dir, cfg.init, encoder_unit(spec))
        if not (encoder / "weights.pt").is_file():
            raise ValueError(
                f"tune.init is {cfg.init!r} but no pre-trained encoder exists at {encoder}; run "
                f"`dvc repro pretrain@{cfg.init}` or choose another tune.init"
            )
        inputs["encoder"] = encoder
    return inputs


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's per-trial INFO lines and Lightning's per-fit INFO lines (devices, "stopped")
    off: the sweep prints one line per trial itself."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loggers = [
        logging.getLogger(name)
        for name in (
            "lightning.pytorch.utilities.rank_zero",
            "lightning.fabric.utilities.rank_zero",
        )
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_study(
    params: Params,
    data_dir: str | Path,
    pretrain_dir: str | Path,
    out_dir: str | Path,
    reports_dir: str | Path,
    *,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    progress: ProgressFactory = no_progress,
    on_trial: Callable[[TrialSummary], None] | None = None,
    track: bool = True,
    tracking_uri: str | None = None,
) -> TuneResult:
    """Run (or resume) the sweep of ``params.tune`` until the study holds ``n_trials`` finished
    trials, then write the reports (:func:`s2ssl.tuning.reports.write_reports`).

    Args:
        params: the validated params (``tune`` section and the fine-tuning settings).
        data_dir: validated datasets (``data/validated``).
        pretrain_dir: exported encoders (``models/pretrain``), for a pre-trained ``tune.init``.
        out_dir: the study's directory (``models/tune``): ``study.db`` and its lock.
        reports_dir: ``best_params.yaml``, ``metrics.json``, ``trials.csv``, plots.
        n_trials: overrides ``tune.n_trials`` (finished trials the study should hold).
        timeout_s: overrides ``tune.timeout_s`` (no new trial after this long; reports are
            still written).
        progress: progress factory (one step per finished trial).
        on_trial: called with each trial this execution finishes.
        track: log to MLflow (experiment ``tune``).
        tracking_uri: MLflow URI (default: ``MLFLOW_TRACKING_URI`` / the project's).

    Raises:
        ValueError: missing data or encoder, another sweep holding the database, or no trial
            completed (nothing to call best).
    """
    cfg = params.tune
    target = cfg.n_trials if n_trials is None else int(n_trials)
    if target < 1:
        raise ValueError(f"n_trials must be >= 1, got {target}")
    timeout = cfg.timeout_s if timeout_s is None else float(timeout_s)
    data_dir, models_dir, out = Path(data_dir), Path(pretrain_dir), Path(out_dir)
    inputs = _inputs(params, data_dir, models_dir)
    dataset = inputs[next(iter(inputs))]
    fingerprint = study_fingerprint(
        params,
        hash_input(dataset),
        encoder_sha256(
            models_dir, RunSpec(cfg.task, "in_domain", cfg.init, "finetune", cfg.fraction)
        ),
    )
    name = optuna_name(params, fingerprint)
    db_path = out / STUDY_DB
    started = time.monotonic()
    executed: list[TrialSummary] = []
    timed_out = False
    with ExitStack() as stack:
        stack.enter_context(study_lock(db_path))
        stack.enter_context(_quiet())
        storage = sqlite_storage(db_path)
        interrupted = recover_interrupted(storage, name)
        study = open_study(params, db_path, fingerprint)
        retried = enqueue_retries(study, params)
        n_done = sum(is_finished(t) for t in study.get_trials(deepcopy=False))
        tracker = TrialTracker(track, name)
        if track:
            end_stale_runs(EXPERIMENT, {"optuna.study": name}, uri=tracking_uri)
            stack.enter_context(
                stage_run(
                    EXPERIMENT,
                    name,
                    stage="tune",
                    params={
                        "seed": params.seed,
                        "holdout_region": params.holdout_region,
                        "tune": cfg.model_dump(mode="json"),
                        f"finetune.{cfg.task}": params.finetune.task_config(cfg.task).model_dump(
                            mode="json"
                        ),
                    },
                    inputs=inputs,
                    tags={
                        "optuna.study": name,
                        "optuna.fingerprint": fingerprint,
                        "s2ssl.task": cfg.task,
                        "s2ssl.init": cfg.init,
                    },
                    uri=tracking_uri,
                )
            )
        if n_done < target:
            if params.finetune.torch_threads is not None:
                torch.set_num_threads(params.finetune.torch_threads)
            data = load_task_data(
                cfg.task,
                data_dir,
                "in_domain",
                params.holdout_region,
                scene_tile=(
                    params.finetune.scene.tile_size if task_spec(cfg.task).is_scene_level else None
                ),
            )
            objective = make_objective(params, data, models_dir, tracker=tracker)
            stack.enter_context(quiet_lightning())

            def finished(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                summary = summarize(trial, params)
                executed.append(summary)
                if on_trial is not None:
                    on_trial(summary)

            with progress(f"tune {cfg.study_name}", target) as advance:
                advance(n_done)
                while n_done < target:
                    if timeout is not None and time.monotonic() - started >= timeout:
                        timed_out = True
                        break
                    study.sampler = make_sampler(params, n_done)
                    study.optimize(objective, n_trials=1, callbacks=[finished])
                    now_done = sum(is_finished(t) for t in study.get_trials(deepcopy=False))
                    advance(now_done - n_done)
                    n_done = now_done
        reports = write_reports(study, params, Path(reports_dir))
        best = summarize(study.best_trial, params)
        baseline = next(
            (
                summarize(t, params)
                for t in study.get_trials(deepcopy=False)
                if t.user_attrs.get("baseline") and is_finished(t)
            ),
            None,
        )
        if track:
            log_metrics(json.loads(reports["metrics"].read_text(encoding="utf-8")))
    return TuneResult(
        study_name=name,
        storage=db_path,
        n_finished=n_done,
        executed=executed,
        interrupted=interrupted,
        retried=retried,
        best=best,
        baseline=baseline,
        timed_out=timed_out,
        reports=reports,
    )
