"""report.md: targets met / NOT met, runs, zero-shot, baselines and the season."""

from __future__ import annotations

from calibkit import record

from s2ssl.calibration.report import render_report
from s2ssl.calibration.seasonal import SeasonalResult
from s2ssl.calibration.summary import TargetOutcome


def test_the_report_shows_every_part() -> None:
    records = [
        record("landcover", "10", 0.4),
        record("landcover", "100", 0.7, zero_shot=0.5),
        record("scene", "100", 0.8, metric="balanced_accuracy"),
    ]
    summary = {"landcover.pixel.f100.miou": 0.55, "scene.pixel_stats.f100.top1": 0.6}
    season = SeasonalResult("croptype", (0, 7, 15), 16, (0.2, 0.4, 0.3), 0.5, 100)
    targets = [
        TargetOutcome("landcover_f100_min", 0.7, 0.65, ">=", True, "budget"),
        TargetOutcome("landcover_f1_max", 0.4, 0.3, "<=", False, "few labels"),
    ]
    text = render_report(records, summary, [season], targets, holdout_region="south_pampa")
    assert text.endswith("\n") and "Targets met: 1 of 2 measured" in text
    assert "| landcover_f100_min | 0.700 | ≥ | 0.650 | met | budget |" in text
    assert "| landcover_f1_max | 0.400 | ≤ | 0.300 | **NOT met** | few labels |" in text
    assert "Not measured" in text and "zero_shot_drop_min" in text
    assert "| 100 % | 5 | 0.700 | 0.700 | 20 | 20 | 0.100 | 2 |" in text
    assert "| b | – | – |" in text  # a class absent from the test split
    assert "test balanced accuracy" in text
    assert "| landcover | mIoU | 0.700 | 0.500 | 0.200 | 3 |" in text
    assert "| `landcover.pixel.f100.miou` | 0.550 |" in text
    assert "| date 8 of 16 | 0.400 |" in text and "| best single date (8) | 0.400 |" in text
    assert "| **gap** (stacked − best single) | 0.100 |" in text


def test_the_report_says_what_was_not_measured() -> None:
    text = render_report([record("croptype", "100", 0.6)], {}, [], [], holdout_region=None)
    assert "No held-out region" in text
    assert "Not measured (croptype not calibrated)" in text
    assert "None measured." in text
    assert "Targets met: 0 of 0 measured" in text
