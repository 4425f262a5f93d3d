"""The multi-label task end to end: a tiny ``scene`` dataset with multi-hot labels is validated,
loaded with label-set strata, fitted with the linear probe, kNN and fine-tune protocols on CPU,
and its run records carry mAP."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from s2ssl.classes import ClassSet
from s2ssl.config import load_params, set_dotted
from s2ssl.data.store import ArraySpec, DatasetWriter, open_dataset
from s2ssl.finetune.data import load_task_data
from s2ssl.finetune.run import run_finetune
from s2ssl.models.downstream import MultilabelSceneNet, load_model
from s2ssl.validation.validate import validate
from testkit import TINY_SIZES, read_repo_params, write_params

CLASSES = ("forest", "water", "urban")


def write_scene_dataset(landcover_raw: Path, target: Path) -> Path:
    """A raw ``scene`` dataset made from the tiny land-cover patches: the same images, mask and
    index, and as label the multi-hot set of the first three land-cover classes each patch
    holds (``multilabel`` ``[3]`` uint8), declared with its own :class:`ClassSet`."""
    source = open_dataset(landcover_raw)
    n = len(source)
    positions = np.arange(n)
    image = source.read_many("image", positions)
    mask = source.read_many("mask", positions)
    maps = source.read_many("landcover", positions)
    multi_hot = np.stack([(maps == c).any(axis=(1, 2)) for c in range(3)], axis=1)
    multi_hot[np.arange(n) % 4 == 0, 2] = 1  # every class gets positives in every split
    index = source.index.drop(columns=["shard", "row"])
    attrs = {k: v for k, v in source.attrs.items() if k != "classes"}
    attrs["classes"] = {"multilabel": ClassSet.from_names(CLASSES).to_json()}
    specs = [
        ArraySpec("image", str(image.dtype), image.shape[1:]),
        ArraySpec("mask", str(mask.dtype), mask.shape[1:]),
        ArraySpec("multilabel", "uint8", (3,)),
    ]
    with DatasetWriter(target, specs, shard_size=3, attrs=attrs) as writer:
        writer.append(
            {"image": image, "mask": mask, "multilabel": multi_hot.astype(np.uint8)}, index
        )
    return target


@pytest.fixture(scope="module")
def scene_world(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/validated/scene`` validated from the multi-label raw dataset."""
    root = tmp_path_factory.mktemp("multilabel")
    write_scene_dataset(tiny_raw / "landcover", root / "raw" / "scene")
    params = load_params(tiny_raw.parent / "params.yaml")
    result = validate(
        params, root / "raw", root / "validated", root / "reports", datasets=["scene"]
    )
    assert result.validations[0].usable, result.summary
    return root / "validated"


def test_validate_accepts_multi_hot_labels(scene_world: Path) -> None:
    summary = json.loads((scene_world.parent / "reports" / "summary.json").read_text())
    assert summary["scene.usable"] == 1
    assert summary["scene.pass_rate.multilabel_unknown"] == 1.0
    assert summary["scene.pass_rate.multilabel_coverage"] == 1.0


def test_load_task_data_reads_multi_hot_sets(scene_world: Path) -> None:
    data = load_task_data("multilabel", scene_world, "in_domain", None)
    assert data.classes == CLASSES
    for split in (data.train, data.val, data.test):
        assert split.label.ndim == 2 and split.label.shape[1] == 3
        assert set(split.label.unique().tolist()) <= {0, 1}
        assert split.strata.shape == (len(split),)
    assert data.train.image.shape[-1] == 64  # whole images, no tiles
    half = data.fraction_positions(0.5, 0, 1)
    assert set(half) <= set(data.fraction_positions(1.0, 0, 1).tolist())


def test_multilabel_runs_score_map(scene_world: Path, tmp_path: Path) -> None:
    raw = read_repo_params()
    for key, value in TINY_SIZES.items():
        set_dotted(raw, key, value)
    for key, value in {
        "finetune.tasks": ["multilabel"],
        "finetune.fractions": [1.0],
        "evaluate.replicates": 1,
        "finetune.multilabel.inits": ["random"],
        "finetune.multilabel.protocols": ["linear", "knn", "finetune"],
        "finetune.multilabel.steps": 2,
        "finetune.multilabel.val_every": 1,
        "finetune.multilabel.batch_size": 4,
        "finetune.multilabel.linear.epochs": 10,
        "finetune.multilabel.linear.weight_decay_choices": [0.0, 0.01],
        "finetune.multilabel.knn_k_choices": [1, 3],
    }.items():
        set_dotted(raw, key, value)
    params = load_params(write_params(tmp_path / "params.yaml", raw))
    result = run_finetune(
        params,
        "multilabel",
        scene_world,
        tmp_path / "pretrain",
        tmp_path / "models",
        tmp_path / "reports",
        track=False,
    )
    assert sorted(r["protocol"] for r in result.results.values()) == ["finetune", "knn", "linear"]
    for record in result.results.values():
        assert record["val_metric"] == "map_micro"
        test = record["test"]
        assert 0.0 <= test["map_micro"] <= 1.0
        assert {"map_macro", "f1_micro", "f1_macro", "ap.forest"} <= set(test)
        assert "confusion" not in test
        assert math.isfinite(record["val_score"])
    choices = {r["protocol"]: r["protocol_choice"] for r in result.results.values()}
    assert choices["knn"]["knn_k"] in (1, 3)
    assert choices["linear"]["linear_weight_decay"] in (0.0, 0.01)
    runs = tmp_path / "reports" / "multilabel" / "runs"
    with np.load(next(runs.glob("*.samples.npz"))) as samples:
        assert samples["all"].shape[1:] == (2, 3)  # per test image: scores and truth
    assert result.model_dir is not None
    model, meta = load_model(result.model_dir)
    assert isinstance(model, MultilabelSceneNet)
    assert meta["architecture"]["kind"] == "multilabel"
    assert ClassSet.from_json(meta["architecture"]["class_set"]).names == CLASSES
