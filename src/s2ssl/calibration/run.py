"""``s2ssl calibrate``: random init and simple baselines on every calibrated task, the summary,
the targets and the report, written to ``<reports>/``.

For each task of ``calibrate.tasks``, in order:

1. random init fine-tuned at each of ``finetune.fractions`` (:mod:`s2ssl.calibration.random_init`;
   a run whose stored record has the same fingerprint is reused, so a killed calibration resumes
   and a re-run after a change retrains only what the change touched);
2. the task's baselines, recomputed every time (they take seconds): per-pixel gradient boosting
   for ``landcover`` (single date; also zero-shot on the held-out region) and ``croptype`` (the
   whole series; plus the seasonal baseline on both label sets of the series), per-tile logistic
   regression for ``scene`` at each fraction. Pixel baselines train on the same label-fraction
   subset as the random-init run at the largest fraction.

Outputs: ``runs/<key>.json`` (one per random-init run, with its validation history),
``summary.json`` (flat, :mod:`s2ssl.calibration.summary`), ``curves.csv`` / ``curves.png``
(:mod:`s2ssl.calibration.curves`) and ``report.md`` (:mod:`s2ssl.calibration.report`). No
pre-trained encoder is ever loaded.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from s2ssl.calibration.baselines import (
    baseline_seed,
    fit_pixel_model,
    fit_scene_model,
    score_pixel_model,
    score_scene_model,
    tile_statistics,
)
from s2ssl.calibration.curves import CURVE_COLUMNS, CurveSeries, curve_rows, plot_curves
from s2ssl.calibration.random_init import (
    execute_run,
    load_record,
    run_fingerprint,
    run_key,
    run_spec,
)
from s2ssl.calibration.report import render_report
from s2ssl.calibration.seasonal import (
    SeasonalResult,
    seasonal_baseline,
    series_label_classes,
    series_labels,
)
from s2ssl.calibration.summary import (
    TargetOutcome,
    evaluate_targets,
    flat_summary,
    target_metrics,
)
from s2ssl.config import Params
from s2ssl.finetune.data import TaskData, TaskSplit, load_task_data
from s2ssl.finetune.plan import fraction_label, replicate_seed_of
from s2ssl.io import write_json_atomic, write_text_atomic
from s2ssl.progress import ProgressFactory, no_progress
from s2ssl.taskspec import task_spec
from s2ssl.training.metrics import MetricValue
from s2ssl.training.runtime import quiet_lightning

__all__ = [
    "CURVES_CSV",
    "CURVES_PNG",
    "REPORT_MD",
    "RUNS_DIR",
    "SUMMARY_FILE",
    "CalibrationResult",
    "run_calibration",
]

_LOG = logging.getLogger(__name__)

RUNS_DIR: Final[str] = "runs"
SUMMARY_FILE: Final[str] = "summary.json"
CURVES_CSV: Final[str] = "curves.csv"
CURVES_PNG: Final[str] = "curves.png"
REPORT_MD: Final[str] = "report.md"

_BASELINES: Final[dict[str, int]] = {"landcover": 1, "croptype": 2, "scene": 1}
"""Progress steps of each task's baselines (croptype: the pixel and the seasonal baseline)."""


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`run_calibration` measured and wrote."""

    summary: dict[str, float]
    """``summary.json``: every flat key, targets included."""
    targets: list[TargetOutcome]
    records: dict[str, dict[str, Any]]
    """Random-init run records by key (``<task>.random.f<pct>``)."""
    seasonal: list[SeasonalResult]
    executed: list[str]
    reused: list[str]
    reports_dir: Path


def _score(metrics: Mapping[str, MetricValue], key: str) -> float:
    value = metrics[key]
    if not isinstance(value, int | float):  # pragma: no cover - scores are numbers
        raise TypeError(f"metric {key!r} is not a number: {value!r}")
    return float(value)


def _check_data(params: Params, data_dir: Path) -> None:
    for task in params.calibrate.tasks:
        path = data_dir / task_spec(task).dataset
        if not path.is_dir():
            raise ValueError(
                f"validated dataset {path} not found (calibrate.tasks has {task!r}); run "
                "`dvc repro validate` (or `s2ssl validate`) first, or pass --data"
            )


def _loader(task: str, data_dir: Path, params: Params) -> Callable[[], TaskData] | None:
    """Loads (once) the held-out region's data of ``task``; ``None`` without a held-out region."""
    holdout = params.holdout_region
    if holdout is None:
        return None
    loaded: list[TaskData] = []

    def load() -> TaskData:
        if not loaded:
            loaded.append(
                load_task_data(
                    task, data_dir, "transfer", holdout, scene_tile=params.finetune.scene.tile_size
                )
            )
        return loaded[0]

    return load


def _random_runs(
    params: Params,
    task: str,
    data: TaskData,
    runs_dir: Path,
    transfer: Callable[[], TaskData] | None,
    advance: Callable[[int], None],
) -> list[tuple[dict[str, Any], bool]]:
    """``(record, reused)`` of each random-init run of ``task``, trained unless its stored record
    has the same fingerprint; the largest fraction's run carries the zero-shot score."""
    out: list[tuple[dict[str, Any], bool]] = []
    fractions = sorted(params.finetune.fractions)
    for fraction in fractions:
        spec, key = run_spec(task, fraction), run_key(task, fraction)
        with_zero_shot = transfer is not None and fraction == fractions[-1]
        fp = run_fingerprint(params, spec, data, with_zero_shot)
        path = runs_dir / f"{key}.json"
        old = load_record(path)
        if old is not None and old.get("fingerprint") == fp:
            out.append((old, True))
        else:
            record = execute_run(params, spec, data, fp, transfer if with_zero_shot else None)
            write_json_atomic(path, record)
            out.append((record, False))
            _LOG.info("%s: test %.3f in %.1f s", key, record["test_score"], record["wall_s"])
        advance(1)
    return out


def _largest_subset(params: Params, data: TaskData) -> tuple[np.ndarray, TaskSplit]:
    """The train subset of the largest label fraction (the one its random-init run trains on)
    and its positions in ``data.train``."""
    ft = params.finetune
    positions = data.fraction_positions(
        max(ft.fractions), replicate_seed_of(params, 0), ft.min_train_samples
    )
    return positions, data.train.subset(positions)


def _pixel_baseline(
    params: Params, task: str, data: TaskData, transfer: Callable[[], TaskData] | None
) -> dict[str, float]:
    cfg = params.calibrate.pixel_classifier
    _, train = _largest_subset(params, data)
    model = fit_pixel_model(
        train.image, train.label, cfg, baseline_seed(params.seed, f"{task}.pixel")
    )
    big = f"f{fraction_label(max(params.finetune.fractions))}"
    scores = score_pixel_model(model, data.test.image, data.test.label, data.classes)
    out = {f"{task}.pixel.{big}.miou": _score(scores, "miou")}
    if transfer is not None and task == "landcover":
        holdout = transfer().test
        zs = score_pixel_model(model, holdout.image, holdout.label, data.classes)
        out[f"{task}.pixel.zero_shot.miou"] = _score(zs, "miou")
    return out


def _seasonal(params: Params, data: TaskData, data_dir: Path) -> list[SeasonalResult]:
    """The seasonal baseline on the crop labels and, when the series has them, land cover."""
    cal = params.calibrate
    positions, train = _largest_subset(params, data)
    label_sets = {"croptype": (train.label, data.test.label, data.classes)}
    landcover = series_labels(data, data_dir, "landcover", params.holdout_region)
    if landcover is not None:
        label_sets["landcover"] = (
            landcover["train"][torch.as_tensor(positions)],
            landcover["test"],
            series_label_classes(data, data_dir, "landcover").names,
        )
    out = []
    for name, (train_label, test_label, classes) in label_sets.items():
        out.append(
            seasonal_baseline(
                name,
                (train.image, train_label),
                (data.test.image, test_label),
                classes,
                cal.pixel_classifier,
                cal.seasonal_dates,
                baseline_seed(params.seed, f"season.{name}"),
            )
        )
    return out


def _scene_baseline(params: Params, data: TaskData) -> dict[str, float]:
    ft, cfg = params.finetune, params.calibrate.scene_classifier
    train_features = tile_statistics(data.train.image)
    test_features = tile_statistics(data.test.image)
    out: dict[str, float] = {}
    for fraction in sorted(ft.fractions):
        positions = data.fraction_positions(
            fraction, replicate_seed_of(params, 0), ft.min_train_samples
        )
        seed = baseline_seed(params.seed, "scene.pixel_stats")
        model = fit_scene_model(train_features[positions], data.train.label[positions], cfg, seed)
        scores = score_scene_model(model, test_features, data.test.label, data.classes)
        for metric in dict.fromkeys((task_spec("scene").headline, "top1")):
            out[f"scene.pixel_stats.f{fraction_label(fraction)}.{metric}"] = _score(scores, metric)
    return out


def _write_curves(records: dict[str, dict[str, Any]], reports: Path) -> None:
    rows: list[dict[str, Any]] = []
    panels: dict[str, tuple[str, list[CurveSeries]]] = {}
    for r in records.values():
        task, metric = str(r["task"]), str(r["metric"])
        rows += curve_rows(task, str(r["fraction_label"]), r["history"], metric)
        series = CurveSeries(
            str(r["fraction_label"]),
            [int(h["step"]) for h in r["history"]],
            [float(h[f"val_{metric}"]) for h in r["history"]],
            int(r["best_step"]),
        )
        panels.setdefault(task, (task_spec(task).headline_label, []))[1].append(series)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CURVE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(reports / CURVES_CSV, buffer.getvalue())
    if plot_curves(panels, reports / CURVES_PNG) is None:
        (reports / CURVES_PNG).unlink(missing_ok=True)


def run_calibration(
    params: Params,
    data_dir: str | Path,
    reports_dir: str | Path,
    *,
    progress: ProgressFactory = no_progress,
) -> CalibrationResult:
    """Calibrate every task of ``calibrate.tasks`` and write the reports (module docstring).

    Args:
        params: the validated params.
        data_dir: the validated datasets (``data/validated``).
        reports_dir: ``reports/calibrate``.
        progress: progress factory (one step per random-init run and per baseline).

    Raises:
        ValueError: missing validated data, an empty split, unusable settings.
    """
    data_dir, reports = Path(data_dir), Path(reports_dir)
    cal, ft = params.calibrate, params.finetune
    _check_data(params, data_dir)
    if ft.torch_threads is not None:
        torch.set_num_threads(ft.torch_threads)
    runs_dir = reports / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    planned = {run_key(t, f) for t in cal.tasks for f in ft.fractions}
    for path in runs_dir.glob("*.json"):
        if path.stem not in planned:
            path.unlink()  # a run no longer in the plan (task or fraction removed)

    records: dict[str, dict[str, Any]] = {}
    executed: list[str] = []
    reused: list[str] = []
    baselines: dict[str, float] = {}
    seasonal: list[SeasonalResult] = []
    total = sum(len(ft.fractions) + _BASELINES[t] for t in cal.tasks)
    with quiet_lightning(), progress("calibrate", total) as advance:
        for task in cal.tasks:
            data = load_task_data(
                task, data_dir, "in_domain", params.holdout_region, scene_tile=ft.scene.tile_size
            )
            transfer = _loader(task, data_dir, params)
            for record, was_reused in _random_runs(params, task, data, runs_dir, transfer, advance):
                records[record["key"]] = record
                (reused if was_reused else executed).append(record["key"])
            if task_spec(task).is_scene_level:
                baselines.update(_scene_baseline(params, data))
            else:
                baselines.update(_pixel_baseline(params, task, data, transfer))
            advance(1)
            if task == "croptype":
                seasonal += _seasonal(params, data, data_dir)
                advance(1)

    ordered = list(records.values())  # task, then fraction order
    summary = flat_summary(ordered, baselines, seasonal)
    targets = evaluate_targets(summary, cal.targets, ft.fractions)
    summary.update(target_metrics(targets))
    write_json_atomic(reports / SUMMARY_FILE, summary)
    _write_curves(records, reports)
    text = render_report(ordered, summary, seasonal, targets, holdout_region=params.holdout_region)
    write_text_atomic(reports / REPORT_MD, text)
    return CalibrationResult(
        summary=summary,
        targets=targets,
        records=records,
        seasonal=seasonal,
        executed=executed,
        reused=reused,
        reports_dir=reports,
    )
