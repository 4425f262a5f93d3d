"""Fine-tuning a network: augmentation, step budgets, learning and scoring."""

from __future__ import annotations

import pytest
import torch
from finetunekit import N_BANDS, task_split

from s2ssl.bands import BAND_NAMES
from s2ssl.config import load_params
from s2ssl.finetune.data import TaskSplit
from s2ssl.finetune.train import FinetuneTask, fit, flip_rot90, score, step_budget
from s2ssl.models.downstream import SegmentationNet
from s2ssl.models.unet import ResNetUNet
from s2ssl.synthetic_vocabulary import LANDCOVER_CLASSES
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


def test_step_budget_is_fixed_and_ends_on_a_validation() -> None:
    cfg = load_params(REPO_PARAMS).finetune.landcover
    assert step_budget(cfg.model_copy(update={"steps": 28, "val_every": 7})) == 28
    assert step_budget(cfg.model_copy(update={"steps": 30, "val_every": 7})) == 35
    assert step_budget(cfg.model_copy(update={"steps": 1, "val_every": 50})) == 50


def test_croptype_lr_decays_every_fixed_number_of_steps() -> None:
    params = load_params(REPO_PARAMS)
    cfg = params.finetune.croptype.model_copy(
        update={"lr": 1e-2, "lr_decay": 0.5, "lr_decay_every": 3}
    )
    net = SegmentationNet(
        ResNetUNet(18, N_BANDS, 8), tuple(BAND_NAMES), LANDCOVER_CLASSES, [0.1] * 13, [0.1] * 13
    )
    task = FinetuneTask(net, cfg, steps=12, seed=0, band_indices=list(range(N_BANDS)))
    scheduler = task.configure_optimizers()["lr_scheduler"]["scheduler"]
    factors = [scheduler.lr_lambdas[0](step) for step in range(7)]
    assert factors == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]  # 0.5 every 3 steps, any fraction


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
        update={"steps": 30, "val_every": 10, "batch_size": 8, "lr": 3e-3}
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
