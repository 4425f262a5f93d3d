"""Hyperparameter sweeps with Optuna (the ``tune`` stage, run only when targeted).

- :mod:`s2ssl.tuning.study` — the resumable study (sqlite storage, TPE, median pruner), its
  objective (a short fine-tune scored on the validation split) and MLflow runs;
- :mod:`s2ssl.tuning.space` — ``tune.space`` as Optuna suggestions and ``params.yaml`` overrides;
- :mod:`s2ssl.tuning.pruning` — the Lightning callback that reports to the pruner;
- :mod:`s2ssl.tuning.reports` — ``best_params.yaml``, ``metrics.json``, ``trials.csv``, plots;
- :mod:`s2ssl.tuning.apply` — writing the best values into ``params.yaml``, comments kept.

Importing this package is cheap; optuna, torch and lightning load inside the functions.
"""

from __future__ import annotations

from s2ssl.tuning.apply import Change, apply_best_params
from s2ssl.tuning.study import STUDY_DB, TrialSummary, TuneResult, run_study

__all__ = ["STUDY_DB", "Change", "TrialSummary", "TuneResult", "apply_best_params", "run_study"]
