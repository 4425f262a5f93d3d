"""Downstream evaluation metrics.

Every score is computed by torchmetrics (``MulticlassJaccardIndex``, ``MulticlassAccuracy``,
``MulticlassF1Score``, ``MulticlassCohenKappa``, ``MulticlassConfusionMatrix``); this module only
chooses the inputs, the averaging and the flat key names that ``dvc metrics show/diff`` reads.

- :class:`SegmentationMetrics`: mIoU, per-class IoU, overall accuracy, macro F1, Cohen's kappa and
  the confusion matrix of a segmentation model, optionally also split into boundary / interior
  pixels (:func:`~s2ssl.training.labels.boundary_mask`, as in the evaluation of CSCL).
- :class:`ClassificationMetrics`: balanced accuracy, top-1 accuracy, macro F1, Cohen's kappa,
  per-class accuracy (recall) and the confusion matrix of a scene classifier.
- multi-label scenes: :mod:`s2ssl.training.multilabel_metrics`.

Conventions shared by all of them:

- Pixels / samples whose target equals ``ignore_index`` (default
  :data:`s2ssl.classes.LABEL_IGNORE`, 255 = unlabelled) are excluded everywhere.
- **Absent classes.** A class that occurs neither in the targets nor in the predictions (after
  removing ignored pixels) has an undefined IoU / F1 (0 / 0). It is *left out* of every macro
  average: mIoU is the mean IoU over the classes present in the target **or** the predictions,
  and macro F1 likewise (this is what torchmetrics' ``average="macro"`` does; the tests pin it).
  A class that is only predicted (never in the target) counts, with IoU 0. Per-class entries of
  an undefined class are reported as ``nan`` (``iou.<name>``: absent from target and
  predictions; ``acc.<name>``: absent from the target), never as a misleading 0.
- **Balanced accuracy** (scenes) is the mean per-class recall over the classes present in the
  *target* (scikit-learn's ``balanced_accuracy_score``), taken from torchmetrics' per-class
  accuracy. It is not torchmetrics' ``MulticlassRecall(average="macro")``: that one also counts
  a class that is only predicted (never in the target) with recall 0.
- Inputs are predicted labels (integer tensors) or logits / scores with the class axis at
  position 1 (their arg-max is the prediction); all errors are :class:`ValueError` /
  :class:`TypeError` naming the expected and the received value.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCohenKappa,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from s2ssl.classes import LABEL_IGNORE
from s2ssl.training.labels import (
    boundary_mask,
    check_ignore_index,
    check_int,
    check_label_tensor,
    check_tensor,
    is_integer_tensor,
    labelled_mask,
)

__all__ = [
    "ClassificationMetrics",
    "MetricValue",
    "SegmentationMetrics",
    "check_class_names",
]

MetricValue = float | list[list[int]]
"""A value of a ``compute()`` result: a score, or the confusion matrix as nested ints."""


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def check_class_names(class_names: Sequence[str] | None, num_classes: int) -> tuple[str, ...]:
    if class_names is None:
        return tuple(str(index) for index in range(num_classes))
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a sequence of str, got {type(class_names).__name__}")
    names = tuple(class_names)
    if len(names) != num_classes:
        raise ValueError(
            f"class_names must name all {num_classes} classes, got {len(names)}: {names!r}"
        )
    for name in names:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"every class name must be a non-empty str without '.' (the metric keys are "
                f"dotted paths such as 'iou.<name>'), got {name!r}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names!r}")
    return names


def _predicted_labels(preds: object, target: Tensor, num_classes: int, layout: str) -> Tensor:
    """Integer predictions of the shape of ``target`` from labels or from class-axis-1 logits."""
    preds = check_tensor("preds", preds)
    if preds.ndim == target.ndim + 1:
        if not preds.is_floating_point():
            raise TypeError(
                f"preds with a class axis must be floating-point logits / scores, got dtype "
                f"{preds.dtype}"
            )
        if preds.shape[1] != num_classes:
            raise ValueError(
                f"logits must have num_classes={num_classes} channels on axis 1, got shape "
                f"{tuple(preds.shape)}"
            )
        preds = preds.argmax(dim=1)
    elif preds.ndim == target.ndim:
        if not is_integer_tensor(preds):
            raise TypeError(
                f"preds of the target's shape must be integer class labels, got dtype "
                f"{preds.dtype}; pass logits with a class axis at position 1 instead"
            )
    else:
        raise ValueError(
            f"preds must be labels {layout} or logits with a class axis at position 1, got "
            f"shape {tuple(preds.shape)} for target shape {tuple(target.shape)}"
        )
    if preds.shape != target.shape:
        raise ValueError(
            f"preds and target must cover the same samples / pixels: predicted labels have "
            f"shape {tuple(preds.shape)}, target {tuple(target.shape)}"
        )
    if preds.device != target.device:
        raise ValueError(
            f"preds and target must be on one device, got {preds.device} and {target.device}"
        )
    return preds


# ----------------------------------------------------------------------------------------------
# metric collections
# ----------------------------------------------------------------------------------------------


def _scores(num_classes: int, ignore_index: int | None, *, per_class: str) -> MetricCollection:
    """Scores shared by segmentation and classification, all from torchmetrics."""
    common: dict[str, int | None] = {"num_classes": num_classes, "ignore_index": ignore_index}
    per_class_metric = (
        MulticlassJaccardIndex(average="none", **common)
        if per_class == "iou"
        else MulticlassAccuracy(average="none", **common)
    )
    return MetricCollection(
        {
            "miou": MulticlassJaccardIndex(average="macro", **common),
            "accuracy": MulticlassAccuracy(average="micro", **common),
            "macro_f1": MulticlassF1Score(average="macro", **common),
            "kappa": MulticlassCohenKappa(**common),
            "confusion": MulticlassConfusionMatrix(**common),
            per_class: per_class_metric,
        }
    )


class _ConfusionMetrics(ABC):
    """Validated construction, device handling and bookkeeping shared by the two metric sets."""

    _unit = "sample"
    """What one target entry is, for error messages."""

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None,
        class_names: Sequence[str] | None,
    ) -> None:
        self.num_classes = check_int("num_classes", num_classes, 2)
        self.ignore_index = check_ignore_index(ignore_index, self.num_classes)
        self.class_names = check_class_names(class_names, self.num_classes)
        self._device: torch.device | None = None
        self._n_labelled = 0

    @abstractmethod
    def _collections(self) -> dict[str, MetricCollection]:
        """The torchmetrics collections this metric set updates and computes."""

    def _follow_device(self, device: torch.device) -> None:
        """Move every metric state to ``device`` (the first update's, or a new one)."""
        if self._device != device:
            for collection in self._collections().values():
                collection.to(device)
            self._device = device

    def reset(self) -> None:
        """Forget everything seen since construction or the last reset."""
        for collection in self._collections().values():
            collection.reset()
        self._n_labelled = 0

    def _check_computable(self) -> None:
        if self._n_labelled == 0:
            raise ValueError(
                f"{type(self).__name__}.compute() needs at least one labelled "
                f"{self._unit} (target != "
                f"ignore_index={self.ignore_index}); call update() with labelled data first"
            )

    def _common(
        self, values: dict[str, Tensor], per_class: str, present: Tensor
    ) -> dict[str, MetricValue]:
        result: dict[str, MetricValue] = {
            "macro_f1": float(values["macro_f1"]),
            "kappa": float(values["kappa"]),
        }
        for name, value, is_present in zip(
            self.class_names, values[per_class].tolist(), present.tolist(), strict=True
        ):
            result[f"{per_class}.{name}"] = float(value) if is_present else math.nan
        result["confusion"] = values["confusion"].long().tolist()
        return result


class SegmentationMetrics(_ConfusionMetrics):
    """Pixel-level scores of a segmentation model, accumulated over batches.

    ``compute()`` returns flat keys (for ``dvc metrics``):

    - ``miou``: mean IoU over the classes present in the target or the predictions (see the
      module docstring); ``iou.<class_name>``: per-class IoU, ``nan`` for a class absent from
      both;
    - ``overall_accuracy``: correctly classified labelled pixels / labelled pixels (micro);
    - ``macro_f1``: mean per-class F1 over the same classes as ``miou``;
    - ``kappa``: Cohen's kappa (unweighted);
    - ``confusion``: ``num_classes × num_classes`` confusion matrix, rows = target, columns =
      prediction, as a nested list of ints;
    - with ``boundary=True`` also ``boundary.miou``, ``boundary.overall_accuracy``,
      ``interior.miou`` and ``interior.overall_accuracy``: the same scores restricted to the
      boundary / interior pixels of the *target* (:func:`boundary_mask`, CSCL's evaluation,
      Tarasiou et al. 2021/22); ``nan`` when no such pixel was seen.

    Pixels whose target is ``ignore_index`` are excluded from every score. The metrics follow
    the device of the inputs (moved on the first update, and again if the device changes).

    Args:
        num_classes: number of classes (>= 2).
        ignore_index: target value of unlabelled pixels (outside ``[0, num_classes)``), or
            ``None``.
        class_names: one unique name per class (no '.'); default ``"0"``, ``"1"``, ...
        boundary: also score boundary and interior pixels separately.
        boundary_kernel_size: neighbourhood size of :func:`boundary_mask` (odd).
    """

    _unit = "pixel"

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = LABEL_IGNORE,
        class_names: Sequence[str] | None = None,
        boundary: bool = False,
        boundary_kernel_size: int = 3,
    ) -> None:
        super().__init__(num_classes, ignore_index, class_names)
        if not isinstance(boundary, bool):
            raise TypeError(f"boundary must be a bool, got {type(boundary).__name__}")
        self.boundary = boundary
        self.boundary_kernel_size = check_int("boundary_kernel_size", boundary_kernel_size, 1)
        if self.boundary_kernel_size % 2 == 0:
            raise ValueError(f"boundary_kernel_size must be odd, got {boundary_kernel_size}")
        self._all = _scores(self.num_classes, self.ignore_index, per_class="iou")
        self._parts: dict[str, MetricCollection] = {}
        self._part_counts: dict[str, int] = {}
        if boundary:
            for part in ("boundary", "interior"):
                # the pixels fed to these are labelled already: nothing left to ignore
                common: dict[str, int] = {"num_classes": self.num_classes}
                self._parts[part] = MetricCollection(
                    {
                        "miou": MulticlassJaccardIndex(average="macro", **common),
                        "accuracy": MulticlassAccuracy(average="micro", **common),
                    }
                )
                self._part_counts[part] = 0

    def _collections(self) -> dict[str, MetricCollection]:
        return {"all": self._all, **self._parts}

    def reset(self) -> None:
        """Forget everything seen since construction or the last reset."""
        super().reset()
        for part in self._part_counts:
            self._part_counts[part] = 0

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            preds: ``[N, H, W]`` integer labels or ``[N, C, H, W]`` logits / scores.
            target: ``[N, H, W]`` integer labels (``ignore_index`` for unlabelled pixels).
        """
        target = check_label_tensor("target", target, 3, "[N, H, W]")
        labels = _predicted_labels(preds, target, self.num_classes, "[N, H, W]")
        self._follow_device(target.device)
        labelled = labelled_mask(target, self.ignore_index)
        self._all.update(labels, target)
        self._n_labelled += int(labelled.sum())
        if not self.boundary:
            return
        on_boundary = boundary_mask(target, self.boundary_kernel_size, self.ignore_index)
        for part, mask in (("boundary", on_boundary), ("interior", labelled & ~on_boundary)):
            count = int(mask.sum())
            if count:
                self._parts[part].update(labels[mask], target[mask])
                self._part_counts[part] += count

    def compute(self) -> dict[str, MetricValue]:
        """The scores of everything seen since construction or the last :meth:`reset`."""
        self._check_computable()
        values = self._all.compute()
        confusion = values["confusion"]
        present = (confusion.sum(dim=0) + confusion.sum(dim=1)) > 0
        result: dict[str, MetricValue] = {
            "miou": float(values["miou"]),
            "overall_accuracy": float(values["accuracy"]),
        }
        result.update(self._common(values, "iou", present))
        for part, collection in self._parts.items():
            if self._part_counts[part]:
                part_values = collection.compute()
                result[f"{part}.miou"] = float(part_values["miou"])
                result[f"{part}.overall_accuracy"] = float(part_values["accuracy"])
            else:
                result[f"{part}.miou"] = math.nan
                result[f"{part}.overall_accuracy"] = math.nan
        return result


class ClassificationMetrics(_ConfusionMetrics):
    """Scores of a scene classifier (one label per sample), accumulated over batches.

    ``compute()`` returns flat keys: ``balanced_accuracy`` (mean per-class recall over the
    classes present in the target, see the module docstring), ``top1`` (correct / labelled
    samples, micro), ``macro_f1`` (mean per-class F1 over the classes present in the target or
    the predictions), ``kappa``
    (Cohen's, unweighted), ``acc.<class_name>`` (per-class accuracy = recall; ``nan`` for a class
    absent from the target) and ``confusion`` (rows = target, columns = prediction, nested
    ints). Samples whose target is ``ignore_index`` are excluded.

    Args:
        num_classes: number of classes (>= 2).
        ignore_index: target value of unlabelled samples (outside ``[0, num_classes)``), or
            ``None``.
        class_names: one unique name per class (no '.'); default ``"0"``, ``"1"``, ...
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = LABEL_IGNORE,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(num_classes, ignore_index, class_names)
        self._all = _scores(self.num_classes, self.ignore_index, per_class="acc")

    def _collections(self) -> dict[str, MetricCollection]:
        return {"all": self._all}

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            preds: ``[N]`` integer labels or ``[N, C]`` logits / scores.
            target: ``[N]`` integer labels (``ignore_index`` for unlabelled samples).
        """
        target = check_label_tensor("target", target, 1, "[N]")
        labels = _predicted_labels(preds, target, self.num_classes, "[N]")
        self._follow_device(target.device)
        self._all.update(labels, target)
        self._n_labelled += int(labelled_mask(target, self.ignore_index).sum())

    def compute(self) -> dict[str, MetricValue]:
        """The scores of everything seen since construction or the last :meth:`reset`."""
        self._check_computable()
        values = self._all.compute()
        present_in_target = values["confusion"].sum(dim=1) > 0
        recall = values["acc"][present_in_target]
        result: dict[str, MetricValue] = {
            "balanced_accuracy": float(recall.mean()),
            "top1": float(values["accuracy"]),
        }
        result.update(self._common(values, "acc", present_in_target))
        return result
