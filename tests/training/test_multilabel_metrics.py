"""MultilabelMetrics against hand-computed average precision and F1."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.classification import MultilabelAveragePrecision

from s2ssl.training.knn import knn_multilabel_scores
from s2ssl.training.multilabel_metrics import MultilabelMetrics

# 4 images, 3 classes; class 2 has no positive image.
SCORES = torch.tensor([[0.9, 0.2, 0.1], [0.8, 0.6, 0.3], [0.3, 0.7, 0.2], [0.1, 0.4, 0.6]])
TARGET = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_hand_computed_average_precision_and_f1() -> None:
    m = MultilabelMetrics(3, class_names=["a", "b", "c"])
    m.update(SCORES[:2], TARGET[:2])
    m.update(SCORES[2:], TARGET[2:])
    out = m.compute()
    # class a ranked: .9 (+), .8 (-), .3 (+), .1 (-): P = 1 at R = 1/2, P = 2/3 at R = 1
    assert out["ap.a"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # class b ranked: .7 (+), .6 (+), .4, .2: both positives first
    assert out["ap.b"] == pytest.approx(1.0)
    # class c: no positive image, AP undefined
    assert math.isnan(float(out["ap.c"]))
    assert out["map_macro"] == pytest.approx((5 / 6 + 1.0) / 2)
    # micro: 12 pairs ranked, 4 positives; thresholds .9 (1/1), .7 (2/3), .6 tie of a positive
    # and a negative (3/5), .3 tie of a positive and a negative (4/8); each adds recall 1/4
    assert out["map_micro"] == pytest.approx(0.25 * (1 + 2 / 3 + 3 / 5 + 4 / 8))
    # threshold 0.5: predicted {a}, {a, b}, {b}, {c}: TP 3, FP 2, FN 1
    assert out["f1_micro"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    # per class: a 2·1/(2+1+1) = .5, b 1, c only predicted (FP) 0, all counted
    assert out["f1_macro"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_torchmetrics_averages_a_class_without_positive_as_zero() -> None:
    """What MultilabelMetrics corrects: torchmetrics 1.9 scores the class without positive 0
    and keeps it in the macro mean."""
    tm = MultilabelAveragePrecision(num_labels=3, average="macro")
    with pytest.warns(UserWarning):
        tm.update(SCORES, TARGET)
        value = float(tm.compute())
    assert value == pytest.approx((5 / 6 + 1.0 + 0.0) / 3)
    m = MultilabelMetrics(3)
    m.update(SCORES, TARGET)
    assert m.compute()["map_macro"] == pytest.approx((5 / 6 + 1.0) / 2)


def test_no_positive_at_all_is_nan_and_reset_forgets() -> None:
    m = MultilabelMetrics(2)
    m.update(torch.tensor([[0.2, 0.7]]), torch.tensor([[0, 0]]))
    out = m.compute()
    assert math.isnan(float(out["map_micro"])) and math.isnan(float(out["map_macro"]))
    m.reset()
    with pytest.raises(ValueError, match="at least one sample"):
        m.compute()


@pytest.mark.parametrize(
    ("scores", "target", "error", "match"),
    [
        (torch.tensor([[1.5, 0.1]]), torch.tensor([[1, 0]]), ValueError, "sigmoid"),
        (torch.tensor([[0.5, 0.1]]), torch.tensor([[2, 0]]), ValueError, "multi-hot"),
        (torch.tensor([[0.5, 0.1, 0.3]]), torch.tensor([[1, 0]]), ValueError, r"\[N, 2\]"),
        (torch.tensor([[1, 0]]), torch.tensor([[1, 0]]), TypeError, "floating"),
        (torch.tensor([[0.5, 0.1]]), torch.tensor([[1.0, 0.0]]), TypeError, "integer"),
    ],
)
def test_update_rejects_bad_inputs(
    scores: torch.Tensor, target: torch.Tensor, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        MultilabelMetrics(2).update(scores, target)


def test_knn_multilabel_scores_are_weighted_label_shares() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    labels = torch.tensor([[1, 0], [0, 1], [1, 1]])
    query = torch.tensor([[1.0, 0.0]])
    # k = 1: the nearest row alone
    assert knn_multilabel_scores(bank, labels, query, k=1).tolist() == [[1.0, 0.0]]
    # k = 2, T large: equal weights over rows 0 and 2
    two = knn_multilabel_scores(bank, labels, query, k=2, temperature=1e6)
    assert two[0].tolist() == pytest.approx([1.0, 0.5])
    three = knn_multilabel_scores(bank, labels, query, k=3, temperature=0.5)
    sims = torch.nn.functional.normalize(bank, dim=1) @ torch.tensor([1.0, 0.0])
    w = torch.exp(sims / 0.5)
    expected = (w[:, None] * labels.float()).sum(0) / w.sum()
    assert three[0].tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    with pytest.raises(ValueError, match="multi-hot"):
        knn_multilabel_scores(bank, torch.tensor([0, 1, 1]), query)
