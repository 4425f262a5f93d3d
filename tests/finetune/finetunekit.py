"""Helpers of the fine-tuning tests: task splits built from tensors."""

from __future__ import annotations

import numpy as np
import torch

from s2ssl.bands import BAND_NAMES
from s2ssl.finetune.data import TaskSplit

N_BANDS = len(BAND_NAMES)


def task_split(image: torch.Tensor, label: torch.Tensor) -> TaskSplit:
    """A split of ``image`` [N, T, C, H, W] and ``label``: day 100, ids ``p0, p1, ...``."""
    n = image.shape[0]
    return TaskSplit(
        image=image,
        doy=torch.full((n, image.shape[1]), 100),
        label=label,
        ids=tuple(f"p{i}" for i in range(n)),
        strata=np.zeros(n, np.int64),
        bands=tuple(BAND_NAMES),
    )
