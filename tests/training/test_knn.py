"""Cosine kNN classifier and collapse monitor (s2ssl.training.knn) on hand-made embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from s2ssl.training.knn import Voting, embedding_std, knn_accuracy, knn_classify


def separable(
    n_per_class: int, classes: int, dim: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings near the class's basis vector (plus small noise), and their labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    z = torch.eye(dim)[labels] * 5.0 + 0.3 * torch.randn(len(labels), dim, generator=g)
    return z, labels


@pytest.mark.parametrize("voting", ["weighted", "majority"])
def test_knn_on_separable_embeddings_is_perfect(voting: Voting) -> None:
    bank, bank_y = separable(30, 5, 16, seed=0)
    queries, query_y = separable(10, 5, 16, seed=1)
    acc = knn_accuracy(bank, bank_y, queries, query_y, num_classes=5, k=20, voting=voting)
    assert acc == 1.0


def test_knn_on_random_labels_is_near_chance() -> None:
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(2000, 32, generator=g)
    bank_y = torch.randint(0, 5, (2000,), generator=g)
    queries = torch.randn(2000, 32, generator=g)
    query_y = torch.randint(0, 5, (2000,), generator=g)
    acc = knn_accuracy(bank, bank_y, queries, query_y, num_classes=5, k=20)
    assert abs(acc - 0.2) < 0.05


def test_knn_weighted_votes_follow_similarity() -> None:
    """One very close neighbour of class 1 outweighs two far ones of class 0 when weighted."""
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    bank_y = torch.tensor([1, 0, 0])
    query = torch.tensor([[1.0, 0.05]])
    weighted = knn_classify(bank, bank_y, query, num_classes=2, k=3, temperature=0.07)
    majority = knn_classify(bank, bank_y, query, num_classes=2, k=3, voting="majority")
    assert weighted.tolist() == [1] and majority.tolist() == [0]


def test_knn_k_larger_than_bank_and_bad_inputs() -> None:
    bank, bank_y = separable(2, 3, 8, seed=0)
    assert knn_classify(bank, bank_y, bank, num_classes=3, k=100).tolist() == bank_y.tolist()
    with pytest.raises(ValueError, match="empty"):
        knn_classify(bank[:0], bank_y[:0], bank, num_classes=3)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        knn_classify(bank, bank_y, bank, num_classes=2)
    with pytest.raises(ValueError, match="dimension"):
        knn_classify(bank, bank_y, bank[:, :4], num_classes=3)


def test_collapse_monitor() -> None:
    constant = torch.ones(64, 128) * torch.randn(1, 128)
    assert float(embedding_std(constant)) == pytest.approx(0.0, abs=1e-6)
    spread = torch.randn(4096, 128, generator=torch.Generator().manual_seed(0))
    assert float(embedding_std(spread)) == pytest.approx(1 / math.sqrt(128), rel=0.05)
    # scale-free: it measures directions only
    assert float(embedding_std(spread * 10)) == pytest.approx(float(embedding_std(spread)))
    assert float(embedding_std(spread[:1])) == 0.0
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        embedding_std(spread[0])
