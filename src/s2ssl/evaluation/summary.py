"""The machine-readable outputs of the ``evaluate`` stage: ``metrics.json``, ``verdicts.json``
and the per-replicate tables under ``plots/``.

``metrics.json`` (flat keys for ``dvc metrics show/diff``):

* ``<task>.<setting>.<init>.<protocol>.f<pct>.<metric>``: the mean over replicates;
* ``<…>.<metric>.gain``, ``.gain_lo``, ``.gain_hi``, ``.gain_iqm``, ``.gain_p``: the paired gain
  over random init (mean over replicates), its interval, its interquartile mean over replicates
  and its bootstrap p-value (:mod:`s2ssl.evaluation.comparisons`);
* ``claims.<claim>.verdict``: 1 holds, 0 inconclusive, -1 refuted; ``claims.<claim>.<i>.value``,
  ``.lo``, ``.hi`` per contrast (:mod:`s2ssl.evaluation.claims`);
* ``scene.majority_baseline.*`` and ``evaluate.replicates``.

``plots/<task>.csv`` has one row per run (replicate): the raw numbers behind every mean, with
the run's paired gain over random init in the same replicate.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from s2ssl.evaluation.claims import ClaimResult
from s2ssl.evaluation.comparisons import BASELINE, Gain
from s2ssl.evaluation.records import (
    REPORTED,
    Arm,
    ArmResults,
    majority_baselines,
    mean_scores,
    score,
)
from s2ssl.io import atomic_path
from s2ssl.taskspec import TaskKind, task_spec

__all__ = ["PLOT_FIELDS", "claim_slug", "flat_metrics", "plot_rows", "verdicts_json", "write_csv"]

VERDICT_CODE: Final[dict[str, int]] = {"holds": 1, "inconclusive": 0, "refuted": -1}
PLOT_FIELDS: Final[tuple[str, ...]] = (
    "fraction_pct",
    "score",
    "init",
    "setting",
    "protocol",
    "metric",
    "replicate",
    "gain",
)


def claim_slug(name: str) -> str:
    """``"Embedding Earth"`` → ``embedding_earth``, ``"A/A control"`` → ``aa_control``."""
    return "".join(c if c.isalnum() else "_" for c in name.lower().replace("/", "")).strip("_")


def _put(flat: dict[str, float], key: str, value: float) -> None:
    if math.isfinite(value):
        flat[key] = round(float(value), 6)


def flat_metrics(
    arms_by_task: Mapping[str, Mapping[Arm, ArmResults]],
    gains_by_task: Mapping[str, Sequence[Gain]],
    claims: Sequence[ClaimResult],
    replicates: int,
) -> dict[str, float]:
    """The flat ``metrics.json`` (see the module docstring); non-finite values are left out."""
    flat: dict[str, float] = {"evaluate.replicates": replicates}
    for task, arms in arms_by_task.items():
        for arm, results in arms.items():
            for metric in REPORTED[task]:
                _put(flat, f"{task}.{arm.label}.{metric}", mean_scores(results, metric)[0])
        for g in gains_by_task.get(task, ()):
            base = f"{task}.{g.arm.label}.{g.metric_key}"
            e = g.estimate
            for suffix, value in (
                ("gain", e.value),
                ("gain_lo", e.lo),
                ("gain_hi", e.hi),
                ("gain_iqm", e.iqm),
                ("gain_p", e.p_value),
            ):
                _put(flat, f"{base}.{suffix}", value)
        if task_spec(task).kind is TaskKind.SCENE and arms:
            first = next(iter(arms.values())).records[0]
            for metric, value in majority_baselines(first).items():
                _put(flat, f"scene.majority_baseline.{metric}", value)
    for claim in claims:
        slug = claim_slug(claim.name)
        if claim.verdict is not None:
            flat[f"claims.{slug}.verdict"] = VERDICT_CODE[claim.verdict]
        for i, c in enumerate(claim.contrasts):
            for suffix, value in (("value", c.estimate.value), ("lo", c.lo), ("hi", c.hi)):
                _put(flat, f"claims.{slug}.{i}.{suffix}", value)
    return flat


def verdicts_json(claims: Sequence[ClaimResult]) -> dict[str, Any]:
    """Every claim with its rule, contrasts and verdict. A contrast's ``lo`` / ``hi`` are its
    interval at ``confidence``, the level its verdict was decided at (Holm-adjusted in a
    corrected family); ``estimate`` holds the mean, the per-replicate values, the p-value and
    the interval at the configured level."""

    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {
        claim_slug(c.name): {
            "name": c.name,
            "rule": c.rule,
            "verdict": c.verdict,
            "note": c.note,
            "contrasts": [
                {
                    "label": k.label,
                    "verdict": k.verdict,
                    "confidence": k.confidence,
                    "lo": num(k.lo),
                    "hi": num(k.hi),
                    "mde": num(k.mde),
                    "estimate": k.estimate.as_dict(),
                }
                for k in c.contrasts
            ],
        }
        for c in claims
    }


def plot_rows(task: str, arms: Mapping[Arm, ArmResults]) -> list[dict[str, Any]]:
    """One row per run (replicate) of ``task``: its headline score and its paired gain."""
    metric = task_spec(task).headline
    rows: list[dict[str, Any]] = []
    for arm, results in arms.items():
        control = arms.get(arm.with_init(BASELINE))
        base = (
            {int(r.get("replicate", 0)): score(r, metric) for r in control.records}
            if control
            else {}
        )
        for r in results.records:
            value = score(r, metric)
            if value is None or not math.isfinite(value):
                continue
            replicate = int(r.get("replicate", 0))
            ref = base.get(replicate)
            paired = arm.init != BASELINE and ref is not None and math.isfinite(ref)
            rows.append(
                {
                    "fraction_pct": arm.fraction * 100,
                    "score": round(value, 6),
                    "init": arm.init
                    if arm.protocol == "finetune"
                    else f"{arm.init} ({arm.protocol})",
                    "setting": arm.setting,
                    "protocol": arm.protocol,
                    "metric": metric,
                    "replicate": replicate,
                    "gain": round(value - ref, 6) if paired and ref is not None else "",
                }
            )
    return rows


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> Path:
    """Write ``rows`` as CSV atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path
