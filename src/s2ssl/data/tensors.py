"""Validated samples in memory and deterministic batches of them.

:func:`load_split` reads the accepted samples of a split once (shard by shard) into int16 DN
after offset (= reflectance × 1e4, exact; half the memory of float32) with only the bands asked
for; :class:`TensorDictDataset` indexes those tensors a whole batch at a time (no per-item
decoding, no collation).

Determinism: :class:`EpochBatchSampler` shuffles with a permutation seeded from
``(seed, epoch)`` (Lightning calls ``set_epoch`` at every epoch start), so a run resumed from a
checkpoint sees the same batches as an uninterrupted one. Under DDP it splits the permutation
between the ranks itself (the Trainer runs with ``use_distributed_sampler=False``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from s2ssl.data.store import ShardedDataset, StoreError
from s2ssl.seeding import derive_seed

__all__ = [
    "EpochBatchSampler",
    "TensorDictDataset",
    "dist_rank_world",
    "load_split",
    "split_positions",
]

_READ_CHUNK: Final[int] = 64

_INT16_MAX: Final[int] = int(np.iinfo(np.int16).max)

_INT16_MIN: Final[int] = int(np.iinfo(np.int16).min)


def split_positions(store: ShardedDataset, split: str | None) -> np.ndarray:
    index = store.index
    if split is None or "split" not in index.columns:
        if split is not None and split != "train":
            raise StoreError(f"{store.path} has no split column, cannot select split {split!r}")
        return np.arange(len(store), dtype=np.int64)
    positions = np.flatnonzero(index["split"].to_numpy() == split).astype(np.int64)
    if positions.size == 0:
        available = sorted(map(str, index["split"].unique()))
        raise StoreError(f"{store.path} has no {split!r} sample; splits: {available}")
    return positions


def _column_matrix(store: ShardedDataset, column: str, positions: np.ndarray, t: int) -> np.ndarray:
    """Index column of per-date lists as an int64 ``[n, t]`` matrix (scalars repeated)."""
    if column not in store.index.columns:
        raise StoreError(f"{store.path} index has no {column!r} column; re-create the dataset")
    values = store.index[column].to_numpy()[positions]
    rows = []
    for v in values:
        arr = np.asarray(v, dtype=np.int64).reshape(-1)
        rows.append(np.full(t, arr[0], np.int64) if arr.size == 1 else arr)
    out = np.stack(rows) if rows else np.zeros((0, t), np.int64)
    if out.shape[1:] != (t,):
        raise StoreError(f"{store.path}: column {column!r} does not hold {t} values per sample")
    return out


def load_split(
    store: ShardedDataset,
    split: str | None,
    *,
    band_indices: Sequence[int],
    label: str | None = None,
    positions: np.ndarray | None = None,
) -> dict[str, Tensor]:
    """Read the samples of ``split`` into memory.

    Returns ``{"image": int16 [n, T, C, H, W] DN after offset (reflectance × 1e4, clipped to
    int16), "doy": int64 [n, T], "label": int64 [n, H, W] (when ``label``)}`` with only
    ``band_indices`` of the band axis. ``positions`` (positions in ``store``) overrides the
    split selection.
    """
    if "image" not in store.specs:
        raise StoreError(f"{store.path} has no 'image' array")
    spec = store.specs["image"]
    if len(spec.shape) != 4:
        raise StoreError(f"{store.path}: image must be [T, C, H, W] per sample, got {spec.shape}")
    t, c, h, w = spec.shape
    bad = [i for i in band_indices if not 0 <= i < c]
    if bad:
        raise StoreError(f"{store.path} has {c} bands; band indices {bad} do not exist")
    if np.dtype(spec.dtype).kind not in "iu":
        raise StoreError(f"{store.path}: image must be integer DN, got {spec.dtype}")
    pos = split_positions(store, split) if positions is None else np.asarray(positions, np.int64)
    n = pos.size
    offsets = _column_matrix(store, "dn_offset", pos, t)
    doy = _column_matrix(store, "doy", pos, t)
    bands = np.asarray(band_indices, dtype=np.int64)
    image = np.empty((n, t, bands.size, h, w), dtype=np.int16)
    for lo in range(0, n, _READ_CHUNK):
        chunk = store.read_many("image", pos[lo : lo + _READ_CHUNK])[:, :, bands]
        dn = chunk.astype(np.int32) + offsets[lo : lo + _READ_CHUNK, :, None, None, None]
        image[lo : lo + _READ_CHUNK] = np.clip(dn, _INT16_MIN, _INT16_MAX)
    out = {"image": torch.from_numpy(image), "doy": torch.from_numpy(doy)}
    if label is not None:
        if label not in store.specs:
            raise StoreError(
                f"{store.path} has no label array {label!r}; arrays: {list(store.specs)}"
            )
        labels = store.read_many(label, pos).astype(np.int64)
        out["label"] = torch.from_numpy(labels)
    return out


class TensorDictDataset(Dataset[dict[str, Tensor]]):
    """An in-memory dataset of equally long tensors; indexing with a list gives a whole batch."""

    def __init__(self, tensors: dict[str, Tensor]) -> None:
        lengths = {k: int(v.shape[0]) for k, v in tensors.items()}
        if not lengths or len(set(lengths.values())) != 1:
            raise ValueError(f"tensors must be non-empty and equally long, got {lengths}")
        self.tensors = tensors
        self._n = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int | Sequence[int]) -> dict[str, Tensor]:
        if isinstance(index, int):
            return {k: v[index] for k, v in self.tensors.items()}
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}


def dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochBatchSampler(Sampler[list[int]]):
    """Shuffled batches of indices, the permutation seeded from ``(seed, epoch)``.

    ``set_epoch`` (called by Lightning at every epoch start) selects the permutation, so a resumed
    run draws exactly the batches an uninterrupted one would. Under ``torch.distributed`` each
    rank takes every ``world``-th index of the permutation (after truncating it to a multiple of
    the world size), as ``DistributedSampler`` does. ``drop_last`` drops an incomplete last batch
    (contrastive batches need at least 2 samples for batch norm and negatives).

    ``epoch_size`` (default ``n``): indices per epoch. A larger value concatenates seeded
    permutations of the ``n`` items until the epoch holds ``epoch_size`` of them, so a small
    labelled subset gets as many samples (and optimiser steps) per epoch as the full split.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        epoch_size: int | None = None,
    ) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if epoch_size is not None and epoch_size < n:
            raise ValueError(f"epoch_size must be >= n ({n}), got {epoch_size}")
        self.n = n
        self.epoch_size = n if epoch_size is None else int(epoch_size)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def _indices(self) -> list[int]:
        rank, world = dist_rank_world()
        rounds = -(-self.epoch_size // self.n)
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, 0x5A3D))
            perm = torch.cat([torch.randperm(self.n, generator=g) for _ in range(rounds)])
        else:
            perm = torch.arange(self.n).repeat(rounds)
        perm = perm[: self.epoch_size]
        usable = (self.epoch_size // world) * world
        return perm[:usable][rank::world].tolist()

    def _batch_size(self, per_rank: int) -> int:
        # a split smaller than one batch still yields one (smaller) batch per epoch
        return max(1, min(self.batch_size, per_rank))

    def __iter__(self) -> Iterator[list[int]]:
        indices = self._indices()
        size = self._batch_size(len(indices))
        for lo in range(0, len(indices), size):
            batch = indices[lo : lo + size]
            if len(batch) < size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        _, world = dist_rank_world()
        per_rank = self.epoch_size // world
        size = self._batch_size(per_rank)
        if self.drop_last:
            return per_rank // size
        return -(-per_rank // size)
