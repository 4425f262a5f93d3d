"""The seasonal baseline: evenly spread dates, stacked features, single dates against the season."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from s2ssl.calibration.baselines import pixel_features
from s2ssl.calibration.seasonal import seasonal_baseline, seasonal_dates, series_labels
from s2ssl.config import PixelClassifierConfig
from s2ssl.finetune.data import load_task_data

PIXEL = PixelClassifierConfig(
    max_train_pixels=5000, max_iter=30, learning_rate=0.3, max_leaf_nodes=8
)


def test_dates_spread_evenly_over_the_series() -> None:
    assert seasonal_dates(16, 5) == [0, 4, 8, 11, 15]
    assert seasonal_dates(5, 5) == [0, 1, 2, 3, 4]
    assert seasonal_dates(3, 5) == [0, 1, 2]  # fewer dates than asked: every date once
    assert seasonal_dates(10, 2) == [0, 9]
    with pytest.raises(ValueError, match="needs a time series"):
        seasonal_dates(1, 5)
    with pytest.raises(ValueError, match="seasonal_dates must be >= 2"):
        seasonal_dates(16, 1)


def test_stacked_features_hold_13_bands_per_date() -> None:
    image = np.ones((2, 16, 13, 4, 4), np.int16)
    pixels = (np.array([0, 1, 1]), np.array([0, 1, 2]), np.array([3, 2, 1]))
    dates = seasonal_dates(16, 5)
    assert pixel_features(image, pixels, dates).shape == (3, 5 * 13)
    assert pixel_features(image, pixels, dates[:1]).shape == (3, 13)


def _two_date_world(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class = 2·(band 0 high on date 0) + (band 0 high on date 4): one date tells half."""
    rng = np.random.default_rng(seed)
    early = rng.integers(0, 2, (4, 8, 8))
    late = rng.integers(0, 2, (4, 8, 8))
    image = rng.integers(0, 30, (4, 5, 13, 8, 8))
    image[:, 0, 0] += 1000 * early
    image[:, 4, 0] += 1000 * late
    return torch.from_numpy(image.astype(np.int16)), torch.from_numpy(2 * early + late)


def test_the_season_resolves_what_no_single_date_can() -> None:
    train, test = _two_date_world(0), _two_date_world(1)
    result = seasonal_baseline("toy", train, test, ("a", "b", "c", "d"), PIXEL, 2, seed=3)
    assert result.dates == (0, 4) and result.n_dates == 5 and len(result.single) == 2
    assert result.seasonal == pytest.approx(1.0)
    assert result.best_single_date < 0.5  # one date separates two pairs of classes at best
    assert result.gap == pytest.approx(result.seasonal - result.best_single_date)
    assert result.single_date_mean == pytest.approx(np.mean(result.single))
    assert result.best_date in result.dates


def test_series_labels_reads_the_land_cover_of_the_crop_series(tiny_validated: Path) -> None:
    data = load_task_data("croptype", tiny_validated, "in_domain", None)
    labels = series_labels(data, tiny_validated, "landcover", None)
    assert labels is not None
    assert labels["train"].shape == data.train.label.shape
    assert labels["test"].shape == data.test.label.shape
    assert int(labels["train"].max()) < 7  # land-cover classes, not crop types
    assert series_labels(data, tiny_validated, "no_such_array", None) is None
