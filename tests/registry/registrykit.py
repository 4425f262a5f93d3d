"""Helpers of the registry tests: bands, classes, the register config, a small saved model and
per-test-sample results (``test_samples.npz``) of a chosen quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from s2ssl.config import load_params
from s2ssl.models.downstream import (
    SegmentationNet,
    save_model,
)
from s2ssl.models.unet import ResNetUNet
from s2ssl.registry.samples import TEST_SAMPLES_FILE
from s2ssl.stats import score_from_confusion
from testkit import REPO_PARAMS

BANDS = ("B02", "B03", "B04")


LC = ("water", "forest", "cropland")


CONFIG = load_params(REPO_PARAMS).registry

RIGHT = 600
"""Correct pixels per class in :func:`pixel_results`."""


def sample_ids(n: int) -> np.ndarray:
    return np.array([f"tile-{i:03d}" for i in range(n)])


def pixel_results(miou: float, seed: int, n: int = 30, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, confusion)`` whose summed matrix has every class's IoU = ``miou`` (up to rounding):
    per class 600 correct pixels and e = 600 (1 − miou) / (2 miou) taken for the next class
    (IoU = 600 / (600 + 2e)); each pixel is dealt to one of ``n`` test samples at random."""
    rng = np.random.default_rng(seed)
    wrong = round(RIGHT * (1 - miou) / (2 * miou))
    confusion = np.zeros((n, k, k), dtype=np.int64)
    for c in range(k):
        confusion[:, c, c] = rng.multinomial(RIGHT, np.full(n, 1 / n))
        confusion[:, c, (c + 1) % k] = rng.multinomial(wrong, np.full(n, 1 / n))
    return sample_ids(n), confusion


def scene_results(accuracy: float, n: int = 300, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, confusion)`` of ``n`` scenes (one-hot matrices), scene ``i`` of class ``i % k``,
    right on the first ``accuracy · n`` scenes of a fixed shuffled order (so a more accurate
    model is right on a superset of the scenes: strongly paired results)."""
    order = np.random.default_rng(0).permutation(n)
    confusion = np.zeros((n, k, k), dtype=np.int64)
    for rank, i in enumerate(order):
        truth = i % k
        confusion[i, truth, truth if rank < round(accuracy * n) else (truth + 1) % k] = 1
    return sample_ids(n), confusion


def write_results(model_dir: Path, ids: np.ndarray, confusion: np.ndarray) -> Path:
    np.savez(model_dir / TEST_SAMPLES_FILE, ids=ids, confusion=confusion)
    return model_dir


def segmentation_model(
    root: Path, name: str, seed: int, miou: float, *, samples: bool = True, **extra: object
) -> Path:
    """A saved model whose test scores (``meta.json``) and ``test_samples.npz`` (unless not
    ``samples``) come from :func:`pixel_results` with exactly this ``miou``."""
    torch.manual_seed(seed)
    net = SegmentationNet(ResNetUNet(18, 3, 8), BANDS, LC, [0.1, 0.12, 0.14], [0.05] * 3).eval()
    ids, confusion = pixel_results(miou, seed)
    scored = float(score_from_confusion(confusion.sum(axis=0), "miou"))
    test = {"miou": scored, "iou.water": scored, "iou.forest": scored, "iou.cropland": scored}
    meta = {"init": "dense", "task": "landcover", "test": test, "test_set": "T1"}
    meta.update(extra)
    path = save_model(net, root / name, meta)
    return write_results(path, ids, confusion) if samples else path
