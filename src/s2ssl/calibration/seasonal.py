"""Seasonal ambiguity: how much better a per-pixel classifier does with several dates of the
growing season than with the best single date.

On the crop-type time series, ``k`` dates spread evenly over the series are chosen
(:func:`seasonal_dates`); the per-pixel classifier of :mod:`s2ssl.calibration.baselines` is fitted
on each date alone (one feature per band) and on the ``k`` dates stacked, on the same train
pixels, and each is scored on the test split. A world where crops are told apart by their
phenology shows a clear ``gap`` = stacked − best single date. The series carries two label
sets (crop types, and the land cover of the same pixels), each measured on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2ssl.calibration.baselines import fit_pixel_model, score_pixel_model
from s2ssl.classes import ClassSet
from s2ssl.config import PixelClassifierConfig
from s2ssl.data.validated import open_validated
from s2ssl.finetune.data import TaskData, region_positions
from s2ssl.taskspec import task_spec

__all__ = [
    "SeasonalResult",
    "seasonal_baseline",
    "seasonal_dates",
    "series_label_classes",
    "series_labels",
]


def seasonal_dates(n_dates: int, k: int) -> list[int]:
    """``k`` date positions spread evenly over a series of ``n_dates`` (first and last
    included; ``np.linspace`` rounded), fewer when the series is shorter than ``k``.

    Raises:
        ValueError: fewer than two dates in the series, or ``k < 2``.
    """
    if n_dates < 2:
        raise ValueError(f"the seasonal baseline needs a time series, got {n_dates} date(s)")
    if k < 2:
        raise ValueError(f"calibrate.seasonal_dates must be >= 2, got {k}")
    return sorted({int(i) for i in np.linspace(0, n_dates - 1, k).round()})


@dataclass(frozen=True)
class SeasonalResult:
    """Test mIoU of the per-pixel classifier on single dates and on the stacked dates."""

    labels: str
    """The label set scored (``croptype`` or ``landcover``)."""
    dates: tuple[int, ...]
    """Positions of the chosen dates in the series."""
    n_dates: int
    """Dates in the series."""
    single: tuple[float, ...]
    """Test mIoU of the classifier fitted on each date alone (one feature per band)."""
    seasonal: float
    """Test mIoU of the classifier fitted on all chosen dates stacked."""
    n_train_pixels: int

    @property
    def single_date_mean(self) -> float:
        """Mean of :attr:`single`."""
        return float(np.mean(self.single))

    @property
    def best_single_date(self) -> float:
        """Best of :attr:`single`."""
        return float(max(self.single))

    @property
    def best_date(self) -> int:
        """Position in the series of the best single date."""
        return self.dates[int(np.argmax(self.single))]

    @property
    def gap(self) -> float:
        """:attr:`seasonal` − :attr:`best_single_date`."""
        return self.seasonal - self.best_single_date


def seasonal_baseline(
    labels: str,
    train: tuple[Any, Any],
    test: tuple[Any, Any],
    classes: Sequence[str],
    cfg: PixelClassifierConfig,
    k: int,
    seed: int,
) -> SeasonalResult:
    """Fit and score the per-pixel classifier on each of ``k`` dates and on all of them.

    Args:
        labels: name of the label set (recorded).
        train: ``(image [n, T, C, H, W], label [n, H, W])``.
        test: ``(image, label)`` of the test split.
        classes: class names of the label set.
        cfg: the classifier's settings; ``seed`` draws the train pixels (the same for every
            fit) and seeds the classifiers.
    """
    image, label = train
    n_dates = int(image.shape[1])
    dates = seasonal_dates(n_dates, k)
    single = []
    for d in dates:
        model = fit_pixel_model(image, label, cfg, seed, dates=[d])
        single.append(float(score_pixel_model(model, test[0], test[1], classes)["miou"]))
    stacked = fit_pixel_model(image, label, cfg, seed, dates=dates)
    seasonal = float(score_pixel_model(stacked, test[0], test[1], classes)["miou"])
    return SeasonalResult(
        labels, tuple(dates), n_dates, tuple(single), seasonal, stacked.n_train_pixels
    )


def series_labels(
    data: TaskData, data_dir: str | Path, label: str, holdout_region: str | None
) -> dict[str, torch.Tensor] | None:
    """Another label array of ``data``'s dataset (e.g. ``landcover`` of the crop-type series),
    for the train and test splits of ``data`` in the same sample order; ``None`` when the
    dataset has no such array (real data may carry crop labels only).

    Raises:
        ValueError: the samples of the dataset no longer match ``data``.
    """
    path = Path(data_dir) / task_spec(data.task).dataset
    dataset = open_validated(path)
    if label not in dataset.store.specs:
        return None
    ids = dataset.store.index["sample_id"].to_numpy()
    out: dict[str, torch.Tensor] = {}
    for split in ("train", "test"):
        positions = region_positions(dataset, split, data.setting, holdout_region)
        if tuple(str(i) for i in ids[positions]) != getattr(data, split).ids:
            raise ValueError(
                f"the {split} samples of {path} do not match the loaded {data.task} data; "
                "re-run the command (the dataset changed while it ran?)"
            )
        values = dataset.store.read_many(label, positions).astype(np.int64)
        out[split] = torch.from_numpy(values)
    return out


def series_label_classes(data: TaskData, data_dir: str | Path, label: str) -> ClassSet:
    """The classes of label array ``label`` in ``data``'s dataset (its ``meta.json``)."""
    return open_validated(Path(data_dir) / task_spec(data.task).dataset).store.classes(label)
