"""summary.json: its flat keys, and the targets (met, not met, left out when not measured)."""

from __future__ import annotations

import math

import pytest
from calibkit import record

from s2ssl.calibration.seasonal import SeasonalResult
from s2ssl.calibration.summary import (
    TARGET_RULES,
    evaluate_targets,
    flat_summary,
    target_metrics,
)
from s2ssl.config import CalibrationTargets

TARGETS = CalibrationTargets(
    landcover_f100_min=0.65,
    landcover_f1_max=0.5,
    croptype_f100_min=0.6,
    spatial_margin_min=0.0,
    seasonal_gap_min=0.03,
    zero_shot_drop_min=0.1,
)
FRACTIONS = [0.01, 0.1, 1.0]


def _season(labels: str, single: tuple[float, ...], seasonal: float) -> SeasonalResult:
    return SeasonalResult(labels, tuple(range(len(single))), 16, single, seasonal, 100)


def _everything() -> dict[str, float]:
    records = [
        record("landcover", "1", 0.4),
        record("landcover", "10", 0.6),
        record("landcover", "100", 0.7, zero_shot=0.5),
        record("croptype", "100", 0.55),
        record("scene", "100", 0.8, metric="balanced_accuracy"),
    ]
    baselines = {
        "landcover.pixel.f100.miou": 0.6,
        "landcover.pixel.zero_shot.miou": 0.45,
        "croptype.pixel.f100.miou": 0.3,
        "scene.pixel_stats.f100.top1": 0.5,
    }
    seasonal = [_season("croptype", (0.2, 0.4), 0.5), _season("landcover", (0.6, 0.5), 0.58)]
    return flat_summary(records, baselines, seasonal)


def test_summary_keys_of_runs_baselines_and_the_season() -> None:
    s = _everything()
    assert s["landcover.random.f100.miou"] == 0.7
    assert s["landcover.random.f100.val_miou"] == pytest.approx(0.7)
    assert s["landcover.random.f100.best_step"] == 20 and s["landcover.random.f100.last_step"] == 20
    assert s["landcover.random.f100.val_gain_second_half"] == 0.1
    assert s["landcover.random.zero_shot.miou"] == 0.5
    assert s["landcover.random.zero_shot_drop"] == pytest.approx(0.2)
    assert "croptype.random.zero_shot.miou" not in s  # measured at the largest fraction only
    assert s["scene.random.f100.balanced_accuracy"] == 0.8
    assert s["scene.random.f100.val_balanced_accuracy"] == 0.8
    assert s["landcover.pixel.f100.miou"] == 0.6 and s["scene.pixel_stats.f100.top1"] == 0.5
    assert s["season.croptype.single_date_mean.miou"] == pytest.approx(0.3)
    assert s["season.croptype.best_single_date.miou"] == 0.4
    assert s["season.croptype.seasonal.miou"] == 0.5
    assert s["season.croptype.gap"] == pytest.approx(0.1)
    assert s["season.landcover.gap"] == pytest.approx(-0.02)
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in s.values())
    assert isinstance(s["landcover.random.f100.best_step"], int)


def test_undefined_values_are_left_out_not_written_as_nan() -> None:
    r = record("croptype", "100", 0.5)
    r["val_gain_second_half"] = None
    r["test_score"] = math.nan
    s = flat_summary([r], {"croptype.pixel.f100.miou": math.nan}, [])
    assert "croptype.random.f100.val_gain_second_half" not in s
    assert "croptype.random.f100.miou" not in s and "croptype.pixel.f100.miou" not in s
    assert s["croptype.random.f100.best_step"] == 20


def test_targets_met_and_not_met() -> None:
    outcomes = {t.name: t for t in evaluate_targets(_everything(), TARGETS, FRACTIONS)}
    assert list(outcomes) == list(TARGET_RULES)  # all measured, in field order
    assert outcomes["landcover_f100_min"].met and outcomes["landcover_f100_min"].value == 0.7
    assert outcomes["landcover_f1_max"].met and outcomes["landcover_f1_max"].value == 0.4
    assert not outcomes["croptype_f100_min"].met  # 0.55 < 0.6
    assert outcomes["spatial_margin_min"].value == pytest.approx(0.1)
    assert outcomes["spatial_margin_min"].met
    assert outcomes["seasonal_gap_min"].value == pytest.approx(0.1)  # the crop labels' gap
    assert outcomes["zero_shot_drop_min"].met and outcomes["zero_shot_drop_min"].threshold == 0.1
    flat = target_metrics(list(outcomes.values()))
    assert flat["targets.croptype_f100_min.met"] == 0 and flat["targets.landcover_f1_max.met"] == 1
    assert flat["targets.croptype_f100_min.value"] == 0.55
    assert flat["targets.croptype_f100_min.threshold"] == 0.6
    assert len(flat) == 3 * len(TARGET_RULES)


def test_comparisons_at_the_threshold() -> None:
    def outcome(name: str, summary: dict[str, float]) -> bool:
        (t,) = [t for t in evaluate_targets(summary, TARGETS, [1.0]) if t.name == name]
        return t.met

    assert outcome("landcover_f100_min", {"landcover.random.f100.miou": 0.65})  # >= holds
    assert outcome("landcover_f1_max", {"landcover.random.f100.miou": 0.5})  # one fraction
    equal = {"landcover.random.f100.miou": 0.6, "landcover.pixel.f100.miou": 0.6}
    assert not outcome("spatial_margin_min", equal)  # > is strict


def test_targets_without_their_inputs_are_left_out() -> None:
    only_landcover = flat_summary([record("landcover", "100", 0.7)], {}, [])
    names = [t.name for t in evaluate_targets(only_landcover, TARGETS, [0.1, 1.0])]
    # no croptype, no pixel baseline, no season, no held-out region; the f1 target reads f10
    assert names == ["landcover_f100_min"]
    with_f10 = flat_summary([record("landcover", "10", 0.3)], {}, [])
    (t,) = evaluate_targets(with_f10, TARGETS, [0.1, 1.0])
    assert t.name == "landcover_f1_max" and t.met
    assert evaluate_targets({}, TARGETS, FRACTIONS) == []
    with pytest.raises(ValueError, match=r"finetune\.fractions is empty"):
        evaluate_targets({}, TARGETS, [])


def test_every_target_setting_has_a_rule() -> None:
    assert list(TARGET_RULES) == list(CalibrationTargets.model_fields)
    assert {r.comparison for r in TARGET_RULES.values()} <= {">=", "<=", ">"}
