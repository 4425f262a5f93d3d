"""Frozen-encoder evaluation of scene classification: linear probe and kNN (SeCo's protocols).

The encoder is not trained: its global-pooled features of every patch are computed once
(:func:`extract_features`). The **linear probe** (Mañas et al. 2021, §4.1: "linear
classification on frozen features") is a multinomial logistic regression on features
standardised with the training subset's statistics, trained full batch with AdamW; the
standardisation is then folded into the linear layer, so the probe *is* a
:class:`~s2ssl.models.downstream.SceneNet` classifier on raw features and can be exported like a
fine-tuned model. The **kNN** classifier is the cosine kNN of the online pre-training probe
(:func:`s2ssl.training.knn.knn_classify`).

**Multi-label scenes** (``multilabel=True``): the probe is one logistic regression per class
(binary cross-entropy on the sigmoid of each logit, folded the same way) and the kNN scores each
class by the similarity-weighted share of the neighbours carrying it
(:func:`s2ssl.training.knn.knn_multilabel_scores`); both output per-class scores in ``[0, 1]``,
scored by mAP (:data:`MULTILABEL_SELECTION_METRIC`).

Each protocol has one hyper-parameter chosen per run on the val split, by the task's headline
(balanced accuracy, :data:`SELECTION_METRIC`; micro mAP for multi-label scenes): the number of
neighbours ``k``
(:func:`select_knn_k`; ties go to the smaller ``k``, and a ``k`` larger than the labelled bank is
skipped) and the probe's weight decay (:func:`fit_linear_probe_selected`; ties go to the larger,
more regularised one). A fixed ``k`` would be the whole bank at small label fractions, and a fixed
weight decay suits either few or many labels, not both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2ssl.config import LinearProbeConfig
from s2ssl.finetune.data import TaskSplit
from s2ssl.models.downstream import SceneNet
from s2ssl.taskspec import task_spec
from s2ssl.training.knn import knn_classify, knn_multilabel_scores
from s2ssl.training.metrics import ClassificationMetrics
from s2ssl.training.multilabel_metrics import MultilabelMetrics

__all__ = [
    "MULTILABEL_SELECTION_METRIC",
    "SELECTION_METRIC",
    "KnnChoice",
    "LinearChoice",
    "extract_features",
    "fit_linear_probe",
    "fit_linear_probe_selected",
    "knn_multilabel_predict",
    "knn_predict",
    "select_knn_k",
    "selection_score",
]

SELECTION_METRIC: Final[str] = task_spec("scene").headline
"""The val score the frozen protocols' hyper-parameters are chosen on (balanced accuracy)."""

MULTILABEL_SELECTION_METRIC: Final[str] = task_spec("multilabel").headline
"""The same for multi-label scenes (micro mAP)."""


def _selection_metric(multilabel: bool) -> str:
    return MULTILABEL_SELECTION_METRIC if multilabel else SELECTION_METRIC


@torch.no_grad()
def extract_features(model: SceneNet, split: TaskSplit, *, batch_size: int = 64) -> Tensor:
    """Global-pooled encoder features ``[n, D]`` of every sample (evaluation mode)."""
    band_indices = split.band_indices(model.bands)
    was_training = model.training
    model.eval()
    out = [
        model.features(split.image[lo : lo + batch_size, 0][:, band_indices].float() * 1e-4)
        for lo in range(0, len(split), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros((0, model.encoder.out_dim))


def fit_linear_probe(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    cfg: LinearProbeConfig,
    seed: int,
    *,
    weight_decay: float,
    multilabel: bool = False,
) -> nn.Linear:
    """A logistic-regression layer on raw ``features`` (standardisation folded in).

    Trains ``W z + b`` on ``z = (f - μ) / σ`` (μ, σ of ``features``) with cross-entropy and AdamW
    (``cfg.epochs`` full-batch steps at ``cfg.lr``, decoupled ``weight_decay``), then returns the
    equivalent layer on ``f``: ``W' = W / σ``, ``b' = b - W' μ``. ``multilabel``: ``labels`` are
    multi-hot ``[n, K]`` and each class is its own logistic regression (binary cross-entropy).
    """
    if not isinstance(weight_decay, int | float) or isinstance(weight_decay, bool):
        raise TypeError(f"weight_decay must be a number, got {type(weight_decay).__name__}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    expected = (features.shape[0], num_classes) if multilabel else (features.shape[0],)
    if features.ndim != 2 or labels.shape != expected:
        layout = "[n, K] multi-hot" if multilabel else "[n]"
        raise ValueError(
            f"features must be [n, D] and labels {layout}, got {tuple(features.shape)} / "
            f"{tuple(labels.shape)}"
        )
    if features.shape[0] == 0:
        raise ValueError("the linear probe has no training sample")
    mu = features.mean(0)
    sigma = features.std(0, unbiased=False).clamp_min(1e-6)
    z = (features - mu) / sigma
    generator = torch.Generator().manual_seed(seed)
    layer = nn.Linear(features.shape[1], num_classes)
    with torch.no_grad():
        layer.weight.normal_(0.0, 0.01, generator=generator)
        layer.bias.zero_()
    opt = torch.optim.AdamW(layer.parameters(), lr=cfg.lr, weight_decay=float(weight_decay))
    y = labels.float() if multilabel else labels.long()
    for _ in range(cfg.epochs):
        opt.zero_grad()
        if multilabel:
            loss = F.binary_cross_entropy_with_logits(layer(z), y)
        else:
            loss = F.cross_entropy(layer(z), y)
        loss.backward()
        opt.step()
    folded = nn.Linear(features.shape[1], num_classes)
    with torch.no_grad():
        folded.weight.copy_(layer.weight / sigma)
        folded.bias.copy_(layer.bias - folded.weight @ mu)
    return folded


def knn_predict(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    *,
    k: int,
    temperature: float,
) -> Tensor:
    """Predicted classes ``[Q]`` by weighted cosine kNN over the labelled ``bank``."""
    return knn_classify(
        bank, bank_labels, queries, num_classes=num_classes, k=k, temperature=temperature
    )


def knn_multilabel_predict(
    bank: Tensor, bank_labels: Tensor, queries: Tensor, *, k: int, temperature: float
) -> Tensor:
    """Per-class scores ``[Q, K]`` by weighted cosine kNN over the multi-label ``bank``."""
    return knn_multilabel_scores(bank, bank_labels, queries, k=k, temperature=temperature)


def selection_score(
    pred: Tensor, labels: Tensor, num_classes: int, *, multilabel: bool = False
) -> float:
    """The :data:`SELECTION_METRIC` of predicted classes ``pred`` against ``labels`` ``[n]``;
    ``multilabel``: the :data:`MULTILABEL_SELECTION_METRIC` of per-class scores ``pred``
    ``[n, K]`` in ``[0, 1]`` against multi-hot ``labels``."""
    metrics: ClassificationMetrics | MultilabelMetrics
    metrics = MultilabelMetrics(num_classes) if multilabel else ClassificationMetrics(num_classes)
    metrics.update(pred, labels)
    return float(metrics.compute()[_selection_metric(multilabel)])  # type: ignore[arg-type]


def _check_val(val_features: Tensor, val_labels: Tensor, bank: Tensor) -> None:
    if val_features.ndim != 2 or val_labels.ndim not in (1, 2):
        raise ValueError(
            f"val_features must be [n, D] and val_labels [n] (or multi-hot [n, K]), got "
            f"{tuple(val_features.shape)} / {tuple(val_labels.shape)}"
        )
    if val_labels.shape[0] != val_features.shape[0]:
        raise ValueError(
            f"val_labels must have one row per val feature, got {tuple(val_labels.shape)} for "
            f"{tuple(val_features.shape)}"
        )
    if val_features.shape[0] == 0:
        raise ValueError("the val split is empty: nothing to choose a frozen protocol's setting on")
    if bank.ndim != 2 or val_features.shape[1] != bank.shape[1]:
        raise ValueError(
            f"bank and val features must be [n, D] of one D, got {tuple(bank.shape)} and "
            f"{tuple(val_features.shape)}"
        )


def _check_choices(name: str, choices: Sequence[float]) -> list[float]:
    values = list(choices)
    if not values:
        raise ValueError(f"{name} must name at least one candidate, got {choices!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat a candidate, got {values}")
    return values


@dataclass(frozen=True)
class KnnChoice:
    """The ``k`` :func:`select_knn_k` chose and the val scores it chose by."""

    k: int
    val_score: float
    """:data:`SELECTION_METRIC` of the chosen ``k`` on val."""
    val_scores: Mapping[int, float]
    """Every ``k`` tried -> its val score (the ``k`` larger than the bank are not tried)."""


def select_knn_k(
    bank: Tensor,
    bank_labels: Tensor,
    val_features: Tensor,
    val_labels: Tensor,
    num_classes: int,
    *,
    k_choices: Sequence[int],
    temperature: float,
    multilabel: bool = False,
) -> KnnChoice:
    """The number of neighbours with the best val :data:`SELECTION_METRIC` (ties: smaller ``k``).

    ``multilabel``: multi-hot labels, per-class scores (:func:`knn_multilabel_predict`) chosen
    on :data:`MULTILABEL_SELECTION_METRIC`.

    A ``k`` larger than the bank (the labelled train samples) is skipped: it would vote with the
    whole bank, as the largest ``k`` that fits already does at most. When no candidate fits, ``k``
    is the bank size.

    Raises:
        ValueError: no candidate, a repeated or non-positive one, an empty bank or val split.
    """
    choices = _check_choices("k_choices", k_choices)
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in choices):
        raise ValueError(f"k_choices must be positive ints, got {choices}")
    _check_val(val_features, val_labels, bank)
    size = bank.shape[0]
    if size == 0:
        raise ValueError("the kNN bank is empty: no labelled sample to vote")
    fitting = sorted(int(k) for k in choices if k <= size) or [size]
    scores: dict[int, float] = {}
    for k in fitting:
        if multilabel:
            pred = knn_multilabel_predict(
                bank, bank_labels, val_features, k=k, temperature=temperature
            )
        else:
            pred = knn_predict(
                bank, bank_labels, val_features, num_classes, k=k, temperature=temperature
            )
        scores[k] = selection_score(pred, val_labels, num_classes, multilabel=multilabel)
    best = max(fitting, key=lambda k: (scores[k], -k))
    return KnnChoice(best, scores[best], scores)


@dataclass(frozen=True)
class LinearChoice:
    """The linear probe :func:`fit_linear_probe_selected` chose and the val scores it chose by."""

    weight_decay: float
    layer: nn.Linear
    """The probe fitted with :attr:`weight_decay` (on raw features, as :func:`fit_linear_probe`)."""
    val_score: float
    """:data:`SELECTION_METRIC` of :attr:`layer` on val."""
    val_scores: Mapping[float, float]
    """Every weight decay tried -> its val score."""


def fit_linear_probe_selected(
    features: Tensor,
    labels: Tensor,
    val_features: Tensor,
    val_labels: Tensor,
    num_classes: int,
    cfg: LinearProbeConfig,
    seed: int,
    *,
    multilabel: bool = False,
) -> LinearChoice:
    """A linear probe per ``cfg.weight_decay_choices`` on ``features``; the best on val is kept.

    ``multilabel``: one logistic regression per class on multi-hot labels, chosen on
    :data:`MULTILABEL_SELECTION_METRIC` of its sigmoid scores.

    Every candidate starts from the same ``seed``; the one with the highest val
    :data:`SELECTION_METRIC` wins, ties going to the larger weight decay.

    Raises:
        ValueError: no candidate, a repeated or negative one, or empty / mismatched features.
    """
    choices = _check_choices("weight_decay_choices", cfg.weight_decay_choices)
    _check_val(val_features, val_labels, features)
    best: LinearChoice | None = None
    scores: dict[float, float] = {}
    for wd in sorted((float(w) for w in choices), reverse=True):
        layer = fit_linear_probe(
            features, labels, num_classes, cfg, seed, weight_decay=wd, multilabel=multilabel
        )
        with torch.no_grad():
            logits = layer(val_features.float())
            pred = torch.sigmoid(logits) if multilabel else logits.argmax(1)
        scores[wd] = selection_score(pred, val_labels, num_classes, multilabel=multilabel)
        if best is None or scores[wd] > best.val_score:
            best = LinearChoice(wd, layer, scores[wd], scores)
    if best is None:  # pragma: no cover - _check_choices guarantees a candidate
        raise ValueError("no weight decay candidate")
    return LinearChoice(best.weight_decay, best.layer, best.val_score, dict(scores))
