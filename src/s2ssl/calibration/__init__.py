"""Calibration of the downstream tasks with random init and simple baselines only (the
``calibrate`` stage, run only when targeted: ``dvc repro calibrate/dvc.yaml``).

It answers, without ever loading a pre-trained encoder, whether the fine-tuning budgets converge
and whether the (synthetic) world is hard in the intended ways:

- :mod:`s2ssl.calibration.run` — the command: every task, resumable, writes the reports;
- :mod:`s2ssl.calibration.random_init` — one random-init fine-tune (as the ``finetune`` stage
  trains it), its record, fingerprint and zero-shot score on the held-out region;
- :mod:`s2ssl.calibration.baselines` — per-pixel gradient boosting, per-tile logistic regression;
- :mod:`s2ssl.calibration.seasonal` — single dates against the stacked season (crop-type series);
- :mod:`s2ssl.calibration.curves` — plateau statistics, ``curves.csv`` and ``curves.png``;
- :mod:`s2ssl.calibration.summary` — the flat ``summary.json`` and the targets;
- :mod:`s2ssl.calibration.report` — ``report.md``.
"""

from __future__ import annotations

from s2ssl.calibration.run import CalibrationResult, run_calibration
from s2ssl.calibration.summary import TARGET_RULES, TargetOutcome

__all__ = ["TARGET_RULES", "CalibrationResult", "TargetOutcome", "run_calibration"]
