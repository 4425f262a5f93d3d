"""Frozen-encoder evaluation of scene classification: linear probe and kNN (SeCo's protocols).

The encoder is not trained: its global-pooled features of every patch are computed once
(:func:`extract_features`). The **linear probe** (Mañas et al. 2021, §4.1: "linear
classification on frozen features") is a multinomial logistic regression on features
standardised with the training subset's statistics, trained full batch with AdamW; the
standardisation is then folded into the linear layer, so the probe *is* a
:class:`~s2ssl.models.downstream.SceneNet` classifier on raw features and can be exported like a
fine-tuned model. The **kNN** classifier is the cosine kNN of the online pre-training probe
(:func:`s2ssl.training.knn.knn_classify`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2ssl.bands import BAND_NAMES
from s2ssl.config import LinearProbeConfig
from s2ssl.finetune.data import TaskSplit
from s2ssl.models.downstream import SceneNet
from s2ssl.training.knn import knn_classify

__all__ = ["extract_features", "fit_linear_probe", "knn_predict"]


@torch.no_grad()
def extract_features(model: SceneNet, split: TaskSplit, *, batch_size: int = 64) -> Tensor:
    """Global-pooled encoder features ``[n, D]`` of every sample (evaluation mode)."""
    band_indices = [BAND_NAMES.index(b) for b in model.bands]
    was_training = model.training
    model.eval()
    out = [
        model.features(split.image[lo : lo + batch_size, 0][:, band_indices].float() * 1e-4)
        for lo in range(0, len(split), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros((0, model.encoder.out_dim))


def fit_linear_probe(
    features: Tensor, labels: Tensor, num_classes: int, cfg: LinearProbeConfig, seed: int
) -> nn.Linear:
    """A logistic-regression layer on raw ``features`` (standardisation folded in).

    Trains ``W z + b`` on ``z = (f - μ) / σ`` (μ, σ of ``features``) with cross-entropy, then
    returns the equivalent layer on ``f``: ``W' = W / σ``, ``b' = b - W' μ``.
    """
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(
            f"features must be [n, D] and labels [n], got {tuple(features.shape)} / "
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
    opt = torch.optim.AdamW(layer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    y = labels.long()
    for _ in range(cfg.epochs):
        opt.zero_grad()
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
