"""``report.md`` of a calibration: the targets (met / NOT met), the random-init runs with their
plateau evidence, zero-shot transfer, per-class scores, the baselines and the seasonal test."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from s2ssl.calibration.seasonal import SeasonalResult
from s2ssl.calibration.summary import TARGET_RULES, TargetOutcome
from s2ssl.taskspec import task_spec

__all__ = ["render_report"]

_SIGN = {">=": "≥", "<=": "≤", ">": ">"}


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _targets(targets: Sequence[TargetOutcome]) -> list[str]:
    lines = ["## Targets", ""]
    if targets:
        rows = [
            [
                t.name,
                _num(t.value),
                _SIGN.get(t.comparison, t.comparison),
                _num(t.threshold),
                "met" if t.met else "**NOT met**",
                t.meaning,
            ]
            for t in targets
        ]
        lines += _table(["target", "value", "", "threshold", "", "what it checks"], rows)
    left_out = [name for name in TARGET_RULES if name not in {t.name for t in targets}]
    if left_out:
        lines += [
            f"Not measured (task not calibrated or no held-out region): {', '.join(left_out)}.",
            "",
        ]
    return lines


def _random_init(records: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "## Random init, in domain",
        "",
        "Fine-tuned exactly as the `finetune` stage trains random init; the best validation "
        "state is scored on test. A budget that has converged has its best step well before the "
        "last one, or a small gain in the second half of the run.",
        "",
    ]
    for task in dict.fromkeys(str(r["task"]) for r in records):
        label = task_spec(task).headline_label
        rows = [
            [
                f"{r['fraction_label']} %",
                str(r["n_train"]),
                _num(r["test_score"]),
                _num(r["val_score"]),
                str(r["best_step"]),
                str(r["last_step"]),
                _num(r.get("val_gain_second_half")),
                _num(r.get("wall_s"), 0),
            ]
            for r in records
            if r["task"] == task
        ]
        lines += [f"### {task}", ""]
        lines += _table(
            [
                "labels",
                "n train",
                f"test {label}",
                f"best val {label}",
                "best step",
                "last step",
                "val gain, 2nd half",
                "s",
            ],
            rows,
        )
        classes = list(
            dict.fromkeys(c for r in records if r["task"] == task for c in r["per_class"])
        )
        runs = [r for r in records if r["task"] == task]
        lines += _table(
            ["class", *(f"{r['fraction_label']} %" for r in runs)],
            [[c, *(_num(r["per_class"].get(c)) for r in runs)] for c in classes],
        )
    return lines


def _zero_shot(records: Sequence[Mapping[str, Any]], holdout_region: str | None) -> list[str]:
    lines = ["## Zero-shot region transfer", ""]
    with_zero = [r for r in records if r.get("zero_shot")]
    if holdout_region is None or not with_zero:
        return [*lines, "No held-out region (`holdout_region: null`): not measured.", ""]
    lines += [
        f"The random-init model of the largest fraction, scored without adaptation on the test "
        f"split of `{holdout_region}`.",
        "",
    ]
    rows = [
        [
            str(r["task"]),
            task_spec(str(r["task"])).headline_label,
            _num(r["test_score"]),
            _num(r["zero_shot"]["score"]),
            _num(r["zero_shot"]["drop"]),
            str(r["zero_shot"]["n_test"]),
        ]
        for r in with_zero
    ]
    return lines + _table(["task", "metric", "in domain", "zero-shot", "drop", "n test"], rows)


def _baselines(summary: Mapping[str, float]) -> list[str]:
    lines = ["## Baselines (scikit-learn)", ""]
    keys = [k for k in summary if ".pixel." in k or ".pixel_stats." in k]
    if not keys:
        return [*lines, "None measured.", ""]
    lines += [
        "`pixel`: gradient boosting on one pixel's reflectance (all bands × dates), trained on "
        "random labelled pixels of the largest fraction's train subset; `pixel_stats`: logistic "
        "regression on per-tile band means and standard deviations.",
        "",
    ]
    return lines + _table(["key", "test score"], [[f"`{k}`", _num(summary[k])] for k in keys])


def _seasonal(seasonal: Sequence[SeasonalResult]) -> list[str]:
    lines = ["## Seasonal ambiguity (crop-type series)", ""]
    if not seasonal:
        return [*lines, "Not measured (croptype not calibrated).", ""]
    lines += [
        "The per-pixel classifier on each of a few dates spread over the season alone, and on "
        "all of them stacked (same train pixels); test mIoU. Dates count from 1 in the series "
        "(the southern regions' season is shifted by six months, so a position is a stage of "
        "the season, not a calendar date).",
        "",
    ]
    for s in seasonal:
        rows = [
            [f"date {d + 1} of {s.n_dates}", _num(v)]
            for d, v in zip(s.dates, s.single, strict=True)
        ]
        rows += [
            ["single-date mean", _num(s.single_date_mean)],
            [f"best single date ({s.best_date + 1})", _num(s.best_single_date)],
            [f"{len(s.dates)} dates stacked", _num(s.seasonal)],
            ["**gap** (stacked − best single)", _num(s.gap)],
        ]
        lines += [f"### {s.labels} labels", "", *_table(["features", "test mIoU"], rows)]
    return lines


def render_report(
    records: Sequence[Mapping[str, Any]],
    summary: Mapping[str, float],
    seasonal: Sequence[SeasonalResult],
    targets: Sequence[TargetOutcome],
    *,
    holdout_region: str | None,
) -> str:
    """The Markdown report (ends with a newline)."""
    met = sum(t.met for t in targets)
    lines = [
        "# Calibration: random init and simple baselines",
        "",
        "No pre-trained encoder was loaded to make this report. It shows whether the "
        "fine-tuning budgets converge and whether the data are hard in the intended ways. "
        f"Targets met: {met} of {len(targets)} measured.",
        "",
        "Figures: `curves.png` (validation score per step); every number: `summary.json`; "
        "each run with its validation history: `runs/`.",
        "",
    ]
    lines += _targets(targets)
    lines += _random_init(records)
    lines += _zero_shot(records, holdout_region)
    lines += _baselines(summary)
    lines += _seasonal(seasonal)
    return "\n".join(lines).rstrip("\n") + "\n"
