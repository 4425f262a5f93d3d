"""The scikit-learn baselines on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.dummy import DummyClassifier

from s2ssl.calibration.baselines import (
    DN_SCALE,
    baseline_seed,
    fit_classifier,
    fit_pixel_model,
    fit_scene_model,
    labelled_pixels,
    pixel_features,
    predict_pixels,
    sample_pixels,
    score_pixel_model,
    score_scene_model,
    tile_statistics,
)
from s2ssl.config import PixelClassifierConfig, SceneClassifierConfig

PIXEL = PixelClassifierConfig(
    max_train_pixels=10_000, max_iter=20, learning_rate=0.3, max_leaf_nodes=8
)
SCENE = SceneClassifierConfig(max_iter=500, C=1.0)
CLASSES = ("a", "b", "c")


def _separable(n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[n, 1, 13, 8, 8]`` whose band 3 is 1000 × (class + 1), other bands noise; a
    corner of each label map is unlabelled (255)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, (n, 8, 8))
    image = rng.integers(0, 50, (n, 1, 13, 8, 8))
    image[:, 0, 3] = 1000 * (label + 1)
    label[:, :2, :2] = 255
    return torch.from_numpy(image.astype(np.int16)), torch.from_numpy(label)


def test_perfectly_separable_pixels_score_miou_one() -> None:
    image, label = _separable()
    model = fit_pixel_model(image, label, PIXEL, seed=1)
    assert model.n_train_pixels == int((label != 255).sum())
    test_image, test_label = _separable(seed=5)
    scores = score_pixel_model(model, test_image, test_label, CLASSES)
    assert scores["miou"] == pytest.approx(1.0)
    pred = predict_pixels(model, test_image, test_label)
    assert pred.shape == test_label.shape
    assert (pred[test_label.numpy() == 255] == 0).all()  # unlabelled pixels are not classified


def test_constant_features_predict_the_majority_class() -> None:
    label = torch.full((2, 6, 6), 1)
    label[0, :2] = 0  # 12 of 72 pixels are class 0, the rest class 1
    image = torch.full((2, 1, 13, 6, 6), 700, dtype=torch.int16)
    model = fit_pixel_model(image, label, PIXEL, seed=3)
    assert set(np.unique(predict_pixels(model, image, label))) == {1}
    scores = score_pixel_model(model, image, label, CLASSES)
    assert scores["iou.b"] == pytest.approx(60 / 72) and scores["iou.a"] == 0.0


def test_a_single_training_class_gets_a_constant_classifier() -> None:
    fitted = fit_classifier(object(), np.zeros((4, 2)), np.array([2, 2, 2, 2]))
    assert isinstance(fitted, DummyClassifier)
    assert fitted.predict(np.ones((3, 2))).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="no labelled training sample"):
        fit_classifier(object(), np.zeros((0, 2)), np.array([], dtype=np.int64))


def test_unlabelled_pixels_are_never_sampled_and_the_cap_holds() -> None:
    _, label = _separable(n=2)
    every = labelled_pixels(label)
    assert every[0].size == int((label != 255).sum())
    n, y, x = sample_pixels(label, 50, seed=7)
    assert n.size == 50 and (label.numpy()[n, y, x] != 255).all()
    again = sample_pixels(label, 50, seed=7)
    assert all((a == b).all() for a, b in zip((n, y, x), again, strict=True))
    other = sample_pixels(label, 50, seed=8)
    assert not all((a == b).all() for a, b in zip((n, y, x), other, strict=True))
    assert sample_pixels(label, 10**6, seed=7)[0].size == every[0].size


def test_pixel_features_stack_the_chosen_dates_band_by_band() -> None:
    image = np.arange(2 * 4 * 13 * 3 * 3).reshape(2, 4, 13, 3, 3).astype(np.int16)
    pixels = (np.array([0, 1]), np.array([2, 0]), np.array([1, 1]))
    every = pixel_features(image, pixels)
    assert every.shape == (2, 4 * 13) and every.dtype == np.float32
    two = pixel_features(torch.from_numpy(image), pixels, dates=[1, 3])
    assert two.shape == (2, 2 * 13)
    expected = np.concatenate([image[1, 1, :, 0, 1], image[1, 3, :, 0, 1]]) * DN_SCALE
    np.testing.assert_allclose(two[1], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="dates must be"):
        pixel_features(image, pixels, dates=[4])
    with pytest.raises(ValueError, match=r"\[n, T, C, H, W\]"):
        pixel_features(image[0], pixels)


def test_tile_statistics_are_band_means_then_deviations() -> None:
    image = np.zeros((2, 1, 13, 4, 4), np.int16)
    image[0, 0, 5] = 2000
    image[1, 0, 5, :2] = 1000  # half the tile at 0.1, half at 0
    stats = tile_statistics(image)
    assert stats.shape == (2, 26)
    assert stats[0, 5] == pytest.approx(0.2) and stats[0, 13 + 5] == pytest.approx(0.0)
    assert stats[1, 5] == pytest.approx(0.05) and stats[1, 13 + 5] == pytest.approx(0.05)


def test_separable_tiles_score_top1_one_and_unlabelled_tiles_are_left_out() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2] * 6)
    features = rng.normal(0, 0.01, (18, 26)).astype(np.float32)
    features[:, 0] += labels
    train_labels = labels.copy()
    train_labels[0] = 255
    model = fit_scene_model(features, torch.from_numpy(train_labels), SCENE, seed=1)
    scores = score_scene_model(model, features, torch.from_numpy(labels), CLASSES)
    assert scores["top1"] == pytest.approx(1.0)


def test_baseline_seeds_are_32_bit_deterministic_and_distinct() -> None:
    a = baseline_seed(42, "landcover")
    assert a == baseline_seed(42, "landcover") and 0 <= a < 2**32
    assert a != baseline_seed(42, "croptype") and a != baseline_seed(43, "landcover")
