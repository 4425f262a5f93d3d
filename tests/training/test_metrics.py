"""s2ssl.training.metrics against hand-computed confusion matrices."""

from __future__ import annotations

import math

import pytest
import torch
from labelkit import CORNER_AND_VERTICAL, lab
from torchmetrics.classification import MulticlassRecall

from s2ssl.classes import LABEL_IGNORE
from s2ssl.training.metrics import (
    ClassificationMetrics,
    SegmentationMetrics,
)

IGN = LABEL_IGNORE


def same(a: object, b: object) -> bool:
    """Equality of compute() results, nan == nan, floats to 1e-6."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-6)
    return a == b


# ----------------------------------------------------------------------------------------------
# SegmentationMetrics
# ----------------------------------------------------------------------------------------------

# 8 labelled pixels (rows 0-1) and 4 ignored ones (row 2, predictions there must not count)
SEG_TARGET = [[0, 0, 0, 0], [1, 1, 1, 1], [IGN, IGN, IGN, IGN]]
SEG_PREDS = [[0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 0]]
# confusion (rows = truth, cols = prediction):  [[3, 1],
#                                                [2, 2]]
# IoU_0 = 3 / (3 + 1 + 2) = 1/2         IoU_1 = 2 / (2 + 2 + 1) = 2/5      mIoU = 0.45
# OA = (3 + 2) / 8 = 5/8
# F1_0 = 2·3 / (2·3 + 1 + 2) = 2/3      F1_1 = 2·2 / (2·2 + 2 + 1) = 4/7   macro F1 = 13/21
# kappa: p_o = 5/8, p_e = (4·5 + 4·3) / 8² = 1/2, kappa = (5/8 − 1/2) / (1 − 1/2) = 1/4


def test_segmentation_metrics_hand_example() -> None:
    metrics = SegmentationMetrics(2, class_names=["crop", "other"])
    metrics.update(lab(SEG_PREDS), lab(SEG_TARGET))
    result = metrics.compute()
    assert result["confusion"] == [[3, 1], [2, 2]]
    assert result["iou.crop"] == pytest.approx(1 / 2)
    assert result["iou.other"] == pytest.approx(2 / 5)
    assert result["miou"] == pytest.approx(0.45)
    assert result["overall_accuracy"] == pytest.approx(5 / 8)
    assert result["macro_f1"] == pytest.approx(13 / 21)
    assert result["kappa"] == pytest.approx(1 / 4)
    assert set(result) == {
        "miou",
        "overall_accuracy",
        "macro_f1",
        "kappa",
        "iou.crop",
        "iou.other",
        "confusion",
    }
    assert all(isinstance(v, int) for row in result["confusion"] for v in row)


def test_segmentation_metrics_class_absent_from_target_and_predictions() -> None:
    # class 2 never occurs: it is left out of mIoU (1, not 2/3) and reported as nan
    metrics = SegmentationMetrics(3, class_names=["a", "b", "c"])
    metrics.update(lab([[0, 0, 1, 1]]), lab([[0, 0, 1, 1]]))
    result = metrics.compute()
    assert result["miou"] == pytest.approx(1.0)
    assert result["macro_f1"] == pytest.approx(1.0)
    assert math.isnan(result["iou.c"])
    assert result["confusion"] == [[2, 0, 0], [0, 2, 0], [0, 0, 0]]


def test_segmentation_metrics_class_only_predicted_counts_with_iou_zero() -> None:
    # truth [0, 0, 1, 1], prediction [0, 2, 1, 1]: IoU_0 = 1/2, IoU_1 = 1, IoU_2 = 0/1 = 0
    # class 2 is present (predicted) so mIoU = (1/2 + 1 + 0) / 3 = 1/2
    metrics = SegmentationMetrics(3, class_names=["a", "b", "c"])
    metrics.update(lab([[0, 2, 1, 1]]), lab([[0, 0, 1, 1]]))
    result = metrics.compute()
    assert result["iou.c"] == 0.0
    assert result["miou"] == pytest.approx(0.5)
    # mIoU is the mean of the defined per-class IoUs
    defined = [result[f"iou.{n}"] for n in "abc" if not math.isnan(result[f"iou.{n}"])]
    assert result["miou"] == pytest.approx(sum(defined) / len(defined))


def test_segmentation_metrics_boundary_and_interior_hand_example() -> None:
    # truth: CORNER_AND_VERTICAL (boundary pixels: CORNER_AND_VERTICAL_BOUNDARY)
    # prediction = truth except (0,0) 2->0, (1,3) 1->0 (boundary) and (3,1) 0->1 (interior)
    preds = [
        [0, 0, 0, 1],
        [0, 0, 0, 0],
        [0, 0, 0, 1],
        [0, 1, 0, 1],
    ]
    # interior: (2,0) (2,1) (3,0) (3,1), all truth 0, predictions 0 0 0 1
    #   confusion [[3, 1, 0], [0, 0, 0], [0, 0, 0]]: IoU_0 = 3/4, IoU_1 = 0/1 = 0 (predicted),
    #   class 2 absent -> mIoU = (3/4 + 0) / 2 = 3/8, OA = 3/4
    # boundary: 12 pixels; truth 0 x7 all right, truth 1 x4 (one -> 0), truth 2 x1 (-> 0)
    #   confusion [[7, 0, 0], [1, 3, 0], [1, 0, 0]]: IoU_0 = 7/9, IoU_1 = 3/4, IoU_2 = 0
    #   mIoU = (7/9 + 3/4 + 0) / 3 = 55/108, OA = 10/12
    metrics = SegmentationMetrics(3, boundary=True)
    metrics.update(lab(preds), lab(CORNER_AND_VERTICAL))
    result = metrics.compute()
    assert result["interior.miou"] == pytest.approx(3 / 8)
    assert result["interior.overall_accuracy"] == pytest.approx(3 / 4)
    assert result["boundary.miou"] == pytest.approx(55 / 108)
    assert result["boundary.overall_accuracy"] == pytest.approx(10 / 12)
    assert result["overall_accuracy"] == pytest.approx(13 / 16)
    assert result["confusion"] == [[10, 1, 0], [1, 3, 0], [1, 0, 0]]


def test_segmentation_metrics_boundary_excludes_ignored_and_reports_nan_when_empty() -> None:
    # one class only: no boundary pixel at all; the ignored pixel is neither part
    metrics = SegmentationMetrics(2, boundary=True)
    metrics.update(lab([[0, 0, 1]]), lab([[0, 0, IGN]]))
    result = metrics.compute()
    assert math.isnan(result["boundary.miou"])
    assert math.isnan(result["boundary.overall_accuracy"])
    assert result["interior.overall_accuracy"] == pytest.approx(1.0)
    assert result["confusion"] == [[2, 0], [0, 0]]


def test_segmentation_metrics_logits_equal_argmax() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, generator=generator)
    target = torch.randint(0, 3, (2, 5, 6), generator=generator)
    target[0, 0, :3] = IGN
    from_logits = SegmentationMetrics(3, boundary=True)
    from_logits.update(logits, target)
    from_labels = SegmentationMetrics(3, boundary=True)
    from_labels.update(logits.argmax(dim=1), target)
    assert same(from_logits.compute(), from_labels.compute())


def test_segmentation_metrics_accumulate_and_reset() -> None:
    generator = torch.Generator().manual_seed(1)
    preds = torch.randint(0, 4, (4, 6, 6), generator=generator)
    target = torch.randint(0, 4, (4, 6, 6), generator=generator)
    target[1, 2:4, 2:4] = IGN
    split = SegmentationMetrics(4, boundary=True)
    split.update(preds[:1], target[:1])
    split.update(preds[1:], target[1:])
    whole = SegmentationMetrics(4, boundary=True)
    whole.update(preds, target)
    assert same(split.compute(), whole.compute())
    split.reset()
    with pytest.raises(ValueError, match="update"):
        split.compute()
    split.update(preds[1:], target[1:])
    part = SegmentationMetrics(4, boundary=True)
    part.update(preds[1:], target[1:])
    assert same(split.compute(), part.compute())


def test_segmentation_metrics_without_labelled_pixels_raises() -> None:
    metrics = SegmentationMetrics(2)
    metrics.update(lab([[0, 1]]), lab([[IGN, IGN]]))
    with pytest.raises(ValueError, match="labelled"):
        metrics.compute()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"num_classes": 1}, ValueError),
        ({"num_classes": 3, "ignore_index": 1}, ValueError),
        ({"num_classes": 2, "class_names": ["a"]}, ValueError),
        ({"num_classes": 2, "class_names": ["a", "a"]}, ValueError),
        ({"num_classes": 2, "class_names": ["a", "b.c"]}, ValueError),
        ({"num_classes": 2, "class_names": "ab"}, TypeError),
        ({"num_classes": 2, "boundary_kernel_size": 4}, ValueError),
    ],
)
def test_segmentation_metrics_rejects_bad_construction(
    kwargs: dict, error: type[Exception]
) -> None:
    with pytest.raises(error):
        SegmentationMetrics(**kwargs)


def test_segmentation_metrics_rejects_bad_inputs() -> None:
    metrics = SegmentationMetrics(3)
    target = lab([[0, 1], [2, 0]])
    with pytest.raises(ValueError, match="channels"):
        metrics.update(torch.zeros(1, 2, 2, 2), target)
    with pytest.raises(TypeError, match="integer"):
        metrics.update(torch.zeros(1, 2, 2), target)
    with pytest.raises(ValueError, match="same"):
        metrics.update(lab([[0, 1, 2]]), target)
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        metrics.update(torch.zeros(2, 2, dtype=torch.long), target[0])


# ----------------------------------------------------------------------------------------------
# ClassificationMetrics
# ----------------------------------------------------------------------------------------------


def test_classification_metrics_hand_example() -> None:
    # truth [0, 0, 1, 1, 2, 2] + one ignored sample; prediction [0, 1, 1, 1, 2, 0]
    # confusion [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # top1 = 4/6; recall = 1/2, 2/2, 1/2 -> balanced accuracy (1/2 + 1 + 1/2) / 3 = 2/3
    # F1_0 = 2/(2+1+1) = 1/2, F1_1 = 4/(4+1+0) = 4/5, F1_2 = 2/(2+0+1) = 2/3 -> macro 59/90
    # kappa: p_o = 4/6, rows (2, 2, 2), cols (2, 3, 1): p_e = (4 + 6 + 2)/36 = 1/3
    #        kappa = (2/3 − 1/3) / (1 − 1/3) = 1/2
    target = torch.tensor([0, 0, 1, 1, 2, 2, IGN])
    preds = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    metrics = ClassificationMetrics(3, class_names=["water", "forest", "urban"])
    metrics.update(preds, target)
    result = metrics.compute()
    assert result["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert result["top1"] == pytest.approx(4 / 6)
    assert result["balanced_accuracy"] == pytest.approx(2 / 3)
    assert result["acc.water"] == pytest.approx(1 / 2)
    assert result["acc.forest"] == pytest.approx(1.0)
    assert result["acc.urban"] == pytest.approx(1 / 2)
    assert result["macro_f1"] == pytest.approx(59 / 90)
    assert result["kappa"] == pytest.approx(1 / 2)
    assert set(result) == {
        "balanced_accuracy",
        "top1",
        "macro_f1",
        "kappa",
        "acc.water",
        "acc.forest",
        "acc.urban",
        "confusion",
    }
    # logits whose arg-max is `preds` give the same result
    logits = torch.nn.functional.one_hot(preds, 3).float() * 2.0 - 1.0
    from_logits = ClassificationMetrics(3, class_names=["water", "forest", "urban"])
    from_logits.update(logits, target)
    assert same(from_logits.compute(), result)


def test_classification_metrics_class_absent_from_target_is_nan() -> None:
    metrics = ClassificationMetrics(3)
    metrics.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))
    result = metrics.compute()
    assert math.isnan(result["acc.2"])
    assert result["acc.1"] == pytest.approx(1 / 2)
    assert result["top1"] == pytest.approx(2 / 3)
    # recall 1 (class 0) and 1/2 (class 1); class 2 is only predicted and is left out
    assert result["balanced_accuracy"] == pytest.approx(3 / 4)
    # torchmetrics' macro recall would count class 2 with recall 0: (1 + 1/2 + 0) / 3
    macro_recall = MulticlassRecall(num_classes=3, average="macro")
    assert float(macro_recall(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))) == pytest.approx(
        1 / 2
    )


def test_balanced_accuracy_of_a_constant_classifier_is_one_over_the_present_classes() -> None:
    # 6 samples of class 0, 3 of class 1, 1 of class 2, none of class 3; always predict 0:
    # top1 = 6/10, balanced accuracy = (1 + 0 + 0) / 3 (class 3 is absent from the target)
    target = torch.tensor([0] * 6 + [1] * 3 + [2])
    metrics = ClassificationMetrics(4)
    metrics.update(torch.zeros(10, dtype=torch.long), target)
    result = metrics.compute()
    assert result["top1"] == pytest.approx(0.6)
    assert result["balanced_accuracy"] == pytest.approx(1 / 3)


def test_segmentation_metrics_without_ignore_index() -> None:
    # the 8 labelled pixels of the hand example, no ignore value at all: same scores
    metrics = SegmentationMetrics(2, ignore_index=None, boundary=True)
    metrics.update(lab(SEG_PREDS[:2]), lab(SEG_TARGET[:2]))
    result = metrics.compute()
    assert result["confusion"] == [[3, 1], [2, 2]]
    assert result["miou"] == pytest.approx(0.45)
    # every pixel of a 2×4 map split by a horizontal boundary is a boundary pixel
    assert result["boundary.overall_accuracy"] == pytest.approx(5 / 8)
    assert math.isnan(result["interior.miou"])
