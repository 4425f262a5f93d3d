"""Torch view of a sharded dataset: one dict of tensors per sample.

Conversions (torch has no uint16 arithmetic):

* ``"image"`` (uint16 DN, per-sample ``[T, C, H, W]``): float32 reflectance
  ``(DN + offset) / 10000`` with the per-date offsets of index column ``dn_offset`` when
  ``reflectance=True``, else int32 DN (a float image is passed through as float32);
* ``"mask"`` (uint8): torch.uint8; other integer arrays (labels): torch.int64;
  bool arrays: torch.bool; float arrays: torch.float32.

Each sample also carries ``"index"`` (int64 scalar, position in the store) and, when the index
has a ``doy`` column, ``"doy"`` (int64 ``[T]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from s2ssl.bands import dn_to_reflectance
from s2ssl.data.store import ShardedDataset, StoreError, open_dataset

IMAGE: Final[str] = "image"
MASK: Final[str] = "mask"
OFFSET_COLUMN: Final[str] = "dn_offset"
DOY_COLUMN: Final[str] = "doy"

Sample = dict[str, torch.Tensor]
Transform = Callable[[Sample], Sample]


def _available(values: pd.Series) -> list[Any]:
    return sorted(pd.unique(values.dropna()).tolist(), key=str)


def _select(index: pd.DataFrame, column: str, wanted: Sequence[str]) -> np.ndarray:
    """Boolean mask of the rows whose ``column`` is in ``wanted`` (errors name what exists)."""
    if column not in index.columns:
        raise StoreError(
            f"cannot filter on {column!r}: the dataset index has no column {column!r} "
            f"(columns: {list(index.columns)}); drop the {column} filter"
        )
    available = _available(index[column])
    present = set(available)
    unknown = [w for w in wanted if w not in present]
    if unknown:
        raise StoreError(f"{column} {unknown} not in the dataset; available {column}s: {available}")
    return index[column].isin(list(wanted)).to_numpy(dtype=bool)


def _per_sample_vectors(
    index: pd.DataFrame, column: str, length: int | None, dtype: type[np.generic]
) -> list[np.ndarray]:
    """Index column ``column`` as one 1-D array per row (a scalar is repeated ``length`` times)."""
    out: list[np.ndarray] = []
    for pos, value in zip(index.index, index[column], strict=True):
        try:
            vec = np.asarray(value, dtype=dtype).reshape(-1)
        except (TypeError, ValueError):
            raise StoreError(
                f"index column {column!r} of sample {pos} is {value!r}; expected a list of numbers"
            ) from None
        if length is not None and vec.size == 1 and length != 1:
            vec = np.full(length, vec[0], dtype=dtype)
        if length is not None and vec.size != length:
            raise StoreError(
                f"index column {column!r} of sample {pos} has {vec.size} values, the image has "
                f"{length} dates; re-create the dataset with one value per date"
            )
        out.append(vec)
    return out


class S2Dataset(Dataset[Sample]):
    """Samples of a :class:`ShardedDataset` as dicts of tensors, optionally filtered.

    ``split`` / ``regions`` keep the rows whose index column ``split`` / ``region`` matches.
    Works with ``DataLoader(num_workers>0)``: shard memmaps are opened lazily in each worker.
    """

    def __init__(
        self,
        path_or_store: str | Path | ShardedDataset,
        arrays: Sequence[str] | None = None,
        *,
        split: str | None = None,
        regions: Sequence[str] | None = None,
        reflectance: bool = True,
        transform: Transform | None = None,
    ) -> None:
        store = (
            path_or_store
            if isinstance(path_or_store, ShardedDataset)
            else open_dataset(path_or_store)
        )
        if isinstance(arrays, str):
            arrays = (arrays,)
        names = tuple(arrays) if arrays is not None else store.array_names
        unknown = [a for a in names if a not in store.specs]
        if unknown:
            raise StoreError(
                f"dataset {store.path} has no array(s) {unknown}; available: {list(store.specs)}"
            )
        index = store.index
        reserved = {"index"} | ({DOY_COLUMN} if DOY_COLUMN in index.columns else set())
        clash = sorted(reserved & set(names))
        if clash:
            raise StoreError(f"array name(s) {clash} clash with keys S2Dataset adds; rename them")

        keep = np.ones(len(index), dtype=bool)
        filters: list[str] = []
        if split is not None:
            keep &= _select(index, "split", [split])
            filters.append(f"split {split!r}")
        if regions is not None:
            regions = [regions] if isinstance(regions, str) else list(regions)
            keep &= _select(index, "region", regions)
            filters.append(f"region in {regions}")
        positions = np.flatnonzero(keep).astype(np.int64)
        if filters and positions.size == 0:
            available = {c: _available(index[c]) for c in ("split", "region") if c in index.columns}
            raise StoreError(
                f"no sample has {' and '.join(filters)}; available values: {available}"
            )
        rows = index.iloc[positions]

        self._store = store
        self._names = names
        self._positions = positions
        self._index = rows.reset_index(drop=True)
        self._transform = transform
        self._reflectance = reflectance
        self._offsets: np.ndarray | None = None
        if IMAGE in names:
            spec = store.specs[IMAGE]
            kind = np.dtype(spec.dtype).kind
            if reflectance and kind not in "iu":
                raise StoreError(
                    f"array 'image' is {spec.dtype}, not integer DN, so it cannot be converted "
                    "to reflectance; pass reflectance=False"
                )
            if reflectance:
                if OFFSET_COLUMN not in index.columns:
                    raise StoreError(
                        f"the dataset index has no {OFFSET_COLUMN!r} column (per-date DN offsets), "
                        "needed to convert DN to reflectance; pass reflectance=False for DN or "
                        "re-create the dataset"
                    )
                if not spec.shape:
                    raise StoreError("array 'image' must have a per-sample shape [T, C, H, W]")
                n_dates = spec.shape[0]
                vectors = _per_sample_vectors(rows, OFFSET_COLUMN, n_dates, np.float32)
                # [N, T, 1, 1, 1]: broadcasts against one sample [T, C, H, W]
                bshape = (len(vectors), n_dates, *(1,) * (len(spec.shape) - 1))
                self._offsets = (
                    np.stack(vectors).reshape(bshape)
                    if vectors
                    else np.zeros(bshape, dtype=np.float32)
                )
        self._doy: list[np.ndarray] | None = (
            _per_sample_vectors(rows, DOY_COLUMN, None, np.int64)
            if DOY_COLUMN in index.columns
            else None
        )

    @property
    def store(self) -> ShardedDataset:
        """The underlying store."""
        return self._store

    @property
    def index(self) -> pd.DataFrame:
        """Index rows of the selected samples (RangeIndex: row ``i`` describes ``self[i]``)."""
        return self._index

    @property
    def positions(self) -> np.ndarray:
        """Position in the store of each selected sample (``self[i]["index"]``)."""
        return self._positions

    @property
    def array_names(self) -> tuple[str, ...]:
        """The arrays each sample carries."""
        return self._names

    def __len__(self) -> int:
        return len(self._positions)

    def _to_tensor(self, name: str, arr: np.ndarray, i: int) -> torch.Tensor:
        kind = arr.dtype.kind
        if name == IMAGE and kind in "iu":
            if self._offsets is not None:
                refl = dn_to_reflectance(arr, self._offsets[i])
                return torch.from_numpy(np.ascontiguousarray(refl, dtype=np.float32))
            return torch.from_numpy(np.array(arr, dtype=np.int32))
        if kind == "b":
            return torch.from_numpy(np.array(arr, dtype=np.bool_))
        if kind == "u" and name == MASK and arr.dtype == np.uint8:
            return torch.from_numpy(np.array(arr, dtype=np.uint8))
        if kind in "iu":
            return torch.from_numpy(np.array(arr, dtype=np.int64))
        if kind == "f":
            return torch.from_numpy(np.array(arr, dtype=np.float32))
        raise StoreError(f"array {name!r} has dtype {arr.dtype}, which S2Dataset cannot convert")

    def __getitem__(self, i: int) -> Sample:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for a dataset of {n} samples")
        i = int(i) % n
        pos = int(self._positions[i])
        sample: Sample = {
            name: self._to_tensor(name, self._store.read(name, pos), i) for name in self._names
        }
        sample["index"] = torch.tensor(pos, dtype=torch.int64)
        if self._doy is not None:
            sample["doy"] = torch.from_numpy(self._doy[i].copy())
        if self._transform is not None:
            sample = self._transform(sample)
        return sample

    def __repr__(self) -> str:
        return (
            f"S2Dataset({str(self._store.path)!r}, n={len(self)}, arrays={list(self._names)}, "
            f"reflectance={self._reflectance})"
        )


__all__ = ["S2Dataset"]
