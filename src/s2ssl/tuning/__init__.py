"""Hyperparameter sweeps with Optuna (the ``tune`` stage, run only when targeted).

- :mod:`s2ssl.tuning.study` — the sweep: runs (or resumes) the study, MLflow parent run;
- :mod:`s2ssl.tuning.storage` — the study's identity, sqlite storage, lock, TPE and median pruner,
  resumption;
- :mod:`s2ssl.tuning.objective` — the objective (a short fine-tune scored on the validation
  split) and the nested MLflow run per trial;
- :mod:`s2ssl.tuning.trials` — finished trials and their summaries;
- :mod:`s2ssl.tuning.space` — ``tune.space`` as Optuna suggestions and ``params.yaml`` overrides;
- :mod:`s2ssl.tuning.pruning` — the Lightning callback that reports to the pruner;
- :mod:`s2ssl.tuning.reports` — ``best_params.yaml``, ``metrics.json``, ``trials.csv``, plots;
- :mod:`s2ssl.tuning.apply` — writing the best values into ``params.yaml``, comments kept.
"""

from __future__ import annotations

from s2ssl.tuning.apply import Change, apply_best_params
from s2ssl.tuning.storage import STUDY_DB
from s2ssl.tuning.study import TuneResult, run_study
from s2ssl.tuning.trials import TrialSummary

__all__ = ["STUDY_DB", "Change", "TrialSummary", "TuneResult", "apply_best_params", "run_study"]
