"""Helpers of the registry tests: bands, classes, the register config and a small saved model."""

from __future__ import annotations

from pathlib import Path

import torch

from s2ssl.config import load_params
from s2ssl.models.downstream import (
    SegmentationNet,
    save_model,
)
from s2ssl.models.unet import ResNetUNet
from testkit import REPO_PARAMS

BANDS = ("B02", "B03", "B04")


LC = ("water", "forest", "cropland")


CONFIG = load_params(REPO_PARAMS).registry


def segmentation_model(root: Path, name: str, seed: int, miou: float, **extra: object) -> Path:
    torch.manual_seed(seed)
    net = SegmentationNet(ResNetUNet(18, 3, 8), BANDS, LC, [0.1, 0.12, 0.14], [0.05] * 3).eval()
    test = {"miou": miou, "iou.water": miou, "iou.forest": miou, "iou.cropland": miou}
    meta = {"init": "dense", "task": "landcover", "test": test, "test_set": "T1"}
    meta.update(extra)
    return save_model(net, root / name, meta)
