"""Per-sample confusion matrices and the project's scores computed from confusion matrices.

Every score here is a function of a confusion matrix (rows = truth, columns = prediction), so a
test set can be stored as one matrix per test sample and any resample of the test samples scored
by summing their matrices. The semantics equal :mod:`s2ssl.training.metrics` (torchmetrics) on
the summed matrix:

- ``miou``: mean IoU over the classes present in the truth **or** the predictions (a class
  absent from both has IoU 0 / 0 and is left out; a class that is only predicted counts with 0);
- ``overall_accuracy`` (``top1`` is the same number for scenes): trace / total;
- ``macro_f1``: mean per-class F1 over the same classes as ``miou``;
- ``balanced_accuracy``: mean recall over the classes present in the truth;
- ``kappa``: Cohen's unweighted kappa, ``(p_o - p_e) / (1 - p_e)``.

A score that is undefined (an empty matrix; kappa when truth and prediction are one and the same
single class) is ``nan``. All functions are vectorised over leading axes.
"""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = [
    "METRICS",
    "PER_CLASS_KINDS",
    "per_class_scores",
    "per_sample_confusion",
    "score_from_confusion",
]

METRICS: Final[tuple[str, ...]] = (
    "miou",
    "overall_accuracy",
    "top1",
    "macro_f1",
    "balanced_accuracy",
    "kappa",
)
"""The scores :func:`score_from_confusion` computes."""

PER_CLASS_KINDS: Final[tuple[str, ...]] = ("iou", "recall", "f1")
"""The per-class scores :func:`per_class_scores` computes."""


def _integer_array(name: str, value: object) -> np.ndarray:
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of class labels, got dtype {array.dtype}")
    return array


def per_sample_confusion(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    *,
    ignore_index: int | None = 255,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """One confusion matrix per sample: ``out[i, t, p]`` counts the entries of sample ``i`` with
    truth ``t`` and prediction ``p``.

    Args:
        pred: ``(n, ...)`` integer predicted labels (segmentation maps, or ``(n,)`` scene labels).
        target: integer true labels of the same shape.
        num_classes: number of classes ``K`` (>= 2).
        ignore_index: target value of unlabelled entries (left out), or ``None``.
        mask: optional boolean array of the same shape; entries where it is ``False`` are left
            out (e.g. only the boundary pixels).

    Returns:
        ``(n, K, K)`` int64 counts.

    Raises:
        TypeError: non-integer labels or a non-boolean mask.
        ValueError: shapes differ, or a label outside ``[0, K)`` (other than ``ignore_index`` in
            the target).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    k = int(num_classes)
    if k < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    pred = _integer_array("pred", pred)
    target = _integer_array("target", target)
    if pred.shape != target.shape or pred.ndim < 1:
        raise ValueError(
            f"pred and target must have one shape (n, ...), got {pred.shape} and {target.shape}"
        )
    n = pred.shape[0]
    keep = np.ones(target.shape, dtype=bool)
    if ignore_index is not None:
        keep &= target != ignore_index
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
        if mask.shape != target.shape:
            raise ValueError(f"mask must have the labels' shape {target.shape}, got {mask.shape}")
        keep &= mask
    t = target[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= k):
        raise ValueError(
            f"target labels must lie in [0, {k}) or equal ignore_index={ignore_index}, got "
            f"values in [{t.min()}, {t.max()}]"
        )
    if p.size and (p.min() < 0 or p.max() >= k):
        raise ValueError(
            f"predicted labels must lie in [0, {k}), got values in [{p.min()}, {p.max()}]"
        )
    sample = np.broadcast_to(
        np.arange(n, dtype=np.int64).reshape((n,) + (1,) * (target.ndim - 1)), target.shape
    )[keep]
    flat = np.bincount(sample * (k * k) + t * k + p, minlength=n * k * k)
    return flat.reshape(n, k, k).astype(np.int64, copy=False)


def _check_confusion(confusion: object) -> np.ndarray:
    array = np.asarray(confusion)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"a confusion matrix must hold numbers, got dtype {array.dtype}")
    if array.ndim < 2 or array.shape[-1] != array.shape[-2] or array.shape[-1] < 2:
        raise ValueError(
            f"a confusion matrix must have shape (..., K, K) with K >= 2, got {array.shape}"
        )
    return array.astype(np.float64, copy=False)


def _margins(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Diagonal, truth totals (row sums) and prediction totals (column sums), each (..., K)."""
    return np.diagonal(c, axis1=-2, axis2=-1), c.sum(axis=-1), c.sum(axis=-2)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with ``nan`` where ``den`` is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _mean_defined(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the non-``nan`` entries; ``nan`` when there are none."""
    defined = ~np.isnan(values)
    count = defined.sum(axis=-1)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    return _ratio(total, count)


def per_class_scores(confusion: np.ndarray, kind: str) -> np.ndarray:
    """Per-class scores of (a stack of) confusion matrices, ``(..., K, K)`` → ``(..., K)``.

    ``kind`` is ``"iou"`` (``nan`` for a class absent from truth and prediction), ``"recall"``
    (the per-class accuracy of :class:`~s2ssl.training.metrics.ClassificationMetrics`; ``nan``
    for a class absent from the truth) or ``"f1"`` (``nan`` like ``"iou"``).

    Raises:
        ValueError: unknown ``kind`` or not a stack of square matrices.
    """
    if kind not in PER_CLASS_KINDS:
        raise ValueError(f"kind must be one of {list(PER_CLASS_KINDS)}, got {kind!r}")
    tp, truth, predicted = _margins(_check_confusion(confusion))
    if kind == "iou":
        return _ratio(tp, truth + predicted - tp)
    if kind == "recall":
        return _ratio(tp, truth)
    return _ratio(2.0 * tp, truth + predicted)


def score_from_confusion(confusion: np.ndarray, metric: str) -> np.ndarray:
    """A score of (a stack of) confusion matrices, ``(..., K, K)`` → ``(...)`` float64.

    ``metric`` is one of :data:`METRICS` (see the module docstring for their definitions).

    Raises:
        ValueError: unknown ``metric`` or not a stack of square matrices.
        TypeError: not numbers.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    c = _check_confusion(confusion)
    tp, truth, predicted = _margins(c)
    total = truth.sum(axis=-1)
    correct = tp.sum(axis=-1)
    if metric in ("overall_accuracy", "top1"):
        return _ratio(correct, total)
    if metric == "miou":
        return _mean_defined(per_class_scores(c, "iou"))
    if metric == "macro_f1":
        return _mean_defined(per_class_scores(c, "f1"))
    if metric == "balanced_accuracy":
        return _mean_defined(per_class_scores(c, "recall"))
    # kappa: (p_o - p_e) / (1 - p_e), written over total² to stay exact for integer counts
    squared = total * total
    chance = (truth * predicted).sum(axis=-1)
    return _ratio(correct * total - chance, squared - chance)
