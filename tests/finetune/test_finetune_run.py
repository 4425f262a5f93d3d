"""Fine-tuning: data views, augmentation, budgets, probes, learning, and the resumable stage."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from s2ssl.bands import BAND_NAMES
from s2ssl.classes import LANDCOVER_CLASSES
from s2ssl.config import LinearProbeConfig, load_params
from s2ssl.finetune import run as run_module
from s2ssl.finetune.data import TaskSplit, load_task_data, scene_tiles
from s2ssl.finetune.frozen import fit_linear_probe
from s2ssl.finetune.run import run_finetune
from s2ssl.finetune.train import fit, flip_rot90, score, step_budget
from s2ssl.models.downstream import SceneNet, SegmentationNet, load_model
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.unet import ResNetUNet
from testkit import REPO_PARAMS

N_BANDS = len(BAND_NAMES)


def _split(image: torch.Tensor, label: torch.Tensor) -> TaskSplit:
    n = image.shape[0]
    return TaskSplit(
        image=image,
        doy=torch.full((n, image.shape[1]), 100),
        label=label,
        ids=tuple(f"p{i}" for i in range(n)),
        strata=np.zeros(n, np.int64),
    )


def test_scene_tiles_cut_patches_and_label_by_majority() -> None:
    image = torch.arange(2 * 1 * 1 * 4 * 4, dtype=torch.int16).reshape(2, 1, 1, 4, 4)
    image = image.expand(2, 1, N_BANDS, 4, 4).clone()
    label = torch.tensor(
        [
            [[0, 0, 1, 1], [0, 2, 1, 255], [3, 3, 4, 4], [3, 255, 4, 5]],
            [[255, 255, 6, 6], [255, 255, 6, 1], [2, 2, 2, 2], [2, 2, 2, 2]],
        ]
    )
    tiles = scene_tiles(_split(image, label), 2)
    # patch 1's first tile has no labelled pixel and is dropped
    assert tiles.ids == ("p0#0", "p0#1", "p0#2", "p0#3", "p1#1", "p1#2", "p1#3")
    assert tiles.label.tolist() == [0, 1, 3, 4, 6, 2, 2]
    # tile p0#1 is rows 0-1, columns 2-3 of patch 0
    assert torch.equal(tiles.image[1, 0, 0], image[0, 0, 0, 0:2, 2:4])
    with pytest.raises(ValueError, match="must divide"):
        scene_tiles(_split(image, label), 3)


def test_flip_rot90_moves_labels_with_images() -> None:
    g = torch.Generator().manual_seed(3)
    label = torch.randint(0, 5, (16, 8, 8))
    image = label[:, None, None].float().expand(16, 2, 3, 8, 8).clone()  # [B, T, C, H, W]
    out_image, out_label = flip_rot90(image, label, g, flip=True, rot90=True)
    assert out_label is not None
    assert torch.equal(out_image[:, 1, 2], out_label.float())
    assert not torch.equal(out_label, label)  # something was flipped / rotated
    scenes = torch.arange(16)
    _, same = flip_rot90(image, scenes, g, flip=True, rot90=True)
    assert same is scenes  # scene labels are left alone


def test_step_budget() -> None:
    cfg = load_params(REPO_PARAMS).finetune.landcover.model_copy(
        update={"epochs": 3, "min_steps": 10, "max_steps": 100, "val_every": 7, "batch_size": 8}
    )
    assert step_budget(4, cfg) == (14, 1)  # 3 epochs x 1 batch < min 10 -> 10 -> 14 (x7)
    assert step_budget(80, cfg) == (35, 10)  # 3 x 10 = 30 -> 35
    assert step_budget(1000, cfg) == (105, 125)  # capped at 100 -> rounded up to 105


@pytest.mark.slow
def test_linear_probe_folds_standardisation_into_the_layer() -> None:
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([1.0, 10, 0.1, 3, 5])
    z = torch.randn(90, 5, generator=g)
    labels = (z @ torch.randn(5, 3, generator=g)).argmax(1)  # linearly separable in z
    feats = z * scale + 4  # ... and in the raw, badly scaled features
    probe = LinearProbeConfig(epochs=300, lr=0.1, weight_decay=1e-3)
    layer = fit_linear_probe(feats, labels, 3, probe, seed=1)
    acc = float((layer(feats).argmax(1) == labels).float().mean())
    assert acc > 0.9


def _easy_segmentation(n: int, seed: int) -> TaskSplit:
    """Label = 1 where the red band is bright, 0 elsewhere: learnable in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    bright = (
        (torch.rand(n, 4, 4, generator=g) > 0.5).repeat_interleave(8, 1).repeat_interleave(8, 2)
    )
    image = torch.full((n, 1, N_BANDS, 32, 32), 800, dtype=torch.int16)
    image[:, 0, BAND_NAMES.index("B04")] = torch.where(bright, 3000, 500).to(torch.int16)
    image += torch.randint(0, 100, image.shape, generator=g).to(torch.int16)
    return _split(image, bright.long())


@pytest.mark.slow
def test_tiny_finetune_beats_chance() -> None:
    torch.manual_seed(0)
    params = load_params(REPO_PARAMS)
    cfg = params.finetune.landcover.model_copy(
        update={"min_steps": 30, "max_steps": 30, "val_every": 10, "batch_size": 8, "lr": 3e-3}
    )
    train, val, test = _easy_segmentation(16, 1), _easy_segmentation(4, 2), _easy_segmentation(4, 3)
    bands = tuple(BAND_NAMES)
    net = SegmentationNet(
        ResNetUNet(18, N_BANDS, 8), bands, LANDCOVER_CLASSES, [0.1] * 13, [0.1] * 13
    )
    result = fit(net, train, val, cfg, seed=0, trainer_kwargs={"accelerator": "cpu"})
    assert result.steps == 30 and [h["step"] for h in result.history] == [10.0, 20.0, 30.0]
    metrics, preds = score(net, test)
    assert preds.shape == (4, 32, 32)
    assert metrics["overall_accuracy"] > 0.8  # chance: 0.5 (two balanced classes)
    assert result.best_val == max(h["val_miou"] for h in result.history)


def test_region_settings_never_share_a_region(tiny_validated: Path) -> None:
    from s2ssl.data.validated import open_validated
    from s2ssl.finetune.data import _region_positions

    dataset = open_validated(tiny_validated / "landcover")
    regions = dataset.store.index["region"].to_numpy()
    for split in ("train", "val", "test"):
        inside = _region_positions(dataset, split, "transfer", "north_west")
        outside = _region_positions(dataset, split, "in_domain", "north_west")
        everything = _region_positions(dataset, split, "in_domain", None)
        assert set(regions[inside]) <= {"north_west"} and "north_west" not in set(regions[outside])
        assert sorted([*inside, *outside]) == sorted(everything)
    with pytest.raises(ValueError, match=r"transfer setting needs params\.holdout_region"):
        load_task_data("landcover", tiny_validated, "transfer", None)
    source = load_task_data("landcover", tiny_validated, "in_domain", None)
    nested = [set(source.fraction(f, 0, 1).ids) for f in (0.2, 0.5, 1.0)]
    assert nested[0] <= nested[1] <= nested[2] == set(source.train.ids)


def _scores(result: Any) -> dict[str, tuple[float, float]]:
    return {k: (r["val_score"], r["test"]["top1"]) for k, r in result.results.items()}


@pytest.mark.slow
def test_stage_runs_resumes_an_interrupted_run_and_exports(
    tiny_validated: Path, tiny_run_params: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = load_params(tiny_run_params)
    out, reports = tmp_path / "models", tmp_path / "reports"

    def stage(p: Any = params) -> Any:
        return run_finetune(
            p, "scene", tiny_validated, tmp_path / "none", out, reports, track=False
        )

    first = stage()
    assert first.reused == [] and len(first.executed) == 5
    record = json.loads((reports / "scene/runs/in_domain.random.knn.f100.json").read_text())
    assert record["n_train"] == len(
        load_task_data("scene", tiny_validated, "in_domain", None, scene_tile=32).train
    )
    assert 0.0 <= record["test"]["top1"] <= 1.0 and not math.isnan(record["val_score"])
    assert first.selected == "in_domain.random.finetune.f100"
    model, meta = load_model(out / "scene/model")
    assert isinstance(model, SceneNet) and meta["selected_run"] == first.selected

    # a finished stage's results are never reused: DVC runs the stage only when an input changed
    again = stage()
    assert again.reused == [] and again.executed == first.executed
    assert _scores(again) == _scores(first)  # deterministic on CPU

    # killed after two runs: the next execution keeps those two and runs the other three
    real = run_module.execute_run
    calls: list[str] = []

    def killed_after_two(p: Any, spec: Any, *args: Any, **kwargs: Any) -> Any:
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(spec.key)
        return real(p, spec, *args, **kwargs)

    monkeypatch.setattr(run_module, "execute_run", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        stage()
    monkeypatch.setattr(run_module, "execute_run", real)
    resumed = stage()
    assert resumed.reused == calls and len(resumed.executed) == 3
    assert _scores(resumed) == _scores(first)

    # killed again, then the configuration changes: nothing of the interrupted run is reused
    calls.clear()
    monkeypatch.setattr(run_module, "execute_run", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        stage()
    monkeypatch.setattr(run_module, "execute_run", real)
    third = stage(load_params(tiny_run_params, {"finetune.fractions": [1.0]}))
    assert third.reused == [] and len(third.executed) == 3
    assert not (reports / "scene/runs/in_domain.random.knn.f50.json").exists()  # stale: removed


def test_stage_refuses_an_unknown_task(
    tiny_validated: Path, tiny_run_params: Path, tmp_path: Path
) -> None:
    params = load_params(tiny_run_params)
    with pytest.raises(ValueError, match="unknown task 'forest'"):
        run_finetune(params, "forest", tiny_validated, tmp_path, tmp_path, tmp_path, track=False)


def test_scene_data_needs_its_tile_size(tiny_validated: Path) -> None:
    with pytest.raises(ValueError, match=r"finetune\.scene\.tile_size"):
        load_task_data("scene", tiny_validated, "in_domain", None)


def test_scene_net_features_are_global_pooled() -> None:
    net = SceneNet(ResNetEncoder(18, 3), ("B02", "B03", "B04"), ("a", "b"), [0.0] * 3, [1.0] * 3)
    assert net.features(torch.rand(2, 3, 32, 32)).shape == (2, 512)


@pytest.mark.slow
def test_stage_logs_a_parent_run_with_nested_runs(
    tiny_validated: Path, tiny_run_params: Path, tmp_path: Path
) -> None:
    import mlflow

    params = load_params(
        tiny_run_params, {"finetune.fractions": [1.0], "finetune.scene.protocols": ["knn"]}
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_finetune(
        params, "scene", tiny_validated, tmp_path, tmp_path / "m", tmp_path / "r", tracking_uri=uri
    )
    assert result.executed == ["in_domain.random.knn.f100"]
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["finetune"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [r.info.run_name for r in parents] == ["scene"]
    assert [r.info.run_name for r in children] == ["scene/in_domain.random.knn.f100"]
    assert children[0].data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert children[0].data.tags["s2ssl.init"] == "random"
    assert 0.0 <= children[0].data.metrics["test.top1"] <= 1.0
