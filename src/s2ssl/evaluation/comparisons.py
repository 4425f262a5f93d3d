"""Paired gains over random init, with their intervals: what each init buys, per setting.

For every arm of a task whose init is not ``random`` (the A/A control ``random_b`` included),
:func:`gains` compares it with the ``random`` arm of the same setting, protocol and fraction:
the gain ``score(init) − score(random)`` per replicate (paired: replicate ``r`` of both arms
shares its seeds and label subset), its mean and interquartile mean over replicates, and a
confidence interval from the two-level bootstrap of :func:`s2ssl.stats.contrast_bootstrap`
(test samples resampled, shared by both arms; replicates by the Student-t step). Crop type is
also compared on boundary and interior pixels (CSCL's evaluation). :func:`class_gains` gives the
per-class gains (IoU, recall for scenes, AP for multi-label scenes), which show when a rare
class switching on or off carries a headline difference. Multi-label arms hold per-sample class
scores and truth instead of confusion matrices; their mAP contrasts go through
:func:`s2ssl.stats.ranking_contrast_bootstrap`, with the same two levels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from s2ssl.config import EvaluateConfig
from s2ssl.evaluation.records import Arm, ArmResults
from s2ssl.seeding import derive_seed
from s2ssl.stats import (
    RANKING_METRICS,
    Estimate,
    contrast_bootstrap,
    minimum_detectable_effect,
    per_class_average_precision,
    per_class_scores,
    ranking_contrast_bootstrap,
)
from s2ssl.taskspec import task_spec

__all__ = [
    "Gain",
    "bootstrap",
    "class_gains",
    "gain_label",
    "gains",
    "parts_of",
]

BASELINE = "random"


@dataclass(frozen=True)
class Gain:
    """``init − random`` in one arm's setting, on one part of the test pixels."""

    task: str
    arm: Arm
    part: str
    """``all``, or crop type's ``boundary`` / ``interior`` pixels."""
    metric: str
    estimate: Estimate
    mde: float
    """Minimum detectable effect at this R (:func:`s2ssl.stats.minimum_detectable_effect`)."""

    @property
    def metric_key(self) -> str:
        """``miou`` / ``boundary.miou`` …: the metric name in run records and metrics.json."""
        return self.metric if self.part == "all" else f"{self.part}.{self.metric}"


def gain_label(task: str, arm: Arm, part: str = "all") -> str:
    """The bootstrap label (hence seed) of ``arm − random``: the same gain gets the same draws
    wherever it is computed (the task tables and the claims show one interval)."""
    return f"{task}.{arm.label}.{part}.gain"


def parts_of(task: str) -> tuple[str, ...]:
    """The parts of the test pixels a task is compared on."""
    return ("all", "boundary", "interior") if task == "croptype" else ("all",)


def bootstrap(
    arms: Sequence[np.ndarray],
    weights: Sequence[float],
    metric: str,
    cfg: EvaluateConfig,
    label: str,
    *,
    confidence: float | None = None,
) -> Estimate:
    """:func:`~s2ssl.stats.contrast_bootstrap` with the ``evaluate`` settings and a seed derived
    from ``label`` (the same contrast always gets the same draws); a ranking ``metric`` (mAP of
    multi-label arms) goes through :func:`~s2ssl.stats.ranking_contrast_bootstrap`."""
    digest = int(hashlib.sha256(label.encode("utf-8")).hexdigest()[:8], 16)
    method = ranking_contrast_bootstrap if metric in RANKING_METRICS else contrast_bootstrap
    return method(
        arms,
        weights,
        metric,
        confidence=cfg.confidence if confidence is None else confidence,
        n_boot=cfg.bootstrap_samples,
        seed=derive_seed(cfg.replicate_seed, digest) & 0xFFFF_FFFF,
    )


def _paired(treated: ArmResults, control: ArmResults, task: str) -> None:
    if treated.replicates != control.replicates or treated.ids != control.ids:
        raise ValueError(
            f"{task}: {treated.arm.label} and {control.arm.label} are not paired (replicates "
            f"{treated.replicates} vs {control.replicates}, or different test samples); run "
            f"`dvc repro finetune@{task}` again"
        )


def gains(task: str, arms: Mapping[Arm, ArmResults], cfg: EvaluateConfig) -> list[Gain]:
    """Every non-random arm of ``task`` against random init (see the module docstring)."""
    metric = task_spec(task).headline
    out: list[Gain] = []
    for arm, results in sorted(arms.items()):
        if arm.init == BASELINE:
            continue
        control = arms.get(arm.with_init(BASELINE))
        if control is None:
            continue
        _paired(results, control, task)
        for part in parts_of(task):
            if part not in results.parts or part not in control.parts:
                continue
            estimate = bootstrap(
                [results.parts[part], control.parts[part]],
                [1.0, -1.0],
                metric,
                cfg,
                gain_label(task, arm, part),
            )
            out.append(
                Gain(
                    task,
                    arm,
                    part,
                    metric,
                    estimate,
                    minimum_detectable_effect(estimate, power=cfg.power),
                )
            )
    return out


def class_gains(task: str, treated: ArmResults, control: ArmResults) -> np.ndarray:
    """Per-class gain (IoU; recall for scenes; AP for multi-label scenes), averaged over
    replicates; NaN where a class is undefined in a replicate of either arm (absent from truth
    and prediction; multi-label: without a positive test image)."""
    spec = task_spec(task)
    if spec.is_multilabel:
        a, b = (
            np.stack([per_class_average_precision(r[:, 0], r[:, 1])[0] for r in arm.parts["all"]])
            for arm in (treated, control)
        )
    else:
        kind = "recall" if spec.is_scene_level else "iou"
        a = per_class_scores(treated.parts["all"].sum(axis=1), kind)  # (R, K)
        b = per_class_scores(control.parts["all"].sum(axis=1), kind)
    diff = a - b
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(diff).sum(axis=0)
        total = np.nansum(diff, axis=0)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
