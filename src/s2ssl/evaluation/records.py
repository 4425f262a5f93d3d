"""Fine-tuning run records and the numbers derived from them for the ``evaluate`` stage.

:func:`collect_runs` reads the per-run results of the ``finetune`` stage
(``reports/finetune/<task>/runs/*.json``: test metrics scored once after training);
:func:`flat_metrics` makes ``metrics.json``, flat keys for ``dvc metrics show/diff``:
``<task>.<setting>.<init>.<protocol>.f<pct>.<metric>`` and, for every pre-trained init, the
same key with ``.gain`` appended: the difference to random init in the same task, setting,
protocol and label fraction (:func:`gains`, the number a regression shows up in). Scenes also
get the scores of the majority-class baseline (:func:`majority_baselines`):
``scene.majority_baseline.top1`` and ``scene.majority_baseline.balanced_accuracy``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.taskspec import task_spec

__all__ = [
    "REPORTED",
    "collect_runs",
    "flat_metrics",
    "gains",
    "majority_baseline",
    "majority_baselines",
    "score",
]

REPORTED: Final[dict[str, tuple[str, ...]]] = {
    "landcover": ("miou", "overall_accuracy", "macro_f1", "kappa"),
    "croptype": (
        "miou",
        "overall_accuracy",
        "macro_f1",
        "kappa",
        "boundary.miou",
        "interior.miou",
        "boundary.overall_accuracy",
        "interior.overall_accuracy",
    ),
    "scene": ("balanced_accuracy", "top1", "macro_f1", "kappa"),
}
"""The metrics of each task that go to ``metrics.json`` (per-class scores stay in the runs); the
first is the task's headline (:attr:`s2ssl.taskspec.TaskSpec.headline`)."""


def collect_runs(runs_dir: str | Path, tasks: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The run records of every task, sorted by setting, protocol, init and fraction.

    Raises:
        ValueError: a task has no run file (``finetune`` has not run) or an unreadable one.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        folder = Path(runs_dir) / task / "runs"
        files = sorted(folder.glob("*.json"))
        if not files:
            raise ValueError(
                f"no fine-tuning result in {folder}; run `s2ssl finetune --task {task}` / "
                f"`dvc repro finetune@{task}` first"
            )
        records = []
        for path in files:
            try:
                records.append(json.loads(path.read_text(encoding="utf-8")))
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path} is not valid JSON ({e}); re-run finetune@{task}"
                ) from None
        records.sort(key=lambda r: (r["setting"], r["protocol"], r["init"], r["fraction"]))
        out[task] = records
    return out


def _group_key(record: Mapping[str, Any]) -> tuple[str, str, str, float]:
    return (record["task"], record["setting"], record["protocol"], float(record["fraction"]))


def _random_of(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str, float], Any]:
    return {_group_key(r): r for r in records if r["init"] == "random"}


def gains(records: Sequence[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """``run key -> score - random init's score`` (same task, setting, protocol, fraction).

    Runs without a matching random-init run (or a NaN score) get no entry.
    """
    baseline = _random_of(records)
    out: dict[str, float] = {}
    for r in records:
        base = baseline.get(_group_key(r))
        if base is None or r["init"] == "random":
            continue
        value, ref = r["test"].get(metric), base["test"].get(metric)
        numbers = isinstance(value, int | float) and isinstance(ref, int | float)
        if numbers and math.isfinite(value) and math.isfinite(ref):
            out[r["key"]] = float(value) - float(ref)
    return out


def flat_metrics(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, float]:
    """The flat ``metrics.json`` (see the module docstring); NaN scores are left out."""
    flat: dict[str, float] = {}
    for task, records in runs.items():
        for metric in REPORTED[task]:
            gain = gains(records, metric)
            for r in records:
                value = r["test"].get(metric)
                if not isinstance(value, int | float) or not math.isfinite(value):
                    continue
                base = f"{task}.{r['key']}.{metric}"
                flat[base] = round(float(value), 6)
                if r["key"] in gain:
                    flat[f"{base}.gain"] = round(gain[r["key"]], 6)
        if task_spec(task).is_scene_level and records:
            for metric, value in majority_baselines(records[0]).items():
                if math.isfinite(value):
                    flat[f"scene.majority_baseline.{metric}"] = round(value, 6)
    return flat


def majority_baseline(record: Mapping[str, Any]) -> float:
    """Top-1 of always predicting the most frequent test class (from the confusion matrix)."""
    confusion = np.asarray(record["test"]["confusion"], dtype=np.float64)
    total = confusion.sum()
    return float(confusion.sum(axis=1).max() / total) if total else math.nan


def majority_baselines(record: Mapping[str, Any]) -> dict[str, float]:
    """``top1`` and ``balanced_accuracy`` of always predicting the most frequent test class.

    Its balanced accuracy is ``1 / K``, ``K`` the number of classes present in the test truth
    (recall 1 for the majority class, 0 for the others); both are NaN without a test sample.
    """
    confusion = np.asarray(record["test"]["confusion"], dtype=np.float64)
    present = int((confusion.sum(axis=1) > 0).sum())
    return {
        "top1": majority_baseline(record),
        "balanced_accuracy": 1.0 / present if present else math.nan,
    }


def score(r: Mapping[str, Any], metric: str) -> float | None:
    """The test score ``metric`` of run record ``r``; None where it is missing or not a number."""
    value = r["test"].get(metric)
    return float(value) if isinstance(value, int | float) else None
