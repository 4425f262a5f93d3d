"""Simple scikit-learn baselines: what a task scores without any spatial context or learning of
features.

* **Per pixel** (:func:`fit_pixel_model`): a ``HistGradientBoostingClassifier`` on the reflectance
  of one pixel (every band of the chosen dates, DN × 1e-4 as fine-tuning reads images), fitted
  on a random subsample of the labelled train pixels and scored on every labelled test pixel with
  :class:`~s2ssl.training.metrics.SegmentationMetrics`, as the fine-tuned networks are.
* **Per tile** (:func:`fit_scene_model`): a logistic regression on each tile's per-band mean and
  standard deviation (two standardised features per band), scored with
  :class:`~s2ssl.training.metrics.ClassificationMetrics`.

Images are ``[n, T, C, H, W]`` integer DN (a :class:`~s2ssl.finetune.data.TaskSplit`'s ``image``,
tensor or array); pixel labels ``[n, H, W]`` and scene labels ``[n]``, 255 = unlabelled.
A training set with a single class gets a constant (most-frequent) classifier.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import torch
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from s2ssl.classes import LABEL_IGNORE
from s2ssl.config import PixelClassifierConfig, SceneClassifierConfig
from s2ssl.seeding import derive_seed
from s2ssl.training.metrics import ClassificationMetrics, MetricValue, SegmentationMetrics

__all__ = [
    "DN_SCALE",
    "PixelModel",
    "Pixels",
    "baseline_seed",
    "fit_classifier",
    "fit_pixel_model",
    "fit_scene_model",
    "labelled_pixels",
    "pixel_features",
    "predict_pixels",
    "sample_pixels",
    "score_pixel_model",
    "score_scene_model",
    "tile_statistics",
]

DN_SCALE: Final[float] = 1e-4
"""Reflectance per DN (after the processing-baseline offset), as fine-tuning scales images."""

_PREDICT_CHUNK: Final[int] = 200_000
"""Pixels classified at once (bounds the feature matrix of large test splits)."""

_TILE_CHUNK: Final[int] = 256
"""Tiles converted to float at once by :func:`tile_statistics`."""

Pixels = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(sample, row, col)`` index arrays of a set of pixels."""


def baseline_seed(seed: int, name: str) -> int:
    """The 32-bit ``random_state`` of baseline ``name``, derived from the top-level seed."""
    digest = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16)
    return derive_seed(seed, digest) & 0xFFFF_FFFF


def _array(x: Any) -> np.ndarray:
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def labelled_pixels(label: Any) -> Pixels:
    """Every pixel whose label is not 255 (row-major order) of ``label`` ``[n, H, W]``."""
    lab = _array(label)
    if lab.ndim != 3:
        raise ValueError(f"pixel labels must be [n, H, W], got shape {lab.shape}")
    n, y, x = np.nonzero(lab != LABEL_IGNORE)
    return n, y, x


def sample_pixels(label: Any, max_pixels: int, seed: int) -> Pixels:
    """At most ``max_pixels`` labelled pixels drawn uniformly without replacement (all of them
    when there are fewer), in row-major order."""
    n, y, x = labelled_pixels(label)
    if n.size > max_pixels:
        keep = np.sort(np.random.default_rng(seed).choice(n.size, max_pixels, replace=False))
        n, y, x = n[keep], y[keep], x[keep]
    return n, y, x


def pixel_features(image: Any, pixels: Pixels, dates: Sequence[int] | None = None) -> np.ndarray:
    """Reflectance features ``[P, len(dates) × C]`` (float32) of ``pixels`` in ``image``
    ``[n, T, C, H, W]``: the bands of each chosen date (all dates when ``dates`` is None),
    date-major (date 0's bands, then date 1's, ...)."""
    img = _array(image)
    if img.ndim != 5:
        raise ValueError(f"images must be [n, T, C, H, W], got shape {img.shape}")
    n, y, x = pixels
    t = img.shape[1]
    chosen = list(range(t)) if dates is None else [int(d) for d in dates]
    bad = [d for d in chosen if not 0 <= d < t]
    if bad or not chosen:
        raise ValueError(f"dates must be non-empty positions in [0, {t}), got {chosen}")
    values = img[n, :, :, y, x]  # [P, T, C]: advanced indices split by slices come first
    values = values[:, chosen]
    return values.reshape(values.shape[0], -1).astype(np.float32) * np.float32(DN_SCALE)


def fit_classifier(estimator: Any, features: np.ndarray, labels: np.ndarray) -> Any:
    """``estimator`` fitted to ``(features, labels)``, or a most-frequent classifier when the
    labels hold a single class (scikit-learn's classifiers refuse to fit one class).

    Raises:
        ValueError: no training sample.
    """
    if len(labels) == 0:
        raise ValueError("no labelled training sample for the baseline; check the train split")
    if np.unique(labels).size < 2:
        return DummyClassifier(strategy="most_frequent").fit(features, labels)
    return estimator.fit(features, labels)


@dataclass(frozen=True)
class PixelModel:
    """A fitted per-pixel classifier and the dates whose bands it reads."""

    classifier: Any
    dates: tuple[int, ...] | None
    n_train_pixels: int


def fit_pixel_model(
    image: Any,
    label: Any,
    cfg: PixelClassifierConfig,
    seed: int,
    dates: Sequence[int] | None = None,
) -> PixelModel:
    """Fit the per-pixel gradient-boosting classifier on at most ``cfg.max_train_pixels``
    random labelled pixels of ``(image, label)`` (``seed`` draws them and seeds the model)."""
    pixels = sample_pixels(label, cfg.max_train_pixels, seed)
    features = pixel_features(image, pixels, dates)
    targets = _array(label)[pixels].astype(np.int64)
    estimator = HistGradientBoostingClassifier(
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes,
        early_stopping=False,
        random_state=seed,
    )
    classifier = fit_classifier(estimator, features, targets)
    chosen = None if dates is None else tuple(int(d) for d in dates)
    return PixelModel(classifier, chosen, int(targets.size))


def predict_pixels(model: PixelModel, image: Any, label: Any) -> np.ndarray:
    """Predicted classes ``[n, H, W]`` (int64) of every labelled pixel of ``label``; unlabelled
    pixels get 0 (they are ignored by the metrics)."""
    lab = _array(label)
    out = np.zeros(lab.shape, np.int64)
    n, y, x = labelled_pixels(lab)
    for lo in range(0, n.size, _PREDICT_CHUNK):
        part = (
            n[lo : lo + _PREDICT_CHUNK],
            y[lo : lo + _PREDICT_CHUNK],
            x[lo : lo + _PREDICT_CHUNK],
        )
        out[part] = model.classifier.predict(pixel_features(image, part, model.dates))
    return out


def score_pixel_model(
    model: PixelModel, image: Any, label: Any, classes: Sequence[str]
) -> dict[str, MetricValue]:
    """Segmentation metrics (``miou``, ``iou.<class>``, ...) of ``model`` on every labelled
    pixel of ``(image, label)``."""
    pred = predict_pixels(model, image, label)
    metrics = SegmentationMetrics(len(classes), class_names=classes)
    metrics.update(torch.from_numpy(pred), torch.as_tensor(_array(label)).long())
    return metrics.compute()


def tile_statistics(image: Any) -> np.ndarray:
    """``[n, 2C]`` features of ``image`` ``[n, T, C, H, W]``: each band's mean reflectance over
    the dates and pixels of a tile, then each band's standard deviation."""
    img = _array(image)
    if img.ndim != 5:
        raise ValueError(f"images must be [n, T, C, H, W], got shape {img.shape}")
    out = np.empty((img.shape[0], 2 * img.shape[2]), np.float32)
    for lo in range(0, img.shape[0], _TILE_CHUNK):
        refl = img[lo : lo + _TILE_CHUNK].astype(np.float64) * DN_SCALE
        out[lo : lo + _TILE_CHUNK] = np.concatenate(
            [refl.mean(axis=(1, 3, 4)), refl.std(axis=(1, 3, 4))], axis=1
        )
    return out


def fit_scene_model(
    features: np.ndarray, labels: Any, cfg: SceneClassifierConfig, seed: int
) -> Any:
    """A standardised logistic regression (L2, ``cfg.C``) fitted to per-tile ``features``;
    unlabelled tiles (255) are left out."""
    y = _array(labels).astype(np.int64)
    keep = y != LABEL_IGNORE
    estimator = make_pipeline(
        StandardScaler(), LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, random_state=seed)
    )
    return fit_classifier(estimator, features[keep], y[keep])


def score_scene_model(
    model: Any, features: np.ndarray, labels: Any, classes: Sequence[str]
) -> dict[str, MetricValue]:
    """Scene metrics (``balanced_accuracy``, ``top1``, ``acc.<class>``, ...) of ``model`` on
    per-tile ``features``."""
    pred = np.asarray(model.predict(features), dtype=np.int64)
    metrics = ClassificationMetrics(len(classes), class_names=classes)
    metrics.update(torch.from_numpy(pred), torch.as_tensor(_array(labels)).long())
    return metrics.compute()
