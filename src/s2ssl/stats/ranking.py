"""Average precision of multi-label scores under sample weights, for resampled test sets.

A ranking score (AP) is not a sum over test samples, so a resample of the test images cannot be
scored by summing per-sample confusion matrices (:mod:`.confusion`). Instead each test image
keeps its row of class scores and its multi-hot truth, and a resample is a vector of sample
weights (the multinomial counts of a bootstrap draw; all ones for the test set itself).

:func:`average_precision` is the step-wise AP of scikit-learn's ``average_precision_score`` and
torchmetrics' ``MultilabelAveragePrecision`` with each sample counted ``weight`` times:
``AP = Σ_n (R_n − R_{n−1}) · P_n`` over the distinct score thresholds ``n`` (tied scores form
one threshold). ``micro`` ranks every (image, class) pair together; ``macro`` averages the
per-class AP over the classes with a positive of non-zero weight (a class without one has no
defined AP and is left out, as in :class:`s2ssl.training.metrics.MultilabelMetrics`). An AP
without any positive is ``nan``. The sort order of the scores does not depend on the weights, so
it is computed once and every draw only takes cumulative sums.
"""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["RANKING_METRICS", "average_precision", "per_class_average_precision"]

RANKING_METRICS: Final[tuple[str, ...]] = ("map_micro", "map_macro")
"""The scores of :func:`average_precision`, by their metric names."""


def _check(scores: object, targets: object) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if s.ndim != 2 or s.shape != y.shape:
        raise ValueError(
            f"scores and targets must both be [n, K], got shapes {s.shape} and {y.shape}"
        )
    if y.size and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("targets must be multi-hot (0 / 1 only)")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y


def _weights(weights: object, n: int) -> np.ndarray:
    w = np.ones((1, n)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"weights must be [n] or [B, n] with n = {n}, got shape {w.shape}")
    if w.size and (w.min() < 0 or not np.all(np.isfinite(w))):
        raise ValueError("weights must be finite and >= 0 (counts of each test sample)")
    return w


def _ranked_ap(score: np.ndarray, truth: np.ndarray, item_weights: np.ndarray) -> np.ndarray:
    """AP ``[B]`` of one ranking: ``score`` / ``truth`` ``[m]``, ``item_weights`` ``[B, m]``."""
    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    # every item is scored at the precision of the last item tied with it (one threshold)
    last = np.r_[ranked[1:] != ranked[:-1], True]
    ends = np.flatnonzero(last)
    group_end = ends[np.cumsum(np.r_[0, last[:-1]])]
    w = item_weights[:, order]
    hits = w * truth[order]
    tp = np.cumsum(hits, axis=1)
    seen = np.cumsum(w, axis=1)
    tp_end, seen_end = tp[:, group_end], seen[:, group_end]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen_end > 0, tp_end / seen_end, 0.0)
        positives = tp[:, -1] if tp.shape[1] else np.zeros(w.shape[0])
        ap = (hits * precision).sum(axis=1) / positives
    return np.where(positives > 0, ap, np.nan)


def per_class_average_precision(
    scores: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per-class AP ``[B, K]`` (``[1, K]`` without ``weights``); ``nan`` for a class without a
    positive of non-zero weight.

    Args:
        scores: ``[n, K]`` class scores of the test images.
        targets: ``[n, K]`` multi-hot truth.
        weights: ``[n]`` or ``[B, n]`` sample weights (e.g. bootstrap counts), default ones.
    """
    s, y = _check(scores, targets)
    w = _weights(weights, s.shape[0])
    return np.stack([_ranked_ap(s[:, c], y[:, c], w) for c in range(s.shape[1])], axis=1)


def average_precision(
    scores: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    metric: str = "map_micro",
) -> np.ndarray:
    """``map_micro`` or ``map_macro`` (module docstring) ``[B]`` for each weight row.

    Raises:
        ValueError: mismatched shapes, targets that are not multi-hot, negative weights or an
            unknown ``metric``.
    """
    if metric not in RANKING_METRICS:
        raise ValueError(f"metric must be one of {list(RANKING_METRICS)}, got {metric!r}")
    s, y = _check(scores, targets)
    w = _weights(weights, s.shape[0])
    if metric == "map_micro":
        k = s.shape[1]
        return _ranked_ap(s.reshape(-1), y.reshape(-1), np.repeat(w, k, axis=1))
    per_class = per_class_average_precision(s, y, w)
    defined = np.isfinite(per_class)
    with np.errstate(invalid="ignore"):
        total = np.where(defined, per_class, 0.0).sum(axis=1)
        count = defined.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
