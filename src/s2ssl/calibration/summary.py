"""The flat ``summary.json`` of a calibration (DVC metrics) and its targets.

Keys (``<pct>`` as :func:`s2ssl.finetune.plan.fraction_label`: ``f1``, ``f10``, ``f100``):

* ``<task>.random.f<pct>.<metric>`` (test), ``.val_<metric>`` (best validation), ``.best_step``,
  ``.last_step``, ``.val_gain_second_half`` — random init at each label fraction;
* ``<task>.random.zero_shot.<metric>`` and ``<task>.random.zero_shot_drop`` — the largest
  fraction's model on the held-out region's test split (with ``holdout_region`` only);
* the baselines: ``landcover.pixel.f<pct>.miou``, ``landcover.pixel.zero_shot.miou``,
  ``croptype.pixel.f<pct>.miou``, ``scene.pixel_stats.f<pct>.balanced_accuracy`` and
  ``.top1``;
* ``season.<labels>.{single_date_mean,best_single_date,seasonal}.miou`` and
  ``season.<labels>.gap``;
* ``targets.<name>.value`` / ``.threshold`` / ``.met`` (1 or 0) for each target whose inputs
  were measured (:data:`TARGET_RULES`).

Every value is a finite number: a value that is not defined (e.g. the second-half gain of a run
validated once) is left out rather than written as NaN.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from s2ssl.calibration.seasonal import SeasonalResult
from s2ssl.config import CalibrationTargets
from s2ssl.finetune.plan import fraction_label

__all__ = [
    "TARGET_RULES",
    "TargetOutcome",
    "TargetRule",
    "evaluate_targets",
    "flat_summary",
    "target_metrics",
]

Summary = Mapping[str, float]


def _put(out: dict[str, float], key: str, value: Any) -> None:
    """``out[key] = value`` for a finite number (ints stay ints: steps read as steps)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return
    out[key] = value if isinstance(value, int) else float(value)


def flat_summary(
    records: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, float],
    seasonal: Sequence[SeasonalResult],
) -> dict[str, float]:
    """The summary keys of the random-init ``records``, the flat ``baselines`` scores (already
    keyed as in the module docstring) and the seasonal results (targets not included)."""
    out: dict[str, float] = {}
    for r in records:
        key, metric = str(r["key"]), str(r["metric"])
        _put(out, f"{key}.{metric}", r["test_score"])
        _put(out, f"{key}.val_{metric}", r["val_score"])
        for name in ("best_step", "last_step", "val_gain_second_half"):
            _put(out, f"{key}.{name}", r.get(name))
        zero = r.get("zero_shot")
        if zero:
            _put(out, f"{r['task']}.random.zero_shot.{metric}", zero["score"])
            _put(out, f"{r['task']}.random.zero_shot_drop", zero["drop"])
    for key, value in baselines.items():
        _put(out, key, value)
    for s in seasonal:
        prefix = f"season.{s.labels}"
        _put(out, f"{prefix}.single_date_mean.miou", s.single_date_mean)
        _put(out, f"{prefix}.best_single_date.miou", s.best_single_date)
        _put(out, f"{prefix}.seasonal.miou", s.seasonal)
        _put(out, f"{prefix}.gap", s.gap)
    return out


ValueOf = Callable[[Summary, str, str], float | None]
"""``(summary, largest fraction's f-label, smallest fraction's f-label) -> value or None``."""


@dataclass(frozen=True)
class TargetRule:
    """How one ``calibrate.targets`` entry is measured and compared with its threshold."""

    comparison: str
    """``>=``, ``<=`` or ``>``: value (comparison) threshold is met."""
    meaning: str
    value: ValueOf


def _key(pattern: str) -> ValueOf:
    def value(s: Summary, big: str, small: str) -> float | None:
        return s.get(pattern.format(big=big, small=small))

    return value


def _spatial_margin(s: Summary, big: str, small: str) -> float | None:
    network, pixel = s.get(f"landcover.random.{big}.miou"), s.get(f"landcover.pixel.{big}.miou")
    return None if network is None or pixel is None else network - pixel


TARGET_RULES: Final[Mapping[str, TargetRule]] = {
    "landcover_f100_min": TargetRule(
        ">=",
        "random-init landcover test mIoU at the largest fraction: the budget reaches a good model",
        _key("landcover.random.{big}.miou"),
    ),
    "landcover_f1_max": TargetRule(
        "<=",
        "random-init landcover test mIoU at the smallest fraction: few labels must hurt",
        _key("landcover.random.{small}.miou"),
    ),
    "croptype_f100_min": TargetRule(
        ">=",
        "random-init croptype test mIoU at the largest fraction",
        _key("croptype.random.{big}.miou"),
    ),
    "spatial_margin_min": TargetRule(
        ">",
        "landcover random init − per-pixel classifier (largest fraction): spatial context pays",
        _spatial_margin,
    ),
    "seasonal_gap_min": TargetRule(
        ">=",
        "crop-type mIoU of the stacked dates − best single date: one date is not enough",
        _key("season.croptype.gap"),
    ),
    "zero_shot_drop_min": TargetRule(
        ">=",
        "landcover in-domain − zero-shot held-out-region test mIoU: regions differ",
        _key("landcover.random.zero_shot_drop"),
    ),
}
"""Each target of :class:`~s2ssl.config.CalibrationTargets` by field name. The seasonal gap is
required on the crop labels only: land cover is meant to be recognisable from one date (the
single-date landcover task depends on it), so its gap is reported but not a target."""

_COMPARE: Final[Mapping[str, Callable[[float, float], bool]]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
}


@dataclass(frozen=True)
class TargetOutcome:
    """One measured target."""

    name: str
    value: float
    threshold: float
    comparison: str
    met: bool
    meaning: str


def evaluate_targets(
    summary: Summary, targets: CalibrationTargets, fractions: Sequence[float]
) -> list[TargetOutcome]:
    """The outcome of every target whose inputs are in ``summary`` (in field order); a target
    whose inputs were not measured (task not calibrated, no held-out region) is left out.

    Raises:
        ValueError: no fraction, or a target field without a rule.
    """
    if not fractions:
        raise ValueError("finetune.fractions is empty: nothing to compare the targets with")
    big = f"f{fraction_label(max(fractions))}"
    small = f"f{fraction_label(min(fractions))}"
    out = []
    for name in type(targets).model_fields:
        rule = TARGET_RULES.get(name)
        if rule is None:
            raise ValueError(f"calibrate.targets.{name} has no rule in TARGET_RULES")
        threshold = float(getattr(targets, name))
        value = rule.value(summary, big, small)
        if value is None or not math.isfinite(value):
            continue
        met = _COMPARE[rule.comparison](value, threshold)
        out.append(TargetOutcome(name, float(value), threshold, rule.comparison, met, rule.meaning))
    return out


def target_metrics(outcomes: Sequence[TargetOutcome]) -> dict[str, float]:
    """``targets.<name>.value`` / ``.threshold`` / ``.met`` (1 or 0) of each outcome."""
    out: dict[str, float] = {}
    for t in outcomes:
        out[f"targets.{t.name}.value"] = t.value
        out[f"targets.{t.name}.threshold"] = t.threshold
        out[f"targets.{t.name}.met"] = int(t.met)
    return out
