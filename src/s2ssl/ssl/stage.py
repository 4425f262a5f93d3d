"""The pre-training stages: every run (unit) of one method, then the method's reports.

``pretrain@<method>`` (self-supervised methods) trains one unit per replicate
(``evaluate.replicates``; pre-training is repeated because its variance is part of what a
comparison must carry); ``pretrain_cscl`` (CSCL stage 1, supervised) one per replicate and label
subset (:func:`~s2ssl.ssl.units.plan_units`). Each unit is trained by
:func:`~s2ssl.ssl.pretrain.train_unit`. A stage that was interrupted continues: units that
finished are reused, the unit that was running resumes from its ``last.ckpt``; a stage run that
finished is never reused (DVC runs it again only when something it depends on changed,
:mod:`s2ssl.training.resume`).

Reports (``<reports>/<method>/``): ``metrics.json`` (flat, DVC metrics: the mean over units of
each unit metric, and ``<unit>.<metric>`` per unit), ``history.csv`` (per unit and epoch, DVC
plots) and ``curves.png`` (loss and probe per epoch, one line per unit).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import shutil
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from s2ssl.config import Params
from s2ssl.io import write_json_atomic, write_text_atomic
from s2ssl.models.saved import ENCODERS_DIR
from s2ssl.ssl.curves import curves_png
from s2ssl.ssl.pretrain import (
    CHECKPOINT_DIR,
    HISTORY_COLUMNS,
    PretrainResult,
    train_unit,
)
from s2ssl.ssl.units import plan_units
from s2ssl.training.resume import fingerprint_of, mark_finished, mark_started, resume_decision
from s2ssl.training.runtime import global_rank

__all__ = ["PER_UNIT_METRICS", "PretrainStageResult", "pretrain"]

_LOG = logging.getLogger(__name__)

STAGE_STATE_FILE: Final[str] = "stage_state.json"
PER_UNIT_METRICS: Final[tuple[str, ...]] = ("final_loss", "final_knn_acc", "knn_acc_gain")
"""Unit metrics also written per unit to ``metrics.json`` (every metric is averaged)."""


@dataclass(frozen=True)
class PretrainStageResult:
    """What :func:`pretrain` produced: one result per unit and the aggregated metrics."""

    method: str
    units: list[PretrainResult]
    metrics: dict[str, float]

    @property
    def resumed(self) -> bool:
        """Whether any unit was reused or resumed from an interrupted stage run."""
        return any(u.resumed for u in self.units)


def _stage_fingerprint(params: Params, method: str, units: Sequence[Any]) -> str:
    cfg = params.pretrain
    return fingerprint_of(
        {
            "method": method,
            "units": [u.as_dict() for u in units],
            "pretrain": cfg.stage_params(method),
            "holdout_region": params.holdout_region,
        }
    )


def aggregate_metrics(results: Sequence[PretrainResult]) -> dict[str, float]:
    """``metrics.json``: ``units``, the mean of every unit metric over units (``fit_wall_s``:
    the sum), and :data:`PER_UNIT_METRICS` per unit as ``<unit>.<metric>``."""
    out: dict[str, float] = {"units": len(results)}
    keys = list(dict.fromkeys(k for r in results for k in r.metrics))
    for key in keys:
        values = [float(r.metrics[key]) for r in results if key in r.metrics]
        finite = [v for v in values if math.isfinite(v)]
        if key == "fit_wall_s":
            out[key] = float(sum(finite))
        elif finite:
            out[key] = float(statistics.fmean(finite))
    for r in results:
        for key in PER_UNIT_METRICS:
            value = float(r.metrics.get(key, math.nan))
            if math.isfinite(value):
                out[f"{r.unit}.{key}"] = value
    return out


def _write_history(path: Path, results: Sequence[PretrainResult]) -> None:
    buffer = io.StringIO()
    columns = ["unit", *HISTORY_COLUMNS]
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in results:
        for row in r.history:
            writer.writerow({"unit": r.unit, **{k: row.get(k, math.nan) for k in HISTORY_COLUMNS}})
    write_text_atomic(path, buffer.getvalue())


def pretrain(
    params: Params,
    method: str,
    data_dir: str | Path,
    out_dir: str | Path,
    reports_dir: str | Path,
    *,
    progress_bar: bool = False,
    tracking_uri: str | None = None,
    trainer_overrides: Mapping[str, Any] | None = None,
) -> PretrainStageResult:
    """Train every unit of ``method`` (see the module docstring) and write its reports.

    Args:
        params: the validated ``params.yaml``.
        method: one of :data:`~s2ssl.config.PRETRAIN_METHODS`.
        data_dir: the validated datasets (``data/validated``).
        out_dir: models root (``models/pretrain``): ``<out>/<method>/{encoders,checkpoints}``.
        reports_dir: reports root: ``<reports>/<method>/{metrics.json,history.csv,curves.png}``.
        progress_bar: show Lightning's (rich) progress bar.
        tracking_uri: MLflow tracking URI (one run per unit).
        trainer_overrides: extra ``lightning.Trainer`` keyword arguments (tests, benchmarks).

    Raises:
        ValueError: unknown method, missing / unusable data, inconsistent configuration.
    """
    units = plan_units(params, method)
    rank = global_rank()
    method_dir = Path(out_dir) / method
    state_file = method_dir / CHECKPOINT_DIR / STAGE_STATE_FILE
    stage_fp = _stage_fingerprint(params, method, units)
    decision = resume_decision(state_file, stage_fp)
    if rank == 0:
        _LOG.info("pretrain %s: %d unit(s); %s", method, len(units), decision.reason)
        mark_started(state_file, stage_fp)
        planned = {u.name for u in units}
        for folder in (method_dir / ENCODERS_DIR, method_dir / CHECKPOINT_DIR):
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.is_dir() and path.name not in planned:
                        shutil.rmtree(path, ignore_errors=True)
    results = [
        train_unit(
            params,
            method,
            unit,
            data_dir,
            out_dir,
            progress_bar=progress_bar,
            tracking_uri=tracking_uri,
            trainer_overrides=trainer_overrides,
            reuse_finished=decision.resume,
        )
        for unit in units
    ]
    if rank != 0:
        return PretrainStageResult(method, results, {})
    metrics = aggregate_metrics(results)
    reports = Path(reports_dir) / method
    reports.mkdir(parents=True, exist_ok=True)
    write_json_atomic(reports / "metrics.json", metrics)
    _write_history(reports / "history.csv", results)
    curves_png(method, {r.unit: r.history for r in results}, reports / "curves.png")
    mark_finished(state_file, stage_fp)
    return PretrainStageResult(method, results, metrics)
