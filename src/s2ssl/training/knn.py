"""A cosine kNN classifier and a collapse monitor of embeddings.

* :func:`embedding_std` — the collapse monitor of SimSiam (Chen & He, CVPR 2021, §4.1): the
  standard deviation over the batch of the L2-normalised embeddings, averaged over dimensions.
  A collapsed representation gives 0; unit vectors spread uniformly over the sphere of
  dimension ``d`` give about ``1 / sqrt(d)``.
* :func:`knn_classify` / :func:`knn_accuracy` — the weighted kNN classifier of instance
  discrimination (Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination", CVPR 2018) as used by DINO (Caron et al., ICCV 2021): cosine similarity to a
  labelled bank, the ``k`` nearest vote for their class with weight ``exp(cos / T)``
  (``voting="weighted"``, T = 0.07) or one vote each (``voting="majority"``).
* :func:`knn_multilabel_scores` — the same neighbours and weights for multi-label banks: a
  class's score is the weighted share of the ``k`` neighbours that carry it, in ``[0, 1]``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Voting", "embedding_std", "knn_accuracy", "knn_classify", "knn_multilabel_scores"]

Voting = Literal["weighted", "majority"]


def _check_embeddings(bank: Tensor, queries: Tensor) -> None:
    """``ValueError`` unless ``bank`` and ``queries`` are ``[N, D]`` tensors of one dimension."""
    for name, t in (("bank", bank), ("queries", queries)):
        if not isinstance(t, Tensor) or t.ndim != 2:
            raise ValueError(f"{name} must be a [N, D] tensor")
    if bank.shape[1] != queries.shape[1]:
        raise ValueError(
            f"bank and queries must have the same dimension, got {bank.shape[1]} and "
            f"{queries.shape[1]}"
        )


def embedding_std(z: Tensor) -> Tensor:
    """Mean over dimensions of the per-dimension std (over rows) of L2-normalised ``z [N, D]``.

    0 for a collapsed representation (every row the same direction); about ``1 / sqrt(D)`` for
    directions spread uniformly over the sphere. Returns a float32 scalar (0 when ``N < 2``).
    """
    if not isinstance(z, Tensor) or z.ndim != 2:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"embedding_std expects embeddings [N, D], got {shape}")
    if z.shape[0] < 2:
        return torch.zeros((), device=z.device)
    unit = F.normalize(z.detach().float(), dim=1)
    return unit.std(dim=0, correction=0).mean()


def knn_classify(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    voting: Voting = "weighted",
    chunk_size: int = 4096,
) -> Tensor:
    """Predicted class ``[Q]`` of each query by cosine kNN over the labelled ``bank``.

    Args:
        bank: ``[M, D]`` embeddings of the labelled bank.
        bank_labels: ``[M]`` their classes in ``[0, num_classes)``.
        queries: ``[Q, D]`` embeddings to classify.
        num_classes: number of classes.
        k: neighbours (clipped to ``M``).
        temperature: T of the ``exp(cos / T)`` vote weights (``voting="weighted"``).
        voting: ``"weighted"`` (InstDisc / DINO) or ``"majority"`` (one vote per neighbour).
        chunk_size: queries per similarity block (bounds memory at ``chunk_size × M``).

    Ties go to the lowest class index.
    """
    _check_embeddings(bank, queries)
    if bank_labels.shape != (bank.shape[0],):
        raise ValueError(
            f"bank_labels must have shape [{bank.shape[0]}], got {tuple(bank_labels.shape)}"
        )
    if bank.shape[0] == 0:
        raise ValueError("the kNN bank is empty: no labelled sample to vote")
    if num_classes < 1 or k < 1 or temperature <= 0:
        raise ValueError(
            f"need num_classes >= 1, k >= 1, temperature > 0; got {num_classes}, {k}, {temperature}"
        )
    if voting not in ("weighted", "majority"):
        raise ValueError(f"voting must be 'weighted' or 'majority', got {voting!r}")
    labels = bank_labels.long().to(bank.device)
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"bank_labels must lie in [0, {num_classes}), got {labels.unique()}")
    kk = min(k, bank.shape[0])
    b = F.normalize(bank.float(), dim=1)
    out = []
    for start in range(0, queries.shape[0], chunk_size):
        q = F.normalize(queries[start : start + chunk_size].float().to(b.device), dim=1)
        sims, idx = (q @ b.T).topk(kk, dim=1)
        weights = (sims / temperature).exp() if voting == "weighted" else torch.ones_like(sims)
        votes = torch.zeros(q.shape[0], num_classes, device=b.device)
        votes.scatter_add_(1, labels[idx], weights)
        out.append(votes.argmax(dim=1))
    if not out:
        return torch.zeros(0, dtype=torch.long, device=bank.device)
    return torch.cat(out)


def knn_accuracy(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    query_labels: Tensor,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    voting: Voting = "weighted",
) -> float:
    """Top-1 accuracy of :func:`knn_classify` on ``queries`` with true ``query_labels``."""
    if query_labels.shape != (queries.shape[0],):
        raise ValueError(
            f"query_labels must have shape [{queries.shape[0]}], got {tuple(query_labels.shape)}"
        )
    if queries.shape[0] == 0:
        raise ValueError("no query to classify: the probe's query set is empty")
    pred = knn_classify(
        bank,
        bank_labels,
        queries,
        num_classes=num_classes,
        k=k,
        temperature=temperature,
        voting=voting,
    )
    return float((pred.cpu() == query_labels.long().cpu()).float().mean())


def knn_multilabel_scores(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    *,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 4096,
) -> Tensor:
    """Per-class scores ``[Q, K]`` in ``[0, 1]`` of each query by cosine kNN over a multi-label
    bank: ``score_c = Σ_j w_j · y_jc / Σ_j w_j`` over the ``k`` nearest bank rows ``j``
    (cosine similarity ``s_j``, weight ``w_j = exp(s_j / T)``), i.e. the similarity-weighted
    share of the neighbours that carry class ``c``.

    Args:
        bank: ``[M, D]`` embeddings of the labelled bank.
        bank_labels: ``[M, K]`` their multi-hot labels (0 / 1).
        queries: ``[Q, D]`` embeddings to score.
        k: neighbours (clipped to ``M``).
        temperature: T of the vote weights.
        chunk_size: queries per similarity block (bounds memory at ``chunk_size × M``).
    """
    _check_embeddings(bank, queries)
    if bank_labels.ndim != 2 or bank_labels.shape[0] != bank.shape[0]:
        raise ValueError(
            f"bank_labels must be multi-hot [{bank.shape[0]}, K], got {tuple(bank_labels.shape)}"
        )
    if bank.shape[0] == 0:
        raise ValueError("the kNN bank is empty: no labelled sample to vote")
    if k < 1 or temperature <= 0:
        raise ValueError(f"need k >= 1 and temperature > 0; got {k}, {temperature}")
    labels = bank_labels.float().to(bank.device)
    if labels.numel() and not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("bank_labels must be multi-hot (0 / 1 only)")
    kk = min(k, bank.shape[0])
    b = F.normalize(bank.float(), dim=1)
    out = []
    for start in range(0, queries.shape[0], chunk_size):
        q = F.normalize(queries[start : start + chunk_size].float().to(b.device), dim=1)
        sims, idx = (q @ b.T).topk(kk, dim=1)
        # softmax over the neighbours: exp(s_j / T) / Σ exp(s / T), stable for small T
        weights = torch.softmax(sims / temperature, dim=1)
        out.append(torch.einsum("qj,qjc->qc", weights, labels[idx]).clamp(0.0, 1.0))
    if not out:
        return torch.zeros((0, labels.shape[1]), device=bank.device)
    return torch.cat(out)
