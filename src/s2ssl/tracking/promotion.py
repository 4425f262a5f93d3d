"""The promotion policy: a pure function of two registered models' records (no I/O, no MLflow).

:func:`should_promote` decides whether a ``challenger`` replaces the ``champion`` under
``register.promote`` (:class:`s2ssl.config.PromotionPolicy`); :mod:`s2ssl.tracking.registry`
reads the records from the registry, applies the decision and records it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s2ssl.taskspec import task_spec

if TYPE_CHECKING:
    from s2ssl.config import PromotionPolicy

__all__ = ["Decision", "ModelRecord", "class_prefix", "headline_metric", "should_promote"]


def headline_metric(task: str) -> str:
    """The metric a task's models are compared on by default: ``top1`` for scenes, else mIoU."""
    return task_spec(task).headline


def class_prefix(task: str) -> str:
    """Prefix of the per-class test scores of ``task`` (``acc.`` for scenes, else ``iou.``)."""
    return task_spec(task).class_prefix


@dataclass(frozen=True)
class ModelRecord:
    """What the promotion policy sees of one registered model version."""

    task: str
    version: str
    metrics: Mapping[str, float]
    test_set: str | None = None
    model_hash: str | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`should_promote`: whether to promote, and why (one sentence)."""

    promote: bool
    reason: str


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def should_promote(
    candidate: ModelRecord, champion: ModelRecord | None, policy: PromotionPolicy
) -> Decision:
    """Whether ``candidate`` should replace ``champion`` under ``policy`` (pure; no I/O).

    Rules, in order: no champion → promote; the same model (hash or version) → no; the metric
    (``policy.metric`` or :func:`headline_metric`) missing or not finite on the candidate → no;
    different test sets while ``policy.require_same_test_set`` → no (an unknown test set counts
    as different); the champion without the metric → promote; the candidate not better by at
    least ``policy.min_improvement`` (and strictly better) → no; any per-class score
    (:func:`class_prefix`) dropping by more than ``policy.max_class_drop`` → no; else promote.
    """
    metric = policy.metric or headline_metric(candidate.task)
    if champion is None:
        return Decision(True, f"no champion yet: version {candidate.version} becomes the first")
    if candidate.version == champion.version or (
        candidate.model_hash is not None and candidate.model_hash == champion.model_hash
    ):
        return Decision(False, f"version {candidate.version} is already the champion's model")
    value = candidate.metrics.get(metric)
    if value is None or not math.isfinite(value):
        return Decision(
            False,
            f"candidate version {candidate.version} has no finite {metric!r} test score "
            f"(has: {sorted(candidate.metrics)[:8]})",
        )
    if policy.require_same_test_set and (
        candidate.test_set is None or candidate.test_set != champion.test_set
    ):
        return Decision(
            False,
            f"scored on a different test set than champion version {champion.version} "
            f"({(candidate.test_set or 'unknown')[:12]} vs {(champion.test_set or 'unknown')[:12]}"
            "); the scores are not comparable (register.promote.require_same_test_set)",
        )
    best = champion.metrics.get(metric)
    if best is None or not math.isfinite(best):
        return Decision(
            True, f"champion version {champion.version} has no finite {metric!r}; replaced"
        )
    needed = best + policy.min_improvement
    if not (value > best and value >= needed):
        return Decision(
            False,
            f"{metric} {_fmt(value)} < {_fmt(best)} + {policy.min_improvement:g} (champion "
            f"version {champion.version})",
        )
    if policy.max_class_drop is not None:
        prefix = class_prefix(candidate.task)
        drops = sorted(
            (
                (champion.metrics[k] - candidate.metrics[k], k)
                for k in champion.metrics
                if k.startswith(prefix)
                and k in candidate.metrics
                and math.isfinite(candidate.metrics[k])
                and math.isfinite(champion.metrics[k])
            ),
            reverse=True,
        )
        if drops and drops[0][0] > policy.max_class_drop:
            drop, key = drops[0]
            return Decision(
                False,
                f"{metric} {_fmt(value)} >= {_fmt(best)} + {policy.min_improvement:g}, but {key} "
                f"drops by {drop:.4f} > {policy.max_class_drop:g} (guard rail "
                "register.promote.max_class_drop)",
            )
    return Decision(
        True,
        f"{metric} {_fmt(value)} >= {_fmt(best)} + {policy.min_improvement:g} (champion version "
        f"{champion.version})",
    )
