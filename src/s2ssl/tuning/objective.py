"""The Optuna objective of the sweep: one short fine-tune per trial, scored on validation, with a
nested MLflow run per finished trial."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import optuna

from s2ssl.config import ConfigError, Params, override_params
from s2ssl.finetune.data import TaskData
from s2ssl.finetune.fitting import fit_run
from s2ssl.finetune.plan import RunSpec
from s2ssl.finetune.train import NonFiniteLossError
from s2ssl.tracking import log_metrics, stage_run
from s2ssl.tuning.pruning import PruningCallback
from s2ssl.tuning.space import overrides, suggest
from s2ssl.tuning.trials import FAILURE_ATTR, metric_name

__all__ = ["EXPERIMENT", "TrialTracker", "make_objective"]

EXPERIMENT: Final[str] = "tune"
"""MLflow experiment of the sweeps."""


@dataclass
class TrialTracker:
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
    tracker: TrialTracker | None = None,
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective of ``params.tune``: one short fine-tune per trial (see
    :mod:`s2ssl.tuning.study`).

    A non-finite training loss or an invalid combination of values fails the trial (it returns
    NaN, which Optuna records as ``FAIL``; the reason is the ``failure`` user attribute); other
    errors propagate and stop the sweep.
    """
    cfg = params.tune
    spec: RunSpec = RunSpec(cfg.task, "in_domain", cfg.init, "finetune", cfg.fraction)
    metric = metric_name(cfg.task)
    monitor = "val/" + metric.removeprefix("val_")
    log = tracker or TrialTracker(False, "")

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
