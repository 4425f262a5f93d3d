"""Benchmarks end to end: an EuroSAT download is imported, validated, fine-tuned with the scene
protocols over paired replicates and reported with intervals, like the synthetic tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchkit import benchmark_params, write_eurosat, write_metadata, write_pastis, write_patch
from s2ssl.config import Params, load_params
from s2ssl.data.fetch import fetch
from s2ssl.evaluation.report import write_evaluation
from s2ssl.finetune.data import has_scene_dataset, load_task_data
from s2ssl.finetune.run import run_finetune
from s2ssl.ssl.stage import pretrain
from s2ssl.validation.validate import validate


def _import(params: Params, tmp_path: Path) -> Path:
    """fetch + validate into ``tmp_path``; the validated datasets' folder."""
    fetch(params, tmp_path / "raw", tmp_path / "reports/fetch")
    validate(params, tmp_path / "raw", tmp_path / "validated", tmp_path / "reports/validate")
    return tmp_path / "validated"


def _fine_tune(params: Params, task: str, tmp_path: Path) -> Any:
    return run_finetune(
        params,
        task,
        tmp_path / "validated",
        tmp_path / "models/pretrain",
        tmp_path / "models/finetune",
        tmp_path / "reports/finetune",
        track=False,
    )


def _report(params: Params, tmp_path: Path) -> str:
    evaluation = write_evaluation(
        params, tmp_path / "reports/finetune", tmp_path / "validated", tmp_path / "reports/eval"
    )
    return evaluation.report.read_text()


@pytest.mark.slow
def test_eurosat_scene_protocols_run_and_are_reported(tmp_path: Path) -> None:
    root = write_eurosat(tmp_path / "EuroSAT", per_class=4, classes=("Forest", "River", "SeaLake"))
    params = load_params(
        benchmark_params(
            tmp_path / "params.yaml",
            "eurosat",
            {"path": str(root)},
            **{
                "finetune.tasks": ["scene"],
                "finetune.scene.inits": ["random", "random_b"],
                "finetune.scene.protocols": ["linear", "knn"],
                "finetune.fractions": [1.0],
                "finetune.region_transfer.enabled": False,
            },
        )
    )
    _import(params, tmp_path)
    assert has_scene_dataset(tmp_path / "validated")
    data = load_task_data("scene", tmp_path / "validated", "in_domain", None)
    assert data.classes[:3] == ("AnnualCrop", "Forest", "HerbaceousVegetation")
    assert (len(data.train), len(data.val), len(data.test)) == (6, 3, 3)
    assert data.train.image.shape[1:] == (1, 12, 64, 64)
    assert data.manifest["scene_labels"] == "dataset"
    result = _fine_tune(params, "scene", tmp_path)
    assert len(result.executed) == 8  # 2 inits x 2 protocols x 2 replicates
    record = json.loads(
        (tmp_path / "reports/finetune/scene/runs/r0.in_domain.random.linear.f100.json").read_text()
    )
    assert record["n_train"] == 6 and record["classes"]["classes"][1]["name"] == "Forest"
    report = _report(params, tmp_path)
    assert "scene" in report and "random_b" in report
    assert "[" in report  # gains are shown with their intervals


@pytest.mark.slow
def test_pastis_series_of_any_length_pretrain_cscl_and_fine_tune(tmp_path: Path) -> None:
    lengths = {1: 5, 2: 4, 3: 5, 4: 3, 5: 5, 6: 4}
    folds = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 1}
    root = write_pastis(tmp_path / "PASTIS", lengths, folds)
    params = load_params(
        benchmark_params(
            tmp_path / "params.yaml",
            "pastis",
            {"path": str(root)},
            bands="pastis",
            **{
                "finetune.tasks": ["croptype"],
                "finetune.croptype.inits": ["random", "random_b", "cscl"],
                "finetune.croptype.n_dates": 4,
                "finetune.fractions": [1.0],
                "finetune.region_transfer.enabled": False,
                "pretrain.cscl.n_dates": 4,
            },
        )
    )
    _import(params, tmp_path)
    data = load_task_data("croptype", tmp_path / "validated", "in_domain", None)
    assert (len(data.train), len(data.val), len(data.test)) == (4, 1, 1)
    assert data.train.image.shape[1:3] == (5, 10)  # padded to the longest series, 10 bands
    pretrain(params, "cscl", tmp_path / "validated", tmp_path / "models/pretrain", tmp_path / "rp")
    result = _fine_tune(params, "croptype", tmp_path)
    assert len(result.executed) == 6  # 3 inits x 2 replicates
    record = json.loads(
        (
            tmp_path / "reports/finetune/croptype/runs/r0.in_domain.cscl.finetune.f100.json"
        ).read_text()
    )
    assert record["dates"]["n_dates"] == 4
    assert record["bands"] == list(data.bands)
    assert "croptype" in _report(params, tmp_path)


BEN = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"


@pytest.mark.slow
def test_bigearthnet_multilabel_protocols_run_and_are_reported_by_map(tmp_path: Path) -> None:
    sets = [["Pastures", "Arable land"], ["Marine waters"], ["Urban fabric", "Arable land"]]
    rows = [
        {"patch_id": f"{BEN}_{k}_1", "labels": sets[k % 3], "split": split}
        for k, split in enumerate(["train"] * 9 + ["validation"] * 3 + ["test"] * 3)
    ]
    for row in rows:  # DN up to 1200 + 14399: within validate.dn_range
        write_patch(tmp_path / "BigEarthNet", row["patch_id"], step=100)
    write_metadata(tmp_path / "BigEarthNet" / "metadata.parquet", rows)
    params = load_params(
        benchmark_params(
            tmp_path / "params.yaml",
            "bigearthnet",
            {"path": str(tmp_path / "BigEarthNet")},
            **{
                "fetch.start_date": "2017-01-01",
                "finetune.tasks": ["multilabel"],
                "finetune.multilabel.inits": ["random", "random_b"],
                "finetune.multilabel.protocols": ["linear", "knn"],
                "finetune.fractions": [1.0],
                "finetune.region_transfer.enabled": False,
            },
        )
    )
    _import(params, tmp_path)
    data = load_task_data("multilabel", tmp_path / "validated", "in_domain", None)
    assert (len(data.train), len(data.val), len(data.test)) == (9, 3, 3)
    assert data.train.label.shape == (9, 19)
    assert data.classes[-1] == "Marine waters"
    result = _fine_tune(params, "multilabel", tmp_path)
    assert len(result.executed) == 8  # 2 inits x 2 protocols x 2 replicates
    record = json.loads(
        (
            tmp_path / "reports/finetune/multilabel/runs/r0.in_domain.random.knn.f100.json"
        ).read_text()
    )
    assert record["val_metric"] == "map_micro"
    assert 0.0 <= record["test"]["map_micro"] <= 1.0
    assert "mAP" in _report(params, tmp_path)
