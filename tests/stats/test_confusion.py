"""s2ssl.stats.confusion against a python-loop reference and the torchmetrics-based metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from s2ssl.stats.confusion import (
    METRICS,
    per_class_scores,
    per_sample_confusion,
    score_from_confusion,
)
from s2ssl.training.metrics import ClassificationMetrics, SegmentationMetrics

IGN = 255


def loop_confusion(pred, target, k, ignore_index=IGN, mask=None):
    """One matrix per sample, entry by entry."""
    out = np.zeros((pred.shape[0], k, k), dtype=np.int64)
    for i in range(pred.shape[0]):
        p, t = pred[i].ravel(), target[i].ravel()
        m = np.ones_like(t, dtype=bool) if mask is None else mask[i].ravel()
        for pv, tv, keep in zip(p, t, m, strict=True):
            if keep and tv != ignore_index:
                out[i, tv, pv] += 1
    return out


def test_per_sample_confusion_matches_a_loop_with_ignore_index_and_mask() -> None:
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 4, (5, 6, 7))
    target = rng.integers(0, 4, (5, 6, 7))
    target[rng.random(target.shape) < 0.2] = IGN
    mask = rng.random(target.shape) < 0.6
    got = per_sample_confusion(pred, target, 4)
    assert got.dtype == np.int64 and got.shape == (5, 4, 4)
    np.testing.assert_array_equal(got, loop_confusion(pred, target, 4))
    np.testing.assert_array_equal(
        per_sample_confusion(pred, target, 4, mask=mask), loop_confusion(pred, target, 4, mask=mask)
    )
    # ignored pixels may hold any prediction; without ignore_index 255 would be out of range
    assert per_sample_confusion(pred, target, 4).sum() == int((target != IGN).sum())


def test_per_sample_confusion_of_scene_labels_is_one_hot() -> None:
    pred = np.array([0, 2, 1, 1])
    target = np.array([0, 1, IGN, 1])
    got = per_sample_confusion(pred, target, 3)
    expected = np.zeros((4, 3, 3), dtype=np.int64)
    expected[0, 0, 0] = expected[1, 1, 2] = expected[3, 1, 1] = 1
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pred": np.zeros((2, 3)), "target": np.zeros((2, 3), int)}, TypeError, "pred"),
        ({"pred": np.zeros((2, 3), int), "target": np.zeros((2, 4), int)}, ValueError, "shape"),
        ({"pred": np.full((2, 3), 5), "target": np.zeros((2, 3), int)}, ValueError, "predicted"),
        ({"pred": np.zeros((2, 3), int), "target": np.full((2, 3), 7)}, ValueError, "target"),
        (
            {"pred": np.zeros((2, 3), int), "target": np.zeros((2, 3), int), "mask": np.ones(6)},
            TypeError,
            "mask",
        ),
        (
            {"pred": np.zeros(2, int), "target": np.zeros(2, int), "num_classes": 1},
            ValueError,
            ">=",
        ),
    ],
)
def test_per_sample_confusion_rejects_bad_input(kwargs, error, match) -> None:
    kwargs = {"num_classes": 3, **kwargs}
    with pytest.raises(error, match=match):
        per_sample_confusion(**kwargs)


def _labels(rng, shape, classes):
    return rng.choice(np.asarray(classes), size=shape)


# truth / prediction class subsets: all classes; a class absent from both; a class only
# predicted; a class only in the truth
CASES = [
    ([0, 1, 2, 3], [0, 1, 2, 3]),
    ([0, 1, 2], [0, 1, 2]),
    ([0, 1], [0, 1, 3]),
    ([0, 2, 3], [0, 2]),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("truth", "predicted"), CASES)
def test_scores_equal_segmentation_metrics(seed, truth, predicted) -> None:
    rng = np.random.default_rng(seed)
    target = _labels(rng, (3, 8, 8), truth)
    pred = np.where(rng.random(target.shape) < 0.5, target, _labels(rng, target.shape, predicted))
    pred = np.where(np.isin(pred, predicted), pred, predicted[0])
    target[rng.random(target.shape) < 0.1] = IGN
    metrics = SegmentationMetrics(4)
    metrics.update(torch.from_numpy(pred), torch.from_numpy(target))
    expected = metrics.compute()
    summed = per_sample_confusion(pred, target, 4).sum(axis=0)
    assert summed.tolist() == expected["confusion"]
    for name in ("miou", "overall_accuracy", "macro_f1", "kappa"):
        assert float(score_from_confusion(summed, name)) == pytest.approx(expected[name], abs=1e-6)
    iou = per_class_scores(summed, "iou")
    for c in range(4):
        want = expected[f"iou.{c}"]
        assert (math.isnan(want) and math.isnan(iou[c])) or iou[c] == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("truth", "predicted"), CASES)
def test_scores_equal_classification_metrics(seed, truth, predicted) -> None:
    rng = np.random.default_rng(10 + seed)
    target = _labels(rng, (40,), truth)
    pred = np.where(rng.random(40) < 0.5, target, _labels(rng, 40, predicted))
    pred = np.where(np.isin(pred, predicted), pred, predicted[0])
    target[:3] = IGN
    metrics = ClassificationMetrics(4)
    metrics.update(torch.from_numpy(pred), torch.from_numpy(target))
    expected = metrics.compute()
    summed = per_sample_confusion(pred, target, 4).sum(axis=0)
    for name in ("top1", "macro_f1", "kappa"):
        assert float(score_from_confusion(summed, name)) == pytest.approx(expected[name], abs=1e-6)
    recall = per_class_scores(summed, "recall")
    acc = np.array([expected[f"acc.{c}"] for c in range(4)])
    np.testing.assert_allclose(recall, acc, atol=1e-6, equal_nan=True)
    # balanced accuracy: the mean of the defined per-class accuracies (classes in the truth)
    assert float(score_from_confusion(summed, "balanced_accuracy")) == pytest.approx(
        float(np.nanmean(acc)), abs=1e-6
    )


def test_hand_example_and_undefined_scores() -> None:
    c = np.array([[3, 1], [2, 2]])  # the hand example of tests/training/test_metrics.py
    assert score_from_confusion(c, "miou") == pytest.approx(0.45)
    assert score_from_confusion(c, "top1") == pytest.approx(5 / 8)
    assert score_from_confusion(c, "macro_f1") == pytest.approx(13 / 21)
    assert score_from_confusion(c, "kappa") == pytest.approx(1 / 4)
    assert score_from_confusion(c, "balanced_accuracy") == pytest.approx((3 / 4 + 2 / 4) / 2)
    np.testing.assert_allclose(per_class_scores(c, "f1"), [2 / 3, 4 / 7])
    empty = np.zeros((2, 2), dtype=np.int64)
    for metric in METRICS:
        assert math.isnan(score_from_confusion(empty, metric))
    # one class in truth and prediction: kappa is 0 / 0
    assert math.isnan(score_from_confusion(np.array([[5, 0], [0, 0]]), "kappa"))


def test_scores_are_vectorised_over_leading_axes() -> None:
    rng = np.random.default_rng(3)
    stack = rng.integers(0, 9, (2, 3, 4, 4))
    for metric in METRICS:
        got = score_from_confusion(stack, metric)
        assert got.shape == (2, 3)
        for i in range(2):
            for j in range(3):
                assert got[i, j] == pytest.approx(float(score_from_confusion(stack[i, j], metric)))
    assert per_class_scores(stack, "iou").shape == (2, 3, 4)


def test_score_errors_name_the_choices() -> None:
    with pytest.raises(ValueError, match="miou"):
        score_from_confusion(np.eye(2), "accuracy")
    with pytest.raises(ValueError, match="kind"):
        per_class_scores(np.eye(2), "precision")
    with pytest.raises(ValueError, match=r"\(\.\.\., K, K\)"):
        score_from_confusion(np.ones((2, 3)), "miou")
    with pytest.raises(TypeError, match="numbers"):
        score_from_confusion(np.array([["a", "b"], ["c", "d"]]), "miou")
