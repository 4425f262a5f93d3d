"""The study's storage and identity: its fingerprint and Optuna name, the sqlite database and its
exclusive lock, and what resuming it needs (interrupted trials marked failed and enqueued again,
the sampler re-seeded from the number of finished trials)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import optuna
from optuna.trial import TrialState

from s2ssl.config import Params
from s2ssl.io import file_lock
from s2ssl.seeding import derive_seed
from s2ssl.training.resume import fingerprint_of
from s2ssl.tuning.space import current_values, in_space
from s2ssl.tuning.trials import FAILURE_ATTR, metric_name, sampler_seed

__all__ = [
    "STUDY_DB",
    "enqueue_retries",
    "make_sampler",
    "open_study",
    "optuna_name",
    "recover_interrupted",
    "sqlite_storage",
    "study_fingerprint",
    "study_lock",
]

_LOG = logging.getLogger(__name__)

STUDY_DB: Final[str] = "study.db"
"""File name of the study database inside the ``tune`` stage's output directory."""


def _without(raw: dict[str, Any], dotted: str) -> None:
    parts = dotted.split(".")
    node: Any = raw
    for part in parts[:-1]:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def study_fingerprint(params: Params, data_hash: str, encoder_sha: str | None) -> str:
    """SHA-256 (hex) of everything a trial's score depends on (see :mod:`s2ssl.tuning.study`)."""
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
        "bands": list(params.band_names),
        "holdout_region": params.holdout_region,
        "task_config": task_cfg,
        "min_train_samples": ft.min_train_samples,
        "deterministic": ft.deterministic,
        "data": data_hash,
        "encoder_sha256": encoder_sha,
    }
    return fingerprint_of(record)


def optuna_name(params: Params, fingerprint: str) -> str:
    """The study's name in the database: ``<tune.study_name>-<first 10 hex of fingerprint>``."""
    return f"{params.tune.study_name}-{fingerprint[:10]}"


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


def sqlite_storage(db_path: Path) -> optuna.storages.RDBStorage:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(
        f"sqlite:///{db_path.absolute().as_posix()}",
        engine_kwargs={"connect_args": {"timeout": 60}},
    )


def _pruner(params: Params) -> optuna.pruners.BasePruner:
    cfg = params.tune.pruner
    if not cfg.enabled:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.n_startup_trials,
        n_warmup_steps=cfg.n_warmup_steps,
        interval_steps=cfg.interval_steps,
    )


def make_sampler(params: Params, n_finished: int) -> optuna.samplers.TPESampler:
    """TPE seeded from ``(sampler seed, n_finished)``: the k-th proposal of a study never depends
    on how many processes it took to get there."""
    seed = derive_seed(sampler_seed(params), n_finished, 0x7E57) & 0xFFFF_FFFF
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=params.tune.n_startup_trials)


def recover_interrupted(storage: optuna.storages.BaseStorage, name: str) -> list[int]:
    """Mark the trials of study ``name`` still ``RUNNING`` as ``FAIL`` (``interrupted``).

    Call it only while holding :func:`study_lock`: no live process can then own such a trial.
    Returns their numbers (none if the study does not exist yet).
    """
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


def enqueue_retries(study: optuna.Study, params: Params) -> list[int]:
    """Enqueue the parameters of every failed trial that was interrupted or stopped the sweep
    (not failed inside itself) and has no retry yet. Returns the retried trial numbers."""
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
    cfg = params.tune
    name = optuna_name(params, fingerprint)
    study = optuna.create_study(
        study_name=name,
        storage=sqlite_storage(Path(db_path)),
        direction="maximize",
        sampler=make_sampler(params, 0),
        pruner=_pruner(params),
        load_if_exists=True,
    )
    if not study.user_attrs:
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("tune", cfg.model_dump(mode="json"))
        study.set_user_attr("metric", metric_name(cfg.task))
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
