"""The finished trials of a sweep: which count toward ``tune.n_trials``, their summaries, the
sampler's seed and the score's name (shared by the sweep and its reports)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from optuna.trial import TrialState

from s2ssl.config import Params
from s2ssl.taskspec import task_spec
from s2ssl.tuning.space import overrides

if TYPE_CHECKING:
    import optuna

__all__ = [
    "FAILURE_ATTR",
    "TrialSummary",
    "is_finished",
    "metric_name",
    "sampler_seed",
    "summarize",
]

FAILURE_ATTR: Final[str] = "failure"
"""User attribute of a trial that failed inside itself (counts as finished, never retried)."""


def sampler_seed(params: Params) -> int:
    """``tune.seed``, or the top-level ``seed`` when it is null."""
    return params.tune.seed if params.tune.seed is not None else params.seed


def is_finished(trial: optuna.trial.FrozenTrial) -> bool:
    """Counts toward ``tune.n_trials``: complete, pruned, or failed inside the trial."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and FAILURE_ATTR in trial.user_attrs


def metric_name(task: str) -> str:
    """The name of a trial's score: ``val_balanced_accuracy`` for scenes, else ``val_miou``."""
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
