"""Run records of the ``evaluate`` stage (s2ssl.evaluation.records): gains, flat metrics, loading.

Small hand-made fine-tuning run records; every expected number below is computed by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from runkit import (
    NAN,
    SCENE_CONFUSION,
    ct,
    lc,
    run,
    sc,
    seg_test,
    write_runs,
)

from s2ssl.evaluation.records import (
    collect_runs,
    flat_metrics,
    gains,
    majority_baseline,
    majority_baselines,
)

# ------------------------------------------------------------------------------------------ gains


def test_gains_are_differences_to_random_init_in_the_same_group() -> None:
    records = [
        lc("random", 0.01, 0.20),
        lc("dense", 0.01, 0.35),  # +0.15
        lc("random", 0.1, 0.40),
        lc("dense", 0.1, 0.37),  # -0.03
        lc("seco", 0.1, NAN),  # NaN itself: no entry
        lc("random", 1.0, NAN),  # NaN random: no entry for dense at 100 %
        lc("dense", 1.0, 0.60),
        lc("dense", 0.1, 0.30, setting="transfer"),  # no random run in transfer
        # another task's random run is no baseline for landcover
        run("croptype", "transfer", "random", "finetune", 0.1, seg_test(0.10)),
    ]
    assert gains(records, "miou") == pytest.approx(
        {"in_domain.dense.finetune.f1": 0.15, "in_domain.dense.finetune.f10": -0.03}
    )
    assert set(gains(records, "miou")) == {
        "in_domain.dense.finetune.f1",
        "in_domain.dense.finetune.f10",
    }
    # a metric the records lack has no gain at all
    assert gains(records, "balanced_accuracy") == {}


def test_gains_do_not_mix_protocols_or_settings() -> None:
    records = [
        sc("random", "linear", 0.1, 0.50),
        sc("seco", "linear", 0.1, 0.70),  # +0.20
        sc("random", "knn", 0.1, 0.60),
        sc("seco", "knn", 0.1, 0.65),  # +0.05
        sc("random", "linear", 0.1, 0.10, setting="transfer"),
        sc("seco", "linear", 0.1, 0.40, setting="transfer"),  # +0.30
        sc("seco", "finetune", 1.0, 0.90),  # no random fine-tuned run
    ]
    assert gains(records, "balanced_accuracy") == pytest.approx(
        {
            "in_domain.seco.linear.f10": 0.20,
            "in_domain.seco.knn.f10": 0.05,
            "transfer.seco.linear.f10": 0.30,
        }
    )
    assert len(gains(records, "balanced_accuracy")) == 3


# ----------------------------------------------------------------------------------- flat metrics


def test_flat_metrics_keys_values_gains_and_nan_left_out() -> None:
    runs = {
        "landcover": [
            lc("random", 0.1, 0.40, overall_accuracy=0.80, macro_f1=0.30, kappa=0.50),
            lc("dense", 0.1, 0.50, overall_accuracy=0.85, macro_f1=NAN, kappa=0.55),
        ],
        "scene": [
            sc("random", "linear", 0.01, 0.25),
            sc("seco", "linear", 0.01, 0.45),
        ],
    }
    for r in runs["scene"]:
        r["test"]["kappa"] = NAN  # NaN in both: neither the value nor a gain
    flat = flat_metrics(runs)
    expected = {
        "landcover.in_domain.random.finetune.f10.miou": 0.40,
        "landcover.in_domain.random.finetune.f10.overall_accuracy": 0.80,
        "landcover.in_domain.random.finetune.f10.macro_f1": 0.30,
        "landcover.in_domain.random.finetune.f10.kappa": 0.50,
        "landcover.in_domain.dense.finetune.f10.miou": 0.50,
        "landcover.in_domain.dense.finetune.f10.miou.gain": 0.10,
        "landcover.in_domain.dense.finetune.f10.overall_accuracy": 0.85,
        "landcover.in_domain.dense.finetune.f10.overall_accuracy.gain": 0.05,
        "landcover.in_domain.dense.finetune.f10.kappa": 0.55,
        "landcover.in_domain.dense.finetune.f10.kappa.gain": 0.05,
        "scene.in_domain.random.linear.f1.balanced_accuracy": 0.25,
        "scene.in_domain.random.linear.f1.top1": 0.7,
        "scene.in_domain.random.linear.f1.macro_f1": 0.5,
        "scene.in_domain.seco.linear.f1.balanced_accuracy": 0.45,
        "scene.in_domain.seco.linear.f1.balanced_accuracy.gain": 0.20,
        "scene.in_domain.seco.linear.f1.top1": 0.7,
        "scene.in_domain.seco.linear.f1.top1.gain": 0.0,
        "scene.in_domain.seco.linear.f1.macro_f1": 0.5,
        "scene.in_domain.seco.linear.f1.macro_f1.gain": 0.0,
        # SCENE_CONFUSION: test rows 12, 5, 3 -> always class 0 is right 12 / 20 times, and
        # recalls 1, 0, 0 over the three classes present
        "scene.majority_baseline.top1": 0.6,
        "scene.majority_baseline.balanced_accuracy": 0.333333,
    }
    assert sorted(flat) == sorted(expected)
    # values are rounded to 6 decimals: the float noise of the subtraction is gone
    assert flat == expected
    assert all(type(v) is float for v in flat.values())
    # per-class scores and the confusion matrix stay in the run files
    assert not [k for k in flat if ".iou." in k or ".acc." in k or "confusion" in k]


def test_flat_metrics_croptype_reports_boundary_and_interior() -> None:
    flat = flat_metrics({"croptype": [ct("random", 1.0, 0.30, 0.60), ct("cscl", 1.0, 0.45, 0.62)]})
    assert flat["croptype.in_domain.cscl.finetune.f100.boundary.miou"] == 0.45
    assert flat["croptype.in_domain.cscl.finetune.f100.boundary.miou.gain"] == 0.15
    assert flat["croptype.in_domain.cscl.finetune.f100.interior.miou.gain"] == 0.02
    assert not [k for k in flat if k.startswith("scene.")]


# ------------------------------------------------------------------------------ majority baseline


def test_majority_baseline_from_the_confusion_matrix() -> None:
    # true-class totals (row sums) 4, 10, 6: always predicting class 1 is right 10 / 20 times
    record = {"test": {"confusion": [[3, 1, 0], [2, 6, 2], [0, 0, 6]]}}
    assert majority_baseline(record) == pytest.approx(0.5)
    assert majority_baseline({"test": {"confusion": SCENE_CONFUSION}}) == pytest.approx(0.6)
    assert math.isnan(majority_baseline({"test": {"confusion": [[0, 0], [0, 0]]}}))


def test_majority_baselines_balanced_accuracy_is_one_over_the_classes_in_the_truth() -> None:
    # classes 0 and 2 in the truth (rows 3 + 1 and 6), class 1 never: 1 / 2; top-1 6 / 10
    record = {"test": {"confusion": [[3, 1, 0], [0, 0, 0], [0, 0, 6]]}}
    assert majority_baselines(record) == pytest.approx({"top1": 0.6, "balanced_accuracy": 0.5})
    empty = majority_baselines({"test": {"confusion": [[0, 0], [0, 0]]}})
    assert math.isnan(empty["top1"]) and math.isnan(empty["balanced_accuracy"])


# ------------------------------------------------------------------------------------ collect_runs


def test_collect_runs_reads_and_sorts_records(tmp_path: Path) -> None:
    records = [
        lc("random", 1.0, 0.6, setting="transfer"),
        lc("random", 0.1, 0.4),
        lc("dense", 1.0, 0.7),
        lc("dense", 0.01, 0.3),
        lc("dense", 0.1, 0.5),
    ]
    write_runs(tmp_path, records)
    # not a run record: the ``.npz`` preview next to it
    (tmp_path / "landcover" / "runs" / "in_domain.dense.finetune.f10.npz").write_bytes(b"x")
    runs = collect_runs(tmp_path, ["landcover"])
    assert list(runs) == ["landcover"]
    assert [r["key"] for r in runs["landcover"]] == [
        "in_domain.dense.finetune.f1",
        "in_domain.dense.finetune.f10",
        "in_domain.dense.finetune.f100",
        "in_domain.random.finetune.f10",
        "transfer.random.finetune.f100",
    ]
    # NaN survives the round trip through the file
    assert math.isnan(runs["landcover"][0]["test"]["iou.water"])


def test_collect_runs_names_the_stage_to_run_when_a_task_has_no_runs(tmp_path: Path) -> None:
    write_runs(tmp_path, [lc("random", 0.1, 0.4)])
    with pytest.raises(ValueError, match=r"dvc repro finetune@scene") as info:
        collect_runs(tmp_path, ["landcover", "scene"])
    assert str(tmp_path / "scene" / "runs") in str(info.value)
    # an existing but empty runs folder is the same
    (tmp_path / "croptype" / "runs").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"dvc repro finetune@croptype"):
        collect_runs(tmp_path, ["croptype"])


def test_collect_runs_rejects_invalid_json(tmp_path: Path) -> None:
    write_runs(tmp_path, [lc("random", 0.1, 0.4)])
    broken = tmp_path / "landcover" / "runs" / "in_domain.dense.finetune.f10.json"
    broken.write_text('{"task": "landcover", "setting": ', encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid JSON") as info:
        collect_runs(tmp_path, ["landcover"])
    assert broken.name in str(info.value)
    assert "finetune@landcover" in str(info.value)
