"""Fine-tuning run records and their per-test-sample results, grouped for the ``evaluate`` stage.

:func:`collect_runs` reads the per-run results of the ``finetune`` stage
(``reports/finetune/<task>/runs/<key>.json``: test metrics scored once after training, one file
per replicate); :func:`load_arms` stacks the per-test-sample confusion matrices of every arm
(setting × init × protocol × fraction) over its replicates (``<key>.samples.npz``), the input of
every bootstrap; :func:`replicate_scores` gives each arm's headline per replicate, the raw numbers
behind every mean.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.classes import ClassSet
from s2ssl.finetune.store import load_samples

__all__ = [
    "REPORTED",
    "Arm",
    "ArmResults",
    "arm_of",
    "collect_runs",
    "load_arms",
    "majority_baselines",
    "mean_scores",
    "record_classes",
    "replicate_scores",
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
    ),
    "scene": ("balanced_accuracy", "top1", "macro_f1", "kappa"),
    "multilabel": ("map_micro", "map_macro", "f1_micro", "f1_macro"),
}
"""The metrics of each task that go to ``metrics.json`` (mean over replicates; per-class scores
stay in the runs); the first is the task's headline (:attr:`s2ssl.taskspec.TaskSpec.headline`)."""


@dataclass(frozen=True, order=True)
class Arm:
    """One training configuration of a task, repeated once per replicate."""

    setting: str
    protocol: str
    init: str
    fraction: float

    @property
    def label(self) -> str:
        """``<setting>.<init>.<protocol>.f<pct>``: the run key without the replicate."""
        return f"{self.setting}.{self.init}.{self.protocol}.f{self.fraction * 100:.6g}"

    def with_init(self, init: str) -> Arm:
        """The same configuration with another init (e.g. the random-init baseline)."""
        return Arm(self.setting, self.protocol, init, self.fraction)


def arm_of(record: Mapping[str, Any]) -> Arm:
    """The arm of a run record."""
    return Arm(record["setting"], record["protocol"], record["init"], float(record["fraction"]))


@dataclass(frozen=True)
class ArmResults:
    """The replicates of one arm: their records (replicate order) and per-test-sample confusion
    matrices, ``parts[name]`` of shape ``(R, n, K, K)`` (``all``; crop type also ``boundary`` /
    ``interior``), scored on the test samples ``ids``; a multi-label arm holds per-test-sample
    class scores and truth instead, ``parts["all"]`` of shape ``(R, n, 2, K)``."""

    arm: Arm
    records: tuple[Mapping[str, Any], ...]
    ids: tuple[str, ...]
    parts: Mapping[str, np.ndarray]

    @property
    def replicates(self) -> tuple[int, ...]:
        """The replicate numbers, in order."""
        return tuple(int(r.get("replicate", 0)) for r in self.records)


def collect_runs(runs_dir: str | Path, tasks: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The run records of every task, sorted by setting, protocol, init, fraction, replicate.

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
        records.sort(key=lambda r: (arm_of(r), int(r.get("replicate", 0))))
        out[task] = records
    return out


def load_arms(
    runs_dir: str | Path, task: str, records: Sequence[Mapping[str, Any]]
) -> dict[Arm, ArmResults]:
    """Every arm of ``task`` with its replicates' per-test-sample confusion matrices.

    Raises:
        ValueError: a missing ``<key>.samples.npz``, or replicates of one arm scored on different
            test samples (then nothing about them can be paired).
    """
    grouped: dict[Arm, list[Mapping[str, Any]]] = {}
    for r in records:
        grouped.setdefault(arm_of(r), []).append(r)
    folder = Path(runs_dir) / task / "runs"
    out: dict[Arm, ArmResults] = {}
    for arm, rows in sorted(grouped.items()):
        rows = sorted(rows, key=lambda r: int(r.get("replicate", 0)))
        ids: tuple[str, ...] | None = None
        stacked: dict[str, list[np.ndarray]] = {}
        for r in rows:
            path = folder / f"{r['key']}.samples.npz"
            if not path.is_file():
                raise ValueError(
                    f"{path} is missing: the run has no per-test-sample results to bootstrap; "
                    f"run `dvc repro finetune@{task}` again"
                )
            run_ids, parts = load_samples(path)
            if ids is not None and run_ids != ids:
                raise ValueError(
                    f"the replicates of {task} {arm.label} were scored on different test samples "
                    f"({path}); run `dvc repro finetune@{task}` again"
                )
            ids = run_ids
            for name, array in parts.items():
                stacked.setdefault(name, []).append(array)
        out[arm] = ArmResults(
            arm,
            tuple(rows),
            ids or (),
            {name: np.stack(arrays) for name, arrays in stacked.items()},
        )
    return out


def record_classes(records: Sequence[Mapping[str, Any]]) -> ClassSet:
    """The classes the runs of one task were trained and scored on (their data's own).

    Raises:
        ValueError: no records, a record without classes (written by an older s2ssl: re-run
            fine-tuning), or records of one task that disagree.
    """
    if not records:
        raise ValueError("no run records: nothing to take the classes from")
    sets = []
    for r in records:
        if "classes" not in r:
            raise ValueError(
                f"run record {r.get('key', '?')} of {r.get('task', '?')} lists no classes; "
                "re-run fine-tuning (`dvc repro finetune`)"
            )
        sets.append(ClassSet.from_json(r["classes"]))
    if any(c != sets[0] for c in sets[1:]):
        raise ValueError(
            f"the runs of {records[0].get('task', '?')} were trained on different class sets; "
            "re-run fine-tuning on one dataset"
        )
    return sets[0]


def score(r: Mapping[str, Any], metric: str) -> float | None:
    """The test score ``metric`` of run record ``r``; None where it is missing or not a number."""
    value = r["test"].get(metric)
    return float(value) if isinstance(value, int | float) else None


def replicate_scores(arm: ArmResults, metric: str) -> list[float]:
    """``metric`` of every replicate of ``arm`` (NaN where a run lacks it)."""
    values = [score(r, metric) for r in arm.records]
    return [math.nan if v is None else v for v in values]


def mean_scores(arm: ArmResults, metric: str) -> tuple[float, float]:
    """``(mean, standard deviation)`` of ``metric`` over the replicates (sd NaN for one)."""
    values = [v for v in replicate_scores(arm, metric) if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), sd


def majority_baselines(record: Mapping[str, Any]) -> dict[str, float]:
    """``top1`` and ``balanced_accuracy`` of always predicting the most frequent test class.

    Its balanced accuracy is ``1 / K``, ``K`` the number of classes present in the test truth
    (recall 1 for the majority class, 0 for the others); both are NaN without a test sample.
    Single-label scenes only (multi-label runs have no confusion matrix).
    """
    confusion = np.asarray(record["test"]["confusion"], dtype=np.float64)
    total = confusion.sum()
    present = int((confusion.sum(axis=1) > 0).sum())
    return {
        "top1": float(confusion.sum(axis=1).max() / total) if total else math.nan,
        "balanced_accuracy": 1.0 / present if present else math.nan,
    }
