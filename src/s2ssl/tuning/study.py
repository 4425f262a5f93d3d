"""The Optuna sweep of the ``tune`` stage: a resumable study of short fine-tuning runs.

Each trial applies its sampled values (``tune.space``) and ``tune.fixed`` as overrides to a
validated copy of the params, fine-tunes ``tune.init`` on ``tune.fraction`` of ``tune.task``'s
train split with the fine-tuning stage's own code (:func:`s2ssl.finetune.run.fit_run`, same
seed as that stage's run of the same init and fraction) and returns the best **validation**
score (mIoU, or top-1 for scenes); the test split is never read. The TPE sampler proposes values,
the median pruner stops trials whose validation score at an optimiser step falls below the
median of earlier trials at that step (:class:`~s2ssl.tuning.pruning.PruningCallback`).

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

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from s2ssl.config import ConfigError, Params, override_params
from s2ssl.io import file_lock
from s2ssl.progress import ProgressFactory, no_progress
from s2ssl.taskspec import task_spec
from s2ssl.tuning.space import current_values, in_space, overrides, suggest

if TYPE_CHECKING:
    import optuna

    from s2ssl.finetune.data import TaskData
    from s2ssl.finetune.run import RunSpec

__all__ = [
    "EXPERIMENT",
    "STUDY_DB",
    "TrialSummary",
    "TuneResult",
    "is_finished",
    "make_objective",
    "open_study",
    "optuna_name",
    "recover_interrupted",
    "run_study",
    "study_fingerprint",
    "study_lock",
    "summarize",
]

_LOG = logging.getLogger(__name__)

STUDY_DB: Final[str] = "study.db"
"""File name of the study database inside the ``tune`` stage's output directory."""

EXPERIMENT: Final[str] = "tune"
"""MLflow experiment of the sweeps."""

FAILURE_ATTR: Final[str] = "failure"
"""User attribute of a trial that failed inside itself (counts as finished, never retried)."""


# --------------------------------------------------------------------------- identity
def _without(raw: dict[str, Any], dotted: str) -> None:
    parts = dotted.split(".")
    node: Any = raw
    for part in parts[:-1]:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def sampler_seed(params: Params) -> int:
    """``tune.seed``, or the top-level ``seed`` when it is null."""
    return params.tune.seed if params.tune.seed is not None else params.seed


def study_fingerprint(params: Params, data_hash: str, encoder_sha: str | None) -> str:
    """SHA-256 (hex) of everything a trial's score depends on (see the module docstring)."""
    cfg = params.tune
    ft = params.finetune
    task_cfg = ft.task_config(cfg.task).model_dump(mode="json")
    for key in cfg.space:
        _without(task_cfg, key)
    record = {
        "task": cfg.task,
        "init": cfg.init,
        "fraction": cfg.fraction,
        "space": {k: v.model_dump(mode="json") for k, v in cfg.space.items()},
        "fixed": cfg.fixed,
        "sampler_seed": sampler_seed(params),
        "n_startup_trials": cfg.n_startup_trials,
        "include_current": cfg.include_current,
        "pruner": cfg.pruner.model_dump(mode="json"),
        "seed": params.seed,
        "holdout_region": params.holdout_region,
        "task_config": task_cfg,
        "min_train_samples": ft.min_train_samples,
        "deterministic": ft.deterministic,
        "data": data_hash,
        "encoder_sha256": encoder_sha,
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def optuna_name(params: Params, fingerprint: str) -> str:
    """The study's name in the database: ``<tune.study_name>-<first 10 hex of fingerprint>``."""
    return f"{params.tune.study_name}-{fingerprint[:10]}"


# --------------------------------------------------------------------------- storage
@contextmanager
def study_lock(db_path: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``<db>.lock`` (released by the OS even if the process is killed).

    Raises:
        ValueError: another process holds it (a sweep is running on this database).
    """
    lock = Path(str(db_path) + ".lock")
    with ExitStack() as stack:
        try:
            stack.enter_context(file_lock(lock, wait=False))
        except BlockingIOError:
            raise ValueError(
                f"another sweep is running on {db_path} (its lock {lock} is held); wait for "
                "it to finish or stop it, then run again to resume"
            ) from None
        yield lock


def _storage(db_path: Path) -> optuna.storages.RDBStorage:
    import optuna

    db_path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(
        f"sqlite:///{db_path.absolute().as_posix()}",
        engine_kwargs={"connect_args": {"timeout": 60}},
    )


def _pruner(params: Params) -> optuna.pruners.BasePruner:
    import optuna

    cfg = params.tune.pruner
    if not cfg.enabled:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.n_startup_trials,
        n_warmup_steps=cfg.n_warmup_steps,
        interval_steps=cfg.interval_steps,
    )


def _sampler(params: Params, n_finished: int) -> optuna.samplers.TPESampler:
    """TPE seeded from ``(sampler seed, n_finished)``: the k-th proposal of a study never depends
    on how many processes it took to get there."""
    import optuna

    from s2ssl.ssl.datamodule import derive_seed

    seed = derive_seed(sampler_seed(params), n_finished, 0x7E57) & 0xFFFF_FFFF
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=params.tune.n_startup_trials)


def recover_interrupted(storage: optuna.storages.BaseStorage, name: str) -> list[int]:
    """Mark the trials of study ``name`` still ``RUNNING`` as ``FAIL`` (``interrupted``).

    Call it only while holding :func:`study_lock`: no live process can then own such a trial.
    Returns their numbers (none if the study does not exist yet).
    """
    from optuna.trial import TrialState

    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return []
    numbers = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "interrupted", True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        numbers.append(trial.number)
    return numbers


def is_finished(trial: optuna.trial.FrozenTrial) -> bool:
    """Counts toward ``tune.n_trials``: complete, pruned, or failed inside the trial."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and FAILURE_ATTR in trial.user_attrs


def _enqueue_retries(study: optuna.Study, params: Params) -> list[int]:
    """Enqueue the parameters of every failed trial that was interrupted or stopped the sweep
    (not failed inside itself) and has no retry yet. Returns the retried trial numbers."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    space = params.tune.space
    out = []
    for t in trials:
        if t.state != TrialState.FAIL or FAILURE_ATTR in t.user_attrs or t.number in retried:
            continue
        if set(t.params) != set(space) or not all(in_space(t.params[k], space[k]) for k in space):
            continue  # killed before its values were drawn: nothing to retry
        study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
        out.append(t.number)
    return out


def open_study(params: Params, db_path: str | Path, fingerprint: str) -> optuna.Study:
    """Create or load the study of ``params`` in the sqlite database ``db_path``.

    A new study gets the current values of the searched keys enqueued as trial 0 when
    ``tune.include_current`` and they lie in the search space (the baseline).
    """
    import optuna

    cfg = params.tune
    name = optuna_name(params, fingerprint)
    study = optuna.create_study(
        study_name=name,
        storage=_storage(Path(db_path)),
        direction="maximize",
        sampler=_sampler(params, 0),
        pruner=_pruner(params),
        load_if_exists=True,
    )
    if not study.user_attrs:
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("tune", cfg.model_dump(mode="json"))
        study.set_user_attr("metric", _metric_name(cfg.task))
    if not study.get_trials(deepcopy=False) and cfg.include_current:
        baseline = current_values(params)
        outside = [k for k, v in baseline.items() if not in_space(v, cfg.space[k])]
        if outside:
            _LOG.warning(
                "no baseline trial: the current value of %s lies outside tune.space",
                ", ".join(outside),
            )
            study.set_user_attr("baseline_skipped", outside)
        else:
            study.enqueue_trial(baseline, user_attrs={"baseline": True})
    return study


# --------------------------------------------------------------------------- trials
def _metric_name(task: str) -> str:
    return f"val_{task_spec(task).headline}"


@dataclass(frozen=True)
class TrialSummary:
    """One finished trial, as reported to the progress callback and in ``TuneResult``."""

    number: int
    state: str
    """``COMPLETE``, ``PRUNED`` or ``FAIL``."""
    value: float | None
    """The best validation score (complete), the last one reported (pruned), or None."""
    params: dict[str, Any]
    """Full dotted ``params.yaml`` keys -> values."""
    last_step: int | None
    seconds: float | None
    note: str = ""
    """``baseline``, ``retry of N``, or why it failed."""


def summarize(trial: optuna.trial.FrozenTrial, params: Params) -> TrialSummary:
    """The :class:`TrialSummary` of a frozen trial."""
    notes = []
    if trial.user_attrs.get("baseline"):
        notes.append("baseline")
    if "retry_of" in trial.user_attrs:
        notes.append(f"retry of {trial.user_attrs['retry_of']}")
    if trial.user_attrs.get("interrupted"):
        notes.append("interrupted")
    if FAILURE_ATTR in trial.user_attrs:
        notes.append(str(trial.user_attrs[FAILURE_ATTR]))
    value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
    seconds = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialSummary(
        number=trial.number,
        state=trial.state.name,
        value=value,
        params=overrides(params.tune, trial.params, fixed=False),
        last_step=trial.last_step,
        seconds=seconds,
        note="; ".join(notes),
    )


@dataclass
class _TrialTracker:
    """Nested MLflow run per finished trial (inside the execution's parent run)."""

    enabled: bool
    study_name: str

    def log(
        self,
        trial: optuna.Trial,
        values: Mapping[str, Any],
        state: str,
        metrics: Mapping[str, float],
        history: list[dict[str, float]],
    ) -> None:
        if not self.enabled:
            return
        from s2ssl.tracking import log_metrics, stage_run

        with stage_run(
            EXPERIMENT,
            f"{self.study_name}/trial-{trial.number}",
            stage="tune",
            params={"trial": trial.number, **values},
            tags={
                "optuna.study": self.study_name,
                "optuna.trial": str(trial.number),
                "optuna.state": state,
            },
            nested=True,
        ) as run:
            log_metrics(metrics)
            for row in history:
                log_metrics(
                    {k: v for k, v in row.items() if k != "step"}, step=int(row.get("step", 0))
                )
        trial.set_user_attr("mlflow_run_id", run.run_id)


def make_objective(
    params: Params,
    data: TaskData,
    models_dir: str | Path,
    *,
    tracker: _TrialTracker | None = None,
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective of ``params.tune``: one short fine-tune per trial (module docstring).

    A non-finite training loss or an invalid combination of values fails the trial (it returns
    NaN, which Optuna records as ``FAIL``; the reason is the ``failure`` user attribute); other
    errors propagate and stop the sweep.
    """
    import optuna

    from s2ssl.finetune.run import RunSpec, fit_run
    from s2ssl.finetune.train import NonFiniteLossError
    from s2ssl.tuning.pruning import PruningCallback

    cfg = params.tune
    spec: RunSpec = RunSpec(cfg.task, "in_domain", cfg.init, "finetune", cfg.fraction)
    metric = _metric_name(cfg.task)
    monitor = "val/" + metric.removeprefix("val_")
    log = tracker or _TrialTracker(False, "")

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, cfg.space)
        full = overrides(cfg, values, fixed=False)
        started = time.perf_counter()
        callback = PruningCallback(trial, monitor)
        history: list[dict[str, float]] = []
        try:
            trial_params = override_params(
                params, overrides(cfg, values), source=f"trial {trial.number}"
            )
            fitted = fit_run(trial_params, spec, data, models_dir, callbacks=[callback])
            history = list(fitted.fit.history)
            callback.check_pruned()
        except optuna.TrialPruned:
            last = callback.reports[-1][1] if callback.reports else math.nan
            seconds = time.perf_counter() - started
            log.log(trial, full, "PRUNED", {"val_last": last, "wall_s": seconds}, history)
            raise
        except (ConfigError, NonFiniteLossError) as e:
            reason = " ".join(str(e).split())[:300]
            trial.set_user_attr(FAILURE_ATTR, reason)
            seconds = time.perf_counter() - started
            log.log(trial, full, "FAIL", {"wall_s": seconds}, history)
            return math.nan
        value = float(fitted.fit.best_val)
        trial.set_user_attr("best_step", int(fitted.fit.best_step))
        seconds = time.perf_counter() - started
        log.log(trial, full, "COMPLETE", {"value": value, "wall_s": seconds}, history)
        return value

    return objective


# --------------------------------------------------------------------------- the sweep
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
    from s2ssl.finetune.inits import encoder_path

    cfg = params.tune
    dataset = data_dir / task_spec(cfg.task).dataset
    if not dataset.exists():
        raise ValueError(
            f"validated dataset {dataset} not found; run `dvc repro validate` (or s2ssl validate)"
        )
    inputs = {dataset.name: dataset}
    if cfg.init != "random":
        encoder = encoder_path(models_dir, cfg.init)
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
    import optuna

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
    import torch

    from s2ssl.finetune.data import load_task_data
    from s2ssl.finetune.run import encoder_sha256
    from s2ssl.ssl.pretrain import _quiet_lightning
    from s2ssl.tracking import hash_input
    from s2ssl.tuning.reports import write_reports

    cfg = params.tune
    target = cfg.n_trials if n_trials is None else int(n_trials)
    if target < 1:
        raise ValueError(f"n_trials must be >= 1, got {target}")
    timeout = cfg.timeout_s if timeout_s is None else float(timeout_s)
    data_dir, models_dir, out = Path(data_dir), Path(pretrain_dir), Path(out_dir)
    inputs = _inputs(params, data_dir, models_dir)
    dataset = inputs[next(iter(inputs))]
    fingerprint = study_fingerprint(
        params, hash_input(dataset), encoder_sha256(models_dir, cfg.init)
    )
    name = optuna_name(params, fingerprint)
    db_path = out / STUDY_DB
    started = time.monotonic()
    executed: list[TrialSummary] = []
    timed_out = False
    with ExitStack() as stack:
        stack.enter_context(study_lock(db_path))
        stack.enter_context(_quiet())
        storage = _storage(db_path)
        interrupted = recover_interrupted(storage, name)
        study = open_study(params, db_path, fingerprint)
        retried = _enqueue_retries(study, params)
        n_done = sum(is_finished(t) for t in study.get_trials(deepcopy=False))
        tracker = _TrialTracker(track, name)
        if track:
            from s2ssl.tracking import stage_run
            from s2ssl.tracking.runs import end_stale_runs

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
                scene_tile=params.finetune.scene.tile_size,
            )
            objective = make_objective(params, data, models_dir, tracker=tracker)
            stack.enter_context(_quiet_lightning())

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
                    study.sampler = _sampler(params, n_done)
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
            from s2ssl.tracking import log_metrics

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
