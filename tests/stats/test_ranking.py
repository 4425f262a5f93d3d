"""Weighted average precision and the ranking contrast bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from s2ssl.stats import average_precision, per_class_average_precision, ranking_contrast_bootstrap


def _data(seed: int, n: int = 40, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = (rng.random((n, k)) < 0.35).astype(np.int64)
    scores = np.clip(0.4 * target + rng.random((n, k)) * 0.7, 0, 1).round(1)  # with ties
    return scores, target


@pytest.mark.parametrize("metric", ["map_micro", "map_macro"])
def test_equals_scikit_learn_with_ties_and_weights(metric: str) -> None:
    scores, target = _data(0)
    average = metric.removeprefix("map_")
    weights = np.random.default_rng(1).integers(0, 3, len(scores))
    ours = average_precision(
        scores, target, np.stack([np.ones(len(scores)), weights]), metric=metric
    )
    assert ours[0] == pytest.approx(average_precision_score(target, scores, average=average))
    assert ours[1] == pytest.approx(
        average_precision_score(target, scores, average=average, sample_weight=weights)
    )


def test_a_class_without_positive_is_nan_and_left_out_of_macro() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    target = np.array([[1, 0], [0, 0]])
    per_class = per_class_average_precision(scores, target)[0]
    assert per_class[0] == 1.0 and math.isnan(per_class[1])
    assert average_precision(scores, target, metric="map_macro")[0] == 1.0
    assert math.isnan(average_precision(scores, np.zeros((2, 2)))[0])


def test_ranking_contrast_bootstrap_interval() -> None:
    scores, target = _data(2, n=60)
    rng = np.random.default_rng(3)
    better = np.stack(
        [np.stack([np.clip(scores + 0.2 * target, 0, 1), target], axis=1) for _ in range(3)]
    )
    worse = np.stack(
        [np.stack([np.clip(scores + rng.normal(0, 0.3, scores.shape), 0, 1), target], 1)
         for _ in range(3)]
    )  # fmt: skip
    estimate = ranking_contrast_bootstrap(
        [better, worse], [1.0, -1.0], "map_micro", n_boot=200, seed=0
    )
    assert estimate.n_replicates == 3 and estimate.n_samples == 60
    assert estimate.lo <= estimate.value <= estimate.hi
    assert estimate.lo > 0  # a clearly better ranking
    same = ranking_contrast_bootstrap([worse, worse], [1.0, -1.0], "map_macro", n_boot=200)
    assert same.value == 0.0
    with pytest.raises(ValueError, match="metric"):
        ranking_contrast_bootstrap([worse], [1.0], "miou", n_boot=200)
    with pytest.raises(ValueError, match=r"\(R, n, 2, K\)"):
        ranking_contrast_bootstrap([worse[:, :, :1]], [1.0], "map_micro", n_boot=200)
