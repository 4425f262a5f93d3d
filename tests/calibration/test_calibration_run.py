"""A whole calibration on the tiny generated world: every file it writes, zero-shot transfer on a
held-out region, and the errors it gives."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from calibkit import HOLDOUT, write_calibrate_params

from s2ssl.calibration import run_calibration
from s2ssl.config import load_params, override_params

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_calibration_writes_every_report(tiny_validated: Path, tmp_path: Path) -> None:
    params = load_params(write_calibrate_params(tmp_path / "params.yaml"))
    reports = tmp_path / "reports"
    result = run_calibration(params, tiny_validated, reports)
    keys = [f"{t}.random.f{p}" for t in ("landcover", "croptype", "scene") for p in ("50", "100")]
    assert result.executed == keys and list(result.records) == keys

    assert sorted(p.name for p in (reports / "runs").iterdir()) == sorted(f"{k}.json" for k in keys)
    run = json.loads((reports / "runs" / "landcover.random.f100.json").read_text(encoding="utf-8"))
    assert run["init"] == "random" and run["metric"] == "miou" and run["zero_shot"] is None
    assert [h["step"] for h in run["history"]] == [1.0, 2.0]  # validated every step of 2
    assert {"step", "train_loss", "val_miou"} <= set(run["history"][0])
    assert run["last_step"] == 2 and run["best_step"] in (1, 2)
    assert set(run["per_class"]) == {
        "water", "forest", "grassland", "cropland", "artificial", "bare", "wetland"
    }  # fmt: skip
    assert run["test_score"] == run["test"]["miou"] and run["fingerprint"]

    summary = json.loads((reports / "summary.json").read_text(encoding="utf-8"))
    assert summary == result.summary
    for key in keys:
        metric = "balanced_accuracy" if key.startswith("scene") else "miou"
        for name in (metric, f"val_{metric}", "best_step", "last_step", "val_gain_second_half"):
            assert f"{key}.{name}" in summary, f"{key}.{name}"
    for key in (
        "landcover.pixel.f100.miou",
        "croptype.pixel.f100.miou",
        "scene.pixel_stats.f50.top1",
        "scene.pixel_stats.f100.top1",
        "scene.pixel_stats.f50.balanced_accuracy",
        "scene.pixel_stats.f100.balanced_accuracy",
        "season.croptype.gap",
        "season.landcover.seasonal.miou",
        "targets.landcover_f100_min.met",
        "targets.landcover_f1_max.value",  # the smallest fraction here is 50 %
        "targets.seasonal_gap_min.threshold",
    ):
        assert key in summary, key
    assert not any("zero_shot" in k for k in summary)  # no held-out region in the tiny params
    scores = ("miou", "top1", "balanced_accuracy")
    assert all(0.0 <= v <= 1.0 for k, v in summary.items() if k.endswith(scores))

    with (reports / "curves.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["task", "fraction", "step", "train_loss", "val_score"]
    assert len(rows) == 2 * len(keys)
    assert (reports / "curves.png").read_bytes().startswith(PNG_MAGIC)
    report = (reports / "report.md").read_text(encoding="utf-8")
    assert "## Targets" in report and "### croptype labels" in report

    # a fraction dropped from the params: its records go, the others are reused
    fewer = override_params(params, {"finetune.fractions": [1.0]})
    again = run_calibration(fewer, tiny_validated, reports)
    assert again.executed == [] and again.reused == [k for k in keys if k.endswith("f100")]
    assert sorted(p.stem for p in (reports / "runs").iterdir()) == sorted(again.reused)
    assert "landcover.random.f50.miou" not in json.loads((reports / "summary.json").read_text())


def test_zero_shot_transfer_to_the_held_out_region(holdout_world: Path, tmp_path: Path) -> None:
    overrides = {
        "holdout_region": HOLDOUT,
        "calibrate.tasks": ["landcover", "scene"],
        "finetune.fractions": [1.0],
    }
    params = load_params(write_calibrate_params(tmp_path / "params.yaml", overrides))
    result = run_calibration(params, holdout_world, tmp_path / "reports")
    record = result.records["landcover.random.f100"]
    zero = record["zero_shot"]
    assert zero["region"] == HOLDOUT and zero["n_test"] >= 1
    assert zero["drop"] == pytest.approx(record["test_score"] - zero["score"])
    s = result.summary
    assert s["landcover.random.zero_shot.miou"] == zero["score"]
    assert s["landcover.random.zero_shot_drop"] == pytest.approx(zero["drop"])
    assert "scene.random.zero_shot.balanced_accuracy" in s and "scene.random.zero_shot_drop" in s
    assert 0.0 <= s["landcover.pixel.zero_shot.miou"] <= 1.0
    assert s["targets.zero_shot_drop_min.value"] == pytest.approx(zero["drop"])
    assert "targets.croptype_f100_min.value" not in s  # croptype not calibrated: left out
    assert "targets.seasonal_gap_min.value" not in s
    assert "Zero-shot region transfer" in (tmp_path / "reports" / "report.md").read_text()


def test_missing_validated_data_says_how_to_make_it(tiny_params: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dvc repro validate"):
        run_calibration(load_params(tiny_params), tmp_path / "nothing", tmp_path / "reports")
    assert not (tmp_path / "reports").exists()  # nothing written before the check
