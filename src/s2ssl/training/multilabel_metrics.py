"""Metrics of a multi-label scene classifier: micro and macro mAP, micro and macro F1 at a
threshold, per-class average precision, all computed by torchmetrics
(``MultilabelAveragePrecision``, ``MultilabelF1Score``, ``MultilabelStatScores``); this module
chooses the inputs, the averaging and the flat key names, with the conventions of
:mod:`s2ssl.training.metrics`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MultilabelAveragePrecision,
    MultilabelF1Score,
    MultilabelStatScores,
)

from s2ssl.training.labels import check_int, check_tensor, is_integer_tensor
from s2ssl.training.metrics import MetricValue, check_class_names

__all__ = ["MULTILABEL_THRESHOLD", "MultilabelMetrics"]

MULTILABEL_THRESHOLD = 0.5
"""A class is predicted present when its score (a probability) is at least this (the F1s)."""


class MultilabelMetrics:
    """Ranking and threshold scores of a multi-label scene classifier, accumulated over batches.

    Inputs are per-class scores in ``[0, 1]`` (sigmoid probabilities, or kNN vote shares) and
    multi-hot targets. ``compute()`` returns flat keys:

    - ``map_micro``: average precision of all (image, class) pairs ranked together
      (torchmetrics ``average="micro"``, scikit-learn's ``average_precision_score(average=
      "micro")``; the headline, :mod:`s2ssl.taskspec`); ``nan`` when no target is positive;
    - ``map_macro``: mean per-class AP over the classes with at least one positive target;
    - ``ap.<class_name>``: per-class AP, ``nan`` for a class without a positive target;
    - ``f1_micro``: F1 of all (image, class) decisions at :data:`MULTILABEL_THRESHOLD`;
    - ``f1_macro``: mean per-class F1 over the classes present in the targets **or** the
      predictions (as the single-label macro F1: a class never present and never predicted has
      F1 0 / 0 and is left out; a class only predicted counts with 0).

    **A class without a positive target.** Its AP is undefined: no threshold recalls anything.
    torchmetrics (1.9) returns 0 for it with a warning and *averages that 0 into* the macro
    mAP, which would lower the macro mAP of every model by the share of such classes. Here the
    class is left out of ``map_macro`` and reported as ``ap.<name> = nan``; ``map_micro`` is
    unaffected (such a class only adds negatives to the ranking, which lower it where the model
    scores them high).

    Args:
        num_classes: number of classes (>= 2).
        class_names: one unique name per class (no '.'); default ``"0"``, ``"1"``, ...
    """

    def __init__(self, num_classes: int, *, class_names: Sequence[str] | None = None) -> None:
        self.num_classes = check_int("num_classes", num_classes, 2)
        self.class_names = check_class_names(class_names, self.num_classes)
        k = self.num_classes
        self._all = MetricCollection(
            {
                "map_micro": MultilabelAveragePrecision(num_labels=k, average="micro"),
                "ap": MultilabelAveragePrecision(num_labels=k, average="none"),
                "f1_micro": MultilabelF1Score(
                    num_labels=k, average="micro", threshold=MULTILABEL_THRESHOLD
                ),
                "f1": MultilabelF1Score(
                    num_labels=k, average="none", threshold=MULTILABEL_THRESHOLD
                ),
                "stats": MultilabelStatScores(
                    num_labels=k, average="none", threshold=MULTILABEL_THRESHOLD
                ),
            }
        )
        self._device: torch.device | None = None
        self._n = 0

    def reset(self) -> None:
        """Forget everything seen since construction or the last reset."""
        self._all.reset()
        self._n = 0

    def update(self, scores: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            scores: ``[N, K]`` floating-point scores in ``[0, 1]`` (apply the sigmoid to logits).
            target: ``[N, K]`` integer multi-hot labels (0 / 1).
        """
        scores = check_tensor("scores", scores)
        target = check_tensor("target", target)
        layout = f"[N, {self.num_classes}]"
        if target.ndim != 2 or target.shape[1] != self.num_classes:
            raise ValueError(f"target must be multi-hot {layout}, got {tuple(target.shape)}")
        if not is_integer_tensor(target):
            raise TypeError(f"target must hold integer 0 / 1 labels, got dtype {target.dtype}")
        if target.numel() and not bool(((target == 0) | (target == 1)).all()):
            raise ValueError(f"target must be multi-hot (0 / 1), got {target.unique().tolist()}")
        if scores.shape != target.shape:
            raise ValueError(
                f"scores must be {layout} like target, got {tuple(scores.shape)} for target "
                f"{tuple(target.shape)}"
            )
        if not scores.is_floating_point():
            raise TypeError(f"scores must be floating-point, got dtype {scores.dtype}")
        if scores.numel() and not bool(((scores >= 0) & (scores <= 1)).all()):
            raise ValueError(
                "scores must lie in [0, 1] (probabilities); apply torch.sigmoid to logits"
            )
        if scores.device != target.device:
            raise ValueError(
                f"scores and target must be on one device, got {scores.device} and {target.device}"
            )
        if self._device != target.device:
            self._all.to(target.device)
            self._device = target.device
        self._all.update(scores.float(), target.long())
        self._n += int(target.shape[0])

    def compute(self) -> dict[str, MetricValue]:
        """The scores of everything seen since construction or the last :meth:`reset`."""
        if self._n == 0:
            raise ValueError(
                "MultilabelMetrics.compute() needs at least one sample; call update() first"
            )
        with warnings.catch_warnings():
            # a class without a positive target: handled below (nan, left out of the mean)
            warnings.filterwarnings("ignore", message=".*positive.*", category=UserWarning)
            values = self._all.compute()
        stats = values["stats"]  # [K, 5]: tp, fp, tn, fn, support
        tp, fp, fn = stats[:, 0], stats[:, 1], stats[:, 3]
        positive = (tp + fn) > 0
        seen = (tp + fp + fn) > 0
        ap = values["ap"]
        f1 = values["f1"]
        result: dict[str, MetricValue] = {
            "map_micro": float(values["map_micro"]) if bool(positive.any()) else math.nan,
            "map_macro": float(ap[positive].mean()) if bool(positive.any()) else math.nan,
            "f1_micro": float(values["f1_micro"]),
            "f1_macro": float(f1[seen].mean()) if bool(seen.any()) else math.nan,
        }
        for name, value, has_positive in zip(
            self.class_names, ap.tolist(), positive.tolist(), strict=True
        ):
            result[f"ap.{name}"] = float(value) if has_positive else math.nan
        return result
