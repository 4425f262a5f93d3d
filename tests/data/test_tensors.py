"""In-memory samples and epoch-seeded batches (s2ssl.data.tensors): the DDP batch split."""

from __future__ import annotations

import pytest

from s2ssl.data import tensors
from s2ssl.data.tensors import EpochBatchSampler


def _rank_batches(
    monkeypatch: pytest.MonkeyPatch, n: int, batch: int, world: int, epoch: int
) -> list[list[list[int]]]:
    per_rank = []
    for rank in range(world):
        monkeypatch.setattr(tensors, "dist_rank_world", lambda r=rank: (r, world))
        sampler = EpochBatchSampler(n, batch, seed=7)
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        per_rank.append(batches)
    return per_rank


def test_each_rank_gets_a_disjoint_share_of_the_same_permutation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n, batch, world = 23, 4, 2
    ranks = _rank_batches(monkeypatch, n, batch, world, epoch=3)
    seen = [sorted(i for b in batches for i in b) for batches in ranks]
    assert not set(seen[0]) & set(seen[1])
    # 23 → 22 usable (a multiple of the world), 11 per rank → 2 full batches of 4 each
    assert [len(batches) for batches in ranks] == [2, 2]
    assert all(len(b) == batch for batches in ranks for b in batches)

    monkeypatch.setattr(tensors, "dist_rank_world", lambda: (0, 1))
    single = EpochBatchSampler(n, batch, seed=7)
    single.set_epoch(3)
    perm = single._indices()
    # rank r takes every world-th index of the single-process permutation, in order
    for rank in range(world):
        assert [i for b in ranks[rank] for i in b] == perm[: (n // world) * world][rank::world][:8]

    other_epoch = _rank_batches(monkeypatch, n, batch, world, epoch=4)
    assert other_epoch != ranks  # a new permutation every epoch, the same one on every rank
    assert _rank_batches(monkeypatch, n, batch, world, epoch=3) == ranks


def test_an_epoch_size_cycles_a_small_subset_as_often_as_the_full_split_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tensors, "dist_rank_world", lambda: (0, 1))
    sampler = EpochBatchSampler(3, 4, seed=7, epoch_size=10)
    batches = list(sampler)
    drawn = [i for b in batches for i in b]
    # 10 draws → 2 full batches of 4 (drop_last); each permutation of the 3 items in turn
    assert len(batches) == len(sampler) == 2 and len(drawn) == 8
    assert sorted(drawn[:3]) == [0, 1, 2] and sorted(drawn[3:6]) == [0, 1, 2]
    # without epoch_size nothing changes: the same first permutation as before
    plain = [i for b in EpochBatchSampler(3, 4, seed=7, drop_last=False) for i in b]
    assert plain == drawn[:3]
    with pytest.raises(ValueError, match=r"epoch_size must be >= n"):
        EpochBatchSampler(5, 2, seed=0, epoch_size=4)
