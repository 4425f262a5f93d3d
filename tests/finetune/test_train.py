"""Fine-tuning a network: augmentation, step budgets, learning and scoring."""

from __future__ import annotations

import pytest
import torch
from finetunekit import N_BANDS, task_split

from s2ssl.bands import BAND_NAMES
from s2ssl.classes import LANDCOVER_CLASSES
from s2ssl.config import load_params
from s2ssl.finetune.data import TaskSplit
from s2ssl.finetune.train import fit, flip_rot90, score, step_budget
from s2ssl.models.downstream import SegmentationNet
from s2ssl.models.unet import ResNetUNet
from testkit import REPO_PARAMS


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


def _easy_segmentation(n: int, seed: int) -> TaskSplit:
    """Label = 1 where the red band is bright, 0 elsewhere: learnable in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    bright = (
        (torch.rand(n, 4, 4, generator=g) > 0.5).repeat_interleave(8, 1).repeat_interleave(8, 2)
    )
    image = torch.full((n, 1, N_BANDS, 32, 32), 800, dtype=torch.int16)
    image[:, 0, BAND_NAMES.index("B04")] = torch.where(bright, 3000, 500).to(torch.int16)
    image += torch.randint(0, 100, image.shape, generator=g).to(torch.int16)
    return task_split(image, bright.long())


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
