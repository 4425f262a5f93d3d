"""Experiment tracking: the only place that talks to MLflow about runs.

One MLflow run per stage execution (:func:`stage_run`), tagged with the git commit, the DVC stage
and content hashes of the stage's inputs (:func:`lineage_tags`); metrics, plain ``state_dict``
weights and a Lightning logger bound to the same run. Modules: :mod:`.backend` (tracking URI,
experiments), :mod:`.lineage`, :mod:`.flatten` (params and keys as MLflow accepts them) and
:mod:`.runs`. The model registry and promotion live in :mod:`s2ssl.registry`.

Importing this package is cheap: mlflow, torch and lightning are imported inside the functions
that need them, so the CLI starts fast.
"""

from __future__ import annotations

from s2ssl.tracking.backend import artifact_root, get_or_create_experiment, tracking_uri
from s2ssl.tracking.flatten import flatten_params
from s2ssl.tracking.lineage import hash_input, lineage_tags
from s2ssl.tracking.runs import (
    RunHandle,
    lightning_logger,
    log_metrics,
    log_state_dict,
    stage_run,
)

__all__ = [
    "RunHandle",
    "artifact_root",
    "flatten_params",
    "get_or_create_experiment",
    "hash_input",
    "lightning_logger",
    "lineage_tags",
    "log_metrics",
    "log_state_dict",
    "stage_run",
    "tracking_uri",
]
